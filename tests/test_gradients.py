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
    scale_spectral_radius,
    spectral_radius,
)
from seqlab.rnn import RNN

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


def test_tanh_can_only_shrink_the_linear_gradient():
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
