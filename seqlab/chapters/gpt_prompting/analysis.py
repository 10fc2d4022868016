"""What chapter 6's page measures and tabulates: continuations at several temperatures,
the scale of GPT-2 and GPT-3 against this computer, the k-shot table and figure, and
the scores of a multiple-choice question (Brown et al., 2020).

Each function returns numbers or table rows; the page glues and shows them
(:func:`seqlab.base.book.table`), so that every number in its prose is computed
when the book is built.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ...base.book import pct
from ...base.plots import INK, MUTED, PALETTE, course_style, new_axes
from ...gpt import PRESETS, GPTConfig, generate, n_params, training_flops
from ...prompting import SEP, TASKS, CharTokenizer, completion_logprob, kshot_prompt, rank_choices
from .pretraining import Evaluation

# ---------------------------------------------------------------------------
# Sampling at several temperatures


def follows_rule(line: str, task: str) -> bool:
    """Is line "x > y" a correct example of one of the task's conventions?"""
    x, sep, y = line.partition(SEP)
    rules = TASKS[task].conventions.values()
    return bool(sep) and x.isalpha() and any(rule(x) == y for rule in rules)


def document_lines(text: str) -> list[str]:
    """The lines a continuation finishes (ends with a newline) in its first document,
    that is before a blank line."""
    finished = text.split("\n")[:-1]
    return finished[: finished.index("")] if "" in finished else finished


@torch.no_grad()
def continuations_by_temperature(
    model, tok: CharTokenizer, prompt: str, temperatures: Sequence[float], task: str,
    n_samples: int = 16, n_new: int = 72, seed: int = 0,
) -> tuple[dict[float, str], dict[float, float]]:  # fmt: skip
    """Continue ``prompt`` n_samples times by n_new tokens at each temperature.

    Each temperature draws from ``torch.Generator().manual_seed(seed)``.
    -> ({temperature: the first continuation}, {temperature: the share of the
    finished lines of the first documents that :func:`follows_rule` of task}).
    """
    start_ids = torch.tensor([tok.encode(prompt)]).repeat(n_samples, 1)  # (n, T)
    continuations, good = {}, {}
    for t in temperatures:
        out = generate(model, start_ids, n_new, temperature=t,
                       generator=torch.Generator().manual_seed(seed))  # (n, T + n_new)
        texts = [tok.decode(row[start_ids.shape[1]:].tolist()) for row in out]
        lines = [line for text in texts for line in document_lines(text)]
        continuations[t] = texts[0]
        good[t] = sum(follows_rule(line, task) for line in lines) / max(1, len(lines))
    return continuations, good


# ---------------------------------------------------------------------------
# Scale

SECONDS_PER_YEAR = 365.25 * 24 * 3600
# Radford et al. (2019) as released; Brown et al. (2020)
PUBLISHED = {"gpt2": 124e6, "gpt2-medium": 355e6, "gpt2-large": 774e6, "gpt2-xl": 1.5e9,
             "gpt3": 175e9}  # fmt: skip
# GPT-2: an estimate (WebText's 40 GB at about 4 bytes a token, one pass); GPT-3: Brown et al.
TOKENS = {"gpt2": 10e9, "gpt2-medium": 10e9, "gpt2-large": 10e9, "gpt2-xl": 10e9,
          "gpt3": 300e9}  # fmt: skip
NAMES = {"gpt2": "GPT-2 small", "gpt2-medium": "GPT-2 medium", "gpt2-large": "GPT-2 large",
         "gpt2-xl": "GPT-2 XL", "gpt3": "GPT-3"}  # fmt: skip


def matmul_flops_per_second(n: int = 1024, repeats: int = 10) -> float:
    """Operations per second of an (n, n) @ (n, n) float32 product, the best of repeats."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def seconds_per_training_step(model, batch_size: int, block_size: int, repeats: int = 3) -> float:
    """The best time of one training step (forward, backward, AdamW) of a copy of ``model`` on
    a random (batch_size, block_size) batch, measured here and now: the same machine and load
    as :func:`matmul_flops_per_second`, so the two can be compared."""
    trained = copy.deepcopy(model).float().train()
    opt = torch.optim.AdamW(trained.parameters(), lr=1e-4)
    V = trained.config.vocab_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(V, (batch_size, block_size), generator=g)  # (B, T)
    y = torch.randint(V, (batch_size, block_size), generator=g)  # (B, T)
    best = math.inf
    for _ in range(repeats + 1):  # the first step also warms up
        start = time.perf_counter()
        loss = F.cross_entropy(trained(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - start)
    return best


def readable(n: float) -> str:
    """124e6 -> '124M', 1.5e9 -> '1.5B'."""
    return f"{n / 1e9:g}B" if n >= 1e9 else f"{n / 1e6:g}M"


def duration(seconds: float) -> str:
    """Seconds in the largest unit that keeps the number readable."""
    for unit, size in (("years", SECONDS_PER_YEAR), ("days", 86400), ("hours", 3600),
                       ("minutes", 60)):  # fmt: skip
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def scale(flops: float, presets: dict[str, GPTConfig] = PRESETS) -> dict[str, dict]:
    """What training each preset costs: {name: {"N": parameters, "compute": 6 N D
    operations for D = TOKENS[name], "seconds": at ``flops`` operations per second}}."""
    out = {}
    for name, preset in presets.items():
        N = n_params(preset)
        compute = training_flops(N, TOKENS[name])
        out[name] = {"N": N, "compute": compute, "seconds": compute / flops}
    return out


SCALE_HEADER = ("model", "layers", "width $C$", "heads", "context", "parameters (computed)",
                "published", "training tokens $D$", "$6ND$ (FLOPs)", "on this CPU core")


def scale_rows(sizes: dict[str, dict], presets: dict[str, GPTConfig] = PRESETS) -> list[list]:
    """The rows of the page's scale table (:data:`SCALE_HEADER`) from :func:`scale`."""
    rows = []
    for name, s in sizes.items():
        p = presets[name]
        tokens = f"{TOKENS[name] / 1e9:.0f}B" + ("" if name == "gpt3" else " (est.)")
        rows.append([NAMES[name], p.n_layer, f"{p.n_embd:,}", p.n_head, f"{p.block_size:,}",
                     f"{s['N']:,}", readable(PUBLISHED[name]), tokens, f"{s['compute']:.2e}",
                     duration(s["seconds"])])  # fmt: skip
    return rows


# ---------------------------------------------------------------------------
# The k-shot evaluation, as a table and a figure


def kshot_rows(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the k-shot table, in percent: two rows per task (with the
    instruction and without), then the means; fine-tuned and chance on the instruction
    rows."""
    header = ["task", "prompt", *(f"k = {k}" for k in ev.ks), "fine-tuned", "chance"]
    rows = []
    for task in ev.kshot:
        for label, table in (("instruction", ev.kshot), ("none", ev.kshot_bare)):
            extra = ([pct(ev.finetuned[task]), pct(ev.chance[task])] if label == "instruction"
                     else ["", ""])  # fmt: skip
            rows.append([task, label, *(pct(table[task][k]) for k in ev.ks), *extra])
    mean_ft = statistics.fmean(ev.finetuned.values())
    mean_chance = statistics.fmean(ev.chance.values())
    for label, name in (("instruction", "kshot"), ("none", "kshot_bare")):
        extra = [pct(mean_ft), pct(mean_chance)] if label == "instruction" else ["", ""]
        rows.append(["**mean**", label, *(pct(ev.mean(name, k)) for k in ev.ks), *extra])
    return header, rows


def plot_kshot(ev: Evaluation, ax=None):
    """Exact match against k, one line per task (instruction prompts), their mean, the
    mean without the instruction (dashed), the fine-tuned models (squares at the
    right) and chance (dotted). -> the Axes."""
    with course_style():
        ax = new_axes(ax, figsize=(7.6, 3.8))
        x_ft = max(ev.ks) + 1.5
        for i, task in enumerate(ev.kshot):
            color = PALETTE[i]
            ax.plot(ev.ks, [100 * ev.kshot[task][k] for k in ev.ks], marker="o", color=color,
                    label=task)  # fmt: skip
            ax.plot([x_ft], [100 * ev.finetuned[task]], marker="s", color=color,
                    linestyle="none")  # fmt: skip
        ax.plot(ev.ks, [100 * ev.mean("kshot", k) for k in ev.ks], color=INK, linewidth=2.6,
                label="mean")  # fmt: skip
        ax.plot(ev.ks, [100 * ev.mean("kshot_bare", k) for k in ev.ks], color=MUTED,
                linestyle="--", label="mean, no instruction")  # fmt: skip
        ax.axhline(100 * statistics.fmean(ev.chance.values()), color=MUTED, linestyle=":",
                   label="chance")  # fmt: skip
        ax.set_xticks([*ev.ks, x_ft], [*map(str, ev.ks), "fine-\ntuned"])
        ax.set_xlabel("demonstrations k in the prompt")
        ax.set_ylabel("exact match (%)")
        ax.set_ylim(-3, 103)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return ax


# ---------------------------------------------------------------------------
# Scoring choices


def conventions() -> list[tuple[str, str]]:
    """Every (task, convention) of the corpus, in the order of :data:`TASKS`."""
    return [(t.name, c) for t in TASKS.values() for c in t.conventions]


@torch.no_grad()
def choice_scores(
    model, tok: CharTokenizer, x: str, demos: Sequence[str], ks: Sequence[int] = (0, 4),
    task: str = "sort",
) -> dict:  # fmt: skip
    """Score the answers of every convention for input x after a bare k-shot prompt of task.

    -> {"candidates": [answer + newline, one per :func:`conventions`],
    k: [completion_logprob of each], (k, "best"): rank_choices' index, for each k}.
    """
    candidates = [TASKS[t].conventions[c](x) + "\n" for t, c in conventions()]
    choices = [torch.tensor(tok.encode(c)) for c in candidates]
    scored: dict = {"candidates": candidates}
    for k in ks:
        prompt_ids = torch.tensor(tok.encode(kshot_prompt(task, x, demos[:k], instruction=False)))
        scored[k] = [completion_logprob(model, prompt_ids, c) for c in choices]
        scored[k, "best"] = rank_choices(model, prompt_ids, choices)
    return scored


def choice_rows(scored: dict, ks: Sequence[int] = (0, 4)) -> list[list[str]]:
    """Rows (rule, answer, log-prob at each k) of :func:`choice_scores`, the chosen marked."""
    rows = []
    for i, ((t, c), answer) in enumerate(zip(conventions(), scored["candidates"], strict=True)):
        marks = [" **(chosen)**" if scored[k, "best"] == i else "" for k in ks]
        rows.append([f"{t}, {c}", f"`{answer.strip()}`",
                     *(f"{scored[k][i]:.2f}{m}" for k, m in zip(ks, marks, strict=True))])
    return rows


# ---------------------------------------------------------------------------
# Perplexity


def answer_flags(text: str) -> list[bool]:
    """For each character of a document, whether it belongs to an answer: the output
    after " > " and the newline that ends it, which the line's rule determines."""
    flags = []
    for line in text.splitlines(keepends=True):
        x, sep, _ = line.partition(SEP)
        head = len(x) + len(sep) if sep else len(line)
        flags += [False] * head + [True] * (len(line) - head)
    return flags


@torch.no_grad()
def perplexity(model, tok: CharTokenizer, texts: Sequence[str]) -> dict[str, float]:
    r"""Perplexity of a language model on documents: the exponential of the mean
    per-token negative log-likelihood (Jelinek et al., 1977; Jurafsky & Martin, ch. 3),

    .. math:: \operatorname{PPL} = \exp\Bigl(-\frac{1}{N}\sum_{t} \log p(x_t \mid x_{<t})\Bigr),

    the number of equally likely tokens the model is, on average, choosing among
    (V for a uniform guess). Each text is scored alone, every token after its first
    given those before it, cut to the model's context. -> {"all", "answers",
    "rest": perplexities over all scored tokens, over :func:`answer_flags`' tokens
    and over the others; "tokens": N}.
    """
    block = model.config.block_size + 1
    rows = [tok.encode(t)[:block] for t in texts]
    flags = [answer_flags(t)[:block] for t in texts]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)  # (B, T), right-padded
    answer = torch.zeros(ids.shape, dtype=torch.bool)
    scored = torch.zeros(ids.shape, dtype=torch.bool)
    for i, (r, f) in enumerate(zip(rows, flags, strict=True)):
        ids[i, : len(r)], answer[i, : len(f)] = torch.tensor(r), torch.tensor(f)
        scored[i, 1 : len(r)] = True  # every token but the first, which nothing predicts
    device = next(model.parameters()).device
    logits = model(ids[:, :-1].to(device)).double().cpu()  # (B, T - 1, V): predict tokens 1..
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, T - 1)
    scored, answer = scored[:, 1:], answer[:, 1:]
    out = {name: math.exp(nll[mask].mean().item()) for name, mask in
           (("all", scored), ("answers", scored & answer), ("rest", scored & ~answer))}  # fmt: skip
    out["tokens"] = int(scored.sum())
    return out


# ---------------------------------------------------------------------------
# Encoder, decoder, both


@torch.no_grad()
def first_position_change(
    fn: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, vocab: int
) -> float:
    """How far ``fn(ids)[:, 0]`` moves when the last token of ids (B, T) changes (to the
    next id, modulo vocab): 0.0 where position 0 sees only itself and earlier positions
    (causal attention), > 0 where it sees the whole input (an encoder's self-attention).
    fn: ids (B, T) -> outputs (B, T, ...)."""
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % vocab
    return (fn(ids)[:, 0] - fn(changed)[:, 0]).abs().max().item()
