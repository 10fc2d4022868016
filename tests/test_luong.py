"""seqlab.luong: the general score against dot-product attention and a direct formula, masks,
gradients; Luong et al.'s decoder step against a hand-written reference (float64, 1e-6), with
and without input feeding, and through chapter 3's decoding interface; chapter 4's Luong
presets and checkpoints."""

from pathlib import Path

import pytest
import torch

from seqlab.attention import alignment_scores, attention_weights, dot_product_attention
from seqlab.base import checkpoints
from seqlab.base.data import make_batch, translation_task
from seqlab.base.decoding import batched_beam_search, beam_search, greedy_decode
from seqlab.chapters.attention import (
    CHECKPOINTS,
    PRESETS,
    LuongPreset,
    build,
    checkpoint_path,
    load,
    make_checkpoint,
    task_of,
)
from seqlab.luong import (
    GeneralAttention,
    LuongConfig,
    LuongSeq2Seq,
    general_attention,
    general_scores,
)
from seqlab.seq2seq import batched_greedy, evaluate

pytestmark = pytest.mark.attention

F64 = torch.float64


def _close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def _inputs(B, S, Hq, Hk, Dv, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, Hq, generator=g, dtype=F64),
        torch.randn(B, S, Hk, generator=g, dtype=F64),
        torch.randn(B, S, Dv, generator=g, dtype=F64),
        torch.randn(Hq, Hk, generator=g, dtype=F64),
    )


def _padding_mask(B, S, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S
    return torch.arange(S)[None, :] < lengths[:, None]


# ---------------------------------------------------------------------------
# The general score


@pytest.mark.parametrize("B,S,Hq,Hk,Dv", [(1, 1, 1, 1, 1), (3, 5, 4, 6, 2), (4, 9, 7, 7, 3)])
@pytest.mark.parametrize("masked", [False, True])
def test_general_attention_equals_the_bilinear_formula(B, S, Hq, Hk, Dv, masked):
    query, keys, values, W_a = _inputs(B, S, Hq, Hk, Dv)
    mask = _padding_mask(B, S) if masked else None
    context, weights = general_attention(query, keys, values, W_a, mask)
    assert context.shape == (B, Dv) and weights.shape == (B, S)
    for b in range(B):  # h_t^T W_a h_s, one row and one position at a time
        real = mask[b] if mask is not None else torch.ones(S, dtype=torch.bool)
        e = torch.stack([query[b] @ W_a @ keys[b, s] for s in range(S)])
        _close(general_scores(query, keys, W_a)[b], e)
        w = torch.zeros(S, dtype=F64)
        w[real] = torch.exp(e[real] - e[real].max()) / torch.exp(e[real] - e[real].max()).sum()
        _close(weights[b], w)
        _close(context[b], (w[:, None] * values[b]).sum(0))


def test_general_score_with_the_identity_is_the_dot_score():
    query, keys, values, _ = _inputs(3, 6, 5, 5, 4, seed=1)
    mask = _padding_mask(3, 6, seed=1)
    got = general_attention(query, keys, values, torch.eye(5, dtype=F64), mask)
    want = dot_product_attention(query, keys, values, mask)
    for g, w in zip(got, want, strict=True):
        _close(g, w)


def test_general_attention_gives_padding_exactly_zero_weight():
    query, keys, values, W_a = _inputs(4, 7, 3, 5, 2, seed=2)
    mask = _padding_mask(4, 7, seed=2)
    assert not mask.all()
    context, weights = general_attention(query, keys, values, W_a, mask)
    assert torch.equal(weights[~mask], torch.zeros_like(weights[~mask]))
    _close(weights.sum(-1), torch.ones(4, dtype=F64))
    values2 = values.clone()
    values2[~mask] = 1e6  # what stands at padded positions must not matter
    keys2 = keys.clone()
    keys2[~mask] = -1e3
    _close(general_attention(query, keys2, values2, W_a, mask)[0], context)


def test_general_attention_gradients_pass_gradcheck():
    args = [t.requires_grad_(True) for t in _inputs(2, 4, 3, 5, 2, seed=3)]
    mask = _padding_mask(2, 4, seed=3)
    assert torch.autograd.gradcheck(lambda q, k, v, W: general_attention(q, k, v, W, mask), args)


def test_general_attention_rejects_a_matrix_of_the_wrong_shape():
    query, keys, values, _ = _inputs(2, 3, 4, 5, 2)
    with pytest.raises(ValueError, match="W_a should be"):
        general_attention(query, keys, values, torch.zeros(5, 4, dtype=F64))


def test_general_attention_module_holds_w_a_and_calls_the_function():
    module = GeneralAttention(4, 6).double()
    assert [n for n, _ in module.named_parameters()] == ["W_a"] and module.W_a.shape == (4, 6)
    query, keys, values, _ = _inputs(2, 3, 4, 6, 5)
    for g, w in zip(module(query, keys, values),
                    general_attention(query, keys, values, module.W_a), strict=True):  # fmt: skip
        _close(g, w)


# ---------------------------------------------------------------------------
# Luong et al.'s decoder


@pytest.fixture(scope="module")
def small_task():
    return translation_task(n_train=60, n_valid=10, n_test=12, seed=3, max_len=9)


def _model(task, score="general", input_feeding=True, seed=0, cell="gru"):
    torch.manual_seed(seed)
    cfg = LuongConfig(len(task.src_vocab), len(task.tgt_vocab), emb=8, hidden=12, cell=cell,
                      score=score, input_feeding=input_feeding)  # fmt: skip
    return LuongSeq2Seq(cfg).double().eval()


def _reference_step(decoder, token, h_prev, fed, keys, mask):
    """Luong et al.'s eqs. 5-8 for one sentence, written out: torch's GRUCell for the
    recurrent step, then the bilinear scores, the softmax over the real positions, the
    context, the attentional vector and the output."""
    rnn = decoder.rnn
    cell = torch.nn.GRUCell(rnn.input_size, rnn.hidden_size).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(rnn, name))
    x = decoder.embed.weight[token]
    if fed is not None:
        x = torch.cat([x, fed])
    h = cell(x[None], h_prev[None])[0]  # h_t
    W_a = decoder.attention.W_a
    e = torch.stack([h @ W_a @ keys[s] for s in range(keys.shape[0])])  # score(h_t, h_s)
    a = torch.zeros_like(e)
    a[mask] = torch.exp(e[mask]) / torch.exp(e[mask]).sum()
    c = (a[:, None] * keys).sum(0)
    W_c = decoder.combine.weight  # (H, 2H)
    tilde = torch.tanh(W_c[:, : h.shape[0]] @ c + W_c[:, h.shape[0] :] @ h)
    logits = decoder.out.weight @ tilde + decoder.out.bias
    return torch.log_softmax(logits, dim=0), h, tilde, a


@pytest.mark.parametrize("input_feeding", [True, False])
def test_one_decoder_step_equals_the_hand_written_reference(small_task, input_feeding):
    model = _model(small_task, input_feeding=input_feeding)
    batch = make_batch(small_task.test[:4], small_task)
    keys, final = model.encoder.run(batch.src, batch.src_mask)
    H = 12
    state = model.decoder.initial_state(final)
    assert state.shape == (4, 2 * H if input_feeding else H)
    g = torch.Generator().manual_seed(5)
    if input_feeding:  # a nonzero attentional vector, as after a first step
        state = torch.cat([state[:, :H], torch.randn(4, H, generator=g, dtype=F64)], dim=-1)
    tokens = batch.tgt_in[:, 1]
    log_probs, new_state, weights = model.decoder.step(tokens, state, keys, batch.src_mask)
    assert log_probs.shape == (4, len(small_task.tgt_vocab)) and weights.shape == keys.shape[:2]
    assert new_state.shape == state.shape
    for b in range(4):
        fed = state[b, H:] if input_feeding else None
        want, h, tilde, a = _reference_step(model.decoder, tokens[b], state[b, :H], fed,
                                            keys[b], batch.src_mask[b])  # fmt: skip
        _close(log_probs[b], want)
        _close(weights[b], a)
        _close(new_state[b, :H], h)
        if input_feeding:
            _close(new_state[b, H:], tilde)  # the attentional vector travels with the state


def test_input_feeding_changes_the_next_step_only_through_the_attentional_vector(small_task):
    model = _model(small_task)
    batch = make_batch(small_task.test[:3], small_task)
    keys, final = model.encoder.run(batch.src, batch.src_mask)
    state = model.decoder.initial_state(final)
    assert torch.equal(state[:, 12:], torch.zeros(3, 12, dtype=F64))  # h~_0 = 0
    other = state.clone()
    other[:, 12:] = 1.0
    one = model.decoder.step(batch.tgt_in[:, 0], state, keys, batch.src_mask)[0]
    two = model.decoder.step(batch.tgt_in[:, 0], other, keys, batch.src_mask)[0]
    assert not torch.allclose(one, two)
    without = _model(small_task, input_feeding=False)
    assert without.decoder.rnn.input_size == model.decoder.rnn.input_size - 12


@pytest.mark.parametrize("input_feeding,cell", [(True, "gru"), (False, "gru"), (True, "lstm")])
def test_teacher_forcing_equals_the_steps_and_masks_the_padding(small_task, input_feeding, cell):
    model = _model(small_task, input_feeding=input_feeding, cell=cell)
    batch = make_batch(small_task.test[:5], small_task)
    log_probs, weights = model.forward_with_weights(batch.src, batch.src_mask, batch.tgt_in)
    B, T = batch.tgt_in.shape
    assert log_probs.shape == (B, T, len(small_task.tgt_vocab))
    assert weights.shape == (B, T, batch.src.shape[1])
    padding = ~batch.src_mask[:, None, :].expand_as(weights)
    assert padding.any() and torch.equal(weights[padding], torch.zeros_like(weights[padding]))
    _close(weights.sum(-1), torch.ones(B, T, dtype=F64))
    _close(log_probs.exp().sum(-1), torch.ones(B, T, dtype=F64))
    for b in range(B):  # one sentence at a time, without padding, through decoder_start
        S = int(batch.src_mask[b].sum())
        step, state = model.decoder_start(batch.src[b : b + 1, :S], batch.src_mask[b : b + 1, :S])
        for t in range(T):
            lp, state = step(batch.tgt_in[b, t : t + 1], state)
            _close(lp[0], log_probs[b, t])
            _close(step.weights[-1][0], weights[b, t, :S])


def test_the_dot_score_is_the_general_score_with_the_identity_in_the_model(small_task):
    general = _model(small_task, "general")
    dot = _model(small_task, "dot")
    assert sum(p.numel() for p in dot.decoder.attention.parameters()) == 0
    dot.load_state_dict({k: v for k, v in general.state_dict().items() if "W_a" not in k})
    with torch.no_grad():
        general.decoder.attention.W_a.copy_(torch.eye(12, dtype=F64))
    batch = make_batch(small_task.test[:4], small_task)
    _close(general(batch.src, batch.src_mask, batch.tgt_in),
           dot(batch.src, batch.src_mask, batch.tgt_in))  # fmt: skip


@pytest.mark.parametrize("input_feeding", [True, False])
def test_gradients_reach_every_parameter(small_task, input_feeding):
    model = _model(small_task, input_feeding=input_feeding).train()
    batch = make_batch(small_task.test[:6], small_task)
    log_probs = model(batch.src, batch.src_mask, batch.tgt_in)
    picked = log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)
    (-(picked * (batch.tgt_out != small_task.tgt_vocab.pad_id)).sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


def test_chapter3_greedy_and_beam_search_decode_the_luong_model_unchanged(small_task):
    model = _model(small_task)
    tv = small_task.tgt_vocab
    batch = make_batch(small_task.test[:4], small_task)
    step, state = model.decoder_start(batch.src, batch.src_mask)
    batched = batched_greedy(step, state, tv.bos_id, tv.eos_id, 12)
    beams = batched_beam_search(step, state, tv.bos_id, tv.eos_id, 3, 12)
    for b in range(4):
        S = int(batch.src_mask[b].sum())
        one = model.decoder_start(batch.src[b : b + 1, :S], batch.src_mask[b : b + 1, :S])
        greedy = greedy_decode(*one, tv.bos_id, tv.eos_id, 12)
        assert greedy == batched[b]
        assert beam_search(*one, tv.bos_id, tv.eos_id, 1, 12)[0][0] == greedy
        beam = beam_search(*one, tv.bos_id, tv.eos_id, 3, 12)
        assert [h for h, _ in beam] == [h for h, _ in beams[b]]


def test_luong_config_rejects_an_unknown_score():
    with pytest.raises(ValueError, match="score should be one of"):
        LuongConfig(5, 5, score="additive")


# ---------------------------------------------------------------------------
# Chapter 4's Luong presets and checkpoints

LUONG = [name for name, preset in PRESETS.items() if isinstance(preset, LuongPreset)]


def test_chapter4_ships_luong_models_with_and_without_input_feeding_and_both_scores():
    assert {PRESETS[name].input_feeding for name in LUONG} == {True, False}
    assert {PRESETS[name].score for name in LUONG} == {"general", "dot"}
    for name in LUONG:
        assert f"attention_{name}" in CHECKPOINTS
        assert checkpoint_path(name).stat().st_size < 400 * 1024  # small files


@pytest.mark.parametrize("name", LUONG)
def test_shipped_luong_models_are_luong_decoders_that_translate(name):
    model = load(checkpoint_path(name))
    preset = PRESETS[name]
    assert isinstance(model, LuongSeq2Seq)
    assert model.config.input_feeding == preset.input_feeding
    assert model.config.score == preset.score
    assert model.meta["test_greedy"]["exact_match"] > 0.9
    task = task_of(model)
    scores = evaluate(model, task, task.test[:200])
    assert scores["exact_match"] > 0.9
    aligned = alignment_scores(model, task, task.test[:100])
    assert 0 <= aligned["accuracy"] <= 1
    assert len(attention_weights(model, task, task.test[:3])) == 3


def test_make_checkpoint_trains_a_luong_preset_and_saves_what_load_reads(monkeypatch, tmp_path):
    tiny = LuongPreset("translation", dict(n_train=64, n_valid=8, n_test=8, max_len=8),
                       hidden=8, emb=4, epochs=1, input_feeding=True)  # fmt: skip
    monkeypatch.setitem(CHECKPOINTS, "attention_tiny_luong", tiny)
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    path = make_checkpoint("attention_tiny_luong")
    assert checkpoints.stale("attention_tiny_luong", tiny) is None
    model = load(path)
    task = task_of(model)
    assert type(model) is type(build(tiny, task)) is LuongSeq2Seq
    assert model.meta["alignment"] == pytest.approx(alignment_scores(model, task, task.test))
    assert (
        evaluate(model, task, task.test)["exact_match"] == model.meta["test_greedy"]["exact_match"]
    )


def test_the_page_measures_the_shipped_luong_models_and_attributes_them():
    """book/attention.md loads the Luong checkpoints (it trains nothing at build time),
    tables them beside Bahdanau's decoder, and attributes the general score (sec. 3.1) and
    input feeding (sec. 3.3) to Luong et al. (2015)."""
    page = " ".join((Path(__file__).resolve().parents[1] / "book/attention.md").read_text().split())
    for name in LUONG:
        assert f'"{name}"' in page
    assert "train_seq2seq(" not in page and "make_checkpoint(" not in page
    assert ":pyobject: LuongDecoder.step" in page
    assert "$$ (luong-decoder)" in page and "e_{ts} &= h_t^\\top W_a \\bar h_s" in page
    assert "*input feeding*, which their section 3.3 adds" in page
    assert "builds the decoder of {cite:t}`luong2015` as their section 3" in page
    assert 'decoders = {f"Bahdanau\'s, {name}"' in page  # the course's models keep their name
