"""seqlab.prompting: the multi-task corpus, its held-out inputs, k-shot prompts and the
exact-match scoring, the graded scorers completion_logprob and rank_choices (the
shipped GPT's own tests are in test_gpt_prompting.py)."""

import math

import pytest
import torch

from seqlab.chapters.gpt_prompting import load
from seqlab.gpt import GPT, GPTConfig, generate
from seqlab.prompting import (
    ALPHABET,
    TASKS,
    CharTokenizer,
    CorpusConfig,
    accuracy,
    all_rules,
    chance_accuracy,
    check_task,
    complete,
    completion_logprob,
    corpus_stream,
    demonstrations,
    greedy_exact_match,
    heldout_inputs,
    kshot_prompt,
    make_corpus,
    rank_choices,
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
    assert check_task("sort") is TASKS["sort"]


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


def test_accuracy_and_complete_agree_on_a_tiny_model_and_refuse_a_full_context():
    model, tok = _tiny_gpt(), CharTokenizer()
    queries = heldout_inputs(6)
    right = [complete(model, tok, kshot_prompt("letter", q)) == q[0] for q in queries]
    assert accuracy(model, tok, "letter", 0, instruction=True, n=6) == sum(right) / 6
    with pytest.raises(ValueError, match="leaves no room"):
        complete(model, tok, "abc > " * 11)


def test_completion_logprob_is_the_chain_rule_sum_token_by_token():
    model = _tiny_gpt(seed=6).double()
    g = torch.Generator().manual_seed(1)
    prompt, completion = torch.randint(30, (4,), generator=g), torch.randint(30, (3,), generator=g)
    expected = 0.0
    context = prompt
    for token in completion:
        logp = torch.log_softmax(model(context[None])[0, -1], dim=-1)
        expected += logp[token].item()
        context = torch.cat([context, token[None]])
    assert completion_logprob(model, prompt, completion) == pytest.approx(expected, abs=1e-9)
    assert completion_logprob(model, prompt, completion[:0]) == 0.0


def test_completion_logprob_of_a_bigram_model_is_exact():
    table = torch.log(torch.tensor([[0.1, 0.9], [0.6, 0.4]]))  # row = previous token

    def bigram(ids):
        return table[ids]

    got = completion_logprob(bigram, torch.tensor([0]), torch.tensor([1, 0, 0]))
    assert got == pytest.approx(math.log(0.9 * 0.6 * 0.1))


def test_rank_choices_returns_the_most_likely_completion():
    table = torch.log(torch.tensor([[0.1, 0.9], [0.6, 0.4]]))

    def bigram(ids):
        return table[ids]

    prompt = torch.tensor([0])
    choices = [torch.tensor([0]), torch.tensor([1, 1]), torch.tensor([1, 0])]  # .1, .36, .54
    assert rank_choices(bigram, prompt, choices) == 2
    assert rank_choices(bigram, prompt, choices[:2]) == 1
    with pytest.raises(ValueError, match="non-empty"):
        rank_choices(bigram, prompt, [])


def test_completion_logprob_refuses_an_empty_prompt():
    with pytest.raises(ValueError, match=r"prompt_ids should be .*T >= 1, got \(0,\)"):
        completion_logprob(_tiny_gpt(), torch.tensor([], dtype=torch.long), torch.tensor([1]))
