"""seqlab.seq2seq and seqlab.chapters.seq2seq: the encoder-decoder, its loss, training and
decoding; chapter 3's shipped checkpoints, the page's measurements and the beam explorer."""

import math
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from seqlab.base import checkpoints
from seqlab.base.data import Example, dates_task, make_batch, translation_task
from seqlab.base.decoding import beam_search, greedy_decode, one_at_a_time
from seqlab.base.metrics import perplexity
from seqlab.chapters.seq2seq import (
    CHECKPOINTS,
    PRESETS,
    Preset,
    accuracy_after_first_error,
    accuracy_by_position,
    beam_explorer,
    beam_one_sentence_at_a_time,
    checkpoint_path,
    common_subsequence_length,
    exact_match_by_source_length,
    exposure_bias,
    first_error,
    first_word_probs,
    history_of,
    length_statistics,
    load,
    make_checkpoint,
    pooled_exact_match,
    task_of,
    teacher_forced,
    where_greedy_parts,
)
from seqlab.seq2seq import (
    Encoder,
    Seq2Seq,
    Seq2SeqConfig,
    batched_greedy,
    decode_ids,
    evaluate,
    make_task,
    mean_nll,
    sentence_log_prob,
    sentence_log_probs,
    sequence_nll,
    train_seq2seq,
    translate,
)

pytestmark = pytest.mark.seq2seq

F64 = torch.float64


@pytest.fixture(scope="module")
def task():
    return dates_task(300, 40, 40, seed=0)


def _model(task, cell="gru", hidden=16, seed=0):
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), emb=8, hidden=hidden, cell=cell)
    return Seq2Seq(cfg).double()


def test_sequence_nll_equals_cross_entropy_ignoring_pad():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g, dtype=F64)
    targets = torch.randint(1, 7, (3, 5), generator=g)
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    want = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)
    torch.testing.assert_close(sequence_nll(logits, targets, 0), want, rtol=1e-6, atol=1e-6)
    # a mean over tokens, not over sentences: the long sentence weighs more
    per_sentence = [
        F.cross_entropy(logits[b][targets[b] != 0], targets[b][targets[b] != 0]) for b in range(3)
    ]
    assert not math.isclose(sequence_nll(logits, targets, 0).item(),
                            torch.stack(per_sentence).mean().item(), rel_tol=1e-3)  # fmt: skip


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_final_state_is_the_state_after_the_last_real_token(task, cell):
    model = _model(task, cell)
    exs = [task.train[0], task.train[1], Example(list("1/2/33"), list("2033-02-01"))]
    batch = make_batch(exs, task)
    states, final = model.encoder(batch.src, batch.src_mask)
    assert states.shape == (3, batch.src.shape[1], 16) and final.shape == (3, 16)
    for b, ex in enumerate(exs):
        alone = make_batch([ex], task)
        s1, f1 = model.encoder(alone.src, alone.src_mask)
        n = len(ex.source)
        torch.testing.assert_close(final[b], f1[0], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(states[b, :n], s1[0], rtol=1e-9, atol=1e-9)
        assert torch.all(states[b, n:] == 0)


def test_gru_encoder_equals_torch_gru_on_the_real_tokens(task):
    model = _model(task, "gru")
    enc: Encoder = model.encoder
    fused = enc.rnn.to_torch()
    batch = make_batch(task.train[:4], task)
    states, final = enc(batch.src, batch.src_mask)
    for b in range(4):
        n = int(batch.src_mask[b].sum())
        out, h = fused(enc.embed(batch.src[b : b + 1, :n]))
        torch.testing.assert_close(states[b, :n], out[0], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(final[b], h[0, 0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_forward_is_the_teacher_forced_step_by_step_decoder(task, cell):
    model = _model(task, cell)
    ex = task.train[5]
    batch = make_batch([ex], task)
    logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (1, T, V)
    step, state = model.decoder_start(batch.src, batch.src_mask)
    assert state.shape == (1, 16 if cell == "gru" else 32)
    for t in range(batch.tgt_in.shape[1]):
        log_probs, state = step(batch.tgt_in[:, t], state)
        torch.testing.assert_close(log_probs[0], torch.log_softmax(logits[0, t], -1),
                                   rtol=1e-9, atol=1e-9)  # fmt: skip


def test_the_decoder_sees_the_source_only_through_the_final_state(task):
    model = _model(task)
    a, b = make_batch([task.train[0]], task), make_batch([task.train[1]], task)
    _, fa = model.encoder.run(a.src, a.src_mask)
    logits_b_with_a = model.decoder(b.tgt_in, fa)
    torch.testing.assert_close(logits_b_with_a, model(a.src, a.src_mask, b.tgt_in))


def test_short_training_lowers_the_loss_and_records_validation_losses(task):
    model = _model(task).float()
    before = mean_nll(model, task, task.valid)
    history = train_seq2seq(model, task, epochs=3, batch_size=32, lr=1e-2, eval_every=10)
    after = mean_nll(model, task, task.valid)
    assert len(history.loss) == 3 * 10 and history.eval_step[-1] == 30
    assert after < before - 0.5
    assert history.eval_loss[-1] == pytest.approx(mean_nll(model, task, task.valid[:500]))


def test_batched_decoding_equals_the_reference_one_sentence_at_a_time(task):
    model = _model(task, hidden=24).float()
    train_seq2seq(model, task, epochs=2, batch_size=32, lr=1e-2)
    exs = task.test[:12]
    greedy = decode_ids(model, task, exs, "greedy")
    one = decode_ids(model, task, exs, "greedy", batched=False)
    assert [h[0][0] for h in greedy] == [h[0][0] for h in one]
    for lp in (0.0, 1.0):
        beam = decode_ids(model, task, exs, "beam", beam_size=3, length_penalty=lp)
        ref = decode_ids(model, task, exs, "beam", beam_size=3, length_penalty=lp, batched=False)
        for got, want in zip(beam, ref, strict=True):
            assert [t for t, _ in got] == [t for t, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    # and the reference decoders on the model's step agree with batched_greedy
    batch = make_batch(exs[:3], task)
    step, state = model.decoder_start(batch.src, batch.src_mask)
    v = task.tgt_vocab
    rows = batched_greedy(step, state, v.bos_id, v.eos_id, 15)
    for b in range(3):
        assert rows[b] == greedy_decode(step, state[b : b + 1], v.bos_id, v.eos_id, 15)


def test_beam_scores_are_sentence_log_probabilities(task):
    model = _model(task, hidden=24).float()
    train_seq2seq(model, task, epochs=1, batch_size=32, lr=1e-2)
    ex = task.test[0]
    batch = make_batch([ex], task)
    step, state = model.decoder_start(batch.src, batch.src_mask)
    v = task.tgt_vocab
    for tokens, score in beam_search(step, state, v.bos_id, v.eos_id, 3, 14):
        if tokens[-1] == v.eos_id:
            target = v.decode(tokens)
            assert score == pytest.approx(sentence_log_prob(model, task, ex, target), abs=1e-4)


def test_evaluate_scores_translate_output(task):
    model = _model(task).float()
    result = evaluate(model, task, task.test[:10])
    assert set(result) == {"exact_match", "token_accuracy", "bleu", "hypotheses"}
    assert result["hypotheses"] == translate(model, task, task.test[:10])
    assert 0.0 <= result["token_accuracy"] <= 1.0 and 0.0 <= result["bleu"] <= 100.0
    with pytest.raises(ValueError, match="method should be 'greedy' or 'beam'"):
        translate(model, task, task.test[:1], method="sample")


def test_save_and_load_round_trip_the_model_and_its_metadata(task, tmp_path):
    model = _model(task, "lstm").float()
    history = {"loss": [1.0, 0.5], "eval_step": [2], "eval_loss": [0.7]}
    path = checkpoints.save(tmp_path / "m.pt", PRESETS["dates"], checkpoints.cpu_state(model),
                            config=asdict(model.config), history=history, note="x")  # fmt: skip
    loaded = load(path)
    assert loaded.config == model.config and loaded.meta["note"] == "x" and not loaded.training
    assert history_of(loaded).loss == [1.0, 0.5]
    batch = make_batch(task.test[:3], task)
    torch.testing.assert_close(loaded(batch.src, batch.src_mask, batch.tgt_in),
                               model(batch.src, batch.src_mask, batch.tgt_in))  # fmt: skip


def test_config_rejects_an_unknown_cell():
    with pytest.raises(ValueError, match="cell should be one of"):
        Seq2SeqConfig(10, 10, cell="rnn")
    with pytest.raises(ValueError, match="task should be one of"):
        make_task("poetry")


def test_translation_task_trains_too():
    task = translation_task(200, 20, 20, seed=0, max_len=8)
    model = _model(task).float()
    h = train_seq2seq(model, task, epochs=2, batch_size=32, reverse_source=True)
    assert h.loss[-1] < h.loss[0]


@pytest.mark.parametrize("name", list(PRESETS))
def test_shipped_checkpoints_reach_their_recorded_test_scores(name):
    path = checkpoint_path(name)
    if not path.exists():
        pytest.fail(f"{path} is missing: run python -m seqlab.chapters checkpoints seq2seq "
                    f"--only seq2seq_{name}")  # fmt: skip
    model = load(path)
    assert path.stat().st_size < 1.2e6
    task = task_of(model)
    result = evaluate(model, task, task.test, reverse_source=model.meta["reverse_source"])
    recorded = model.meta["test_greedy"]
    assert result["exact_match"] == pytest.approx(recorded["exact_match"], abs=0.005)
    assert result["bleu"] == pytest.approx(recorded["bleu"], abs=0.5)
    if name == "dates":
        assert result["exact_match"] >= 0.95


def test_shipped_checkpoints_were_made_from_todays_presets():
    assert set(CHECKPOINTS) == {f"seq2seq_{name}" for name in PRESETS}
    for name, preset in CHECKPOINTS.items():
        why = checkpoints.stale(name, preset)
        command = f"python -m seqlab.chapters checkpoints seq2seq --only {name}"
        assert why is None, f"{why}: run {command}"


def test_make_checkpoint_trains_a_preset_and_saves_what_load_reads(monkeypatch, tmp_path):
    tiny = Preset("dates", dict(n_train=64, n_valid=8, n_test=8), hidden=8, emb=4, epochs=1,
                  reverse_source=True)  # fmt: skip
    monkeypatch.setitem(CHECKPOINTS, "seq2seq_tiny", tiny)
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    path = make_checkpoint("seq2seq_tiny")
    assert path == tmp_path / "seq2seq_tiny.pt" and checkpoints.stale("seq2seq_tiny", tiny) is None
    model = load(path)
    assert model.config == Seq2SeqConfig(len(task_of(model).src_vocab), 15, 4, 8, "gru")
    assert set(model.meta) == {"task", "reverse_source", "history", "test_greedy", "seconds"}
    assert model.meta["reverse_source"] and len(history_of(model).loss) == 1
    recorded = model.meta["test_greedy"]["exact_match"]
    task = task_of(model)
    assert evaluate(model, task, task.test, reverse_source=True)["exact_match"] == recorded


def test_make_checkpoint_names_the_presets_it_knows():
    with pytest.raises(ValueError, match="seq2seq_dates"):
        make_checkpoint("dates")


def test_batched_sentence_log_probs_equal_one_at_a_time(task):
    model = _model(task).float()
    exs = task.test[:7]
    targets = [ex.target for ex in exs[:4]] + [list("1999"), [], list("2000-01-01")]
    got = sentence_log_probs(model, task, exs, targets, batch_size=3)
    want = [sentence_log_prob(model, task, ex, t) for ex, t in zip(exs, targets, strict=True)]
    assert got == pytest.approx(want, abs=1e-4)


def test_beam_explorer_replays_the_search_one_frame_per_step(task):
    model = _model(task).float()
    explorer = beam_explorer(model, task, task.test[0], beam_size=2, max_len=6)
    assert explorer.steps == list(range(1, len(explorer.trace) + 1)) and len(explorer.steps) <= 6
    final = explorer.trace[-1]
    assert len(final["live"]) + len(final["finished"]) == 2
    assert [t for t, _ in explorer.result] == [
        t for t, _ in sorted(final["live"] + final["finished"], key=lambda h: -h[1])
    ]
    html = explorer.to_html()
    assert html.count("data:image/png;base64,") == len(explorer.steps)
    assert 'alt="Beam search with beam size 2' in html
    assert explorer.frames() == explorer.steps
    slider, message, image = explorer.widget().children
    assert (slider.min, slider.max, slider.value) == (1, explorer.steps[-1], 1)
    first = bytes(image.value)
    if len(explorer.steps) > 1:
        slider.value = 2
        assert bytes(image.value) == explorer.png(2) != first
    assert message.value == ""


# ---------------------------------------------------------------------- the page's measurements


def test_first_word_probs_is_the_decoders_first_step(task):
    model = _model(task).float()
    probs = first_word_probs(model, task, task.test[0].source)
    assert probs.shape == (len(task.tgt_vocab),)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    batch = make_batch([task.test[0]], task)
    logits = model(batch.src, batch.src_mask, batch.tgt_in)
    torch.testing.assert_close(probs, torch.softmax(logits[0, 0], -1), rtol=1e-5, atol=1e-6)


def test_where_greedy_parts_finds_the_first_difference_and_its_probabilities(task):
    model = _model(task).float()
    ex = task.test[0]
    V = task.tgt_vocab
    first = task.tgt_vocab.encode(ex.target)[:3]
    other = [first[0], (first[1] + 1) % len(V), first[2]]
    t, p_first, p_other = where_greedy_parts(model, task, ex, first, other)
    batch = make_batch([ex], task)
    tgt_in = torch.tensor([[V.bos_id, first[0]]])
    probs = torch.softmax(model(batch.src, batch.src_mask, tgt_in)[0, 1], -1)  # after first[0]
    assert t == 1
    assert p_first == pytest.approx(probs[first[1]].item(), abs=1e-6)
    assert p_other == pytest.approx(probs[other[1]].item(), abs=1e-6)
    ((greedy, _),) = decode_ids(model, task, [ex], "greedy")[0]
    t, p_greedy, p_other = where_greedy_parts(model, task, ex, greedy, [(greedy[0] + 1) % len(V)])
    assert t == 0 and p_greedy >= p_other  # greedy takes the most probable token
    with pytest.raises(ValueError, match="do not differ"):
        where_greedy_parts(model, task, ex, greedy, greedy)


def test_length_statistics_and_exact_match_by_source_length():
    exs = [Example(list("ab"), list("xy")), Example(list("abc"), list("xyz")),
           Example(list("cd"), list("uv"))]  # fmt: skip
    hyps = [list("xy"), list("xy"), list("uvw")]
    stats = length_statistics(hyps, [ex.target for ex in exs])
    assert stats == {"exact match": 1 / 3, "mean length": 7 / 3, "too short": 1 / 3}
    table = exact_match_by_source_length(hyps, exs)
    assert table == {2: (0.5, 2), 3: (0.0, 1)}
    assert pooled_exact_match(table, [2, 3]) == pytest.approx(1 / 3)
    assert pooled_exact_match(table, [2, 7]) == 0.5
    with pytest.raises(ValueError, match="no example"):
        pooled_exact_match(table, [7])
    with pytest.raises(ValueError, match="2 outputs for 3"):
        length_statistics(hyps[:2], [ex.target for ex in exs])


def test_beam_one_sentence_at_a_time_agrees_with_one_hypothesis_per_call(task):
    model = _model(task).float()
    exs = task.test[:3]
    plain = beam_one_sentence_at_a_time(model, task, exs, 3, 12)
    slow = beam_one_sentence_at_a_time(model, task, exs, 3, 12, wrap=one_at_a_time)
    batched = decode_ids(model, task, exs, "beam", beam_size=3, max_len=12)
    for a, b, c in zip(plain, slow, batched, strict=True):
        assert [h for h, _ in a] == [h for h, _ in b] == [h for h, _ in c]


def test_first_error_accuracy_by_position_and_after_the_first_error():
    assert first_error([1, 2, 3], [1, 2, 3]) is None
    assert first_error([1, 5, 3], [1, 2, 3]) == 1
    assert first_error([1, 2], [1, 2, 3]) == 2 and first_error([1, 2, 3, 4], [1, 2, 3]) == 3
    refs = [[1, 2, 3, 9], [4, 5, 9]]
    outs = [[1, 3, 9], [4, 5, 9]]  # the first drops a token: the rest shifts left
    assert accuracy_by_position(outs, refs) == {0: (1.0, 2), 1: (0.5, 2), 2: (0.5, 2), 3: (0.0, 1)}
    errors = [first_error(o, r) for o, r in zip(outs, refs, strict=True)]
    assert errors == [1, None]
    assert accuracy_after_first_error(outs, refs, errors) == (0.0, 2)  # 3, 9 shifted: wrong
    assert accuracy_after_first_error(outs, refs, errors, aligned=True) == (0.5, 2)  # 9 aligns
    assert common_subsequence_length("abcbdab", "bdcaba") == 4
    assert common_subsequence_length("", "ab") == 0 and common_subsequence_length("ab", "ab") == 2


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_exposure_bias_reads_the_test_set_teacher_forced_and_free_running(task, cell):
    model = _model(task, cell).float()
    train_seq2seq(model, task, epochs=2, batch_size=32, lr=1e-2, eval_every=100)
    exs = task.test[:30]
    report = exposure_bias(model, task, exs)
    logits, targets = teacher_forced(model, task, exs)
    # perplexity is exp of the teacher-forced loss per token, as mean_nll computes it
    assert report["perplexity"] == pytest.approx(math.exp(mean_nll(model, task, exs)), rel=1e-5)
    assert report["perplexity"] == perplexity(logits, targets, task.tgt_vocab.pad_id)
    # greedy follows the reference until the teacher-forced decoder first errs ...
    assert report["same first error"]
    # ... so a sentence is exactly right iff teacher forcing makes no mistake in it
    assert report["exact match"] == pytest.approx(
        sum(e is None for e in report["first errors"]) / len(exs)
    )
    scores = evaluate(model, task, exs)
    assert report["exact match"] == scores["exact_match"] and report["bleu"] == scores["bleu"]
    for way in ("teacher forced", "free running"):
        by_t = report["by position"][way]
        assert by_t[0][1] == len(exs) and 0 <= report[way] <= 1
        n_tokens = sum(len(ex.target) + 1 for ex in exs)
        assert sum(n for _, n in by_t.values()) == n_tokens
        assert report[way] == pytest.approx(sum(a * n for a, n in by_t.values()) / n_tokens)
        plain, aligned = report["after first error"][way], report["after first error, aligned"][way]
        assert aligned[1] == plain[1] and aligned[0] >= plain[0]
    # position 0 is read the same way (bos) by both
    assert report["by position"]["teacher forced"][0] == report["by position"]["free running"][0]
