"""seqlab.chapters.transformers: chapter 5's experiments, its shipped models and its explorer."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqlab.attention import alignment_scores
from seqlab.base import checkpoints
from seqlab.base.data import NOUNS, VERBS, Vocab, make_batch, translation_task
from seqlab.base.explorer import player_frames
from seqlab.chapters import transformers as chapter
from seqlab.chapters.transformers import (
    CHECKPOINTS,
    Preset,
    agreement_examples,
    attention_cost,
    build,
    calibration,
    classifier_accuracy,
    classifier_from,
    config_of,
    encode_batch,
    english_sentences,
    fine_tune,
    head_alignment,
    head_explorer,
    label_smoothed_loss,
    load_checkpoint,
    load_runs,
    make_checkpoint,
    mask_tokens,
    mlm_batches,
    model_from,
    noam_lr,
    offset_spread,
    pretrain_mlm,
    race,
    random_batch,
    run_name,
    schedule_run,
    sdpa_backend,
    smoothed_targets,
    smoothing_floor,
    smoothing_temperature,
    softmax_saturation,
    step_seconds,
    steps_to,
    task_of,
    time_to,
    timed_training,
    token_logits,
    warmup_schedule,
)
from seqlab.seq2seq import evaluate
from seqlab.transformer import MaskedLM, Transformer, TransformerConfig

pytestmark = pytest.mark.transformers

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def tiny_task():
    return translation_task(n_train=40, n_valid=5, n_test=6, seed=1, max_len=8)


def _tiny_transformer(task, n_heads=2, dec_layers=2):
    torch.manual_seed(0)
    cfg = TransformerConfig(len(task.src_vocab), len(task.tgt_vocab), d_model=8, n_heads=n_heads,
                            d_ff=8, enc_layers=1, dec_layers=dec_layers, dropout=0.0)  # fmt: skip
    return Transformer(cfg).eval()


@pytest.fixture(scope="module")
def small_vocab():
    sentences = english_sentences(300, seed=3)
    return sentences, Vocab(t for s in sentences for t in s)


def _tiny_encoder_cfg(**kwargs):
    return TransformerConfig(0, 0, d_model=8, n_heads=2, d_ff=8, enc_layers=1, max_len=32,
                             **kwargs)  # fmt: skip


# ---------------------------------------------------------------- the head explorer


@pytest.fixture(scope="module")
def head_view(tiny_task):
    model = _tiny_transformer(tiny_task)
    return head_explorer(model, tiny_task, [ex.source for ex in tiny_task.test[:3]])


def test_head_explorer_offers_a_widget_and_a_player_with_a_frame_per_attention_and_layer(
    head_view,
):
    bundle = head_view._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    frames = player_frames(bundle["text/html"])
    assert len(frames) == 1 + 2 + 2  # encoder layer, two decoder self-attentions, two cross
    assert len(set(frames)) == len(frames)
    assert "https://" not in bundle["text/html"]


def test_head_explorer_controls_redraw_and_explain_bad_input(head_view):
    menu, typed, kind, layer, message, image = head_view.widget().children
    first = bytes(image.value)
    kind.value = "encoder"
    assert bytes(image.value) == head_view.png((head_view.sentences[0], "encoder", 0))
    layer.value = 2  # the encoder has one layer only
    assert "no layer 2" in message.value
    kind.value = "decoder"
    assert message.value == "" and bytes(image.value) != first
    typed.value = "the red cat sees a dog"
    assert bytes(image.value) == head_view.png(("the red cat sees a dog".split(), "decoder", 1))
    typed.value = "  "
    assert "at least one word" in message.value


def test_head_explorer_maps_have_one_row_per_query_and_sum_to_one(head_view):
    seen = head_view.maps(head_view.sentences[1])
    S, T = len(seen["source"]), len(seen["output"]) + 1
    assert seen["maps"]["encoder", 0].shape == (2, S, S)
    assert seen["maps"]["decoder", 1].shape == (2, T, T)
    assert seen["maps"]["cross", 0].shape == (2, T, S)
    for weights in seen["maps"].values():
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert (seen["maps"]["decoder", 0].triu(1) == 0).all()  # causal


def test_head_explorer_needs_a_sentence_and_describes_itsplayer_frames(head_view, tiny_task):
    with pytest.raises(ValueError, match="at least one sentence"):
        head_explorer(head_view.model, tiny_task, [])
    assert "5 frames" in head_view.alt() and " ".join(head_view.sentences[0]) in head_view.alt()
    assert "HeadExplorer(3 sentences, 2 heads)" == repr(head_view)


# ---------------------------------------------------------------- looking inside, timing


def test_head_alignment_scores_every_head_and_agrees_with_chapter_4_for_one_head(tiny_task):
    scored = head_alignment(_tiny_transformer(tiny_task), tiny_task, tiny_task.test)
    assert sorted(scored) == [(layer, head) for layer in range(2) for head in range(2)]
    assert all(0.0 <= v <= 1.0 for v in scored.values())
    one = _tiny_transformer(tiny_task, n_heads=1, dec_layers=1)
    ours = head_alignment(one, tiny_task, tiny_task.test, batch_size=4)
    assert ours[0, 0] == pytest.approx(alignment_scores(one, tiny_task, tiny_task.test)["accuracy"])


def test_step_seconds_times_a_copy_and_race_takes_turns(tiny_task):
    model = _tiny_transformer(tiny_task)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sample = [make_batch(tiny_task.train[:8], tiny_task)] * 2
    pad_id = tiny_task.tgt_vocab.pad_id
    assert step_seconds(model, sample, pad_id) > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    times = race({"b": model, "a": model}, sample, pad_id, rounds=2)
    assert list(times) == ["b", "a"] and all(t > 0 for t in times.values())


def test_random_batch_is_seeded_by_its_length_and_framed_by_bos_and_eos(tiny_task):
    batch = random_batch(tiny_task, 7, batch_size=5)
    assert batch.src.shape == (5, 7) and batch.tgt_in.shape == batch.tgt_out.shape == (5, 8)
    assert batch.src_mask.all() and (batch.src >= 4).all()
    assert (batch.tgt_in[:, 0] == tiny_task.tgt_vocab.bos_id).all()
    assert (batch.tgt_out[:, -1] == tiny_task.tgt_vocab.eos_id).all()
    assert torch.equal(batch.tgt_in[:, 1:], batch.tgt_out[:, :-1])
    assert torch.equal(random_batch(tiny_task, 7, batch_size=5).src, batch.src)


def test_steps_to_and_time_to_read_a_timed_history():
    history = {"eval_step": [50, 100, 150], "eval_exact": [0.2, 0.95, 0.9]}
    assert steps_to(history, 0.9) == 100 and steps_to(history, 0.99) is None
    assert time_to(history, 0.9, 0.02) == pytest.approx(2.0)
    assert time_to(history, 0.99, 0.02) is None


def test_timed_training_records_exact_match_against_seconds(tiny_task):
    model = _tiny_transformer(tiny_task)
    h = timed_training(model, tiny_task, epochs=2, batch_size=16, eval_every=2,
                       eval_examples=3)  # fmt: skip
    assert len(h["loss"]) == 2 * 3 and h["eval_step"] == [2, 4, 6]
    assert len(h["eval_seconds"]) == len(h["eval_exact"]) == 3
    assert h["eval_seconds"] == sorted(h["eval_seconds"]) and h["seconds_per_epoch"] > 0
    assert all(0.0 <= e <= 1.0 for e in h["eval_exact"])


# ---------------------------------------------------------------- pretraining data and loops


def test_mask_tokens_masks_only_real_tokens_and_remembers_them():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 20, (50, 12))
    real = torch.arange(12)[None, :] < torch.randint(1, 13, (50, 1))
    inputs, targets = mask_tokens(ids, real, 3, 0.3, g)
    chosen = targets != -100
    assert not (chosen & ~real).any()
    assert (inputs[chosen] == 3).all() and (targets[chosen] == ids[chosen]).all()
    assert (inputs[~chosen] == ids[~chosen]).all()
    assert 0.2 < chosen.sum() / real.sum() < 0.4


def test_agreement_examples_flip_the_verb_of_half_the_sentences():
    examples = agreement_examples(400, seed=7)
    labels = [y for _, y in examples]
    assert 150 < sum(labels) < 250
    verbs = {form for sg, pl, _, _ in VERBS for form in (sg, pl)}
    plurals = {pl for _, pl, _, _, _ in NOUNS}
    for tokens, label in examples[:50]:
        verb = next(t for t in tokens if t in verbs)
        subject = [t for t in tokens[: tokens.index(verb)] if t != "never"]
        plural_subject = subject[-1] in plurals
        agrees = plural_subject == (not verb.endswith("s"))
        assert agrees == bool(label), (tokens, label)
    exclude = {tuple(s) for s in english_sentences(200, seed=7)}
    assert not exclude & {tuple(t) for t, _ in agreement_examples(100, seed=7, exclude=exclude)}


def test_encode_batch_pads_and_mlm_batches_hide_words_behind_unk(small_vocab):
    sentences, vocab = small_vocab
    ids, real = encode_batch([["the", "cat"], ["a", "big", "dog"]], vocab)
    assert ids.shape == real.shape == (2, 3) and real.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert ids[0, 2] == vocab.pad_id
    inputs, real, targets = next(mlm_batches(sentences, vocab, 16, 0.5,
                                             torch.Generator().manual_seed(0)))  # fmt: skip
    chosen = targets != -100
    assert inputs.shape == (16, real.shape[1]) and chosen.any()
    assert (inputs[chosen] == vocab.unk_id).all() and not (chosen & ~real).any()


def test_pretraining_runs_on_the_shared_loop_repeatably_and_clips(small_vocab):
    sentences, vocab = small_vocab
    runs = []
    for clip_norm in (1.0, 1.0, 1e-3):
        torch.manual_seed(0)
        model = MaskedLM(len(vocab), _tiny_encoder_cfg())
        runs.append(pretrain_mlm(model, sentences, vocab, 5, batch_size=8, seed=0,
                                 clip_norm=clip_norm))  # fmt: skip
    assert len(runs[0]) == 5 and runs[0] == runs[1]
    assert runs[2][0] == runs[0][0] and runs[2][1:] != runs[0][1:]  # a tiny norm, tiny steps


def test_fine_tuning_copies_the_pretrained_encoder_and_learns_the_labels(small_vocab):
    _, vocab = small_vocab
    torch.manual_seed(1)
    pretrained = MaskedLM(len(vocab), _tiny_encoder_cfg(dropout=0.0))
    clf = classifier_from(pretrained, len(vocab), pretrained.config, seed=0)
    for k, v in pretrained.encoder.state_dict().items():
        assert torch.equal(clf.encoder.state_dict()[k], v)
    fresh = classifier_from(None, len(vocab), pretrained.config, seed=0)
    tokens = pretrained.encoder.embed.tokens.weight
    assert not torch.equal(fresh.encoder.embed.tokens.weight, tokens)
    examples = [(["the", "cat"], 1), (["a", "dog"], 0)] * 4
    losses = fine_tune(clf, examples, vocab, steps=60, batch_size=4, lr=1e-2, seed=0)
    assert len(losses) == 60 and not clf.training
    assert classifier_accuracy(clf, examples, vocab) == 1.0


# ---------------------------------------------------------------- checkpoints


def test_a_model_comes_back_from_its_config_and_state(tmp_path, small_vocab, tiny_task):
    model = _tiny_transformer(tiny_task)
    mlm = MaskedLM(len(small_vocab[1]), _tiny_encoder_cfg())
    for m in (model, mlm):
        config = config_of(m)
        path = checkpoints.save(tmp_path / "m.pt", Preset("x"), checkpoints.cpu_state(m), config,
                                note="hi")  # fmt: skip
        again = model_from(checkpoints.load(path))
        assert type(again) is type(m) and again.meta == {"note": "hi"} and not again.training
        assert again.preset == checkpoints.as_dict(Preset("x")) and again.config == m.config
        assert type(build(config)) is type(m)
        for k, v in m.state_dict().items():
            assert torch.equal(again.state_dict()[k], v)
    with pytest.raises(TypeError, match="no checkpoint kind"):
        config_of(torch.nn.Linear(2, 2))


def test_make_checkpoint_trains_a_preset_and_saves_what_load_checkpoint_reads(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    tiny = Preset("mlm", dict(d_model=8, n_heads=2, d_ff=8, enc_layers=1, max_len=32), steps=3)
    monkeypatch.setitem(CHECKPOINTS, "tiny_mlm", tiny)
    path = make_checkpoint("tiny_mlm")
    assert path == tmp_path / "tiny_mlm.pt" and checkpoints.stale("tiny_mlm", tiny) is None
    model = load_checkpoint("tiny_mlm")
    assert isinstance(model, MaskedLM) and len(model.meta["loss"]) == 3
    assert model.meta["vocab"] == chapter.pretraining_vocab().itos


def test_shipped_checkpoints_were_made_from_todays_presets():
    stale = [(name, checkpoints.stale(name, preset)) for name, preset in CHECKPOINTS.items()]
    lines = [f"{why}: python -m seqlab.chapters checkpoints transformers --only {name}"
             for name, why in stale if why]  # fmt: skip
    assert not lines, "\n".join(lines)


@pytest.mark.parametrize("name", [n for n, p in CHECKPOINTS.items() if p.kind == "transformer"])
def test_shipped_transformers_translate_and_align(name):
    model = load_checkpoint(name)
    task = task_of(model)
    test = task.test[:200]
    assert evaluate(model, task, test)["exact_match"] >= 0.95
    assert evaluate(model, task, test[:50], method="beam")["exact_match"] >= 0.95
    assert alignment_scores(model, task, test)["accuracy"] > 0.3
    assert max(head_alignment(model, task, test).values()) > 0.9


def test_shipped_pretrained_encoder_predicts_the_verb_from_its_subject():
    model = load_checkpoint("transformer_mlm")
    vocab = Vocab(model.meta["vocab"][4:])
    assert vocab.itos == model.meta["vocab"]
    right = 0
    pairs = [("the cats", "see", "sees"), ("a dog", "sees", "see"), ("some mice", "like", "likes"),
             ("the girl", "finds", "find"), ("the big horses", "hear", "hears")]  # fmt: skip
    for subject, good, bad in pairs:
        tokens = subject.split() + ["<unk>", "a", "cat"]
        ids = torch.tensor([vocab.encode(tokens)])
        ids[0, len(subject.split())] = vocab.unk_id
        logits = model(ids, torch.ones_like(ids, dtype=torch.bool))[0, len(subject.split())]
        right += logits[vocab.stoi[good]] > logits[vocab.stoi[bad]]
    assert right == len(pairs)


def test_shipped_gru_is_chapter_4s_model_trained_on_the_same_task():
    gru = load_checkpoint("transformer_translation_gru")
    tf = load_checkpoint("transformer_translation")
    assert gru.meta["task"] == tf.meta["task"] == chapter.TASK
    assert abs(gru.meta["parameters"] / tf.meta["parameters"] - 1) < 0.05
    assert gru.meta["parameters"] == sum(p.numel() for p in gru.parameters())


# ---------------------------------------------------------------- statements corrected once

ROOT = Path(__file__).resolve().parents[1]


def _page() -> str:
    return (ROOT / "book" / "transformers.md").read_text(encoding="utf-8")


def _cells(folder: str) -> dict[str, str]:
    """The notebook's cells by nbgrader grade_id (solutions/ or exercises/)."""
    nb = json.loads((ROOT / folder / "transformers" / "transformers.ipynb").read_text("utf-8"))
    return {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in nb["cells"]
            if "nbgrader" in c["metadata"]}  # fmt: skip


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_positions_figure_caption_says_what_the_figure_plots():
    """The caption once said each pair of *columns* is one frequency, left to right; the
    figure plots positions along the columns and dimensions along the rows."""
    page = _page()
    start = page.index("name: fig-positions")
    cell = page[page.rindex("```{code-cell}", 0, start) : page.index("\n```\n", start)]
    caption = _flat(cell[cell.index("caption:") : cell.index("name: fig-positions")])
    assert "pair of columns" not in caption and "(left)" not in caption
    assert "Each pair of rows" in caption and "(columns, left to right)" in caption
    assert ".T.numpy()" in cell and 'set_xlabel("position t")' in cell
    assert "assert image.get_array().shape == (d_fig, T_fig)" in cell


def test_bert_masking_is_described_with_its_80_10_10_rule():
    page = _flat(_page())
    assert "by hiding 15 % of the words and asking it to predict them" not in page
    rule = "80 % are replaced by a `[MASK]` token, 10 % by a random token and 10 % are left"
    assert rule + " unchanged" in page
    doc = _flat(mask_tokens.__doc__)
    assert "replace 80 % of the chosen tokens by [MASK], 10 % by a random token" in doc
    assert "BERT's masking (Devlin et al., 2019): each real token" not in doc


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_written_question_c_treats_the_tiny_model_as_the_causal_decoder_it_is(folder):
    """Question (c) once asked the students to argue, and its model answer said, that
    attention without positions treats the tiny model's input as a set; its causal mask
    breaks that symmetry, and causal decoders learn positions without encodings (Haviv et
    al., 2022)."""
    cells = _cells(folder)
    question = _flat(cells["question"])
    assert "Explain with what attention does when the input tokens are permuted" not in question
    assert "(c) The tiny model is a causal decoder" in question
    answer = _flat(cells["answer"])
    for wrong in (
        "Attention treats its keys as a set",
        "permuting the input tokens permutes the outputs the same way and changes nothing else",
        "without positions attention is permutation-equivariant",
    ):
        assert wrong not in answer and wrong not in question
    if folder == "solutions":
        assert "Haviv et al., 2022" in answer and "causal mask" in answer


# ---------------------------------------------------------------- attention measured


def test_softmax_saturation_unscaled_scores_grow_as_sqrt_d_and_saturate():
    dims = (4, 64, 1024)
    s = softmax_saturation(dims, n_keys=16, n_queries=200)
    for d in dims:
        assert abs(s[d]["unscaled"]["score_std"] / math.sqrt(d) - 1) < 0.15
        assert abs(s[d]["scaled"]["score_std"] - 1) < 0.15
    unscaled = [s[d]["unscaled"] for d in dims]
    assert unscaled[0]["max_weight"] < unscaled[1]["max_weight"] < unscaled[2]["max_weight"]
    assert unscaled[0]["entropy"] > unscaled[1]["entropy"] > unscaled[2]["entropy"]
    assert unscaled[1]["jacobian"] > unscaled[2]["jacobian"]
    scaled = [s[d]["scaled"]["max_weight"] for d in dims]
    assert max(scaled) - min(scaled) < 0.05
    assert all(0 <= s[d][k]["entropy"] <= math.log(16) + 1e-9 for d in dims for k in s[d])


def test_attention_cost_times_both_attentions_and_counts_the_weights_bytes():
    cost = attention_cost([8, 16], d=4, heads=2, batch=3, repeats=2)
    for T, row in cost.items():
        assert row["weights_bytes"] == 3 * 2 * T * T * 4  # float32 (B, h, T, T)
        assert row["seqlab_s"] > 0 and row["torch_s"] > 0 and row["gap"] < 1e-5
    q = torch.randn(1, 2, 8, 4)
    assert sdpa_backend(q, q, q) in {"FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION",
                                     "MATH", "OVERRIDEABLE"}  # fmt: skip


def test_offset_spread_is_rounding_error_for_rotary_positions_only():
    spread = offset_spread(T=16, d=16)
    assert spread["rotary"] < 1e-12 < 1.0 < spread["sinusoidal"]
    assert spread["rotary_range"] > 1.0  # the scores do change with the offset


# ---------------------------------------------------------------- warm-up and label smoothing


def test_noam_lr_is_vaswanis_schedule_at_known_steps():
    d, w = 512, 4000  # the paper's base model
    assert noam_lr(1, d, w) == pytest.approx(512**-0.5 * 4000**-1.5, rel=1e-12)
    assert noam_lr(4000, d, w) == pytest.approx(1 / math.sqrt(512 * 4000), rel=1e-12)
    assert noam_lr(4000, d, w) == pytest.approx(6.98771242e-4, rel=1e-8)
    assert noam_lr(16_000, d, w) == pytest.approx(noam_lr(4000, d, w) / 2, rel=1e-12)
    assert noam_lr(2000, d, w) == pytest.approx(noam_lr(4000, d, w) / 2, rel=1e-12)  # linear
    assert noam_lr(10, d, w, factor=2.0) == pytest.approx(2 * noam_lr(10, d, w), rel=1e-12)
    with pytest.raises(ValueError, match="count from 1"):
        noam_lr(0, d, w)


def test_noam_lr_peaks_at_the_end_of_the_warm_up():
    rates = [noam_lr(s, 64, 100) for s in range(1, 1001)]
    assert rates.index(max(rates)) + 1 == 100
    assert all(a < b for a, b in zip(rates[:99], rates[1:100], strict=True))  # rises
    assert all(a > b for a, b in zip(rates[99:], rates[100:], strict=False))  # then decays


def test_warmup_schedule_peaks_at_the_chosen_rate_on_trains_zero_based_steps():
    lr_at = warmup_schedule(3e-3, 100, d_model=64)
    assert lr_at(99) == pytest.approx(3e-3, rel=1e-12)  # step 100 counting from 1
    assert lr_at(0) == pytest.approx(3e-3 / 100, rel=1e-12)
    assert lr_at(399) == pytest.approx(3e-3 / 2, rel=1e-12)  # 1/sqrt(step) after the peak
    assert max(lr_at(s) for s in range(1000)) == pytest.approx(3e-3, rel=1e-12)
    assert warmup_schedule(3e-3, 0)(0) == warmup_schedule(3e-3, 0)(999) == 3e-3


def test_smoothed_targets_put_one_minus_eps_plus_eps_over_v_on_the_true_class():
    q = smoothed_targets(torch.tensor([[2, 0], [1, 1]]), 5, 0.1, torch.float64)
    assert q.shape == (2, 2, 5)
    torch.testing.assert_close(q.sum(-1), torch.ones(2, 2, dtype=torch.float64))
    assert q[0, 0, 2].item() == pytest.approx(0.9 + 0.02) and q[0, 0, 0].item() == 0.02
    assert torch.equal(smoothed_targets(torch.tensor([3]), 4, 0.0)[0], torch.eye(4)[3])


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothed_loss_equals_torch_cross_entropy_with_label_smoothing(eps):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 11, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randint(0, 11, (50,), generator=g)
    target[::7] = 0  # padding
    ours = label_smoothed_loss(logits, target, eps, ignore_index=0)
    theirs = F.cross_entropy(logits, target, ignore_index=0, label_smoothing=eps)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    g_ours, g_theirs = (torch.autograd.grad(x, logits)[0] for x in (ours, theirs))
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-6)
    plain = label_smoothed_loss(logits, target, eps)
    torch.testing.assert_close(plain, F.cross_entropy(logits, target, label_smoothing=eps),
                               rtol=0, atol=1e-6)  # fmt: skip


def test_smoothing_floor_is_the_entropy_of_the_target_and_the_lowest_loss():
    V, eps = 80, 0.1
    floor = smoothing_floor(V, eps)
    q = smoothed_targets(torch.tensor([5]), V, eps, torch.float64)
    entropy = torch.distributions.Categorical(probs=q).entropy().item()
    assert floor["floor"] == pytest.approx(entropy, rel=1e-12)
    assert floor["top"] == pytest.approx(1 - eps + eps / V)
    best = torch.log(q).requires_grad_()  # predicting the target itself: the minimum
    loss = label_smoothed_loss(best, torch.tensor([5]), eps)
    assert loss.item() == pytest.approx(floor["floor"], rel=1e-12)
    assert torch.autograd.grad(loss, best)[0].abs().max() < 1e-12
    assert best[0, 5].item() - best[0, 0].item() == pytest.approx(floor["margin"], rel=1e-12)
    sure = torch.full((1, V), -30.0, dtype=torch.float64)
    sure[0, 5] = 30.0  # confident and right: near 0 unsmoothed, far above the floor smoothed
    assert label_smoothed_loss(sure, torch.tensor([5]), 0.0) < 1e-20
    assert label_smoothed_loss(sure, torch.tensor([5]), eps) > floor["floor"] + 1
    assert smoothing_floor(V, 0.0) == {"floor": 0.0, "top": 1.0, "margin": math.inf}


def test_calibration_of_teacher_forced_predictions(tiny_task):
    model = _tiny_transformer(tiny_task)
    logits, target = token_logits(model, tiny_task, tiny_task.test)
    n = sum(len(ex.target) + 1 for ex in tiny_task.test)
    assert logits.shape == (n, len(tiny_task.tgt_vocab)) and target.shape == (n,)
    c = calibration(logits, target, eps=0.1, bins=5)
    assert c["tokens"] == n
    assert 0 <= c["accuracy"] <= 1 and 1 / len(tiny_task.tgt_vocab) < c["confidence"] <= 1
    assert 0 <= c["ece"] <= 1 and 0 <= c["above_top"] <= 1
    assert c["smoothed"] >= smoothing_floor(len(tiny_task.tgt_vocab), 0.1)["floor"]
    batch = make_batch(tiny_task.test, tiny_task)
    with torch.no_grad():
        logits_ = model(batch.src, batch.src_mask, batch.tgt_in).flatten(0, 1)
    pad_id = tiny_task.tgt_vocab.pad_id
    nll = F.cross_entropy(logits_, batch.tgt_out.flatten(), ignore_index=pad_id)
    assert c["nll"] == pytest.approx(nll.item(), rel=1e-5)


def test_calibration_error_by_hand():
    # two tokens at confidence 0.8 (one right) and two at 0.6 (both right), V = 2
    p = torch.tensor([[0.8, 0.2], [0.8, 0.2], [0.6, 0.4], [0.6, 0.4]], dtype=torch.float64)
    c = calibration(p.log(), torch.tensor([0, 1, 0, 0]), eps=0.1, bins=10)
    assert c["accuracy"] == 0.75 and c["confidence"] == pytest.approx(0.7)
    assert c["ece"] == pytest.approx(0.5 * abs(0.5 - 0.8) + 0.5 * abs(1.0 - 0.6))
    assert c["above_top"] == 0.0  # top = 0.95 for V = 2, eps = 0.1
    assert c["margin"] == pytest.approx(math.log(0.6 / 0.4))  # torch: the lower median


def test_smoothing_temperature_finds_the_minimum_of_the_smoothed_loss():
    V, eps = 7, 0.2
    target = torch.tensor([0, 3, 5, 5, 1])
    best = torch.log(smoothed_targets(target, V, eps, torch.float64))  # the optimum
    for scale in (0.5, 1.0, 3.0):  # too soft, right, too sharp
        T = smoothing_temperature(scale * best, target, eps)
        assert T == pytest.approx(scale, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(40, V, dtype=torch.float64, generator=g)
    target = torch.randint(0, V, (40,), generator=g)
    beta = torch.tensor(1 / smoothing_temperature(logits, target, eps), requires_grad=True)
    loss = label_smoothed_loss(logits * beta, target, eps)
    assert abs(torch.autograd.grad(loss, beta)[0].item()) < 1e-6


def test_schedule_run_trains_the_chosen_norm_and_records_its_history(tiny_task):
    run = schedule_run(tiny_task, norm_first=False, steps=6, lr=1e-3, warmup=3, eval_every=3,
                       eval_examples=3)  # fmt: skip
    assert len(run["loss"]) == 6 and run["eval_step"] == [3, 6] and len(run["eval_loss"]) == 2
    assert not run["diverged"] and 0 <= run["exact_match"] <= 1 and run["seconds"] > 0
    assert run_name(False, 3) == "post-norm, warm-up" and run_name(True, 0) == "pre-norm, constant"


def test_make_checkpoint_of_a_warmup_preset_saves_histories_without_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    monkeypatch.setattr(chapter.presets, "TASK", dict(name="translation", n_train=40,
                                                      n_valid=4, n_test=4))  # fmt: skip
    tiny = Preset("warmup", dict(warmup=2), steps=3)
    monkeypatch.setitem(CHECKPOINTS, "tiny_warmup", tiny)
    path = make_checkpoint("tiny_warmup")
    assert checkpoints.stale("tiny_warmup", tiny) is None
    meta = load_runs("tiny_warmup")
    assert checkpoints.load(path).state == {} and meta["task"]["n_train"] == 40
    assert set(meta["runs"]) == {run_name(n, w) for n in (False, True) for w in (0, 2)}
    assert all(len(run["loss"]) == 3 and run["eval_step"] == [3] for run in meta["runs"].values())


def test_shipped_warmup_runs_are_histories_of_the_four_runs_and_small():
    meta = load_runs("transformer_warmup")
    preset = CHECKPOINTS["transformer_warmup"]
    assert meta["task"] == chapter.TASK
    assert set(meta["runs"]) == {run_name(n, w) for n in (False, True) for w in (0, 100)}
    for run in meta["runs"].values():
        assert len(run["loss"]) == preset.steps or run["diverged"]
    assert checkpoints.load(checkpoints.path_of("transformer_warmup")).state == {}
    assert checkpoints.path_of("transformer_warmup").stat().st_size < 100_000
