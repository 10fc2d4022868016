"""Plausible wrong answers for each graded function, to prove the hidden tests catch them.

PLANTED[assignment][function][bug] is the full source a student might put in
that function's answer cell; every one must lose that cell's points under the
real autograder. They are self-contained (no call to another answer), so a bug
only affects its own cell. WRONG[assignment][function] is an answer that runs
and returns the right type but wrong values: the tampering tests pair it with
code that rebinds the checks.

A new chapter adds its dictionaries under its assignment id.
"""

RNN_STEP = {
    "delegates_to_nn_rnncell": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    cell = torch.nn.RNNCell(W_xh.shape[0], W_xh.shape[1]).to(x_t)
    with torch.no_grad():
        cell.weight_ih.copy_(W_xh.T); cell.weight_hh.copy_(W_hh.T)
        cell.bias_ih.copy_(b_h); cell.bias_hh.zero_()
    return cell(x_t, h_prev)
""",
    "recurrent_weights_transposed": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.tanh(x_t @ W_xh + h_prev @ W_hh.T + b_h)
""",
    "bias_forgotten": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.tanh(x_t @ W_xh + h_prev @ W_hh)
""",
    "sigmoid_instead_of_tanh": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.sigmoid(x_t @ W_xh + h_prev @ W_hh + b_h)
""",
    "bias_outside_tanh": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.tanh(x_t @ W_xh + h_prev @ W_hh) + b_h
""",
    "casts_to_float32": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.tanh((x_t @ W_xh + h_prev @ W_hh + b_h).float())
""",
    "delegates_to_torch_rnn_tanh_cell": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.rnn_tanh_cell(x_t, h_prev, W_xh.T, W_hh.T, b_h, None)
""",
    "writes_into_h_prev": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    h_prev.copy_(torch.tanh(x_t @ W_xh + h_prev @ W_hh + b_h))
    return h_prev
""",
    "delegates_to_seqlab": """
from seqlab.rnn import rnn_step as _seqlab_step
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return _seqlab_step(x_t, h_prev, W_xh, W_hh, b_h)
""",
}

RNN_FORWARD = {
    "iterates_over_batch_not_time": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h, hs = h0, []
    for x_t in xs:
        h = torch.tanh(x_t[-1] @ W_xh + h @ W_hh + b_h)
        hs.append(h)
    return torch.stack(hs, dim=1)
""",
    "returns_only_last_state": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h = h0
    for t in range(xs.shape[1]):
        h = torch.tanh(xs[:, t] @ W_xh + h @ W_hh + b_h)
    return h
""",
    "time_first_stack": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h, hs = h0, []
    for t in range(xs.shape[1]):
        h = torch.tanh(xs[:, t] @ W_xh + h @ W_hh + b_h)
        hs.append(h)
    return torch.stack(hs)
""",
    "no_recurrence_uses_h0_every_step": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    return torch.stack([torch.tanh(xs[:, t] @ W_xh + h0 @ W_hh + b_h)
                        for t in range(xs.shape[1])], dim=1)
""",
    "includes_h0": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h, hs = h0, [h0]
    for t in range(xs.shape[1]):
        h = torch.tanh(xs[:, t] @ W_xh + h @ W_hh + b_h)
        hs.append(h)
    return torch.stack(hs, dim=1)
""",
    "detaches_the_state": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h, hs = h0, []
    for t in range(xs.shape[1]):
        h = torch.tanh(xs[:, t] @ W_xh + h.detach() @ W_hh + b_h)
        hs.append(h)
    return torch.stack(hs, dim=1)
""",
    "preallocates_float32_zeros": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    B, T, _ = xs.shape
    hs = torch.zeros(B, T, h0.shape[1])
    h = h0
    for t in range(T):
        h = torch.tanh(xs[:, t] @ W_xh + h @ W_hh + b_h)
        hs[:, t] = h
    return hs
""",
    "delegates_to_torch_nn_rnn": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    rnn = torch.nn.RNN(W_xh.shape[0], W_xh.shape[1], batch_first=True).to(xs)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(W_xh.T); rnn.weight_hh_l0.copy_(W_hh.T)
        rnn.bias_ih_l0.copy_(b_h); rnn.bias_hh_l0.zero_()
    return rnn(xs, h0.unsqueeze(0))[0]
""",
    "off_by_one_drops_last_step": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h, hs = h0, []
    for t in range(xs.shape[1] - 1):
        h = torch.tanh(xs[:, t] @ W_xh + h @ W_hh + b_h)
        hs.append(h)
    return torch.stack(hs + [h], dim=1)
""",
}

SCALE_SPECTRAL_RADIUS = {
    "largest_absolute_real_part": """
def scale_spectral_radius(W, rho):
    return W * (rho / torch.linalg.eigvals(W).real.abs().max())
""",
    "largest_real_part": """
def scale_spectral_radius(W, rho):
    return W * (rho / torch.linalg.eigvals(W).real.max())
""",
    "spectral_norm_instead_of_radius": """
def scale_spectral_radius(W, rho):
    return W * (rho / torch.linalg.matrix_norm(W, ord=2))
""",
    "eigvalsh_assumes_symmetric": """
def scale_spectral_radius(W, rho):
    return W * (rho / torch.linalg.eigvalsh(W).abs().max())
""",
    "ratio_inverted": """
def scale_spectral_radius(W, rho):
    return W * (torch.linalg.eigvals(W).abs().max() / rho)
""",
    "scales_in_place": """
def scale_spectral_radius(W, rho):
    W *= rho / torch.linalg.eigvals(W).abs().max()
    return W
""",
    "frobenius_norm": """
def scale_spectral_radius(W, rho):
    return W * (rho / torch.linalg.norm(W))
""",
    "delegates_to_seqlab": """
import seqlab.gradients
def scale_spectral_radius(W, rho):
    return seqlab.gradients.scale_spectral_radius(W, rho)
""",
}

MATRIX_POWER_NORMS = {
    "torch_norm_p2_is_frobenius_for_matrices": """
def matrix_power_norms(W, steps):
    P, out = W, []
    for _ in range(steps):
        out.append(torch.norm(P, p=2))
        P = P @ W
    return torch.stack(out)
""",
    "matrix_norm_default_ord": """
def matrix_power_norms(W, steps):
    P, out = W, []
    for _ in range(steps):
        out.append(torch.linalg.matrix_norm(P))
        P = P @ W
    return torch.stack(out)
""",
    "squares_each_time": """
def matrix_power_norms(W, steps):
    P, out = W, []
    for _ in range(steps):
        out.append(torch.linalg.matrix_norm(P, ord=2))
        P = P @ P
    return torch.stack(out)
""",
    "starts_at_identity": """
def matrix_power_norms(W, steps):
    P, out = torch.eye(W.shape[0], dtype=W.dtype, device=W.device), []
    for _ in range(steps):
        out.append(torch.linalg.matrix_norm(P, ord=2))
        P = P @ W
    return torch.stack(out)
""",
    "frobenius_norm": """
def matrix_power_norms(W, steps):
    P, out = W, []
    for _ in range(steps):
        out.append(torch.linalg.norm(P))
        P = P @ W
    return torch.stack(out)
""",
    "delegates_to_matrix_power": """
def matrix_power_norms(W, steps):
    return torch.stack([torch.linalg.matrix_norm(torch.linalg.matrix_power(W, k), ord=2)
                        for k in range(1, steps + 1)])
""",
    "elementwise_power": """
def matrix_power_norms(W, steps):
    return torch.stack([torch.linalg.matrix_norm(W ** k, ord=2) for k in range(1, steps + 1)])
""",
    "radius_to_the_k": """
def matrix_power_norms(W, steps):
    r = torch.linalg.eigvals(W).abs().max()
    return torch.stack([r ** k for k in range(1, steps + 1)])
""",
    "float32_result_from_items": """
def matrix_power_norms(W, steps):
    P, out = W, []
    for _ in range(steps):
        out.append(torch.linalg.matrix_norm(P, ord=2).item())
        P = P @ W
    return torch.tensor(out)
""",
    "aliased_tensor_method_matrix_power": """
def matrix_power_norms(W, steps):
    power = W.matrix_power
    return torch.stack([torch.linalg.matrix_norm(power(k), ord=2) for k in range(1, steps + 1)])
""",
}

CLIP_GRAD_NORM = {
    "min_one_like_torch": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return [g * scale for g in grads], total
""",
    "forgets_the_sqrt": """
def clip_grad_norm(grads, max_norm):
    total = sum((g ** 2).sum() for g in grads)
    if total > max_norm:
        return [g * (max_norm / (total + 1e-6)) for g in grads], total
    return [g.clone() for g in grads], total
""",
    "clips_each_tensor_separately": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    out = []
    for g in grads:
        n = g.norm()
        out.append(g * (max_norm / (n + 1e-6)) if n > max_norm else g.clone())
    return out, total
""",
    "always_rescales": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    return [g * (max_norm / (total + 1e-6)) for g in grads], total
""",
    "forgets_the_epsilon": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    scale = max_norm / total if total > max_norm else 1.0
    return [g * scale for g in grads], total
""",
    "clips_at_equality": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    if total >= max_norm:
        return [g * (max_norm / (total + 1e-6)) for g in grads], total
    return [g.clone() for g in grads], total
""",
    "modifies_gradients_in_place": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    if total > max_norm:
        for g in grads:
            g.mul_(max_norm / (total + 1e-6))
    return list(grads), total
""",
    "returns_the_given_tensors": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    if total > max_norm:
        return [g * (max_norm / (total + 1e-6)) for g in grads], total
    return grads, total
""",
    "total_as_python_float": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
    if total > max_norm:
        return [g * (max_norm / (total + 1e-6)) for g in grads], total
    return [g.clone() for g in grads], total
""",
    "sum_of_norms": """
def clip_grad_norm(grads, max_norm):
    total = sum(g.norm() for g in grads)
    if total > max_norm:
        return [g * (max_norm / (total + 1e-6)) for g in grads], total
    return [g.clone() for g in grads], total
""",
    "delegates_to_torch_clip_grad_norm_": """
from torch.nn.utils import clip_grad_norm_ as _clip
def clip_grad_norm(grads, max_norm):
    params = [torch.nn.Parameter(g.clone()) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = _clip(params, max_norm)
    return [p.grad for p in params], total
""",
}

PLANTED = {
    "rnn_gradients": {
        "rnn_step": RNN_STEP,
        "rnn_forward": RNN_FORWARD,
        "scale_spectral_radius": SCALE_SPECTRAL_RADIUS,
        "matrix_power_norms": MATRIX_POWER_NORMS,
        "clip_grad_norm": CLIP_GRAD_NORM,
    },
}

WRONG = {
    "rnn_gradients": {
        "rnn_step": "def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):\n    return h_prev * 0",
        "rnn_forward": "def rnn_forward(xs, h0, W_xh, W_hh, b_h):\n"
        "    return h0.unsqueeze(1).repeat(1, xs.shape[1], 1) * 0",
        "scale_spectral_radius": "def scale_spectral_radius(W, rho):\n    return W * 0",
        "matrix_power_norms": "def matrix_power_norms(W, steps):\n    return W.new_ones(steps)",
        "clip_grad_norm": "def clip_grad_norm(grads, max_norm):\n"
        "    return [g * 0 for g in grads], grads[0].sum() * 0",
    },
}
