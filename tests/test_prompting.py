"""seqlab.prompting: the multi-task corpus, its held-out inputs, k-shot prompts, the
exact-match scoring, and the shipped GPT's few-shot accuracy."""

import pytest
import torch

from seqlab.gpt import GPT, GPTConfig, generate
from seqlab.prompting import (
    ALPHABET,
    CHECKPOINT,
    TASKS,
    CharTokenizer,
    CorpusConfig,
    FinetuneConfig,
    accuracy,
    all_rules,
    chance_accuracy,
    complete,
    corpus_stream,
    demonstrations,
    finetune,
    greedy_exact_match,
    heldout_inputs,
    history_of,
    kshot_prompt,
    load,
    make_corpus,
    save,
    window_batches,
)

pytestmark = pytest.mark.gpt_prompting


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(CorpusConfig(n_docs=3000, seed=0))


@pytest.fixture(scope="module")
def shipped():
    return load()


def test_corpus_is_the_same_for_the_same_seed_and_differs_for_another(corpus):
    again = make_corpus(CorpusConfig(n_docs=3000, seed=0))
    other = make_corpus(CorpusConfig(n_docs=3000, seed=1))
    assert [d.text for d in again] == [d.text for d in corpus]
    assert [d.text for d in other] != [d.text for d in corpus]


def test_corpus_mixes_every_task_convention_with_and_without_instruction(corpus):
    seen = {(d.task, d.convention, d.instruction) for d in corpus}
    want = {(t, c, i) for t, task in TASKS.items() for c in task.conventions for i in (True, False)}
    assert seen == want
    share = sum(d.instruction for d in corpus) / len(corpus)
    assert 0.45 < share < 0.55, f"about half the documents should have an instruction, not {share}"


def test_every_document_line_follows_its_task_convention(corpus):
    for doc in corpus[:500]:
        lines = doc.text.splitlines()
        if doc.instruction:
            assert lines.pop(0) == TASKS[doc.task].instruction
        rule = TASKS[doc.task].conventions[doc.convention]
        assert lines == [f"{x} > {rule(x)}" for x in doc.inputs]
        assert doc.text.endswith("\n")


def test_heldout_inputs_never_appear_in_the_corpus_or_the_demonstrations(corpus):
    held = set(heldout_inputs())
    assert len(held) == len(heldout_inputs()) == 500
    assert heldout_inputs(10) == heldout_inputs()[:10]
    train_inputs = {x for d in make_corpus(CorpusConfig(n_docs=20_000, seed=3)) for x in d.inputs}
    assert not held & train_inputs
    assert not held & {x for d in corpus for x in d.inputs}
    assert not held & {x for demos in demonstrations(500, 8) for x in demos}
    # and not because held-out inputs are unlike the corpus's: same lengths and letters
    assert {len(x) for x in held} == {len(x) for x in train_inputs} == {3, 4, 5}


def test_kshot_prompt_is_formatted_as_documented():
    assert kshot_prompt("sort", "dcb", ["bca"]) == "sort:\nbca > abc\ndcb > "
    assert kshot_prompt("sort", "dcb", ["bca"], instruction=False) == "bca > abc\ndcb > "
    assert kshot_prompt("rotate", "abz") == "rotate:\nabz > "
    assert kshot_prompt("letter", "xyz", ["abc", "qrs"]) == "letter:\nabc > a\nqrs > q\nxyz > "
    assert kshot_prompt("reverse", "abc", [], instruction=False) == "abc > "
    with pytest.raises(ValueError, match="task should be one of"):
        kshot_prompt("translate", "abc")


def test_every_task_is_evaluated_in_its_first_convention():
    assert TASKS["reverse"].rule("abc") == "cba"
    assert TASKS["sort"].rule("cab") == "abc"
    assert TASKS["rotate"].rule("abcd") == "bcda"
    assert TASKS["rotate"].conventions["right"]("abcd") == "dabc"
    assert TASKS["sort"].conventions["descending"]("cab") == "cba"
    assert TASKS["letter"].rule("cab") == "c"
    assert len(all_rules()) == 7


def test_demonstrations_of_a_smaller_k_are_a_prefix_of_a_larger_ones():
    d8, d2, d0 = demonstrations(20, 8), demonstrations(20, 2), demonstrations(20, 0)
    assert all(len(d) == 8 for d in d8) and all(a[:2] == b for a, b in zip(d8, d2, strict=True))
    assert d0 == [[]] * 20
    assert demonstrations(20, 8, seed=1) != d8


def test_tokenizer_round_trips_every_document_and_names_unknown_characters(corpus):
    tok = CharTokenizer()
    assert len(tok) == len(ALPHABET) == 30
    for doc in corpus[:200]:
        assert tok.decode(tok.encode(doc.text)) == doc.text
    with pytest.raises(ValueError, match=r"\['A', '1'\]|\['1', 'A'\]"):
        tok.encode("A1 > b")


def test_corpus_stream_puts_a_blank_line_between_documents_and_windows_start_at_one(corpus):
    tok = CharTokenizer()
    stream, starts = corpus_stream(corpus[:50], tok)
    text = tok.decode(stream.tolist())
    assert text == "".join(d.text + "\n" for d in corpus[:50])
    assert all(tok.decode(stream[s : s + 3].tolist()) == corpus[i].text[:3]
               for i, s in enumerate(starts))  # fmt: skip
    x, y = next(window_batches(stream, starts, 32, 8, seed=0))
    assert x.shape == y.shape == (8, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert all(any(torch.equal(x[b], stream[s : s + 32]) for s in starts) for b in range(8))


def test_chance_accuracy_is_one_over_the_distinct_answers_of_the_seven_rules():
    # "aaa": aaa (reverse, both sorts, both rotations), a (first and last): 2 distinct answers
    assert chance_accuracy(["aaa"], "sort") == pytest.approx(1 / 2)
    # "abc": cba, abc, cba, bca, cab, a, c: 6 distinct
    assert chance_accuracy(["abc", "aaa"], "reverse") == pytest.approx((1 / 6 + 1 / 2) / 2)


def _tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(ALPHABET), block_size=64, n_layer=1, n_head=2,
                         n_embd=16)).eval()  # fmt: skip


def test_greedy_exact_match_is_true_exactly_for_the_greedy_line(shipped):
    model, tok = shipped
    prompts = [kshot_prompt(t, q, d, i) for t, q, d, i in
               [("sort", "qwe", ["abc"], True), ("reverse", "xyzab", [], False),
                ("rotate", "hell", ["abc", "xyz"], True), ("letter", "kqz", [], True)]]
    for p in prompts:
        ids = torch.tensor([tok.encode(p)])
        out = tok.decode(generate(model, ids, 10, temperature=0.0)[0, ids.shape[1] :].tolist())
        assert "\n" in out, f"the model should end its line, wrote {out!r}"
        line = out.split("\n")[0]
        assert greedy_exact_match(model, tok, [p], [line]) == [True]
        # a line one letter short or one letter long is not what greedy decoding writes
        assert greedy_exact_match(model, tok, [p, p], [line[:-1], line + "a"]) == [False, False]


def test_save_then_load_round_trips_weights_in_float16_and_the_tokenizer(tmp_path):
    model, tok = _tiny_gpt(), CharTokenizer()
    save(model, tok, tmp_path / "m.pt", note="hi")
    again, tok2 = load(tmp_path / "m.pt")
    assert tok2.chars == tok.chars and again.meta == {"note": "hi"}
    assert again.lm_head.weight is again.wte.weight
    ids = torch.tensor([tok.encode("sort:\nabc > ")])
    torch.testing.assert_close(again(ids), model(ids), atol=2e-3, rtol=1e-2)
    with pytest.raises(FileNotFoundError, match="python -m seqlab.prompting"):
        load(tmp_path / "missing.pt")


def test_shipped_checkpoint_is_small_and_holds_config_tokenizer_history_and_scores(shipped):
    model, tok = shipped
    assert CHECKPOINT.stat().st_size < 4e6
    assert tok.chars == ALPHABET and model.config.vocab_size == len(tok)
    h = history_of(model)
    assert len(h.loss) == model.meta["train"]["steps"]
    assert h.loss[-1] < h.loss[0] / 2
    ev = model.meta["evaluation"]
    assert set(ev["kshot"]) == set(TASKS)


def test_playground_completions_agree_with_the_exact_match_score(shipped):
    model, tok = shipped
    queries, demos = heldout_inputs(12), demonstrations(12, 8)
    prompts = [kshot_prompt("sort", q, d) for q, d in zip(queries, demos, strict=True)]
    answers = [TASKS["sort"].rule(q) for q in queries]
    lines = [complete(model, tok, p) for p in prompts]
    scored = greedy_exact_match(model, tok, prompts, answers)
    assert [line == a for line, a in zip(lines, answers, strict=True)] == scored
    assert sum(scored) >= 9, list(zip(queries, lines, strict=True))


def test_shipped_model_learns_in_context_eight_shot_beats_zero_shot_on_heldout(shipped):
    model, tok = shipped
    n = 48
    k8 = [accuracy(model, tok, t, 8, instruction=True, n=n) for t in TASKS]
    k0 = [accuracy(model, tok, t, 0, instruction=False, n=n) for t in TASKS]
    assert sum(k8) / len(k8) > 0.7, f"8-shot accuracy per task {k8}"
    assert sum(k0) / len(k0) < 0.35, f"bare zero-shot should be near chance, got {k0}"


def test_finetuning_teaches_the_evaluated_convention_zero_shot(shipped):
    model, tok = shipped
    before = accuracy(model, tok, "letter", 0, instruction=False, n=48)
    tuned = finetune(model, tok, "letter", FinetuneConfig(steps=20))
    after = accuracy(tuned, tok, "letter", 0, instruction=False, n=48)
    assert after > 0.9 and after > before, (before, after)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), load()[0].parameters(),
                                                 strict=True))  # fmt: skip
