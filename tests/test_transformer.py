"""seqlab.transformer: every part equal to PyTorch's twin (float64, 1e-6, forward and
gradients), and the properties the chapter shows. The chapter's experiments and shipped
checkpoints are tested in test_transformers.py."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.transformer import (
    POSITIONS,
    Classifier,
    DecoderLayer,
    EncoderLayer,
    LearnedPositions,
    MaskedLM,
    MultiHeadAttention,
    SinusoidalPositions,
    Transformer,
    TransformerConfig,
    apply_rope,
    causal_mask,
    copy_torch_layer,
    copy_torch_mha,
    scaled_dot_product_attention,
    sinusoidal_positions,
)

pytestmark = pytest.mark.transformers
TOL = dict(rtol=1e-6, atol=1e-6)


def _randn(*shape, g, requires_grad=False):
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def _padding(B, T, g):
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    return torch.arange(T)[None, :] < lengths[:, None]  # (B, T), True at real positions


# ---------------------------------------------------------------- scaled dot-product attention


@pytest.mark.parametrize(
    "lead, Tq, Tk, d, dv",
    [((), 4, 4, 8, 8), ((3,), 2, 5, 4, 6), ((2, 3), 5, 7, 8, 3), ((1, 1), 1, 1, 2, 1)],
)
def test_scaled_dot_product_attention_matches_torch_and_the_formula(lead, Tq, Tk, d, dv):
    g = torch.Generator().manual_seed(0)
    sizes = ((Tq, d), (Tk, d), (Tk, dv))
    q, k, v = (_randn(*lead, T, n, g=g, requires_grad=True) for T, n in sizes)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert out.shape == (*lead, Tq, dv) and weights.shape == (*lead, Tq, Tk)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL)
    formula = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    torch.testing.assert_close(weights, formula, **TOL)
    R = _randn(*out.shape, g=g)
    ours = torch.autograd.grad((out * R).sum(), (q, k, v))
    theirs = torch.autograd.grad((F.scaled_dot_product_attention(q, k, v) * R).sum(), (q, k, v))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_scaled_dot_product_attention_masks_like_torch_in_both_shapes():
    g = torch.Generator().manual_seed(1)
    B, h, Tq, Tk, d = 3, 2, 4, 6, 8
    q, k, v = _randn(B, h, Tq, d, g=g), _randn(B, h, Tk, d, g=g), _randn(B, h, Tk, d, g=g)
    keys = _padding(B, Tk, g)[:, None, None, :]  # (B, 1, 1, Tk)
    for mask in (keys, torch.rand(Tq, Tk, generator=g) < 0.7, keys & (torch.rand(Tq, Tk) < 0.8)):
        mask = mask | torch.eye(Tq, Tk, dtype=torch.bool)  # every query may attend somewhere
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        torch.testing.assert_close(
            out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL
        )
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, h, Tq, dtype=torch.float64))


def test_scaled_dot_product_attention_rejects_a_float_mask_and_mismatched_sizes():
    q = torch.zeros(2, 3, 4)
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(q, q, q, torch.ones(3, 3))
    with pytest.raises(ValueError, match="same last size"):
        scaled_dot_product_attention(q, torch.zeros(2, 3, 5), q)


def test_causal_mask_lets_each_position_see_itself_and_the_past():
    for T in (1, 2, 7):
        m = causal_mask(T)
        assert m.dtype == torch.bool and m.shape == (T, T)
        for i in range(T):
            for j in range(T):
                assert m[i, j] == (j <= i)


# ---------------------------------------------------------------- positions


def test_sinusoidal_positions_follow_vaswani_et_al():
    T, d = 50, 16
    P = sinusoidal_positions(T, d)
    assert P.dtype == torch.float32 and P.shape == (T, d)
    for t in (0, 1, 17, 49):
        for i in range(d // 2):
            angle = t / 10000 ** (2 * i / d)
            assert abs(P[t, 2 * i].item() - math.sin(angle)) < 1e-6
            assert abs(P[t, 2 * i + 1].item() - math.cos(angle)) < 1e-6
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


def test_position_modules_add_one_vector_per_position_and_refuse_long_inputs():
    x = torch.zeros(2, 5, 8)
    torch.testing.assert_close(SinusoidalPositions(8, 10)(x)[1], sinusoidal_positions(5, 8))
    learned = LearnedPositions(8, 10)
    torch.testing.assert_close(learned(x)[0], learned.embedding.weight[:5])
    for module in (SinusoidalPositions(8, 4), learned):
        with pytest.raises(ValueError, match="max_len"):
            module(torch.zeros(1, 11, 8))


# ---------------------------------------------------------------- rotary positions (RoPE)


def _llama_cos_sin(T, d, base):
    """The cos and sin LLaMA's rotary embedding gives positions 0..T-1, from its formula
    in float64: inv_freq = base^(-2i/d), each angle repeated for both halves."""
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq  # (T, d/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, d)
    return emb.cos(), emb.sin()


@pytest.mark.parametrize(
    "shape, base",
    [((5, 8), 10000.0), ((3, 6, 2), 10000.0), ((2, 7, 16), 500.0), ((2, 3, 9, 16), 10000.0),
     ((2, 2, 3, 4, 6), 1e6), ((1, 1, 1, 2), 10000.0), ((4, 64, 32), 10000.0)],
)  # fmt: skip
def test_apply_rope_matches_llama_apply_rotary_pos_emb(shape, base):
    """Equal, forward and gradient, to transformers' LLaMA rotary embedding with the
    matching cos and sin, for any leading dimensions (..., T, d)."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    g = torch.Generator().manual_seed(len(shape) * 100 + shape[-1])
    x = _randn(*shape, g=g, requires_grad=True)
    T, d = shape[-2:]
    cos, sin = _llama_cos_sin(T, d, base)
    ours = apply_rope(x, base)
    # LLaMA's cos and sin are (B, T, d) and unsqueezed at the heads' dimension; (T, d)
    # unsqueezed at 0 broadcasts over any leading dimensions
    theirs, _ = llama.apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=0)
    theirs = theirs.reshape(shape)
    assert ours.shape == shape and ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, **TOL)
    R = _randn(*shape, g=g)
    for a, b in zip(torch.autograd.grad((ours * R).sum(), x),
                    torch.autograd.grad((theirs * R).sum(), x), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, **TOL)


def test_apply_rope_matches_llama_attention_layout_and_rotary_embedding_module():
    """Queries and keys (B, heads, T, d) as LLaMA's attention holds them, with cos and sin
    from LlamaRotaryEmbedding itself (which computes them in float32)."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    B, h, T, d, base = 2, 3, 11, 16, 10000.0
    g = torch.Generator().manual_seed(7)
    q, k = _randn(B, h, T, d, g=g), _randn(B, h, T, d, g=g)
    cfg = LlamaConfig(hidden_size=h * d, num_attention_heads=h, head_dim=d,
                      rope_parameters={"rope_type": "default", "rope_theta": base})  # fmt: skip
    rotary = llama.LlamaRotaryEmbedding(cfg)
    positions = torch.arange(T)[None].expand(B, T)
    cos, sin = rotary(q.float(), positions)  # (B, T, d), float32
    q32, k32 = llama.apply_rotary_pos_emb(q.float(), k.float(), cos, sin)
    torch.testing.assert_close(apply_rope(q.float()), q32, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(apply_rope(k.float()), k32, rtol=1e-5, atol=1e-5)
    cos64, sin64 = _llama_cos_sin(T, d, base)
    q64, k64 = llama.apply_rotary_pos_emb(q, k, cos64[None].expand(B, T, d),
                                          sin64[None].expand(B, T, d))  # fmt: skip
    torch.testing.assert_close(apply_rope(q), q64, **TOL)
    torch.testing.assert_close(apply_rope(k), k64, **TOL)


def test_apply_rope_follows_the_rotate_half_formula():
    """Pair (i, i + d/2) at position t turns by t * base^(-2i/d); position 0 stays put."""
    T, d, base = 6, 8, 100.0
    x = _randn(T, d, g=torch.Generator().manual_seed(3))
    y = apply_rope(x, base)
    torch.testing.assert_close(y[0], x[0], rtol=0, atol=0)
    for t in range(T):
        for i in range(d // 2):
            a = t * base ** (-2 * i / d)
            c, s = math.cos(a), math.sin(a)
            x1, x2 = x[t, i].item(), x[t, i + d // 2].item()
            assert abs(y[t, i].item() - (c * x1 - s * x2)) < 1e-12
            assert abs(y[t, i + d // 2].item() - (s * x1 + c * x2)) < 1e-12


def test_apply_rope_scores_depend_only_on_the_offset():
    """q_m . k_n after rotation is a function of m - n: the same query and key at every
    position give a Toeplitz score matrix whose diagonal is the unrotated q . k; and
    shifting a whole sequence by s positions leaves all its scores unchanged."""
    g = torch.Generator().manual_seed(11)
    T, d = 12, 16
    q, k = _randn(d, g=g), _randn(d, g=g)
    Q, K = apply_rope(q.expand(T, d)), apply_rope(k.expand(T, d))
    S = Q @ K.T  # S[m, n] = q_m . k_n
    for offset in range(-(T - 1), T):
        diagonal = S.diagonal(offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), **TOL)
    torch.testing.assert_close(S.diagonal(), (q @ k).expand(T), **TOL)
    assert S.diagonal(1).sub(S.diagonal()[0]).abs().max() > 1e-3  # it does depend on m - n
    # a sequence and the same sequence after s other tokens: the same scores
    xq, xk = _randn(2, T, d, g=g), _randn(2, T, d, g=g)
    for s in (1, 5, 40):
        pad = _randn(2, s, d, g=g)
        shifted_q = apply_rope(torch.cat([pad, xq], 1))[:, s:]
        shifted_k = apply_rope(torch.cat([pad, xk], 1))[:, s:]
        want = apply_rope(xq) @ apply_rope(xk).transpose(1, 2)
        torch.testing.assert_close(shifted_q @ shifted_k.transpose(1, 2), want, **TOL)
        assert (shifted_q - apply_rope(xq)).abs().max() > 1e-3  # the vectors themselves moved


def test_apply_rope_preserves_norms_dtype_device_and_its_input():
    g = torch.Generator().manual_seed(5)
    x = _randn(3, 4, 20, 10, g=g)
    before = x.clone()
    y = apply_rope(x)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), **TOL)
    assert torch.equal(x, before)
    y32 = apply_rope(x.float())
    assert y32.dtype == torch.float32 and y32.device == x.device
    torch.testing.assert_close(y32, y.float(), rtol=1e-6, atol=1e-6)
    assert (apply_rope(x, base=10.0) - y).abs().max() > 1e-2  # the base matters


def test_apply_rope_explains_bad_shapes():
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, d\)"):
        apply_rope(torch.zeros(4))


# ---------------------------------------------------------------- multi-head attention


def _torch_mha(d_model, n_heads, g):
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    ours = MultiHeadAttention(d_model, n_heads).double()
    copy_torch_mha(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("d_model, n_heads", [(8, 1), (8, 2), (12, 3), (32, 8)])
@pytest.mark.parametrize("fast", [False, True])
def test_multi_head_attention_matches_torch_multiheadattention(d_model, n_heads, fast):
    g = torch.Generator().manual_seed(d_model + n_heads)
    ours, theirs = _torch_mha(d_model, n_heads, g)
    ours.fast = fast
    B, Tq, Tk = 3, 4, 6
    q, kv = _randn(B, Tq, d_model, g=g, requires_grad=True), _randn(B, Tk, d_model, g=g)
    keep = _padding(B, Tk, g)  # (B, Tk)
    cases = [
        (None, {}),
        (keep[:, None, :].expand(B, Tq, Tk), {"key_padding_mask": ~keep}),  # (B, Tq, Tk)
        (causal_mask(Tk)[-Tq:], {"attn_mask": ~causal_mask(Tk)[-Tq:]}),  # (Tq, Tk)
    ]
    for mask, kwargs in cases:
        got = ours(q, kv, kv, mask)
        want = theirs(q, kv, kv, need_weights=False, **kwargs)[0]
        torch.testing.assert_close(got, want, **TOL)
        R = _randn(*got.shape, g=g)
        params = [q, *ours.parameters()]
        grads = torch.autograd.grad((got * R).sum(), params)
        want_grads = torch.autograd.grad((want * R).sum(), [q, *theirs.parameters()])
        torch.testing.assert_close(grads[0], want_grads[0], **TOL)
        # in_proj's gradient is q_proj's, k_proj's and v_proj's stacked
        in_w = torch.cat([grads[1], grads[3], grads[5]])
        torch.testing.assert_close(in_w, want_grads[1], **TOL)


def test_multi_head_attention_keeps_per_head_weights_on_request():
    g = torch.Generator().manual_seed(0)
    ours, theirs = _torch_mha(8, 2, g)
    x = _randn(2, 5, 8, g=g)
    ours.keep_weights = True
    ours(x, x, x)
    want = theirs(x, x, x, need_weights=True, average_attn_weights=False)[1]
    assert ours.weights.shape == (2, 2, 5, 5)
    torch.testing.assert_close(ours.weights, want, **TOL)


def test_multi_head_attention_explains_bad_sizes():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"\(B, T, d_model\)"):
        MultiHeadAttention(8, 2)(torch.zeros(5, 8), torch.zeros(5, 8), torch.zeros(5, 8))


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch_transformer_encoder_layer(norm_first):
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    theirs = nn.TransformerEncoderLayer(16, 4, 24, dropout=0.0, batch_first=True,
                                        norm_first=norm_first).double()  # fmt: skip
    ours = EncoderLayer(16, 4, 24, norm_first=norm_first).double()
    copy_torch_layer(ours, theirs)
    x = _randn(3, 7, 16, g=g, requires_grad=True)
    keep = _padding(3, 7, g)
    got, want = ours(x, keep[:, None, :]), theirs(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(got, want, **TOL)
    R = _randn(3, 7, 16, g=g)
    (a,) = torch.autograd.grad((got * R).sum(), x)
    (b,) = torch.autograd.grad((want * R).sum(), x)
    torch.testing.assert_close(a, b, **TOL)
    ga = torch.autograd.grad((ours(x, keep[:, None, :]) * R).sum(), ours.ff.linear1.weight)
    gb = torch.autograd.grad(
        (theirs(x, src_key_padding_mask=~keep) * R).sum(), theirs.linear1.weight
    )
    torch.testing.assert_close(ga[0], gb[0], **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch_transformer_decoder_layer(norm_first):
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    theirs = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                        norm_first=norm_first).double()  # fmt: skip
    ours = DecoderLayer(16, 2, 32, norm_first=norm_first).double()
    copy_torch_layer(ours, theirs)
    x, memory = _randn(3, 5, 16, g=g, requires_grad=True), _randn(3, 6, 16, g=g, requires_grad=True)
    keep = _padding(3, 6, g)
    got = ours(x, memory, causal_mask(5), keep[:, None, :])
    want = theirs(x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=~keep)
    torch.testing.assert_close(got, want, **TOL)
    R = _randn(3, 5, 16, g=g)
    for a, b in zip(torch.autograd.grad((got * R).sum(), (x, memory)),
                    torch.autograd.grad((want * R).sum(), (x, memory)), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, **TOL)


def test_a_layer_without_positions_is_permutation_equivariant_and_positions_break_it():
    torch.manual_seed(0)
    layer = EncoderLayer(16, 4, 32).double().eval()
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    perm = torch.randperm(9)
    torch.testing.assert_close(layer(x[:, perm]), layer(x)[:, perm], **TOL)
    P = sinusoidal_positions(9, 16, dtype=torch.float64)
    moved = (layer(x[:, perm] + P) - layer(x + P)[:, perm]).abs().max()
    assert moved > 1e-2


def test_sublayers_without_residual_drop_the_skip_connection():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8)
    with_skip = EncoderLayer(8, 2, 16, norm_first=True)
    without = EncoderLayer(8, 2, 16, norm_first=True, residual=False)
    without.load_state_dict(with_skip.state_dict())
    sa = with_skip.self_attn
    h = with_skip.sub1.norm(x)
    first = sa(h, h, h)
    torch.testing.assert_close(with_skip.sub1(x, lambda z: sa(z, z, z)), x + first)
    torch.testing.assert_close(without.sub1(x, lambda z: without.self_attn(z, z, z)), first)


# ---------------------------------------------------------------- the encoder-decoder


def _tiny(positions="sinusoidal"):
    torch.manual_seed(0)
    cfg = TransformerConfig(11, 13, d_model=16, n_heads=2, d_ff=32, dropout=0.0,
                            positions=positions)  # fmt: skip
    return Transformer(cfg).eval()


def test_transformer_decoder_is_causal():
    model = _tiny()
    src = torch.randint(4, 11, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    tgt = torch.randint(4, 13, (2, 5))
    changed = tgt.clone()
    changed[:, 3:] = torch.randint(4, 13, (2, 2))
    a, b = model(src, mask, tgt), model(src, mask, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert (a[:, 3:] - b[:, 3:]).abs().max() > 1e-4


def test_transformer_ignores_what_padding_holds():
    model = _tiny("learned")
    src = torch.randint(4, 11, (2, 6))
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    other = src.clone()
    other[1, 4:] = 5
    tgt = torch.randint(4, 13, (2, 4))
    torch.testing.assert_close(model(src, mask, tgt), model(other, mask, tgt))


def test_transformer_step_interface_gives_the_teacher_forced_log_probs():
    model = _tiny()
    src = torch.randint(4, 11, (3, 5))
    mask = torch.ones(3, 5, dtype=torch.bool)
    tgt = torch.randint(4, 13, (3, 4))
    want = torch.log_softmax(model(src, mask, tgt), dim=-1)  # (3, 4, V)
    step, state = model.decoder_start(src, mask)
    assert state.shape == (3, 0)
    for t in range(4):
        log_probs, state = step(tgt[:, t], state)
        torch.testing.assert_close(log_probs, want[:, t], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, tgt)
    # K hypotheses per sentence, sentence-major, as chapter 3's batched beam search sends them
    step, state = model.decoder_start(src, mask)
    log_probs, _ = step(tgt[:, 0].repeat_interleave(2), state.repeat_interleave(2, 0))
    torch.testing.assert_close(log_probs, want[:, 0].repeat_interleave(2, 0), rtol=1e-5, atol=1e-5)


def test_forward_with_weights_gives_cross_attention_rows_that_sum_to_one():
    model = _tiny()
    src = torch.randint(4, 11, (2, 6))
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    log_probs, weights = model.forward_with_weights(src, mask, torch.randint(4, 13, (2, 4)))
    assert weights.shape == (2, 4, 6)
    assert (weights[1, :, 3:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 4))


def test_positions_table_names_the_three_kinds_of_positions():
    assert POSITIONS == {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions,
                         "none": None}  # fmt: skip
    with pytest.raises(ValueError, match="positions should be one of"):
        TransformerConfig(5, 5, positions="rotary")


# ---------------------------------------------------------------- the encoder's two heads


def _encoder_cfg():
    return TransformerConfig(0, 0, d_model=16, n_heads=2, d_ff=16, enc_layers=1, dropout=0.0)


def test_masked_lm_predicts_a_word_at_every_position():
    torch.manual_seed(0)
    model = MaskedLM(9, _encoder_cfg()).eval()
    ids = torch.randint(4, 9, (3, 5))
    logits = model(ids, torch.ones(3, 5, dtype=torch.bool))
    assert logits.shape == (3, 5, 9)
    torch.testing.assert_close(logits, model.head(model.encoder(ids, torch.ones_like(ids) > 0)))


def test_classifier_averages_over_real_tokens_and_ignores_padding():
    torch.manual_seed(0)
    clf = Classifier(9, _encoder_cfg(), 3).eval()
    ids = torch.randint(4, 9, (2, 6))
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    other = ids.clone()
    other[1, 4:] = 5
    logits = clf(ids, mask)
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, clf(other, mask))
    torch.testing.assert_close(logits[1:], clf(ids[1:, :4], mask[1:, :4]))
