"""seqlab.rnn against torch.nn.RNN: same weights, float64, forward and gradients."""

import pytest
import torch

from seqlab.rnn import RNN, StackedRNN, check_dims, rnn_forward, rnn_step

pytestmark = pytest.mark.rnn_gradients


def _torch_rnn(D, H, bidirectional=False, nonlinearity="tanh", seed=0):
    torch.manual_seed(seed)
    return torch.nn.RNN(
        D, H, batch_first=True, bidirectional=bidirectional, nonlinearity=nonlinearity
    ).double()


@pytest.mark.parametrize("B,T,D,H", [(1, 1, 1, 1), (3, 7, 4, 5), (2, 20, 3, 8)])
def test_rnn_forward_matches_torch_nn_rnn(B, T, D, H):
    ref = _torch_rnn(D, H)
    xs = torch.randn(B, T, D, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64)
    want, _ = ref(xs, h0)
    W_xh, W_hh = ref.weight_ih_l0.T, ref.weight_hh_l0.T
    got = rnn_forward(xs, h0[0], W_xh, W_hh, ref.bias_ih_l0 + ref.bias_hh_l0)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_rnn_step_is_one_step_of_torch_rnn_cell():
    cell = torch.nn.RNNCell(4, 6).double()
    x, h = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    got = rnn_step(x, h, cell.weight_ih.T, cell.weight_hh.T, cell.bias_ih + cell.bias_hh)
    torch.testing.assert_close(got, cell(x, h), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_module_matches_torch_forward_and_gradients(bidirectional):
    ref = _torch_rnn(3, 5, bidirectional=bidirectional)
    ours = RNN(3, 5, bidirectional=bidirectional).double().load_from_torch(ref)
    xs = torch.randn(4, 9, 3, dtype=torch.float64, requires_grad=True)
    want, _ = ref(xs)
    got = ours(xs)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    weights = torch.randn_like(want)
    (g_want,) = torch.autograd.grad((want * weights).sum(), xs)
    (g_got,) = torch.autograd.grad((got * weights).sum(), xs)
    torch.testing.assert_close(g_got, g_want, rtol=1e-6, atol=1e-6)
    (gw_want,) = torch.autograd.grad((ref(xs)[0] * weights).sum(), ref.weight_hh_l0)
    (gw_got,) = torch.autograd.grad((ours(xs) * weights).sum(), ours.W_hh[0])
    torch.testing.assert_close(gw_got, gw_want.T, rtol=1e-6, atol=1e-6)


def test_linear_rnn_matches_torch_with_identity_nonlinearity_by_hand():
    xs = torch.randn(2, 5, 3, dtype=torch.float64)
    W_xh, W_hh = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(5):
        h = xs[:, t] @ W_xh + h @ W_hh + b
    hs = rnn_forward(xs, torch.zeros(2, 4, dtype=torch.float64), W_xh, W_hh, b, "linear")
    torch.testing.assert_close(hs[:, -1], h, rtol=1e-12, atol=1e-12)


def test_rnn_forward_passes_gradcheck_in_float64():
    xs = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    W_xh = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    W_hh = (0.5 * torch.randn(3, 3, dtype=torch.float64)).requires_grad_(True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rnn_forward, (xs, h0, W_xh, W_hh, b))


def test_rnn_keeps_float32_and_rejects_wrong_shapes_with_a_clear_message():
    rnn = RNN(3, 4)
    assert rnn(torch.randn(2, 5, 3)).dtype == torch.float32
    with pytest.raises(ValueError, match=r"xs should have 3 dimensions, got shape \(5, 3\)"):
        rnn(torch.randn(5, 3))
    with pytest.raises(ValueError, match="expected 3 input features, got 2"):
        rnn(torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="nonlinearity should be one of"):
        RNN(3, 4, nonlinearity="relu6")


def test_check_dims_names_the_tensor_and_its_shape():
    check_dims("h", torch.zeros(2, 3), 2)  # the right number of dimensions: nothing happens
    with pytest.raises(ValueError, match=r"h should have 2 dimensions, got shape \(2, 3, 4\)"):
        check_dims("h", torch.zeros(2, 3, 4), 2)
    with pytest.raises(ValueError, match=r"x_t should have 2 dimensions, got shape \(4,\)"):
        rnn_step(torch.zeros(4), torch.zeros(1, 2), torch.zeros(4, 2), torch.zeros(2, 2),
                 torch.zeros(2))  # fmt: skip


@pytest.mark.parametrize("bidirectional", [False, True])
def test_fast_path_equals_the_explicit_loop_in_forward_and_gradients(bidirectional):
    torch.manual_seed(7)
    slow = RNN(3, 5, bidirectional=bidirectional).double()
    fast = RNN(3, 5, bidirectional=bidirectional, fast=True).double()
    fast.load_state_dict(slow.state_dict())
    xs = torch.randn(4, 9, 3, dtype=torch.float64, requires_grad=True)
    for h0 in (None, torch.randn(4, 5, dtype=torch.float64)):
        want, got = slow(xs, h0), fast(xs, h0)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        weights = torch.randn_like(want)
        g_want = torch.autograd.grad((want * weights).sum(), (xs, *slow.parameters()))
        g_got = torch.autograd.grad((got * weights).sum(), (xs, *fast.parameters()))
        for a, b in zip(g_got, g_want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_fast_linear_rnn_runs_the_loop():
    slow = RNN(2, 3, nonlinearity="linear").double()
    fast = RNN(2, 3, nonlinearity="linear", fast=True).double()
    fast.load_state_dict(slow.state_dict())
    xs = torch.randn(2, 4, 2, dtype=torch.float64)
    torch.testing.assert_close(fast(xs), slow(xs), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ stacked RNNs


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("fast", [False, True])
def test_stacked_rnn_matches_torch_nn_rnn_with_num_layers(layers, bidirectional, fast):
    torch.manual_seed(layers)
    ref = torch.nn.RNN(
        3, 5, num_layers=layers, batch_first=True, bidirectional=bidirectional
    ).double()
    ours = StackedRNN(3, 5, layers, bidirectional=bidirectional, fast=fast).double()
    ours.load_from_torch(ref)
    dirs = 2 if bidirectional else 1
    xs = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
    for h0 in (None, torch.randn(layers * dirs, 4, 5, dtype=torch.float64)):
        want, _ = ref(xs, h0)
        got = ours(xs, h0)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        weights = torch.randn_like(want)
        (g_want,) = torch.autograd.grad((want * weights).sum(), xs)
        (g_got,) = torch.autograd.grad((got * weights).sum(), xs)
        torch.testing.assert_close(g_got, g_want, rtol=1e-6, atol=1e-6)
    # the first layer's recurrent weights get the same gradient as torch's
    weights = torch.randn(4, 7, dirs * 5, dtype=torch.float64)
    (gw_want,) = torch.autograd.grad((ref(xs)[0] * weights).sum(), ref.weight_hh_l0)
    (gw_got,) = torch.autograd.grad((ours(xs) * weights).sum(), ours.layers[0].W_hh[0])
    torch.testing.assert_close(gw_got, gw_want.T, rtol=1e-6, atol=1e-6)


def test_stacked_rnn_is_its_layers_applied_in_turn_and_counts_its_parameters():
    torch.manual_seed(0)
    stack = StackedRNN(3, 4, 3).double()
    xs = torch.randn(2, 5, 3, dtype=torch.float64)
    hs = xs
    for layer in stack.layers:
        hs = layer(hs)
    torch.testing.assert_close(stack(xs), hs, rtol=0, atol=0)
    D, H = 3, 4  # one bias per layer, where torch keeps two
    assert sum(p.numel() for p in stack.parameters()) == H * (D + H + 1) + 2 * H * (2 * H + 1)
    ref = torch.nn.RNN(3, 4, num_layers=3)
    assert (
        sum(p.numel() for p in ref.parameters())
        == sum(p.numel() for p in stack.parameters()) + 3 * H
    )


def test_stacked_rnn_rejects_mismatched_torch_modules_and_states():
    stack = StackedRNN(3, 4, 2)
    with pytest.raises(ValueError, match="layer counts differ: 3 \\(torch\\) vs 2"):
        stack.load_from_torch(torch.nn.RNN(3, 4, num_layers=3))
    with pytest.raises(ValueError, match="layer 0 of the nn.RNN reads 5 features"):
        stack.load_from_torch(torch.nn.RNN(5, 4, num_layers=2))
    with pytest.raises(ValueError, match="in 2 direction"):
        stack.load_from_torch(torch.nn.RNN(3, 4, num_layers=2, bidirectional=True))
    with pytest.raises(ValueError, match="h0 should hold 2 states"):
        stack(torch.randn(2, 5, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="n_layers should be at least 1"):
        StackedRNN(3, 4, 0)
    with pytest.raises(ValueError, match="layer should be in"):
        RNN(4, 4).load_from_torch(torch.nn.RNN(3, 4, num_layers=2), layer=2)
