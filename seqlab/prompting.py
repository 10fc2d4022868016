r"""Chapter 6's prompting experiment: a multi-task corpus, prompts, and exact-match scoring.

GPT-2 was never trained on a task, yet it translates or summarises when the
prompt says so (zero-shot; Radford et al., 2019); GPT-3 does much better when
the prompt also shows k solved examples (few-shot, "in-context learning";
Brown et al., 2020). This module holds what reproduces both effects on a CPU
with a :class:`seqlab.gpt.GPT` small enough to train in minutes: the data,
the prompts and the scoring. Training it, fine-tuning it and the whole
evaluation belong to the chapter (:mod:`seqlab.chapters.gpt_prompting`).

**The corpus** (:func:`make_corpus`). Every document is a list of examples of
one task, one per line, ``input > output``, where the input is a fresh string
of 3-5 lowercase letters. Half the documents start with an instruction line
(``sort:``), the other half are bare lists: then the task can only be guessed
from the examples. Four tasks (:data:`TASKS`), and three of them have two
conventions, drawn per document and never named::

    reverse:        abc > cba
    sort:           cab > abc   (ascending)  or  cab > cba   (descending)
    rotate:         abcd > bcda (left)        or  abcd > dabc (right)
    letter:         cab > c     (first)       or  cab > b    (last)

So an instruction says which task, and only the examples say which convention:
the situation in which Brown et al. (2020, section 2) call zero-shot "unfairly
hard", as even a human may not grasp a task's format without examples. Each
task is evaluated in its first convention. Inputs in :func:`heldout_inputs` never appear in the
corpus (nor in the demonstrations of a prompt), so a right answer is not
remembered text.

**The tokenizer** (:class:`CharTokenizer`): one token per character of
:data:`ALPHABET` (letters, space, ``>``, ``:``, newline); V = 30.

**The scoring** (:func:`accuracy`). A k-shot prompt (:func:`kshot_prompt`)
is the optional instruction line, k demonstrations in the task's first
convention and the query ``input > ``; the model's answer is its greedy
completion up to the end of the line, and it scores 1 when it equals the
output exactly (:func:`greedy_exact_match`). Exact match, not
``rank_choices`` among candidates, because it is what a reader of the
playground sees, and it cannot be won by elimination. Beside it,
:func:`chance_accuracy`: a guesser that knows every rule of the corpus and
picks one of their answers at random.

**Scoring a completion** (:func:`completion_logprob`, :func:`rank_choices`):
the reference versions of chapter 6's graded scorers, the likelihood by
which GPT-3 picks among a question's choices (Brown et al., 2020, section 2.4).

Shapes: B batch, T time, V vocabulary.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .gpt import GPT, generate

LETTERS = string.ascii_lowercase
ALPHABET = "\n :>" + LETTERS  # every character of the corpus; token id = index here
SEP = " > "  # between an input and its output on a line
KS = (0, 1, 2, 4, 8)  # the numbers of demonstrations the book compares


# ---------------------------------------------------------------------------
# Tokenizer


class CharTokenizer:
    """Characters <-> token ids: id i is ``chars[i]``.

    encode(text) -> list[int] (raises ``ValueError`` naming the characters it
    does not know); decode(ids) -> str. A GPT's input is
    ``torch.tensor([tok.encode(text)])``, (1, T).
    """

    def __init__(self, chars: str = ALPHABET):
        if len(set(chars)) != len(chars):
            raise ValueError(f"chars should be distinct, got {chars!r}")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer({len(self)} tokens: {self.chars!r})"

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise ValueError(
                f"characters {unknown} are not in the tokenizer's alphabet {self.chars!r}"
            )
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def encode(text: str) -> list[int]:
    """text -> token ids with the course's :class:`CharTokenizer` (what the playground feeds)."""
    return CharTokenizer().encode(text)


def decode(ids) -> str:
    """Token ids -> text with the course's :class:`CharTokenizer`."""
    return CharTokenizer().decode(ids)


# ---------------------------------------------------------------------------
# Tasks


@dataclass(frozen=True)
class Task:
    """One task of the corpus: its instruction and its conventions (rules).

    conventions: name -> rule (input str -> output str); a document uses one
    of them, drawn uniformly. The first is the one :func:`evaluate` asks for.
    """

    name: str
    instruction: str  # the first line of a document that names its task, e.g. "sort:"
    conventions: dict[str, Callable[[str], str]]

    @property
    def rule(self) -> Callable[[str], str]:
        """The evaluated convention (the first)."""
        return next(iter(self.conventions.values()))


TASKS: dict[str, Task] = {
    "reverse": Task("reverse", "reverse:", {"reversed": lambda x: x[::-1]}),
    "sort": Task(
        "sort",
        "sort:",
        {"ascending": lambda x: "".join(sorted(x)),
         "descending": lambda x: "".join(sorted(x, reverse=True))},
    ),  # fmt: skip
    "rotate": Task(
        "rotate", "rotate:", {"left": lambda x: x[1:] + x[0], "right": lambda x: x[-1] + x[:-1]}
    ),
    "letter": Task("letter", "letter:", {"first": lambda x: x[0], "last": lambda x: x[-1]}),
}


def all_rules() -> list[Callable[[str], str]]:
    """Every rule of every task: what a document's output may be, 7 in all."""
    return [rule for task in TASKS.values() for rule in task.conventions.values()]


def check_task(task: str) -> Task:
    """The :class:`Task` named ``task``; ValueError naming the known tasks for another name."""
    if task not in TASKS:
        raise ValueError(f"task should be one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


# ---------------------------------------------------------------------------
# Inputs, held out and fresh

MIN_LEN, MAX_LEN = 3, 5  # letters in an input
HELDOUT_SEED = 12345  # the held-out inputs are the same whatever the corpus seed
N_HELDOUT = 500  # held out from every corpus; evaluations use the first n


def _draw_input(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(MIN_LEN, MAX_LEN)))


def heldout_inputs(n: int = N_HELDOUT) -> list[str]:
    """The first n of the N_HELDOUT distinct inputs kept out of every corpus and prompt demo.

    Drawn like the corpus's inputs (3-5 uniform letters) from ``HELDOUT_SEED``.
    """
    if not 0 <= n <= N_HELDOUT:
        raise ValueError(f"n should be in [0, {N_HELDOUT}], got {n}")
    rng, out, seen = random.Random(HELDOUT_SEED), [], set()
    while len(out) < N_HELDOUT:
        x = _draw_input(rng)
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out[:n]


_HELDOUT = frozenset(heldout_inputs())


def fresh_input(rng: random.Random) -> str:
    """An input for the corpus or a demonstration: any 3-5 letters but a held-out one."""
    while True:
        x = _draw_input(rng)
        if x not in _HELDOUT:
            return x


# ---------------------------------------------------------------------------
# The corpus


@dataclass
class CorpusConfig:
    """How :func:`make_corpus` draws documents."""

    n_docs: int = 100_000  # documents
    seed: int = 0  # everything is drawn from random.Random(seed)
    p_instruction: float = 0.5  # share of documents that start with their task's instruction
    min_lines: int = 1  # examples per document, drawn uniformly in [min_lines, max_lines]
    max_lines: int = 12


@dataclass
class Document:
    """One document: its task, convention, whether it has an instruction, and its text."""

    task: str
    convention: str
    instruction: bool
    inputs: list[str]
    text: str  # lines joined, each ending with "\n"


def format_examples(pairs: Sequence[tuple[str, str]]) -> str:
    """[(input, output), ...] -> "input > output\\n..." (the lines of a document)."""
    return "".join(f"{x}{SEP}{y}\n" for x, y in pairs)


def make_document(
    rng: random.Random, task: str, convention: str, instruction: bool, n_lines: int
) -> Document:
    """A document of n_lines fresh examples of one task in one convention."""
    t = check_task(task)
    rule = t.conventions[convention]
    inputs = [fresh_input(rng) for _ in range(n_lines)]
    head = t.instruction + "\n" if instruction else ""
    return Document(task, convention, instruction, inputs,
                    head + format_examples([(x, rule(x)) for x in inputs]))  # fmt: skip


def make_corpus(cfg: CorpusConfig | None = None) -> list[Document]:
    """The training corpus: cfg.n_docs documents, the same for the same config.

    Each document draws its task uniformly from :data:`TASKS`, a convention of
    that task uniformly, an instruction line with probability
    ``p_instruction`` and ``min_lines..max_lines`` examples whose inputs are
    fresh (never in :func:`heldout_inputs`).
    """
    cfg = cfg or CorpusConfig()
    rng = random.Random(cfg.seed)
    names = list(TASKS)
    docs = []
    for _ in range(cfg.n_docs):
        task = rng.choice(names)
        convention = rng.choice(list(TASKS[task].conventions))
        docs.append(make_document(rng, task, convention, rng.random() < cfg.p_instruction,
                                  rng.randint(cfg.min_lines, cfg.max_lines)))  # fmt: skip
    return docs


def corpus_stream(docs: Sequence[Document], tok: CharTokenizer) -> tuple[torch.Tensor, list[int]]:
    """The documents as one token stream, a blank line between two documents.

    -> (ids (N,) LongTensor, starts: the index where each document begins).
    """
    ids: list[int] = []
    starts = []
    for doc in docs:
        starts.append(len(ids))
        ids.extend(tok.encode(doc.text + "\n"))
    return torch.tensor(ids, dtype=torch.long), starts


def window_batches(
    stream: torch.Tensor, starts: Sequence[int], block_size: int, batch_size: int, seed: int = 0
):
    """Endless batches (x (B, T), y (B, T)) of T = block_size tokens, each from a document start.

    y is x shifted by one: the next token at every position (a window runs on
    into the next documents, so the model also learns where one ends).
    """
    g = torch.Generator().manual_seed(seed)
    ok = torch.tensor([s for s in starts if s + block_size + 1 <= len(stream)])
    offsets = torch.arange(block_size + 1)
    while True:
        rows = ok[torch.randint(len(ok), (batch_size,), generator=g)]
        chunk = stream[rows[:, None] + offsets]  # (B, T + 1)
        yield chunk[:, :-1], chunk[:, 1:]


# ---------------------------------------------------------------------------
# Prompts


def kshot_prompt(task: str, query: str, demos: Sequence[str] = (), instruction: bool = True) -> str:
    """The k-shot prompt for one query, k = len(demos) (Brown et al., 2020, figure 2.1).

    [instruction line] + one line "x > rule(x)" per demonstration x, in the
    task's evaluated convention + "query > ". For example
    ``kshot_prompt("sort", "dcb", ["bca"])`` is ``"sort:\\nbca > abc\\ndcb > "``;
    the answer the model should write next is ``"bcd"`` then a newline.
    """
    t = check_task(task)
    head = t.instruction + "\n" if instruction else ""
    return head + format_examples([(x, t.rule(x)) for x in demos]) + query + SEP


def demonstrations(n_queries: int, k: int, seed: int = 0) -> list[list[str]]:
    """k fresh demonstration inputs for each of n_queries queries (none held out).

    The demonstrations of query i for k are the first k of those for any
    larger k (same seed), so that k = 1, 2, 4, 8 add examples to one prompt.
    """
    rng = random.Random(seed)
    return [[fresh_input(rng) for _ in range(max(KS))][:k] for _ in range(n_queries)]


# ---------------------------------------------------------------------------
# Scoring


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def greedy_exact_match(
    model: torch.nn.Module,
    tok: CharTokenizer,
    prompts: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 128,
) -> list[bool]:
    """Whether the greedy completion of each prompt, up to its newline, is the answer.

    One teacher-forced forward pass per prompt instead of a generation loop:
    greedy decoding writes ``answer + "\\n"`` if and only if, fed prompt +
    answer, the model's argmax at every position of ``answer + "\\n"`` is that
    very token (by induction on the position, the greedy prefix and the
    answer's prefix are then the same text). Prompts of a batch are padded on
    the right, which a causal model never sees from earlier positions.
    -> one bool per prompt.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"got {len(prompts)} prompts but {len(answers)} answers")
    model.eval()
    dev = _device(model)
    out: list[bool] = []
    for b in range(0, len(prompts), batch_size):
        p_ids = [tok.encode(p) for p in prompts[b : b + batch_size]]
        a_ids = [tok.encode(a + "\n") for a in answers[b : b + batch_size]]
        rows = [p + a for p, a in zip(p_ids, a_ids, strict=True)]
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)  # (B, T), right-padded
        want = torch.full((len(rows), T), -1, dtype=torch.long)  # (B, T): -1 = not scored
        for i, (p, a) in enumerate(zip(p_ids, a_ids, strict=True)):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            want[i, len(p) - 1 : len(p) + len(a) - 1] = torch.tensor(a)  # predicted there
        pred = model(ids.to(dev)).argmax(dim=-1).cpu()  # (B, T)
        right = (pred == want) | (want < 0)
        out.extend(right.all(dim=1).tolist())
    return out


def complete(
    model: GPT, tok: CharTokenizer, prompt: str, max_new_tokens: int = 12,
    temperature: float = 0.0, stop: str = "\n", seed: int = 0,
) -> str:  # fmt: skip
    """The model's continuation of prompt (greedy by default), cut after the first ``stop``.

    What the playground shows: ``complete(model, tok, "sort:\\ncab > ")`` -> ``"abc"``.
    """
    ids = torch.tensor([tok.encode(prompt)], device=_device(model))  # (1, T)
    room = model.config.block_size - ids.shape[1]
    if room < 1:
        raise ValueError(f"prompt of {ids.shape[1]} tokens leaves no room in block_size "
                         f"{model.config.block_size}")  # fmt: skip
    g = torch.Generator(device=ids.device).manual_seed(seed)
    model.eval()
    out = generate(model, ids, min(max_new_tokens, room), temperature=temperature, generator=g)
    text = tok.decode(out[0, ids.shape[1] :].tolist())
    return text.split(stop)[0] if stop else text


def chance_accuracy(inputs: Sequence[str], task: str) -> float:
    """Exact match of a guesser that applies one of the corpus's 7 rules, drawn uniformly.

    For each input the guess is one of the distinct answers of
    :func:`all_rules`, drawn uniformly; it is right with probability
    1 / (number of distinct answers). -> the mean over the inputs.
    """
    check_task(task)
    rules = all_rules()
    return sum(1 / len({r(x) for r in rules}) for x in inputs) / len(inputs)


def accuracy(
    model: torch.nn.Module,
    tok: CharTokenizer,
    task: str,
    k: int,
    instruction: bool,
    n: int = 200,
    seed: int = 0,
) -> float:
    """Exact match of k-shot prompts on the first n held-out inputs (:func:`heldout_inputs`)."""
    t = check_task(task)
    queries = heldout_inputs(n)
    demos = demonstrations(n, k, seed)
    prompts = [kshot_prompt(task, q, d, instruction) for q, d in zip(queries, demos, strict=True)]
    right = greedy_exact_match(model, tok, prompts, [t.rule(q) for q in queries])
    return sum(right) / n


# ---------------------------------------------------------------------------
# Scoring completions: the few-shot evaluation of Brown et al. (2020)


def _check_1d(name: str, ids: torch.Tensor, min_len: int) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.shape[0] < min_len:
        got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} should be a LongTensor (T,) with T >= {min_len}, got {got}")


@torch.no_grad()
def completion_logprob(model, prompt_ids: torch.Tensor, completion_ids: torch.Tensor) -> float:
    r"""log p(completion | prompt) under a language model, summed over the completion.

    Chapter 6's graded function (reference). prompt_ids (T_p,), T_p >= 1;
    completion_ids (T_c,).

    .. math:: \sum_{j=1}^{T_c} \log p(c_j \mid \text{prompt}, c_1, \dots, c_{j-1})

    One forward pass over prompt + completion: the logits at position
    T_p - 1 + j - 1 predict completion token j. -> float (0.0 for an empty completion).
    """
    _check_1d("prompt_ids", prompt_ids, 1)
    _check_1d("completion_ids", completion_ids, 0)
    T_p, T_c = prompt_ids.shape[0], completion_ids.shape[0]
    if T_c == 0:
        return 0.0
    ids = torch.cat([prompt_ids, completion_ids.to(prompt_ids.device)])[None]  # (1, T_p + T_c)
    logits = model(ids)[0, T_p - 1 : T_p + T_c - 1]  # (T_c, V): those that predict the completion
    logp = torch.log_softmax(logits.double(), dim=-1)
    return logp.gather(-1, completion_ids.to(logp.device)[:, None]).sum().item()


def rank_choices(model, prompt_ids: torch.Tensor, choices: Sequence[torch.Tensor]) -> int:
    """The index of the choice with the highest :func:`completion_logprob` (the first on ties).

    Chapter 6's graded function (reference). choices: a non-empty list of
    LongTensor completions (T_c,) of the same prompt_ids (T_p,).
    """
    if len(choices) == 0:
        raise ValueError("choices should be a non-empty list of completions, got none")
    scores = [completion_logprob(model, prompt_ids, c) for c in choices]
    return max(range(len(scores)), key=lambda i: scores[i])
