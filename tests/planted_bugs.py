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
    # b_h[:, None] is (H, 1): it broadcasts over the batch only when B == H, else fails
    "bias_as_a_column": """
def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):
    return torch.tanh(x_t @ W_xh + h_prev @ W_hh + b_h[:, None])
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
    "ignores_h0_starts_at_zero": """
def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    h, hs = torch.zeros_like(h0), []
    for t in range(xs.shape[1]):
        h = torch.tanh(xs[:, t] @ W_xh + h @ W_hh + b_h)
        hs.append(h)
    return torch.stack(hs, dim=1)
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
    "returns_a_list_of_norms": """
def matrix_power_norms(W, steps):
    norms, power = [], W
    for _ in range(steps):
        norms.append(torch.linalg.matrix_norm(power, ord=2))
        power = power @ W
    return norms
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
    "total_measured_after_clipping": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    if total > max_norm:
        grads = [g * (max_norm / (total + 1e-6)) for g in grads]
        return grads, torch.sqrt(sum((g ** 2).sum() for g in grads))
    return [g.clone() for g in grads], total
""",
    "total_in_float32": """
def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        return [g * scale for g in grads], total
    return [g.clone() for g in grads], total
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

# chapter 2: lstm_gru. An lstm_forward bug computes its own cell, so it stays in its cell.
LSTM_CELL = {
    "gate_order_i_f_o_g": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, o, g = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
""",
    "forget_gate_on_the_candidate": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(i) * c + torch.sigmoid(f) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
""",
    "tanh_for_the_output_gate": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.tanh(o) * torch.tanh(c_new), c_new
""",
    "h_from_the_old_cell": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c_new
""",
    "h_without_tanh_of_the_cell": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c_new, c_new
""",
    "only_the_input_bias": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
""",
    "returns_c_then_h": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return c_new, torch.sigmoid(o) * torch.tanh(c_new)
""",
    "sigmoid_for_the_candidate": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = torch.sigmoid(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new
""",
    "updates_c_in_place": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c.mul_(torch.sigmoid(f)).add_(torch.sigmoid(i) * torch.tanh(g))
    return torch.sigmoid(o) * torch.tanh(c), c
""",
    "casts_to_float32": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).float().chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c.float() + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
""",
    "delegates_to_torch_lstm_cell": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    return torch.lstm_cell(x, (h, c), W_ih, W_hh, b_ih, b_hh)
""",
    "delegates_to_nn_lstmcell": """
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(W_ih.shape[1], W_hh.shape[1]).to(x)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih); cell.weight_hh.copy_(W_hh)
        cell.bias_ih.copy_(b_ih); cell.bias_hh.copy_(b_hh)
    return cell(x, (h, c))
""",
    "delegates_to_seqlab": """
from seqlab.lstm import lstm_cell as _seqlab_cell
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    return _seqlab_cell(x, h, c, W_ih, W_hh, b_ih, b_hh)
""",
}

GRU_CELL = {
    "reset_before_the_product_as_in_cho": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, _ = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:])
    return (1 - z) * n + z * h
""",
    "reset_leaves_out_the_hidden_bias": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T).chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r + b_hh[:H])
    z = torch.sigmoid(x_z + h_z + b_hh[H:2 * H])
    n = torch.tanh(x_n + r * h_n + b_hh[2 * H:])
    return (1 - z) * n + z * h
""",
    "update_gate_flipped": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return z * n + (1 - z) * h
""",
    "gate_order_z_r_n": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    x_z, x_r, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_z, h_r, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h
""",
    "only_the_input_bias": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h
""",
    "sums_before_splitting_so_no_reset": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    r, z, n = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(3, dim=1)
    z = torch.sigmoid(z)
    return (1 - z) * torch.tanh(n) + z * h
""",
    "sigmoid_for_the_candidate": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.sigmoid(x_n + r * h_n)
    return (1 - z) * n + z * h
""",
    "updates_h_in_place": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return h.mul_(z).add_((1 - z) * n)
""",
    "casts_to_float32": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).float().chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).float().chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h.float()
""",
    "delegates_to_torch_gru_cell": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)
""",
    "delegates_to_nn_grucell": """
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.GRUCell(W_ih.shape[1], W_hh.shape[1]).to(x)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih); cell.weight_hh.copy_(W_hh)
        cell.bias_ih.copy_(b_ih); cell.bias_hh.copy_(b_hh)
    return cell(x, h)
""",
}

_CELL = """
def _cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
"""

LSTM_FORWARD = {
    "time_first_stack": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs), (h, c)
""",
    "final_cell_is_the_initial_one": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c0)
""",
    "final_state_c_then_h": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (c, h)
""",
    "stacks_the_cells_not_the_hidden_states": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, cs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        cs.append(c)
    return torch.stack(cs, dim=1), (h, c)
""",
    "includes_h0": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, [h0]
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs[:-1], dim=1), (h, c)
""",
    "restarts_the_cell_every_step": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c0, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)
""",
    "detaches_the_state": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h.detach(), c.detach(), W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)
""",
    "reads_the_sequence_backwards": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in reversed(range(xs.shape[1])):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)
""",
    "preallocates_float32_zeros": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    B, T, _ = xs.shape
    hs = torch.zeros(B, T, h0.shape[1], device=xs.device)
    h, c = h0, c0
    for t in range(T):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs[:, t] = h
    return hs, (h, c)
""",
    "writes_the_state_into_h0_and_c0": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    hs = []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h0, c0, W_ih, W_hh, b_ih, b_hh)
        h0.data.copy_(h); c0.data.copy_(c)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)
""",
    "delegates_to_nn_lstm": """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    lstm = torch.nn.LSTM(W_ih.shape[1], W_hh.shape[1], batch_first=True).to(xs)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(W_ih); lstm.weight_hh_l0.copy_(W_hh)
        lstm.bias_ih_l0.copy_(b_ih); lstm.bias_hh_l0.copy_(b_hh)
    hs, (h, c) = lstm(xs, (h0[None], c0[None]))
    return hs, (h[0], c[0])
""",
    "delegates_to_torch_lstm": """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    hs, h, c = torch.lstm(xs, (h0[None], c0[None]), [W_ih, W_hh, b_ih, b_hh],
                          True, 1, 0.0, False, False, True)
    return hs, (h[0], c[0])
""",
    "loops_over_torch_lstm_cell": """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = torch.lstm_cell(xs[:, t], (h, c), W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)
""",
    "delegates_to_seqlab": """
import seqlab.lstm as _seqlab_lstm
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    return _seqlab_lstm.lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh)
""",
    "final_state_as_a_list": _CELL
    + """
def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, hs = h0, c0, []
    for t in range(xs.shape[1]):
        h, c = _cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), [h, c]
""",
}

FIRST_STEP_GRADIENT = {
    "sums_every_state_not_the_last": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x).sum(), x)
    return grad[:, 0].norm()
""",
    "gradient_at_the_last_input": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return grad[:, -1].norm()
""",
    "norm_of_the_whole_gradient": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return grad.norm()
""",
    "mean_of_the_last_state": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].mean(), x)
    return grad[:, 0].norm()
""",
    "switches_on_requires_grad_of_xs": """
def first_step_gradient(forward, xs):
    xs.requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(xs)[:, -1].sum(), xs)
    return grad[:, 0].norm()
""",
    "mean_of_per_sequence_norms": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return grad[:, 0].norm(dim=1).mean()
""",
    "returns_a_float": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return grad[:, 0].norm().item()
""",
    "squared_norm": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return (grad[:, 0] ** 2).sum()
""",
    "first_state_not_the_last": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, 0].sum(), x)
    return grad[:, 0].norm()
""",
    "first_sequence_not_first_step": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return grad[0].norm()
""",
    "sum_of_per_sequence_norms": """
def first_step_gradient(forward, xs):
    x = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[:, -1].sum(), x)
    return grad[:, 0].norm(dim=-1).sum()
""",
}

PLANTED["lstm_gru"] = {
    "lstm_cell": LSTM_CELL,
    "gru_cell": GRU_CELL,
    "lstm_forward": LSTM_FORWARD,
    "first_step_gradient": FIRST_STEP_GRADIENT,
}

WRONG["lstm_gru"] = {
    "lstm_cell": "def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):\n    return h * 0, c * 0",
    "gru_cell": "def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):\n    return h * 0",
    "lstm_forward": "def lstm_forward(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):\n"
    "    return h0.unsqueeze(1).repeat(1, xs.shape[1], 1) * 0, (h0 * 0, c0 * 0)",
    "first_step_gradient": "def first_step_gradient(forward, xs):\n    return xs.sum() * 0",
}

DOT_PRODUCT_ATTENTION = {
    "mask_ignored": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "finite_fill_minus_1e4": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e4)
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "masks_after_softmax_without_renormalising": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "masks_after_softmax_then_renormalises": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "softmax_over_the_batch": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=0)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "scaled_by_sqrt_h": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1) / query.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "naive_exp_overflows": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    exps = torch.exp(scores)
    if mask is not None:
        exps = exps * mask
    weights = exps / exps.sum(dim=-1, keepdim=True)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "context_from_the_keys": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights
""",
    "fills_scores_in_place_into_keys": """
def dot_product_attention(query, keys, values, mask=None):
    if mask is not None:
        keys.masked_fill_(~mask[..., None], 0.0)
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "delegates_to_scaled_dot_product_attention": """
import torch.nn.functional as F
def dot_product_attention(query, keys, values, mask=None):
    attn_mask = None if mask is None else mask[:, None, :]
    context = F.scaled_dot_product_attention(
        query[:, None, :], keys, values, attn_mask=attn_mask, scale=1.0
    )[:, 0]
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return context, torch.softmax(scores, dim=-1)
""",
    "delegates_to_seqlab": """
from seqlab.attention import dot_product_attention as _seqlab_attention
def dot_product_attention(query, keys, values, mask=None):
    return _seqlab_attention(query, keys, values, mask)
""",
    "detaches_the_weights": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).detach()
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    # squeeze() drops the batch dimension too when B == 1
    "squeezes_every_dimension": """
def dot_product_attention(query, keys, values, mask=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(-2) @ values).squeeze(), weights
""",
}

ADDITIVE_ATTENTION = {
    "mask_ignored": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "W_q_and_W_k_swapped": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_k).unsqueeze(1) + keys @ W_q) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "missing_tanh": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = ((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "v_inside_tanh": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh(((query @ W_q).unsqueeze(1) + keys @ W_k) @ v)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "softmax_over_the_batch": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=0)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "naive_exp_overflows": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    exps = torch.exp(scores)
    if mask is not None:
        exps = torch.where(mask, exps, torch.zeros_like(exps))
    weights = exps / exps.sum(dim=-1, keepdim=True)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "finite_fill_minus_1e4": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e4)
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "masks_after_softmax_without_renormalising": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask, weights, torch.zeros_like(weights))
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "keys_used_as_values": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights
""",
    "inverts_the_mask_in_place": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    if mask is not None:
        padding = mask.logical_not_()  # saves a copy
        scores = scores.masked_fill(padding, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
    "weighted_sum_by_scaled_dot_product_attention": """
import torch.nn.functional as F
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    # "a faster weighted sum": the fused kernel with the scores as an additive bias
    zeros_q, zeros_k = torch.zeros_like(values[:, :1, :1]), torch.zeros_like(values[..., :1])
    context = F.scaled_dot_product_attention(
        zeros_q, zeros_k, values, attn_mask=scores[:, None, :]
    )[:, 0]
    return context, weights
""",
    "delegates_to_seqlab": """
import seqlab.attention as _seqlab_attention
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    return _seqlab_attention.additive_attention(query, keys, values, W_q, W_k, v, mask)
""",
    # (B, A) + (B, S, A) broadcasts the batch against the source positions
    "query_term_not_unsqueezed": """
def additive_attention(query, keys, values, W_q, W_k, v, mask=None):
    scores = torch.tanh(query @ W_q + keys @ W_k) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights
""",
}

PLANTED["attention"] = {
    "dot_product_attention": DOT_PRODUCT_ATTENTION,
    "additive_attention": ADDITIVE_ATTENTION,
}

WRONG["attention"] = {
    "dot_product_attention": "def dot_product_attention(query, keys, values, mask=None):\n"
    "    w = torch.ones_like(keys[..., 0]) / keys.shape[1]\n"
    "    return values.sum(dim=1) * 0, w",
    "additive_attention": "def additive_attention(query, keys, values, W_q, W_k, v, mask=None):\n"
    "    w = torch.ones_like(keys[..., 0]) / keys.shape[1]\n"
    "    return values.sum(dim=1) * 0, w",
}


# chapter 3: seq2seq

SEQUENCE_NLL = {
    "delegates_to_cross_entropy": """
def sequence_nll(logits, targets, pad_id):
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)
""",
    "delegates_to_nll_loss": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=-1)
    return torch.nn.functional.nll_loss(
        log_probs.flatten(0, 1), targets.flatten(), ignore_index=pad_id)
""",
    "mean_over_pad_too": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).mean()
""",
    "pad_zeroed_but_counted": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -(picked * (targets != pad_id)).mean()
""",
    "sum_not_mean": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -picked[targets != pad_id].sum()
""",
    "mean_of_sentence_means": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = (targets != pad_id).to(picked.dtype)
    return (-(picked * real).sum(dim=1) / real.sum(dim=1)).mean()
""",
    "shifted_by_one": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    tgt = targets[:, 1:]
    picked = log_probs.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    return -picked[tgt != pad_id].mean()
""",
    "log_of_softmax": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log(torch.softmax(logits, dim=-1))
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -picked[targets != pad_id].mean()
""",
    "softmax_over_time": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -picked[targets != pad_id].mean()
""",
    "detached_float": """
def sequence_nll(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits.detach().double(), dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return torch.tensor(-picked[targets != pad_id].mean().item())
""",
    "delegates_to_seqlab": """
from seqlab.seq2seq import sequence_nll as _nll
def sequence_nll(logits, targets, pad_id):
    return _nll(logits, targets, pad_id)
""",
    "pad_assumed_to_be_0": """
def sequence_nll(logits, targets, pad_id):
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = targets != 0
    return -(picked * real).sum() / real.sum()
""",
    "computed_in_float32": """
def sequence_nll(logits, targets, pad_id):
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = targets != pad_id
    return (-(picked * real).sum() / real.sum()).to(logits.dtype)
""",
}

GREEDY_DECODE = {
    "ignores_eos": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(int(token))
    return out
""",
    "drops_eos": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        if int(token) == eos_id:
            break
        out.append(int(token))
    return out
""",
    "keeps_bos": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = [bos_id]
    while len(out) <= max_len:
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out
""",
    "one_token_too_many": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    while len(out) <= max_len:
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out
""",
    "always_feeds_bos": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    bos = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(bos, state)
        out.append(int(log_probs.argmax(dim=-1)))
        if out[-1] == eos_id:
            break
    return out
""",
    "never_updates_state": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, _ = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out
""",
    "argmax_over_rows": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=0)[:1]
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out
""",
    "returns_a_tensor": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(token)
        if int(token) == eos_id:
            break
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
""",
    "delegates_to_seqlab": """
from seqlab.base.decoding import greedy_decode as _greedy
def greedy_decode(step, state, bos_id, eos_id, max_len):
    return _greedy(step, state, bos_id, eos_id, max_len)
""",
    "one_token_too_few": """
def greedy_decode(step, state, bos_id, eos_id, max_len):
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out = []
    for _ in range(max_len - 1):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out
""",
}

# the reference beam search with one change each; _BEAM fills in the parts
_BEAM = """
def beam_search(step, state, bos_id, eos_id, beam_size, max_len, length_penalty=0.0):
    live = [([], 0.0)]
    last = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    finished = []
    for _ in range(max_len):
        log_probs, new_state = step(last, state)
        V = log_probs.shape[-1]
        sums = torch.tensor([s for _, s in live], dtype=torch.float64, device=log_probs.device)
        totals = (sums[:, None] + log_probs.double()).flatten()
        {RANK}
        keep, parents = [], []
        for score, i in zip(best.tolist(), index.tolist()):
            parent, token = divmod(i, V)
            tokens = live[parent][0] + [token]
            {FINISH}
        if not keep:
            break
        live = keep
        {REORDER}
        last = torch.tensor([t[-1] for t, _ in live], dtype=torch.long, device=new_state.device)
    else:
        finished.extend(live)
    scored = [(t, {SCORE}) for t, s in finished]
    return {RETURN}
"""
_PARTS = {
    "RANK": "k = min(beam_size - len(finished), totals.numel())\n"
    "        best, index = totals.topk(k)",
    "FINISH": "if token == eos_id:\n"
    "                finished.append((tokens, score))\n"
    "            else:\n"
    "                keep.append((tokens, score))\n"
    "                parents.append(parent)",
    "REORDER": "state = new_state[torch.tensor(parents, device=new_state.device)]",
    "SCORE": "s / max(len(t), 1) ** length_penalty",
    "RETURN": "sorted(scored, key=lambda item: item[1], reverse=True)[:beam_size]",
}


def _beam(**changes):
    parts = _PARTS | changes
    src = _BEAM
    for key, value in parts.items():
        src = src.replace("{" + key + "}", value)
    return src


BEAM_SEARCH = {
    "running_score_normalised": _beam(
        FINISH="if token == eos_id:\n"
        "                finished.append((tokens, score))\n"
        "            else:\n"
        "                keep.append((tokens, score / len(tokens) ** length_penalty))\n"
        "                parents.append(parent)",
    ),
    "states_not_reordered": _beam(REORDER="state = new_state[: len(parents)]"),
    "states_by_slot_not_parent": _beam(
        REORDER="rows = torch.arange(len(parents), device=new_state.device)\n"
        "        state = new_state[rows % new_state.shape[0]]"
    ),
    "eos_not_special": _beam(
        FINISH="keep.append((tokens, score))\n            parents.append(parent)",
    ),
    "beam_not_shrunk_after_eos": _beam(
        RANK="k = min(beam_size, totals.numel())\n        best, index = totals.topk(k)",
        FINISH="if token == eos_id:\n"
        "                finished.append((tokens, score))\n"
        "            else:\n"
        "                keep.append((tokens, score))\n"
        "                parents.append(parent)\n"
        "        if len(finished) >= beam_size:\n"
        "            keep = []",
    ),
    "beam_never_shrinks": _beam(
        RANK="k = min(2 * beam_size, totals.numel())\n        best, index = totals.topk(k)",
        FINISH="if token == eos_id:\n"
        "                finished.append((tokens, score))\n"
        "            elif len(keep) < beam_size:\n"
        "                keep.append((tokens, score))\n"
        "                parents.append(parent)\n"
        "        if len(finished) >= beam_size:\n"
        "            keep = []",
    ),
    "length_counts_bos": _beam(SCORE="s / (len(t) + 1) ** length_penalty"),
    "length_excludes_eos": _beam(
        SCORE="s / max(len(t) - (t[-1:] == [eos_id]), 1) ** length_penalty"
    ),
    "penalty_multiplies": _beam(SCORE="s * max(len(t), 1) ** length_penalty"),
    "returns_every_finished": _beam(
        RANK="k = min(beam_size, totals.numel())\n        best, index = totals.topk(k)",
        FINISH="if token == eos_id:\n"
        "                finished.append((tokens, score))\n"
        "            else:\n"
        "                keep.append((tokens, score))\n"
        "                parents.append(parent)\n"
        "        if len(finished) >= beam_size:\n"
        "            keep = []",
        RETURN="sorted(scored, key=lambda item: item[1], reverse=True)",
    ),
    "unfinished_dropped_at_max_len": _beam().replace(
        "    else:\n        finished.extend(live)\n", ""
    ),
    "sorted_worst_first": _beam(RETURN="sorted(scored, key=lambda item: item[1])[:beam_size]"),
    "delegates_to_seqlab": """
from seqlab.base.decoding import beam_search as _beam
def beam_search(step, state, bos_id, eos_id, beam_size, max_len, length_penalty=0.0):
    return _beam(step, state, bos_id, eos_id, beam_size, max_len, length_penalty)
""",
    # stops as soon as the best candidate of a step ends with eos
    "stops_when_the_best_finishes": _beam(
        FINISH="if token == eos_id:\n"
        "                finished.append((tokens, score))\n"
        "                if score == best[0].item():\n"
        "                    keep = []\n"
        "                    break\n"
        "            else:\n"
        "                keep.append((tokens, score))\n"
        "                parents.append(parent)",
    ),
}

PLANTED["seq2seq"] = {
    "sequence_nll": SEQUENCE_NLL,
    "greedy_decode": GREEDY_DECODE,
    "beam_search": BEAM_SEARCH,
}

WRONG["seq2seq"] = {
    "sequence_nll": "def sequence_nll(logits, targets, pad_id):\n    return logits.sum() * 0",
    "greedy_decode": "def greedy_decode(step, state, bos_id, eos_id, max_len):\n"
    "    return [eos_id]",
    "beam_search": "def beam_search(step, state, bos_id, eos_id, beam_size, max_len, "
    "length_penalty=0.0):\n    return [([eos_id], 0.0)]",
}


# chapter 5: transformers. A MultiHeadAttention bug computes its own attention, so it stays
# in its cell (the solution does not call scaled_dot_product_attention either).

_SDPA = """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
"""

SCALED_DOT_PRODUCT_ATTENTION = {
    "no_sqrt_scaling": _SDPA.replace(" / math.sqrt(q.shape[-1])", ""),
    "scaled_by_sqrt_of_the_key_length": _SDPA.replace("q.shape[-1]", "k.shape[-2]"),
    "scaled_by_sqrt_of_the_value_size": _SDPA.replace("q.shape[-1]", "v.shape[-1]"),
    "scaled_after_the_softmax": """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1) / math.sqrt(q.shape[-1])
    return weights @ v, weights
""",
    "mask_inverted": _SDPA.replace("masked_fill(~mask,", "masked_fill(mask,"),
    "mask_ignored": _SDPA.replace('scores = scores.masked_fill(~mask, float("-inf"))', "pass"),
    "masked_with_zero": _SDPA.replace('float("-inf")', "0.0"),
    "finite_fill_minus_1e4": _SDPA.replace('float("-inf")', "-1e4"),
    "softmax_over_the_queries": _SDPA.replace("dim=-1", "dim=-2"),
    "transposes_dims_1_and_2": _SDPA.replace("k.transpose(-2, -1)", "k.transpose(1, 2)"),
    "weights_not_returned": _SDPA.replace("return weights @ v, weights", "return weights @ v"),
    "scales_q_in_place": """
def scaled_dot_product_attention(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
""",
    "delegates_to_functional_sdpa": """
import torch.nn.functional as F
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), torch.softmax(scores, dim=-1)
""",
    "delegates_to_seqlab": """
from seqlab.transformer import scaled_dot_product_attention as _seqlab_sdpa
def scaled_dot_product_attention(q, k, v, mask=None):
    return _seqlab_sdpa(q, k, v, mask)
""",
}

CAUSAL_MASK = {
    "transposed": """
def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).triu()
""",
    "strict_no_diagonal": """
def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
""",
    "sees_one_step_ahead": """
def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril(diagonal=1)
""",
    "inverted_true_marks_the_future": """
def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
""",
    "float_mask": """
def causal_mask(T):
    return torch.ones(T, T).tril()
""",
    "uint8_mask": """
def causal_mask(T):
    return torch.ones(T, T, dtype=torch.uint8).tril()
""",
    "delegates_to_generate_square_subsequent_mask": """
def causal_mask(T):
    return torch.nn.Transformer.generate_square_subsequent_mask(T) == 0
""",
    "delegates_to_seqlab": """
import seqlab.transformer as _seqlab_transformer
def causal_mask(T):
    return _seqlab_transformer.causal_mask(T)
""",
}

_POSITIONS = """
def sinusoidal_positions(T, d):
    t = torch.arange(T, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    P = torch.empty(T, d, dtype=torch.float64)
    P[:, 0::2] = torch.sin(t * freq)
    P[:, 1::2] = torch.cos(t * freq)
    return P.float()
"""

SINUSOIDAL_POSITIONS = {
    "sin_and_cos_swapped": _POSITIONS.replace("torch.sin(t", "torch.SIN(t")
    .replace("torch.cos(t", "torch.sin(t")
    .replace("torch.SIN(t", "torch.cos(t"),
    "exponent_i_not_2i": _POSITIONS.replace(
        "-torch.arange(0, d, 2, dtype=torch.float64) / d",
        "-torch.arange(d // 2, dtype=torch.float64) / d",
    ),
    "multiplies_by_the_frequency_power": _POSITIONS.replace("10000.0 ** (-", "10000.0 ** ("),
    "computed_in_float32": _POSITIONS.replace("torch.float64", "torch.float32"),
    "returns_float64": _POSITIONS.replace("return P.float()", "return P"),
    "sines_then_cosines_concatenated": """
def sinusoidal_positions(T, d):
    t = torch.arange(T, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    return torch.cat([torch.sin(t * freq), torch.cos(t * freq)], dim=1).float()
""",
    "positions_start_at_1": _POSITIONS.replace("torch.arange(T,", "1 + torch.arange(T,"),
    "delegates_to_seqlab": """
from seqlab.transformer import sinusoidal_positions as _seqlab_positions
def sinusoidal_positions(T, d):
    return _seqlab_positions(T, d)
""",
    "exponent_4i": _POSITIONS.replace("** (-torch.arange(", "** (-2 * torch.arange("),
}

# the solution with one part changed each; _MHA fills in the parts
_MHA = """
class MultiHeadAttention(torch.nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj = torch.nn.Linear(d_model, d_model{BIAS})
        self.k_proj = torch.nn.Linear(d_model, d_model{BIAS})
        self.v_proj = torch.nn.Linear(d_model, d_model{BIAS})
        self.out_proj = torch.nn.Linear(d_model, d_model{BIAS})

    def _heads(self, x):
        B, T, _ = x.shape
        return {HEADS}

    def forward(self, query, key, value, mask=None):
        B, Tq, d_model = query.shape
        q = self._heads(self.q_proj(query))
        k = self._heads(self.{K_PROJ}(key))
        v = self._heads(self.v_proj(value))
        scores = q @ k.transpose(-2, -1) / math.sqrt({SCALE})
        if mask is not None:
            {MASK}
        weights = torch.softmax(scores, dim=-1)
        out = {MERGE}
        return {OUT}
"""
_MHA_PARTS = {
    "BIAS": "",
    "HEADS": "x.reshape(B, T, self.n_heads, self.d_head).transpose(1, 2)",
    "K_PROJ": "k_proj",
    "SCALE": "self.d_head",
    "MASK": "scores = scores.masked_fill(~(mask.unsqueeze(1) if mask.dim() == 3 else mask), "
    'float("-inf"))',
    "MERGE": "(weights @ v).transpose(1, 2).reshape(B, Tq, d_model)",
    "OUT": "self.out_proj(out)",
}


def _mha(**changes):
    source = _MHA
    for part, default in _MHA_PARTS.items():
        source = source.replace("{" + part + "}", changes.get(part, default))
    return source


MULTI_HEAD_ATTENTION = {
    "heads_split_in_the_wrong_order": _mha(HEADS="x.reshape(B, self.n_heads, T, self.d_head)"),
    "heads_merged_without_transposing_back": _mha(MERGE="(weights @ v).reshape(B, Tq, d_model)"),
    "no_out_proj": _mha(OUT="out"),
    "scaled_by_sqrt_d_model": _mha(SCALE="d_model"),
    "mask_ignored": _mha(MASK="pass"),
    "mask_inverted": _mha(
        MASK="scores = scores.masked_fill(mask.unsqueeze(1) if mask.dim() == 3 else mask, "
        'float("-inf"))'
    ),
    "per_row_mask_not_spread_over_heads": _mha(
        MASK='scores = scores.masked_fill(~mask, float("-inf"))'
    ),
    "keys_projected_with_q_proj": _mha(K_PROJ="q_proj"),
    "projections_without_bias": _mha(BIAS=", bias=False"),
    "softmax_over_the_heads": _mha().replace("softmax(scores, dim=-1)", "softmax(scores, dim=1)"),
    "delegates_to_functional_sdpa": _mha(
        MERGE="torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None "
        "if mask is None else (mask.unsqueeze(1) if mask.dim() == 3 else mask))"
        ".transpose(1, 2).reshape(B, Tq, d_model)"
    ),
    "delegates_to_torch_multiheadattention": """
class MultiHeadAttention(torch.nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = torch.nn.Linear(d_model, d_model)
        self.k_proj = torch.nn.Linear(d_model, d_model)
        self.v_proj = torch.nn.Linear(d_model, d_model)
        self.out_proj = torch.nn.Linear(d_model, d_model)
        self.torch_mha = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True)

    def forward(self, query, key, value, mask=None):
        with torch.no_grad():
            self.torch_mha.to(query)
            self.torch_mha.in_proj_weight.copy_(
                torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
            )
            self.torch_mha.in_proj_bias.copy_(
                torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
            )
            self.torch_mha.out_proj.load_state_dict(self.out_proj.state_dict())
        attn_mask = None
        if mask is not None:
            B, Tq, Tk = query.shape[0], query.shape[1], key.shape[1]
            attn_mask = ~mask if mask.dim() == 2 else (~mask).expand(B, Tq, Tk)
            if attn_mask.dim() == 3:
                attn_mask = attn_mask.repeat_interleave(self.n_heads, 0)
        return self.torch_mha(query, key, value, attn_mask=attn_mask, need_weights=False)[0]
""",
    "delegates_to_seqlab": """
import seqlab.transformer as _seqlab_transformer
class MultiHeadAttention(_seqlab_transformer.MultiHeadAttention):
    def __init__(self, d_model, n_heads):
        super().__init__(d_model, n_heads)
""",
    # a (Tq, Tk) mask made (Tq, 1, Tk): it broadcasts against the heads, not the queries
    "unsqueezes_every_mask": _mha(
        MASK='scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))'
    ),
    "values_projected_from_the_keys": _mha().replace(
        "self.v_proj(value)", "self.v_proj(key)"
    ),
}

# apply_rope: the solution with one part changed each (the rotate-half layout of GPT-NeoX/LLaMA)
_ROPE = """
def apply_rope(x, base=10000.0):
    T, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"d should be even, got {d}")
    half = d // 2
    t = torch.arange(T, dtype=torch.float64, device=x.device)[:, None]
    freq = base ** (-2 * torch.arange(half, dtype=torch.float64, device=x.device) / d)
    angle = t * freq
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
"""

APPLY_ROPE = {
    "interleaved_pairs_as_in_the_paper": _ROPE.replace(
        "x1, x2 = x[..., :half], x[..., half:]", "x1, x2 = x[..., 0::2], x[..., 1::2]"
    ).replace(
        "return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)",
        "return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)",
    ),
    "exponent_i_over_d": _ROPE.replace("(-2 * torch.arange(half,", "(-torch.arange(half,"),
    "positions_start_at_1": _ROPE.replace("t = torch.arange(T,", "t = 1 + torch.arange(T,"),
    "rotates_the_other_way": _ROPE.replace(
        "[x1 * cos - x2 * sin, x2 * cos + x1 * sin]", "[x1 * cos + x2 * sin, x2 * cos - x1 * sin]"
    ),
    "base_ignored": _ROPE.replace("freq = base **", "freq = 10000.0 **"),
    "angle_times_the_power": _ROPE.replace("base ** (-2 * torch", "base ** (2 * torch"),
    # GPT-NeoX's partial rotary (rotary_pct = 0.5): only the first d/2 features turn
    "rotates_only_the_first_half": """
def apply_rope(x, base=10000.0):
    T, d = x.shape[-2], x.shape[-1]
    rot, quarter = d // 2, d // 4
    t = torch.arange(T, dtype=torch.float64, device=x.device)[:, None]
    freq = base ** (-2 * torch.arange(quarter, dtype=torch.float64, device=x.device) / rot)
    cos, sin = torch.cos(t * freq).to(x.dtype), torch.sin(t * freq).to(x.dtype)
    x1, x2 = x[..., :quarter], x[..., quarter:2 * quarter]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., 2 * quarter:]], dim=-1)
""",
    "rotates_x_in_place": _ROPE.replace(
        "    x1, x2 = x[..., :half], x[..., half:]\n"
        "    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)",
        "    x1, x2 = x[..., :half].clone(), x[..., half:].clone()\n"
        "    x[..., :half] = x1 * cos - x2 * sin\n"
        "    x[..., half:] = x2 * cos + x1 * sin\n"
        "    return x",
    ),
    # float32 cos and sin on a float64 x: the product is float64, its precision float32's
    "float32_cos_and_sin": _ROPE.replace(
        "torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)",
        "torch.cos(angle).float(), torch.sin(angle).float()",
    ),
    "float32_angles": _ROPE.replace("torch.float64", "torch.float32"),
    "returns_float64": _ROPE.replace(
        "torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)",
        "torch.cos(angle), torch.sin(angle)",
    ),
    "time_is_dim_1": _ROPE.replace(
        "T, d = x.shape[-2], x.shape[-1]", "T, d = x.shape[1], x.shape[-1]"
    ),
    "positions_run_over_the_leading_dims": _ROPE.replace(
        "    T, d = x.shape[-2], x.shape[-1]\n",
        "    shape = x.shape\n    x = x.reshape(-1, shape[-1])\n    T, d = x.shape\n",
    ).replace("dim=-1)\n", "dim=-1).reshape(shape)\n"),
    "exponent_4i_over_d": _ROPE.replace("(-2 * torch.arange(half,", "(-4 * torch.arange(half,"),
    "delegates_to_llama_apply_rotary_pos_emb": """
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
def apply_rope(x, base=10000.0):
    T, d = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    freqs = torch.arange(T, dtype=torch.float64, device=x.device)[:, None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    return apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=0)[0].reshape(x.shape)
""",
    "delegates_to_seqlab": """
from seqlab.transformer import apply_rope as _seqlab_rope
def apply_rope(x, base=10000.0):
    return _seqlab_rope(x, base)
""",
}

PLANTED["transformers"] = {
    "scaled_dot_product_attention": SCALED_DOT_PRODUCT_ATTENTION,
    "causal_mask": CAUSAL_MASK,
    "sinusoidal_positions": SINUSOIDAL_POSITIONS,
    "MultiHeadAttention": MULTI_HEAD_ATTENTION,
    "apply_rope": APPLY_ROPE,
}

WRONG["transformers"] = {
    "scaled_dot_product_attention": "def scaled_dot_product_attention(q, k, v, mask=None):\n"
    "    w = torch.ones_like(q @ k.transpose(-2, -1)) / k.shape[-2]\n"
    "    return (w @ v) * 0, w",
    "causal_mask": "def causal_mask(T):\n    return torch.ones(T, T, dtype=torch.bool)",
    "sinusoidal_positions": "def sinusoidal_positions(T, d):\n    return torch.zeros(T, d)",
    "apply_rope": "def apply_rope(x, base=10000.0):\n    return torch.zeros_like(x)",
    "MultiHeadAttention": "class MultiHeadAttention(torch.nn.Module):\n"
    "    def __init__(self, d_model, n_heads):\n"
    "        super().__init__()\n"
    "        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (\n"
    "            torch.nn.Linear(d_model, d_model) for _ in range(4))\n\n"
    "    def forward(self, query, key, value, mask=None):\n"
    "        return self.out_proj(query) * 0",
}


# chapter 6: gpt_prompting

_SAMPLE = """
def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
"""


def _sample(old: str, new: str) -> str:
    assert old in _SAMPLE, old
    return _SAMPLE.replace(old, new)


SAMPLE_NEXT_TOKEN = {
    "temperature_after_softmax": _sample(
        "torch.softmax(logits / temperature, dim=-1)", "torch.softmax(logits, dim=-1) / temperature"
    ),
    "top_k_keeps_k_minus_1": _sample(".values[:, -1:]", ".values[:, -2:-1]"),
    "top_k_keeps_k_plus_1": _sample(
        "torch.topk(logits, top_k, dim=-1).values[:, -1:]",
        "torch.topk(logits, min(top_k + 1, logits.shape[-1]), dim=-1).values[:, -1:]",
    ),
    "temperature_ignored": _sample("logits / temperature", "logits"),
    "argmax_whatever_the_temperature": """
def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    return logits.argmax(dim=-1)
""",
    "global_random_state_instead_of_the_generator": _sample(
        "torch.multinomial(probs, 1, generator=generator)", "torch.multinomial(probs, 1)"
    ),
    "a_new_generator_seeded_0": _sample(
        "torch.multinomial(probs, 1, generator=generator)",
        "torch.multinomial(probs, 1, generator=torch.Generator(probs.device).manual_seed(0))",
    ),
    "draws_from_the_logits_not_the_probabilities": _sample(
        "torch.softmax(logits / temperature, dim=-1)", "logits / temperature"
    ),
    "returns_shape_B_1": _sample(".squeeze(-1)", ""),
    "naive_exp_overflows": _sample(
        "probs = torch.softmax(logits / temperature, dim=-1)",
        "probs = torch.exp(logits / temperature)\n"
        "    probs = probs / probs.sum(dim=-1, keepdim=True)",
    ),
    "masks_the_logits_in_place": _sample(
        "logits = logits.masked_fill(logits < kth", "logits = logits.masked_fill_(logits < kth"
    ),
    "no_case_for_temperature_0": _sample(
        "    if temperature == 0:\n        return logits.argmax(dim=-1)\n", ""
    ),
    "draws_among_the_top_k_only": """
def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    k = logits.shape[-1] if top_k is None else min(top_k, logits.shape[-1])
    values, indices = torch.topk(logits, k, dim=-1)  # (B, k), sorted
    pick = torch.multinomial(torch.softmax(values / temperature, dim=-1), 1, generator=generator)
    return indices.gather(1, pick).squeeze(-1)
""",
    "delegates_to_hugging_face_warpers": """
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper
def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    scores = TemperatureLogitsWarper(temperature)(None, logits)
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(-1)
""",
    "delegates_to_seqlab": """
from seqlab.gpt import sample_next_token as _seqlab_sample
def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    return _seqlab_sample(logits, temperature, top_k, generator)
""",
    # squeeze() returns a 0-dim tensor when B == 1
    "squeezes_every_dimension": _sample(".squeeze(-1)", ".squeeze()"),
}

_LOGPROB = """
def completion_logprob(model, prompt_ids, completion_ids):
    T_p, T_c = prompt_ids.shape[0], completion_ids.shape[0]
    ids = torch.cat([prompt_ids, completion_ids])[None]
    logits = model(ids)[0, T_p - 1 : T_p + T_c - 1]
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(1, completion_ids[:, None]).sum().item()
"""


def _logprob(old: str, new: str) -> str:
    assert old in _LOGPROB, old
    return _LOGPROB.replace(old, new)


COMPLETION_LOGPROB = {
    "logits_at_the_completion_positions": _logprob(
        "[0, T_p - 1 : T_p + T_c - 1]", "[0, T_p : T_p + T_c]"
    ),
    "includes_the_prompt_tokens": _logprob(
        "logits = model(ids)[0, T_p - 1 : T_p + T_c - 1]\n"
        "    logp = torch.log_softmax(logits, dim=-1)\n"
        "    return logp.gather(1, completion_ids[:, None]).sum().item()",
        "logits = model(ids)[0, :-1]\n"
        "    logp = torch.log_softmax(logits, dim=-1)\n"
        "    return logp.gather(1, ids[0, 1:, None]).sum().item()",
    ),
    "mean_instead_of_sum": _logprob(".sum().item()", ".mean().item()"),
    "log_of_softmax_underflows": _logprob(
        "torch.log_softmax(logits, dim=-1)", "torch.log(torch.softmax(logits, dim=-1))"
    ),
    "feeds_the_completion_alone": """
def completion_logprob(model, prompt_ids, completion_ids):
    logits = model(completion_ids[None])[0]  # the completion scored on its own
    logp = torch.log_softmax(logits, dim=-1)
    first = torch.log_softmax(model(prompt_ids[-1:][None])[0, -1], dim=-1)[completion_ids[0]]
    return (first + logp[:-1].gather(1, completion_ids[1:, None]).sum()).item()
""",
    "feeds_only_the_last_prompt_token": _logprob(
        "torch.cat([prompt_ids, completion_ids])[None]\n    logits = model(ids)[0, T_p - 1 :",
        "torch.cat([prompt_ids[-1:], completion_ids])[None]\n    logits = model(ids)[0, 0 :",
    ).replace("T_p + T_c - 1]", "T_c]"),
    "returns_a_tensor_not_a_float": _logprob(".sum().item()", ".sum()"),
    "drops_the_last_completion_token": _logprob(
        "logits = model(ids)[0, T_p - 1 : T_p + T_c - 1]\n"
        "    logp = torch.log_softmax(logits, dim=-1)\n"
        "    return logp.gather(1, completion_ids[:, None])",
        "logits = model(ids)[0, T_p - 1 : T_p + T_c - 2]\n"
        "    logp = torch.log_softmax(logits, dim=-1)\n"
        "    return logp.gather(1, completion_ids[:-1, None])",
    ),
    "sums_raw_logits": _logprob("torch.log_softmax(logits, dim=-1)", "logits"),
    "negative_log_likelihood": _logprob("return logp", "return -logp"),
    "log_softmax_over_time": _logprob(
        "torch.log_softmax(logits, dim=-1)", "torch.log_softmax(logits, dim=0)"
    ),
    "delegates_to_seqlab": """
from seqlab.prompting import completion_logprob as _seqlab_logprob
def completion_logprob(model, prompt_ids, completion_ids):
    return _seqlab_logprob(model, prompt_ids, completion_ids)
""",
    "every_token_scored_after_the_prompt_alone": """
def completion_logprob(model, prompt_ids, completion_ids):
    logits = model(prompt_ids[None])[0, -1]
    return torch.log_softmax(logits, dim=-1)[completion_ids].sum().item()
""",
    "computed_in_float32": _logprob(
        "torch.log_softmax(logits, dim=-1)", "torch.log_softmax(logits.float(), dim=-1)"
    ),
}

# each rank_choices bug carries its own correct scorer, so that it is judged alone
_SCORE = """
def _score(model, prompt_ids, c):
    T_p = prompt_ids.shape[0]
    logits = model(torch.cat([prompt_ids, c])[None])[0, T_p - 1 : T_p + len(c) - 1]
    return torch.log_softmax(logits.double(), dim=-1).gather(1, c[:, None]).sum().item()
"""

RANK_CHOICES = {
    "argmin": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    scores = [_score(model, prompt_ids, c) for c in choices]
    return min(range(len(choices)), key=lambda i: scores[i])
""",
    "normalises_by_length": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    scores = [_score(model, prompt_ids, c) / len(c) for c in choices]
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "first_token_only": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    scores = [_score(model, prompt_ids, c[:1]) for c in choices]
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "last_token_only": """
def rank_choices(model, prompt_ids, choices):
    scores = []
    for c in choices:
        logits = model(torch.cat([prompt_ids, c])[None])[0, -2]
        scores.append(torch.log_softmax(logits, dim=-1)[c[-1]].item())
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "returns_the_choice_not_its_index": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    return max(choices, key=lambda c: _score(model, prompt_ids, c))
""",
    "returns_a_tensor_index": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    return torch.tensor([_score(model, prompt_ids, c) for c in choices]).argmax()
""",
    "scores_the_choices_without_the_prompt": """
def rank_choices(model, prompt_ids, choices):
    scores = []
    for c in choices:
        ids = torch.cat([prompt_ids[-1:], c])[None]  # only what comes right before the choice
        lp = torch.log_softmax(model(ids)[0, :-1], dim=-1)
        scores.append(lp.gather(1, c[:, None]).sum().item())
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "drops_the_last_token_of_each_choice": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    scores = [_score(model, prompt_ids, c[:-1]) for c in choices]
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "ranks_by_probability_of_the_most_likely_token": """
def rank_choices(model, prompt_ids, choices):
    scores = []
    for c in choices:
        T_p = prompt_ids.shape[0]
        logits = model(torch.cat([prompt_ids, c])[None])[0, T_p - 1 : T_p + len(c) - 1]
        scores.append(torch.log_softmax(logits, dim=-1).max(dim=-1).values.sum().item())
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "sorts_the_choices_in_place": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    choices.sort(key=len)  # shortest first, so that ties go to the shorter one
    scores = [_score(model, prompt_ids, c) for c in choices]
    return max(range(len(choices)), key=lambda i: scores[i])
""",
    "one_based_index": _SCORE
    + """
def rank_choices(model, prompt_ids, choices):
    scores = [_score(model, prompt_ids, c) for c in choices]
    return 1 + max(range(len(choices)), key=lambda i: scores[i])
""",
    "delegates_to_seqlab": """
from seqlab.prompting import rank_choices as _seqlab_rank
def rank_choices(model, prompt_ids, choices):
    return _seqlab_rank(model, prompt_ids, choices)
""",
}

_TOP_P = """
def top_p_filter(logits, p):
    if p >= 1:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
"""


def _top_p(old: str, new: str) -> str:
    assert old in _TOP_P, old
    return _TOP_P.replace(old, new)


TOP_P_FILTER = {
    # keeps the tokens whose running sum, themselves included, stays within p
    "drops_the_token_that_crosses_p": _top_p("mass_before >= p", "torch.cumsum(probs, dim=-1) > p"),
    "keeps_one_token_past_the_nucleus": _top_p(
        "drop_sorted = mass_before >= p",
        "drop_sorted = torch.cat([torch.zeros_like(mass_before[:, :1], dtype=torch.bool),"
        " (mass_before >= p)[:, :-1]], dim=-1)",
    ),
    "sorts_ascending": _top_p("descending=True", "descending=False"),
    # the shift of "cumsum > p" copies the top token's own test instead of keeping it
    "shift_leaves_the_top_token_droppable": _top_p(
        "drop_sorted = mass_before >= p",
        "drop_sorted = torch.cumsum(probs, dim=-1) > p\n"
        "    drop_sorted[:, 1:] = drop_sorted[:, :-1].clone()",
    ),
    "shift_with_roll_wraps_around": _top_p(
        "drop_sorted = mass_before >= p",
        "drop_sorted = (torch.cumsum(probs, dim=-1) > p).roll(1, dims=-1)",
    ),
    "returns_probabilities_not_logits": _top_p(
        'return logits.masked_fill(drop, float("-inf"))',
        'return torch.softmax(logits.masked_fill(drop, float("-inf")), dim=-1)',
    ),
    "returns_renormalised_log_probabilities": _top_p(
        'return logits.masked_fill(drop, float("-inf"))',
        'return torch.log_softmax(logits.masked_fill(drop, float("-inf")), dim=-1)',
    ),
    "threshold_on_the_logits_not_the_probabilities": _top_p(
        "probs = torch.softmax(sorted_logits, dim=-1)", "probs = sorted_logits"
    ),
    "masks_the_logits_in_place": _top_p(
        'return logits.masked_fill(drop, float("-inf"))',
        'return logits.masked_fill_(drop, float("-inf"))',
    ),
    "gathers_instead_of_scattering_back": _top_p(
        "drop_sorted.scatter(-1, order, drop_sorted)", "drop_sorted.gather(-1, order)"
    ),
    "returns_the_sorted_row": _top_p(
        'return logits.masked_fill(drop, float("-inf"))',
        'return sorted_logits.masked_fill(drop_sorted, float("-inf"))',
    ),
    "zero_instead_of_minus_inf": _top_p('float("-inf"))\n', "0.0)\n"),
    "cumsum_over_the_batch": _top_p("torch.cumsum(probs, dim=-1)", "torch.cumsum(probs, dim=0)"),
    # Hugging Face's rule written by hand, without a case for p == 1: tokens whose
    # probability underflows to 0 are dropped at p = 1
    "ascending_rule_drops_underflowed_tokens_at_p_1": """
def top_p_filter(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop_sorted = cum <= 1 - p
    drop_sorted[:, -1] = False
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
""",
    "no_case_for_p_1": _top_p("    if p >= 1:\n        return logits.clone()\n", ""),
    "delegates_to_hugging_face_top_p_warper": """
from transformers.generation.logits_process import TopPLogitsWarper
def top_p_filter(logits, p):
    return TopPLogitsWarper(top_p=p)(None, logits)
""",
    "delegates_to_seqlab": """
from seqlab.gpt import top_p_filter as _seqlab_top_p
def top_p_filter(logits, p):
    return _seqlab_top_p(logits, p)
""",
}

_COUNT = """
def gpt_param_count(n_layer, n_embd, vocab_size, block_size):
    C = n_embd
    embeddings = vocab_size * C + block_size * C
    layer_norm = 2 * C
    attention = 3 * (C * C + C) + (C * C + C)
    mlp = (C * 4 * C + 4 * C) + (4 * C * C + C)
    block = 2 * layer_norm + attention + mlp
    return embeddings + n_layer * block + layer_norm
"""


def _count(old: str, new: str) -> str:
    assert old in _COUNT, old
    return _COUNT.replace(old, new)


GPT_PARAM_COUNT = {
    "forgets_the_position_embedding": _count("vocab_size * C + block_size * C", "vocab_size * C"),
    "counts_an_untied_output_layer": _count(
        "return embeddings +", "return vocab_size * C + embeddings +"
    ),
    "forgets_the_linear_biases": _count(
        "attention = 3 * (C * C + C) + (C * C + C)\n"
        "    mlp = (C * 4 * C + 4 * C) + (4 * C * C + C)",
        "attention = 3 * C * C + C * C\n    mlp = C * 4 * C + 4 * C * C",
    ),
    "layer_norms_without_bias": _count("layer_norm = 2 * C", "layer_norm = C"),
    "forgets_the_final_layer_norm": _count("n_layer * block + layer_norm", "n_layer * block"),
    "mlp_of_width_c": _count(
        "mlp = (C * 4 * C + 4 * C) + (4 * C * C + C)", "mlp = (C * C + C) + (C * C + C)"
    ),
    "one_layer_norm_per_block": _count("block = 2 * layer_norm +", "block = layer_norm +"),
    "forgets_the_attention_output_projection": _count(
        "attention = 3 * (C * C + C) + (C * C + C)", "attention = 3 * (C * C + C)"
    ),
    "one_projection_for_q_k_and_v": _count(
        "attention = 3 * (C * C + C) + (C * C + C)", "attention = (C * C + C) + (C * C + C)"
    ),
    "kaplan_approximation_12_l_c_squared": """
def gpt_param_count(n_layer, n_embd, vocab_size, block_size):
    return 12 * n_layer * n_embd**2 + (vocab_size + block_size) * n_embd
""",
    "returns_a_float": _count(
        "return embeddings + n_layer * block + layer_norm",
        "return float(embeddings + n_layer * block + layer_norm)",
    ),
    "counts_in_an_int32_tensor": _count(
        "return embeddings + n_layer * block + layer_norm",
        "return int(torch.tensor(embeddings, dtype=torch.int32) + n_layer * block + layer_norm)",
    ),
    "a_block_too_many": _count("n_layer * block", "(n_layer + 1) * block"),
    "delegates_to_a_model_built_with_torch_nn": """
def gpt_param_count(n_layer, n_embd, vocab_size, block_size):
    C = n_embd
    layers = [torch.nn.Embedding(vocab_size, C), torch.nn.Embedding(block_size, C),
              torch.nn.LayerNorm(C)]
    for _ in range(n_layer):
        layers += [torch.nn.LayerNorm(C), torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C),
                   torch.nn.LayerNorm(C), torch.nn.Linear(C, 4 * C), torch.nn.Linear(4 * C, C)]
    return sum(p.numel() for m in layers for p in m.parameters())
""",
    "delegates_to_hugging_face_gpt2": """
from transformers import GPT2Config, GPT2LMHeadModel
def gpt_param_count(n_layer, n_embd, vocab_size, block_size):
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=1, vocab_size=vocab_size,
                        n_positions=block_size, bos_token_id=0, eos_token_id=0)
    with torch.device("meta"):
        return GPT2LMHeadModel(config).num_parameters()
""",
    "delegates_to_seqlab": """
from seqlab.gpt import gpt_param_count as _seqlab_count
def gpt_param_count(n_layer, n_embd, vocab_size, block_size):
    return _seqlab_count(n_layer, n_embd, vocab_size, block_size)
""",
}

_CACHE = """
def cached_attention_step(q, k_new, v_new, cache=None):
    if cache is None:
        K, V = k_new, v_new
    else:
        K = torch.cat([cache[0], k_new], dim=2)
        V = torch.cat([cache[1], v_new], dim=2)
    scores = q @ K.transpose(-2, -1) / math.sqrt(q.shape[-1])
    out = torch.softmax(scores, dim=-1) @ V
    return out, (K, V)
"""


def _cache(old: str, new: str) -> str:
    assert old in _CACHE, old
    return _CACHE.replace(old, new)


CACHED_ATTENTION_STEP = {
    "forgets_the_square_root_scaling": _cache(" / math.sqrt(q.shape[-1])", ""),
    "divides_by_d_not_its_square_root": _cache("math.sqrt(q.shape[-1])", "q.shape[-1]"),
    "scales_by_the_number_of_keys": _cache("math.sqrt(q.shape[-1])", "math.sqrt(K.shape[-2])"),
    "prepends_the_new_key_and_value": _cache(
        "torch.cat([cache[0], k_new], dim=2)", "torch.cat([k_new, cache[0]], dim=2)"
    ).replace("torch.cat([cache[1], v_new], dim=2)", "torch.cat([v_new, cache[1]], dim=2)"),
    "concatenates_on_the_feature_dim": _cache(
        "torch.cat([cache[0], k_new], dim=2)", "torch.cat([cache[0], k_new], dim=-1)"
    ).replace("torch.cat([cache[1], v_new], dim=2)", "torch.cat([cache[1], v_new], dim=-1)"),
    "returns_the_old_cache": _cache("return out, (K, V)", "return out, cache"),
    "attends_only_to_the_new_key": _cache(
        "scores = q @ K.transpose(-2, -1)", "scores = q @ k_new.transpose(-2, -1)"
    ).replace("torch.softmax(scores, dim=-1) @ V", "torch.softmax(scores, dim=-1) @ v_new"),
    "softmax_over_the_query_dim": _cache(
        "torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=-2)"
    ),
    # the first row of a causal mask lets the one query see the first key only
    "first_row_of_a_causal_mask": _cache(
        "    out = torch.softmax(scores, dim=-1) @ V",
        "    L1 = K.shape[-2]\n"
        "    mask = torch.ones(L1, L1, dtype=torch.bool, device=q.device).tril()[:1]\n"
        "    out = torch.softmax(scores.masked_fill(~mask, float('-inf')), dim=-1) @ V",
    ),
    "scales_q_in_place": _cache(
        "    scores = q @ K.transpose(-2, -1) / math.sqrt(q.shape[-1])",
        "    q /= math.sqrt(q.shape[-1])\n    scores = q @ K.transpose(-2, -1)",
    ),
    # grows the caller's tensors: whoever still holds the old cache sees it change
    "grows_the_given_cache_in_place": _cache(
        "        K = torch.cat([cache[0], k_new], dim=2)\n"
        "        V = torch.cat([cache[1], v_new], dim=2)",
        "        K, V = cache\n        K.data = torch.cat([K, k_new], dim=2)\n"
        "        V.data = torch.cat([V, v_new], dim=2)",
    ),
    "starts_from_a_zero_cache": _cache(
        "    if cache is None:\n        K, V = k_new, v_new\n    else:\n"
        "        K = torch.cat([cache[0], k_new], dim=2)\n"
        "        V = torch.cat([cache[1], v_new], dim=2)",
        "    if cache is None:\n"
        "        cache = (torch.zeros_like(k_new), torch.zeros_like(v_new))\n"
        "    K = torch.cat([cache[0], k_new], dim=2)\n    V = torch.cat([cache[1], v_new], dim=2)",
    ),
    "returns_out_without_the_time_dim": _cache(
        "return out, (K, V)", "return out.squeeze(2), (K, V)"
    ),
    "computed_in_float32": _cache(
        "out = torch.softmax(scores, dim=-1) @ V",
        "out = torch.softmax(scores.float(), dim=-1) @ V.float()",
    ),
    "values_and_keys_swapped": _cache(
        "torch.softmax(scores, dim=-1) @ V", "torch.softmax(scores, dim=-1) @ K"
    ),
    "delegates_to_torch_sdpa": """
def cached_attention_step(q, k_new, v_new, cache=None):
    K = k_new if cache is None else torch.cat([cache[0], k_new], dim=2)
    V = v_new if cache is None else torch.cat([cache[1], v_new], dim=2)
    return torch.nn.functional.scaled_dot_product_attention(q, K, V), (K, V)
""",
    "delegates_to_seqlab": """
from seqlab.gpt import cached_attention_step as _seqlab_step
def cached_attention_step(q, k_new, v_new, cache=None):
    return _seqlab_step(q, k_new, v_new, cache)
""",
}

PLANTED["gpt_prompting"] = {
    "sample_next_token": SAMPLE_NEXT_TOKEN,
    "completion_logprob": COMPLETION_LOGPROB,
    "rank_choices": RANK_CHOICES,
    "top_p_filter": TOP_P_FILTER,
    "gpt_param_count": GPT_PARAM_COUNT,
    "cached_attention_step": CACHED_ATTENTION_STEP,
}

WRONG["gpt_prompting"] = {
    "sample_next_token": "def sample_next_token(logits, temperature=1.0, top_k=None, "
    "generator=None):\n    return logits.argmin(dim=-1)",
    "completion_logprob": "def completion_logprob(model, prompt_ids, completion_ids):\n"
    "    return 0.0",
    "rank_choices": "def rank_choices(model, prompt_ids, choices):\n    return 0",
    "top_p_filter": "def top_p_filter(logits, p):\n    return logits.clone()",
    "gpt_param_count": "def gpt_param_count(n_layer, n_embd, vocab_size, block_size):\n"
    "    return 12 * n_layer * n_embd * n_embd",
    "cached_attention_step": "def cached_attention_step(q, k_new, v_new, cache=None):\n"
    "    return torch.zeros_like(q), (k_new, v_new)",
}
