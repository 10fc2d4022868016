"""seqlab.gradients: spectral radius, matrix powers, clipping, gradient flow."""

import math

import pytest
import torch

from seqlab.gradients import (
    clip_grad_norm,
    clip_grad_norm_,
    hidden_gradient_norms,
    input_sensitivity,
    matrix_power_norms,
    rnn_forward_truncated,
    scale_spectral_radius,
    spectral_radius,
    truncated_bptt,
    w_hh_gradient_terms,
)
from seqlab.rnn import RNN, rnn_forward, rnn_step

pytestmark = pytest.mark.rnn_gradients


def test_spectral_radius_takes_the_modulus_of_complex_eigenvalues():
    c, s = math.cos(0.4), math.sin(0.4)
    rotation = 1.5 * torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    assert spectral_radius(rotation).item() == pytest.approx(1.5, abs=1e-12)
    negative = torch.diag(torch.tensor([-3.0, 1.0], dtype=torch.float64))
    assert spectral_radius(negative).item() == pytest.approx(3.0)


@pytest.mark.parametrize("rho", [0.5, 1.0, 2.3])
def test_scale_spectral_radius_sets_the_radius_and_keeps_the_input(rho):
    W = torch.randn(7, 7, dtype=torch.float64)
    before = W.clone()
    scaled = scale_spectral_radius(W, rho)
    assert spectral_radius(scaled).item() == pytest.approx(rho, rel=1e-9)
    assert torch.equal(W, before)


def test_matrix_power_norms_match_torch_matrix_power():
    W = torch.randn(5, 5, dtype=torch.float64) / 2
    want = torch.stack(
        [torch.linalg.matrix_norm(torch.linalg.matrix_power(W, k), ord=2) for k in range(1, 13)]
    )
    torch.testing.assert_close(matrix_power_norms(W, 12), want, rtol=1e-6, atol=1e-6)


def test_non_normal_matrix_grows_before_it_decays_despite_radius_below_one():
    W = torch.tensor([[0.9, 3.0], [0.0, 0.8]], dtype=torch.float64)
    norms = matrix_power_norms(W, 60)
    assert spectral_radius(W).item() < 1
    assert norms.max() > 2 * norms[0] and norms[-1] < norms[0]


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_grad_norm_matches_torch_clip_grad_norm_(max_norm):
    params = [torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in [(3, 4), (5,), ()]]
    for p in params:
        p.grad = torch.randn_like(p) * 3
    grads = [p.grad.clone() for p in params]
    total_want = torch.nn.utils.clip_grad_norm_(params, max_norm)
    clipped, total = clip_grad_norm(grads, max_norm)
    torch.testing.assert_close(total, total_want, rtol=1e-6, atol=1e-6)
    for ours, theirs in zip(clipped, [p.grad for p in params], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_clip_grad_norm_copies_below_the_threshold_and_never_modifies_inputs():
    grads = [torch.tensor([3.0, 4.0])]
    clipped, total = clip_grad_norm(grads, 5.0)  # exactly at the threshold: unchanged
    assert total.dim() == 0 and total.item() == 5.0
    assert torch.equal(clipped[0], grads[0]) and clipped[0] is not grads[0]
    clipped[0].add_(1)
    assert grads[0].tolist() == [3.0, 4.0]


def test_clip_grad_norm_in_place_clips_parameter_gradients():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([30.0, 40.0])
    total = clip_grad_norm_([p], 1.0)
    assert total.item() == pytest.approx(50.0)
    assert p.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_linear_rnn_with_orthogonal_weights_carries_gradients_unchanged():
    Q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))
    norms = hidden_gradient_norms(Q, 40, "linear")
    torch.testing.assert_close(norms, torch.ones(40, dtype=torch.float64), rtol=1e-9, atol=1e-9)


def test_linear_rnn_gradients_vanish_below_and_explode_above_radius_one():
    W = torch.randn(16, 16, dtype=torch.float64)
    small = hidden_gradient_norms(scale_spectral_radius(W, 0.8), 50, "linear")
    large = hidden_gradient_norms(scale_spectral_radius(W, 1.2), 50, "linear")
    assert small[0] == pytest.approx(1.0) and small[-1] < 1e-3
    assert large[-1] > 1e3


def test_tanh_shrinks_the_linear_gradient_for_this_random_matrix():
    """True here, not in general: see the nilpotent counterexample below."""
    W = scale_spectral_radius(torch.randn(16, 16, dtype=torch.float64), 1.1)
    g = torch.Generator().manual_seed(1)
    linear = hidden_gradient_norms(W, 30, "linear", generator=g)
    g = torch.Generator().manual_seed(1)
    tanh = hidden_gradient_norms(W, 30, "tanh", generator=g)
    assert torch.all(tanh <= linear + 1e-12)


def test_bidirectional_rnn_evens_out_position_sensitivity():
    torch.manual_seed(0)
    xs = torch.randn(16, 30, 4)
    uni = input_sensitivity(RNN(4, 8), xs)
    bi = input_sensitivity(RNN(4, 8, bidirectional=True), xs)
    assert uni[:15].sum() < 0.05 * uni[15:].sum()
    assert 0.5 < (bi[:15].sum() / bi[15:].sum()).item() < 2.0


def test_tanh_can_let_through_a_gradient_that_a_non_normal_linear_rnn_loses():
    """Issue 19, correction 12: per factor tanh shrinks, but for a non-normal W_hh the
    product need not; W below squares to zero, so the linear RNN's gradient is 0 after
    two steps, and the tanh factor between the two W^T turns some of it back."""
    W = torch.tensor([[1.0, -1.0], [1.0, -1.0]], dtype=torch.float64)
    assert spectral_radius(W).item() < 1e-6 and torch.equal(W @ W, torch.zeros(2, 2).double())
    linear = hidden_gradient_norms(W, 4, "linear", generator=torch.Generator().manual_seed(0))
    tanh = hidden_gradient_norms(W, 4, "tanh", generator=torch.Generator().manual_seed(0))
    assert linear[2] == 0.0 and tanh[2] > 1e-3


def test_module_docstring_no_longer_says_tanh_can_only_shrink_the_gradient():
    import seqlab.gradients

    doc = " ".join(seqlab.gradients.__doc__.split())
    assert "so they can only shrink it further" not in doc
    assert "for a non-normal one" in doc


# ------------------------------------------------------------------ the weights' gradient over time


def _problem(B=3, T=10, D=4, H=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    opts = {"dtype": torch.float64, "generator": g}
    xs = torch.randn(B, T, D, **opts)
    h0 = torch.randn(B, H, **opts)
    W_xh = torch.randn(D, H, **opts) / 2
    W_hh = torch.randn(H, H, **opts) / 2
    b = torch.randn(H, **opts)
    c = torch.randn(B, T, H, **opts)  # the loss: sum_t <c_t, h_t>
    return xs, h0, W_xh, W_hh, b, c


def _gradients(forward, xs, h0, W_xh, W_hh, b, c):
    """The gradients of sum_t <c_t, h_t> with respect to (xs, h0, W_xh, W_hh, b)."""
    leaves = [t.clone().requires_grad_(True) for t in (xs, h0, W_xh, W_hh, b)]
    hs = forward(*leaves)
    grads = torch.autograd.grad((c * hs).sum(), leaves, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)]


@pytest.mark.parametrize("k", [1, 3, 4, 10])
def test_truncated_forward_computes_the_same_states(k):
    xs, h0, W_xh, W_hh, b, _ = _problem()
    torch.testing.assert_close(
        rnn_forward_truncated(xs, h0, W_xh, W_hh, b, k),
        rnn_forward(xs, h0, W_xh, W_hh, b),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("k", [10, 11, 1000])
def test_truncation_to_k_at_least_T_is_full_bptt_exactly(k):
    problem = _problem(T=10)
    *inputs, c = problem
    full = _gradients(rnn_forward, *inputs, c)
    truncated = _gradients(lambda *a: rnn_forward_truncated(*a, k), *inputs, c)
    for got, want in zip(truncated, full, strict=True):
        assert torch.equal(got, want)


def test_truncation_to_one_step_is_the_state_detached_at_every_step():
    *inputs, c = _problem()

    def detached_every_step(xs, h0, W_xh, W_hh, b):
        h, hs = h0, []
        for t in range(xs.shape[1]):
            h = rnn_step(xs[:, t], h if t == 0 else h.detach(), W_xh, W_hh, b)
            hs.append(h)
        return torch.stack(hs, dim=1)

    want = _gradients(detached_every_step, *inputs, c)
    got = _gradients(lambda *a: rnn_forward_truncated(*a, 1), *inputs, c)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # and it differs from full BPTT: the terms it drops are not zero
    full = _gradients(rnn_forward, *inputs, c)
    assert not torch.allclose(got[3], full[3])


@pytest.mark.parametrize("k", [None, 1, 2, 3, 5, 10])
@pytest.mark.parametrize("nonlinearity", ["tanh", "linear"])
def test_per_step_terms_by_hand_sum_to_autograds_gradient_of_w_hh(k, nonlinearity):
    xs, h0, W_xh, W_hh, b, c = _problem(T=10)
    if nonlinearity == "linear":
        W_hh = W_hh / 2  # keep a linear RNN's states of moderate size
    if k is None:
        hs = rnn_forward(xs, h0, W_xh, W_hh, b, nonlinearity)
        forward = rnn_forward
    else:
        hs = rnn_forward_truncated(xs, h0, W_xh, W_hh, b, k, nonlinearity)

        def forward(*a, nonlinearity):
            return rnn_forward_truncated(*a, k, nonlinearity)

    want = _gradients(lambda *a: forward(*a, nonlinearity=nonlinearity), xs, h0, W_xh, W_hh, b, c)
    terms = w_hh_gradient_terms(hs, h0, W_hh, c, k, nonlinearity)
    assert terms.shape == (10, 5, 5)
    torch.testing.assert_close(terms.sum(0), want[3], rtol=1e-12, atol=1e-12)


def test_per_step_terms_are_outer_products_of_the_previous_state_and_delta():
    """The first term reads h0; the last one, for a loss at the last step only, is
    h_{T-1}^T (dl/dh_T * (1 - h_T^2))."""
    xs, h0, W_xh, W_hh, b, _ = _problem(B=1, T=6)
    hs = rnn_forward(xs, h0, W_xh, W_hh, b)
    dl = torch.zeros_like(hs)
    dl[:, -1] = torch.randn(1, 5, dtype=torch.float64)
    terms = w_hh_gradient_terms(hs, h0, W_hh, dl)
    last = torch.outer(hs[0, -2], dl[0, -1] * (1 - hs[0, -1] ** 2))
    torch.testing.assert_close(terms[-1], last, rtol=1e-14, atol=1e-14)
    # with h0 = e_0 the first term's row 0 is delta_1 itself
    delta_first = w_hh_gradient_terms(hs, torch.eye(5, dtype=torch.float64)[:1], W_hh, dl)[0]
    torch.testing.assert_close(terms[0], torch.outer(h0[0], delta_first[0]))


@pytest.mark.parametrize("k", [1, 3, 4, 12])
def test_chunked_truncated_bptt_accumulates_the_truncated_gradient(k):
    """truncated_bptt (a backward pass per chunk) leaves in .grad the gradient of the
    summed chunk losses computed on rnn_forward_truncated's states (one graph)."""
    torch.manual_seed(0)
    rnn = RNN(3, 4).double()
    xs = torch.randn(2, 12, 3, dtype=torch.float64)
    c = torch.randn(2, 12, 4, dtype=torch.float64)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)

    def chunk_loss(hs, start):
        return (c[:, start : start + hs.shape[1]] * hs).sum()

    total = truncated_bptt(rnn, xs, k, chunk_loss, h0)
    got = [p.grad.clone() for p in rnn.parameters()] + [h0.grad.clone()]
    weights = [rnn.W_xh[0], rnn.W_hh[0], rnn.b_h[0], h0]
    hs = rnn_forward_truncated(xs, h0, *weights[:3], k)
    want = torch.autograd.grad((c * hs).sum(), weights)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert total == pytest.approx((c * hs).sum().item(), rel=1e-12)


def test_truncated_bptt_skips_chunks_without_a_loss_and_rejects_bad_arguments():
    torch.manual_seed(0)
    rnn = RNN(2, 3).double()
    xs = torch.randn(2, 8, 2, dtype=torch.float64)
    total = truncated_bptt(rnn, xs, 4, lambda hs, start: None)
    assert total == 0.0 and all(p.grad is None for p in rnn.parameters())
    with pytest.raises(ValueError, match="k should be a positive number of steps, got 0"):
        truncated_bptt(rnn, xs, 0, lambda hs, start: None)
    with pytest.raises(ValueError, match="k should be a positive number of steps, got -1"):
        rnn_forward_truncated(xs, torch.zeros(2, 3), rnn.W_xh[0], rnn.W_hh[0], rnn.b_h[0], -1)
    with pytest.raises(ValueError, match="unidirectional"):
        truncated_bptt(RNN(2, 3, bidirectional=True), xs.float(), 2, lambda hs, start: None)
