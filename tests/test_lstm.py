"""seqlab.lstm against torch's LSTM and GRU: same weights, float64, forward and gradients."""

import pytest
import torch

from seqlab.lstm import GRU, LSTM, gru_cell, gru_forward, lstm_cell, lstm_forward, lstm_gates

pytestmark = pytest.mark.lstm_gru

F64 = torch.float64
SIZES = [(1, 1, 1, 1), (3, 7, 4, 5), (2, 20, 3, 8)]  # B, T, D, H


def _weights(module, suffix=""):
    return tuple(
        getattr(module, n + suffix) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def _assert_close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("B,D,H", [(1, 1, 1), (3, 4, 5), (5, 2, 7)])
def test_lstm_cell_matches_torch_lstmcell(B, D, H):
    torch.manual_seed(0)
    ref = torch.nn.LSTMCell(D, H).double()
    x, h, c = (
        torch.randn(B, D, dtype=F64),
        torch.randn(B, H, dtype=F64),
        torch.randn(B, H, dtype=F64),
    )
    h_want, c_want = ref(x, (h, c))
    h_got, c_got = lstm_cell(x, h, c, *_weights(ref))
    _assert_close(h_got, h_want)
    _assert_close(c_got, c_want)


@pytest.mark.parametrize("B,D,H", [(1, 1, 1), (3, 4, 5), (5, 2, 7)])
def test_gru_cell_matches_torch_grucell(B, D, H):
    torch.manual_seed(1)
    ref = torch.nn.GRUCell(D, H).double()
    x, h = torch.randn(B, D, dtype=F64), torch.randn(B, H, dtype=F64)
    _assert_close(gru_cell(x, h, *_weights(ref)), ref(x, h))


@pytest.mark.parametrize("B,T,D,H", SIZES)
def test_lstm_forward_matches_torch_nn_lstm(B, T, D, H):
    torch.manual_seed(2)
    ref = torch.nn.LSTM(D, H, batch_first=True).double()
    xs = torch.randn(B, T, D, dtype=F64)
    h0, c0 = torch.randn(1, B, H, dtype=F64), torch.randn(1, B, H, dtype=F64)
    want, (h_want, c_want) = ref(xs, (h0, c0))
    got, (h_got, c_got) = lstm_forward(xs, h0[0], c0[0], *_weights(ref, "_l0"))
    _assert_close(got, want)
    _assert_close(h_got, h_want[0])
    _assert_close(c_got, c_want[0])


@pytest.mark.parametrize("B,T,D,H", SIZES)
def test_gru_forward_matches_torch_nn_gru(B, T, D, H):
    torch.manual_seed(3)
    ref = torch.nn.GRU(D, H, batch_first=True).double()
    xs, h0 = torch.randn(B, T, D, dtype=F64), torch.randn(1, B, H, dtype=F64)
    want, h_want = ref(xs, h0)
    got, h_got = gru_forward(xs, h0[0], *_weights(ref, "_l0"))
    _assert_close(got, want)
    _assert_close(h_got, h_want[0])


@pytest.mark.parametrize("Ours,Theirs", [(LSTM, torch.nn.LSTM), (GRU, torch.nn.GRU)])
def test_layer_modules_match_torch_in_forward_and_gradients(Ours, Theirs):
    torch.manual_seed(4)
    ref = Theirs(3, 5, batch_first=True).double()
    ours = Ours(3, 5).double().load_from_torch(ref)
    xs = torch.randn(4, 9, 3, dtype=F64, requires_grad=True)
    want, got = ref(xs)[0], ours(xs)[0]
    _assert_close(got, want)
    weights = torch.randn_like(want)
    grads_want = torch.autograd.grad((want * weights).sum(), (xs, *_weights(ref, "_l0")))
    grads_got = torch.autograd.grad((got * weights).sum(), (xs, *ours.weights()))
    for g_got, g_want in zip(grads_got, grads_want, strict=True):
        _assert_close(g_got, g_want)


@pytest.mark.parametrize("Ours", [LSTM, GRU])
def test_to_torch_builds_the_fused_layer_with_the_same_weights(Ours):
    torch.manual_seed(5)
    ours = Ours(4, 6).double()
    fused = ours.to_torch()
    xs = torch.randn(2, 11, 4, dtype=F64)
    _assert_close(ours(xs)[0], fused(xs)[0])
    back = Ours(4, 6).double().load_from_torch(fused)
    for a, b in zip(back.weights(), ours.weights(), strict=True):
        assert torch.equal(a, b)


def test_lstm_loads_a_torch_lstmcell_and_gru_refuses_an_lstm():
    cell = torch.nn.LSTMCell(3, 4).double()
    ours = LSTM(3, 4).double().load_from_torch(cell)
    x = torch.randn(2, 1, 3, dtype=F64)
    _assert_close(ours(x)[0][:, 0], cell(x[:, 0])[0])
    with pytest.raises(TypeError, match="expected a GRU or GRUCell, got LSTM"):
        GRU(3, 4).load_from_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="sizes differ"):
        LSTM(3, 5).load_from_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="one-layer, unidirectional"):
        LSTM(3, 4).load_from_torch(torch.nn.LSTM(3, 4, num_layers=2))


def test_lstm_forward_passes_gradcheck_in_float64():
    H = 3
    args = [
        torch.randn(2, 4, 2, dtype=F64),  # xs
        torch.randn(2, H, dtype=F64),  # h0
        torch.randn(2, H, dtype=F64),  # c0
        torch.randn(4 * H, 2, dtype=F64),
        torch.randn(4 * H, H, dtype=F64),
        torch.randn(4 * H, dtype=F64),
        torch.randn(4 * H, dtype=F64),
    ]
    args = [a.requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(lambda *a: lstm_forward(*a)[0], args)


def test_gru_forward_passes_gradcheck_in_float64():
    H = 3
    args = [
        torch.randn(2, 4, 2, dtype=F64),
        torch.randn(2, H, dtype=F64),
        torch.randn(3 * H, 2, dtype=F64),
        torch.randn(3 * H, H, dtype=F64),
        torch.randn(3 * H, dtype=F64),
        torch.randn(3 * H, dtype=F64),
    ]
    args = [a.requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(lambda *a: gru_forward(*a)[0], args)


def test_cell_state_jacobian_is_the_forget_gate():
    torch.manual_seed(6)
    x, h, c = (
        torch.randn(3, 2, dtype=F64),
        torch.randn(3, 4, dtype=F64),
        torch.randn(3, 4, dtype=F64),
    )
    weights = _weights(torch.nn.LSTMCell(2, 4).double())
    J = torch.autograd.functional.jacobian(lambda c_: lstm_cell(x, h, c_, *weights)[1], c)
    f = lstm_gates(x, h, *weights).f  # (B, H)
    for b in range(3):
        _assert_close(J[b, :, b, :], torch.diag(f[b]))


def test_forget_bias_shifts_only_the_forget_gate_rows():
    torch.manual_seed(7)
    plain = LSTM(2, 5)
    torch.manual_seed(7)
    biased = LSTM(2, 5, forget_bias=2.0)
    diff = biased.bias_ih - plain.bias_ih
    _assert_close(diff, torch.tensor([0.0] * 5 + [2.0] * 5 + [0.0] * 10))


def test_trace_records_the_states_that_forward_returns():
    torch.manual_seed(8)
    lstm = LSTM(2, 3).double()
    xs = torch.randn(2, 6, 2, dtype=F64)
    trace = lstm.trace(xs)
    hs, (h_T, c_T) = lstm(xs)
    _assert_close(trace["h"], hs)
    _assert_close(trace["c"][:, -1], c_T)
    for name in "ifo":
        assert ((trace[name] > 0) & (trace[name] < 1)).all()
    assert trace["g"].abs().max() < 1


def test_layers_keep_float32_and_reject_wrong_shapes_with_a_clear_message():
    lstm, gru = LSTM(3, 4), GRU(3, 4)
    assert lstm(torch.randn(2, 5, 3))[0].dtype == torch.float32
    assert gru(torch.randn(2, 5, 3))[0].dtype == torch.float32
    with pytest.raises(ValueError, match=r"xs should have 3 dimensions, got shape \(5, 3\)"):
        lstm(torch.randn(5, 3))
    with pytest.raises(ValueError, match="expected 3 input features, got 2"):
        gru(torch.randn(2, 5, 2))


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("Ours", [LSTM, GRU])
def test_fast_path_equals_the_explicit_loop_in_forward_and_gradients(Ours, device):
    torch.manual_seed(6)
    slow = Ours(3, 5).double().to(device)
    fast = Ours(3, 5, fast=True).double().to(device)
    fast.load_state_dict(slow.state_dict())
    xs = torch.randn(4, 9, 3, dtype=F64, device=device, requires_grad=True)
    h0 = torch.randn(4, 5, dtype=F64, device=device)
    state = (h0, torch.randn_like(h0)) if Ours is LSTM else h0
    (hs_slow, last_slow), (hs_fast, last_fast) = slow(xs, state), fast(xs, state)
    _assert_close(hs_fast, hs_slow)
    _assert_close(
        torch.stack(list(last_fast)) if Ours is LSTM else last_fast,
        torch.stack(list(last_slow)) if Ours is LSTM else last_slow,
    )
    weights = torch.randn_like(hs_slow)
    g_slow = torch.autograd.grad((hs_slow * weights).sum(), (xs, *slow.weights()))
    g_fast = torch.autograd.grad((hs_fast * weights).sum(), (xs, *fast.weights()))
    for a, b in zip(g_fast, g_slow, strict=True):
        _assert_close(a, b)
    # zero initial states by default, on both paths
    _assert_close(fast(xs)[0], slow(xs)[0])
