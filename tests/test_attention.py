"""seqlab.attention and seqlab.chapters.attention: the two attention functions against direct
formulas and torch's fused attention, masks, overflow, gradients; the alignment scores; the
attention encoder-decoder through chapter 3's interface; chapter 4's shipped checkpoints, the
page's measurements and the attention explorer."""

import math
import re
from dataclasses import asdict

import ipywidgets
import pytest
import torch
import torch.nn.functional as F

from seqlab.attention import (
    AdditiveAttention,
    AttentionConfig,
    AttentionSeq2Seq,
    DotProductAttention,
    additive_attention,
    alignment_accuracy,
    alignment_error_rate,
    alignment_scores,
    attention_weights,
    dates_alignment,
    dot_product_attention,
    masked_softmax,
    predicted_alignment,
    reverse_padded,
)
from seqlab.base import checkpoints
from seqlab.base.data import Example, make_batch, translation_task
from seqlab.base.decoding import batched_beam_search, beam_search, greedy_decode
from seqlab.base.explorer import player_frames
from seqlab.base.train import History
from seqlab.chapters.attention import (
    CHECKPOINTS,
    PRESETS,
    AttentionExplorer,
    Preset,
    alignment_misses,
    attention_explorer,
    bucket_exact_match,
    build,
    checkpoint_path,
    exact_match_by_length,
    first_step_below,
    history_of,
    load,
    look_inside,
    make_checkpoint,
    recurrent_path_length,
    source_gradient_norms,
    task_of,
)
from seqlab.seq2seq import Seq2Seq, batched_greedy, evaluate

pytestmark = pytest.mark.attention

F64 = torch.float64
SIZES = [(1, 1, 1, 1), (3, 5, 4, 2), (4, 9, 6, 7)]  # B, S, H, Dv


def _inputs(B, S, H, Dv, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, H, generator=g, dtype=dtype),
        torch.randn(B, S, H, generator=g, dtype=dtype),
        torch.randn(B, S, Dv, generator=g, dtype=dtype),
    )


def _padding_mask(B, S, seed=0):
    """A mask (B, S) whose rows have different real lengths, each at least 1."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S  # one full row
    return torch.arange(S)[None, :] < lengths[:, None]


def _direct(scores, values, mask):
    """The formula, written with a Python loop over rows and exp over the real entries only."""
    B, S = scores.shape
    weights = torch.zeros_like(scores)
    for b in range(B):
        real = mask[b] if mask is not None else torch.ones(S, dtype=torch.bool)
        e = torch.exp(scores[b, real] - scores[b, real].max())
        weights[b, real] = e / e.sum()
    return torch.einsum("bs,bsd->bd", weights, values), weights


def _close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("B,S,H,Dv", SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_dot_product_attention_equals_the_formula(B, S, H, Dv, masked):
    query, keys, values = _inputs(B, S, H, Dv)
    mask = _padding_mask(B, S) if masked else None
    scores = torch.einsum("bsh,bh->bs", keys, query)
    want_context, want_weights = _direct(scores, values, mask)
    context, weights = dot_product_attention(query, keys, values, mask)
    _close(context, want_context)
    _close(weights, want_weights)


@pytest.mark.parametrize("B,S,H,Dv", SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_dot_product_attention_matches_torch_scaled_dot_product_attention(B, S, H, Dv, masked):
    query, keys, values = _inputs(B, S, H, Dv, seed=1)
    mask = _padding_mask(B, S, seed=1) if masked else None
    attn_mask = None if mask is None else mask[:, None, :]  # (B, 1, S): True = may attend
    want = F.scaled_dot_product_attention(
        query[:, None, :], keys, values, attn_mask=attn_mask, scale=1.0
    )[:, 0]
    context, _ = dot_product_attention(query, keys, values, mask)
    _close(context, want)


@pytest.mark.parametrize("B,S,H,Dv", SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_additive_attention_equals_the_formula(B, S, H, Dv, masked):
    query, keys, values = _inputs(B, S, H, Dv, seed=2)
    g = torch.Generator().manual_seed(3)
    Hq, A = H + 1, 5
    query = torch.randn(B, Hq, generator=g, dtype=F64)
    W_q, W_k = torch.randn(Hq, A, generator=g, dtype=F64), torch.randn(H, A, generator=g, dtype=F64)
    v = torch.randn(A, generator=g, dtype=F64)
    mask = _padding_mask(B, S, seed=2) if masked else None
    scores = torch.empty(B, S, dtype=F64)
    for b in range(B):
        for s in range(S):
            scores[b, s] = v @ torch.tanh(query[b] @ W_q + keys[b, s] @ W_k)
    want_context, want_weights = _direct(scores, values, mask)
    context, weights = additive_attention(query, keys, values, W_q, W_k, v, mask)
    _close(context, want_context)
    _close(weights, want_weights)


@pytest.mark.parametrize("fn", ["dot", "additive"])
def test_masked_weights_are_exactly_zero_and_the_rest_sum_to_one(fn):
    B, S, H = 6, 8, 4
    query, keys, values = _inputs(B, S, H, 3, seed=4)
    mask = _padding_mask(B, S, seed=4)
    assert len(set(mask.sum(1).tolist())) > 1  # rows of different lengths
    if fn == "dot":
        _, weights = dot_product_attention(query, keys, values, mask)
    else:
        module = AdditiveAttention(H, H, 5).double()
        _, weights = module(query, keys, values, mask)
    assert torch.equal(weights[~mask], torch.zeros_like(weights[~mask]))
    _close(weights.sum(dim=1), torch.ones(B, dtype=F64))


def test_padding_values_do_not_change_the_context():
    B, S, H = 3, 6, 4
    query, keys, values = _inputs(B, S, H, 2, seed=5)
    mask = _padding_mask(B, S, seed=5)
    context, _ = dot_product_attention(query, keys, values, mask)
    garbage_keys = torch.where(mask[..., None], keys, torch.full_like(keys, 1e6))
    garbage_values = torch.where(mask[..., None], values, torch.full_like(values, math.nan))
    context2, _ = dot_product_attention(query, garbage_keys, garbage_values.nan_to_num(7.0), mask)
    _close(context2, context)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_scores_that_overflow_a_naive_softmax_give_finite_weights(dtype):
    query = torch.tensor([[1.0, 0.0]], dtype=dtype)
    keys = torch.tensor([[[1000.0, 0.0], [999.0, 0.0], [-1000.0, 0.0]]], dtype=dtype)
    values = torch.eye(3, dtype=dtype)[None]
    assert torch.isinf(torch.exp(keys @ query[0])).any()  # the naive softmax overflows
    context, weights = dot_product_attention(query, keys, values)
    want = torch.tensor([[1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1)), 0.0]], dtype=dtype)
    assert torch.isfinite(weights).all() and weights.dtype == dtype
    torch.testing.assert_close(weights, want)
    torch.testing.assert_close(context, want)


def test_masked_softmax_rejects_a_row_without_real_positions():
    with pytest.raises(ValueError, match="at least one True"):
        masked_softmax(torch.zeros(2, 3), torch.tensor([[True, False, False], [False] * 3]))


def test_attention_rejects_a_mask_of_the_wrong_kind():
    query, keys, values = _inputs(2, 3, 4, 5)
    with pytest.raises(ValueError, match="bool tensor"):
        dot_product_attention(query, keys, values, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\(B, H\)"):
        dot_product_attention(keys, keys, values)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_outputs_keep_the_inputs_dtype_and_inputs_are_unmodified(dtype):
    query, keys, values = _inputs(3, 4, 5, 2, dtype=dtype)
    mask = _padding_mask(3, 4)
    copies = [t.clone() for t in (query, keys, values, mask)]
    for context, weights in (
        dot_product_attention(query, keys, values, mask),
        AdditiveAttention(5, 5, 3).to(dtype)(query, keys, values, mask),
    ):
        assert context.dtype == weights.dtype == dtype
        assert context.shape == (3, 2) and weights.shape == (3, 4)
    for before, after in zip(copies, (query, keys, values, mask), strict=True):
        assert torch.equal(before, after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attention_follows_the_inputs_to_cuda():
    query, keys, values = (t.cuda() for t in _inputs(3, 4, 5, 2))
    mask = _padding_mask(3, 4).cuda()
    context, weights = dot_product_attention(query, keys, values, mask)
    assert context.device.type == weights.device.type == "cuda"
    want, _ = dot_product_attention(query.cpu(), keys.cpu(), values.cpu(), mask.cpu())
    _close(context.cpu(), want)


def test_dot_product_attention_gradients_pass_gradcheck():
    query, keys, values = (t.requires_grad_(True) for t in _inputs(3, 5, 4, 2, seed=6))
    mask = _padding_mask(3, 5, seed=6)
    assert torch.autograd.gradcheck(
        lambda q, k, v: dot_product_attention(q, k, v, mask), (query, keys, values)
    )


def test_additive_attention_gradients_pass_gradcheck():
    g = torch.Generator().manual_seed(7)
    B, S, Hq, Hk, A, Dv = 2, 4, 3, 5, 6, 2
    args = [
        torch.randn(*shape, generator=g, dtype=F64, requires_grad=True)
        for shape in ((B, Hq), (B, S, Hk), (B, S, Dv), (Hq, A), (Hk, A), (A,))
    ]
    mask = _padding_mask(B, S, seed=7)
    assert torch.autograd.gradcheck(lambda *a: additive_attention(*a, mask), args)


def test_dot_product_module_has_no_parameters_and_calls_the_function():
    module = DotProductAttention()
    assert list(module.parameters()) == []
    query, keys, values = _inputs(2, 3, 4, 5)
    _close(module(query, keys, values)[0], dot_product_attention(query, keys, values)[0])


def test_alignment_accuracy_counts_argmax_links_on_aligned_words_only():
    weights = torch.tensor(
        [
            [0.7, 0.2, 0.1],  # target 0 -> source 0 (truly aligned to 0)
            [0.1, 0.3, 0.6],  # target 1 -> source 2 (truly aligned to 1: a miss)
            [0.5, 0.4, 0.1],  # target 2 -> source 0 (no true link: not counted)
            [0.2, 0.7, 0.1],  # target 3 -> source 1 (aligned to 1 and 2: a hit)
        ]
    )
    links = [(0, 0), (1, 1), (3, 1), (3, 2)]
    assert alignment_accuracy(weights, links) == pytest.approx(2 / 3)
    assert alignment_accuracy([weights, torch.eye(2)], [links, [(0, 0), (1, 1)]]) == 0.8
    assert predicted_alignment(weights) == {(0, 0), (1, 2), (2, 0), (3, 1)}


def test_alignment_error_rate_is_one_minus_f1_when_sure_equals_possible():
    weights = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])
    links = [(0, 0), (1, 1), (2, 1), (2, 0)]
    # predicted {(0,0), (1,0), (2,1)}: 2 of 3 are true, 2 of the 4 true links found
    precision, recall = 2 / 3, 2 / 4
    f1 = 2 * precision * recall / (precision + recall)
    assert alignment_error_rate(weights, links) == pytest.approx(1 - f1)
    assert alignment_error_rate(torch.eye(3), [(0, 0), (1, 1), (2, 2)]) == 0.0
    # a predicted link that is only possible counts once in the numerator
    assert alignment_error_rate(
        weights, [(0, 0), (2, 1)], possible=[(1, 0)]
    ) == pytest.approx(1 - (2 + 3) / (3 + 2))


# ---------------------------------------------------------------------------
# The attention encoder-decoder, through chapter 3's interface



@pytest.fixture(scope="module")
def small_task():
    return translation_task(n_train=60, n_valid=10, n_test=12, seed=3, max_len=9)


def _model(task, score="additive", seed=0):
    torch.manual_seed(seed)
    cfg = AttentionConfig(len(task.src_vocab), len(task.tgt_vocab), emb=8, hidden=12,
                          score=score, attention=10)  # fmt: skip
    return AttentionSeq2Seq(cfg).double().eval()


@pytest.mark.parametrize("score", ["additive", "dot"])
def test_decoder_steps_equal_the_teacher_forced_forward(small_task, score):
    model = _model(small_task, score)
    batch = make_batch(small_task.test[:5], small_task)
    log_probs, weights = model.forward_with_weights(batch.src, batch.src_mask, batch.tgt_in)
    assert log_probs.shape[:2] == weights.shape[:2] == batch.tgt_in.shape
    assert weights.shape[2] == batch.src.shape[1]
    assert torch.equal(weights[~batch.src_mask[:, None, :].expand_as(weights)],
                       torch.zeros_like(weights[~batch.src_mask[:, None, :].expand_as(weights)]))
    _close(weights.sum(-1), torch.ones_like(weights[..., 0]))
    for b in range(5):  # one sentence at a time through decoder_start's step
        S = int(batch.src_mask[b].sum())
        step, state = model.decoder_start(batch.src[b : b + 1, :S], batch.src_mask[b : b + 1, :S])
        assert state.shape == (1, 12)
        for t in range(batch.tgt_in.shape[1]):
            lp, state = step(batch.tgt_in[b, t : t + 1], state)
            _close(lp[0], log_probs[b, t])
            _close(step.weights[-1][0], weights[b, t, :S])


def test_chapter3_greedy_and_beam_search_decode_the_attention_model_unchanged(small_task):
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
        beam = beam_search(*one, tv.bos_id, tv.eos_id, 3, 12)
        assert beam_search(*one, tv.bos_id, tv.eos_id, 1, 12)[0][0] == greedy
        assert [h for h, _ in beam] == [h for h, _ in beams[b]]
        for (_, s1), (_, s2) in zip(beam, beams[b], strict=True):
            assert s1 == pytest.approx(s2, abs=1e-9)


def test_chapter3_evaluate_runs_on_the_attention_model(small_task):
    model = _model(small_task).float()
    scores = evaluate(model, small_task, small_task.test, method="beam", beam_size=2)
    assert 0 <= scores["exact_match"] <= 1 and len(scores["hypotheses"]) == 12
    by_length = exact_match_by_length(model, small_task, small_task.test)
    assert sum(n for _, n in by_length.values()) == 12


def test_attention_fn_replaces_the_attention_and_sees_every_call(small_task):
    model = _model(small_task)
    batch = make_batch(small_task.test[:3], small_task)
    want = model(batch.src, batch.src_mask, batch.tgt_in)
    calls = []

    def spy(*args):
        calls.append(args)
        return additive_attention(*args)

    model.attention_fn = spy
    got = model(batch.src, batch.src_mask, batch.tgt_in)
    assert len(calls) == batch.tgt_in.shape[1] and len(calls[0]) == 7
    _close(got, want)
    model.attention_fn = lambda q, k, v, Wq, Wk, vv, mask: additive_attention(q, k, v, Wq, Wk,
                                                                            vv, None)
    assert not torch.allclose(model(batch.src, batch.src_mask, batch.tgt_in), want)


def _save(model, path, **meta):
    return checkpoints.save(path, PRESETS["translation_dot_32"], checkpoints.cpu_state(model),
                            config=asdict(model.config), **meta)  # fmt: skip


def test_save_and_load_keep_the_model_and_its_metadata(small_task, tmp_path):
    model = _model(small_task, "dot").float()
    again = load(_save(model, tmp_path / "m.pt", note="x"))
    assert isinstance(again, AttentionSeq2Seq) and again.meta == {"note": "x"}
    assert not again.training and again.config == model.config
    batch = make_batch(small_task.test[:3], small_task)
    _close(again(batch.src, batch.src_mask, batch.tgt_in),
           model(batch.src, batch.src_mask, batch.tgt_in))  # fmt: skip
    plain = Seq2Seq(AttentionConfig(len(small_task.src_vocab), len(small_task.tgt_vocab),
                                    emb=8, hidden=12).seq2seq())  # fmt: skip
    assert isinstance(load(_save(plain, tmp_path / "p.pt")), Seq2Seq)


def test_alignment_scores_of_weights_that_follow_the_true_alignment_are_perfect(small_task):
    model = _model(small_task)
    examples = small_task.test
    weights = attention_weights(model, small_task, examples)
    assert [w.shape for w in weights] == [(len(e.target) + 1, len(e.source)) for e in examples]
    scores = alignment_scores(model, small_task, examples)
    assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["aer"] <= 1
    perfect = []
    for ex in examples:
        w = torch.zeros(len(ex.target), len(ex.source))
        for t, s in ex.alignment:
            w[t, s] = 1.0
        perfect.append(w)
    assert alignment_accuracy(perfect, [ex.alignment for ex in examples]) == 1.0


def test_source_gradient_norms_has_one_entry_per_source_position(small_task):
    model = _model(small_task)
    same = [ex for ex in small_task.train if len(ex.source) == 6][:5]
    norms = source_gradient_norms(model, small_task, same)
    assert norms.shape == (6,) and (norms > 0).all()
    with pytest.raises(ValueError, match="one source length"):
        source_gradient_norms(model, small_task, small_task.train[:5])


def test_reverse_padded_reverses_the_real_tokens_only_and_is_its_own_inverse():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    lengths = torch.tensor([3, 2])
    assert reverse_padded(x, lengths).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    states = torch.randn(2, 4, 3)
    assert torch.equal(reverse_padded(reverse_padded(states, lengths), lengths), states)


def test_bidirectional_encoder_states_see_the_words_on_both_sides(small_task):
    model = _model(small_task)
    batch = make_batch(small_task.test[:2], small_task)
    embedded = []
    handle = model.encoder.embed.register_forward_hook(lambda m, i, o: embedded.append(o))
    states, _ = model.encoder(batch.src, batch.src_mask)
    handle.remove()
    assert len(embedded) == 2  # one shared embedding, called once per direction
    (grad,) = torch.autograd.grad(states[0, 1].sum(), embedded[0], retain_graph=True)
    assert grad[0, 0].abs().sum() > 0 and grad[0, 2:].abs().sum() == 0  # left to right
    (grad,) = torch.autograd.grad(states[0, 1].sum(), embedded[1])
    n = int(batch.src_mask[0].sum())
    assert grad[0, : n - 2].abs().sum() > 0  # right to left: the words after position 1
    assert torch.equal(states[~batch.src_mask], torch.zeros_like(states[~batch.src_mask]))


def test_dates_alignment_links_each_iso_field_to_the_source_characters_that_decide_it():
    ex = Example(list("3rd of March 2021"), list("2021-03-03"))
    links = dates_alignment(ex)
    source = "".join(ex.source)
    by_target = {t: {source[s] for tt, s in links if tt == t} for t in range(10)}
    assert by_target[0] == {"2"} and by_target[3] == {"1"}  # the year, digit by digit
    assert by_target[5] == by_target[6] == set("March")  # the month's name decides both
    assert by_target[8] == by_target[9] == {"3"}  # "03" from the one digit "3"
    assert by_target[4] == by_target[7] == set()  # the dashes come from nowhere
    numeric = Example(list("28/01/75"), list("1975-01-28"))
    pairs = {(t, "28/01/75"[s]) for t, s in dates_alignment(numeric)}
    assert {(0, "7"), (0, "5"), (2, "7"), (3, "5"), (5, "0"), (6, "1"), (9, "8")} <= pairs


@pytest.mark.parametrize("name", ["translation_dot_32", "translation_additive_32"])
def test_shipped_attention_models_translate_and_align_the_test_set(name):
    model = load(checkpoint_path(name))
    task = task_of(model)
    assert model.meta["test_greedy"]["exact_match"] > 0.99
    scores = alignment_scores(model, task, task.test[:300])
    assert scores["accuracy"] == pytest.approx(
        alignment_accuracy([w[:-1] for w in attention_weights(model, task, task.test[:300])],
                           [ex.alignment for ex in task.test[:300]])  # fmt: skip
    )
    if name == "translation_dot_32":  # the chapter's target: >= 90 % of target words
        assert scores["accuracy"] >= 0.9 and model.meta["alignment"]["accuracy"] >= 0.9


# ---------------------------------------------------------------------------
# Chapter 4's shipped checkpoints and the page's measurements


def test_shipped_checkpoints_were_made_from_todays_presets():
    assert set(CHECKPOINTS) == {f"attention_{name}" for name in PRESETS}
    for name, preset in CHECKPOINTS.items():
        why = checkpoints.stale(name, preset)
        command = f"python -m seqlab.chapters checkpoints attention --only {name}"
        assert why is None, f"{why}: run {command}"


def test_shipped_checkpoints_hold_the_model_of_their_preset():
    for name, preset in PRESETS.items():
        model = load(checkpoint_path(name))
        task = task_of(model)
        assert type(model) is type(build(preset, task))
        assert model.config.hidden == preset.hidden and len(history_of(model).eval_loss) > 0
        assert ("alignment" in model.meta) == (preset.score is not None
                                               and preset.task == "translation")  # fmt: skip


@pytest.mark.parametrize("score", ["dot", None])
def test_make_checkpoint_trains_a_preset_and_saves_what_load_reads(monkeypatch, tmp_path, score):
    tiny = Preset("translation", dict(n_train=64, n_valid=8, n_test=8, max_len=8), score=score,
                  hidden=8, emb=4, epochs=1)  # fmt: skip
    monkeypatch.setitem(CHECKPOINTS, "attention_tiny", tiny)
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    path = make_checkpoint("attention_tiny")
    assert path == tmp_path / "attention_tiny.pt"
    assert checkpoints.stale("attention_tiny", tiny) is None
    model = load(path)
    task = task_of(model)
    assert type(model) is (Seq2Seq if score is None else AttentionSeq2Seq)
    assert ("alignment" in model.meta) == (score is not None) and len(history_of(model).loss) == 1
    if score is not None:
        assert model.meta["alignment"] == pytest.approx(alignment_scores(model, task, task.test))
    recorded = model.meta["test_greedy"]["exact_match"]
    assert evaluate(model, task, task.test)["exact_match"] == recorded


def test_make_checkpoint_names_the_presets_it_knows():
    with pytest.raises(ValueError, match="attention_translation_dot_32"):
        make_checkpoint("translation_dot_32")


def test_bucket_exact_match_pools_the_lengths_of_a_bucket_by_their_counts():
    table = {4: (1.0, 10), 5: (0.5, 30), 9: (0.0, 5)}
    assert bucket_exact_match(table, 4, 6) == pytest.approx((10 + 15) / 40)
    assert bucket_exact_match(table, 1, 20) == pytest.approx(25 / 45)
    with pytest.raises(ValueError, match="no example"):
        bucket_exact_match(table, 6, 8)


def test_recurrent_path_length_is_the_mean_of_the_encoder_and_decoder_steps():
    assert recurrent_path_length(1, 1) == 1  # 0 encoder steps after the word, 1 decoder step
    assert recurrent_path_length(3, 2) == pytest.approx(((2 + 1 + 0) * 2 + (1 + 2) * 3) / 6)
    S, T = 12, 14  # the mean of (S - s) is (S - 1) / 2, the mean of t is (T + 1) / 2
    assert recurrent_path_length(S, T) == pytest.approx((S - 1) / 2 + (T + 1) / 2)


def test_first_step_below_finds_the_first_validation_loss_under_the_threshold():
    h = History(loss=[], eval_step=[100, 200, 300], eval_loss=[1.0, 0.04, 0.01])
    assert first_step_below(h, 0.05) == 200 and first_step_below(h, 0.001) is None


def test_alignment_misses_lists_the_aligned_words_the_attention_misses(small_task):
    model = _model(small_task)
    examples = small_task.test[:6]
    missed = alignment_misses(model, small_task, examples)
    weights = [w[:-1] for w in attention_weights(model, small_task, examples)]
    links = [ex.alignment for ex in examples]
    counted = sum(len({t for t, _ in a}) for a in links)
    hits = alignment_accuracy(weights, links) * counted
    assert len(missed) == pytest.approx(counted - hits)
    words = {w for ex in examples for w in ex.target}
    assert all(word in words and isinstance(offset, int) for word, offset in missed)


def test_look_inside_decodes_greedily_and_with_the_beam(small_task):
    model = _model(small_task).float()
    ex = small_task.test[2]
    seen = look_inside(model, small_task, ex.source, beam_size=2)
    assert seen["greedy"] == evaluate(model, small_task, [ex])["hypotheses"][0]
    best = seen["beam"][0][0]
    assert best == evaluate(model, small_task, [ex], method="beam", beam_size=2)["hypotheses"][0]
    assert seen["weights"].shape == (len(best) + 1, len(ex.source))


# ---------------------------------------------------------------------------
# The attention explorer

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def attention_setup():
    task = translation_task(n_train=40, n_valid=5, n_test=6, seed=1, max_len=8)
    torch.manual_seed(0)
    cfg = AttentionConfig(len(task.src_vocab), len(task.tgt_vocab), emb=8, hidden=8, attention=8)
    return AttentionSeq2Seq(cfg).eval(), task


@pytest.fixture(scope="module")
def attention_view(attention_setup):
    model, task = attention_setup
    return attention_explorer(model, task, task.test[:3], beam_size=2)


def test_attention_explorer_offers_a_widget_and_an_offline_player_with_a_frame_per_sentence(
    attention_view,
):
    bundle = attention_view._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    html = bundle["text/html"]
    frames = player_frames(html)
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)
    assert "https://" not in html and "<link" not in html
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', html).group(0)
    assert re.search(r'alt="[^"]*true alignment[^"]*"', img)


def test_attention_explorer_menu_and_text_box_redraw_the_chart(attention_view):
    menu, typed, message, image = attention_view.widget().children
    assert isinstance(menu, ipywidgets.Dropdown) and isinstance(typed, ipywidgets.Text)
    first = bytes(image.value)
    menu.value = 2
    assert bytes(image.value) == attention_view.png(attention_view.examples[2].source)
    assert bytes(image.value) != first
    typed.value = "the red cat sees a dog"
    assert bytes(image.value) == attention_view.png("the red cat sees a dog".split())
    typed.value = "the zebra sees a dog"  # an unknown word is read as <unk>, not an error
    assert message.value == ""
    typed.value = "   "
    assert "at least one word" in message.value
    menu.value = 0


def test_attention_explorer_shows_the_beam_and_weights_that_match_the_best_hypothesis(
    attention_view, attention_setup
):
    model, task = attention_setup
    seen = attention_view.inside(task.test[1].source)
    best = seen["beam"][0][0]
    assert 1 <= len(seen["beam"]) <= 2 and seen["beam"][0][1] >= seen["beam"][-1][1]
    assert seen["weights"].shape == (len(best) + 1, len(task.test[1].source))
    torch.testing.assert_close(seen["weights"].sum(1), torch.ones(len(best) + 1))


def test_attention_explorer_needs_two_sentences(attention_setup):
    model, task = attention_setup
    with pytest.raises(ValueError, match="at least 2 sentences"):
        AttentionExplorer(model, task, task.test[:1])
