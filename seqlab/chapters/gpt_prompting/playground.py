"""Chapter 6's prompt playground: prompt the small GPT, live in Jupyter and as a player
of precomputed frames in the static book (:class:`seqlab.base.explorer.Explorer`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import ipywidgets
import numpy as np
import torch
from matplotlib.figure import Figure

from ...base.explorer import Explorer
from ...base.plots import INK, MUTED, PALETTE, course_style
from ...gpt import generate, next_token_distribution
from ...prompting import KS, TASKS, demonstrations, kshot_prompt


class PromptSetting(NamedTuple):
    """One state of the :class:`PromptPlayground`: what is asked and how the model samples."""

    task: str  # a task of seqlab.prompting.TASKS, e.g. "sort"
    query: str  # the input the model should answer, e.g. "dbca"
    k: int  # demonstrations in the prompt
    temperature: float  # 0 = greedy
    top_k: int | None = None  # sample among the top_k most likely tokens (None: all)
    instruction: bool = True  # start the prompt with the task's instruction line


def show_char(c: str) -> str:
    """A character as the figure writes it: a newline as an arrow, a space as a box."""
    return {"\n": "\u21b5", " ": "\u2423"}.get(c, c)


class PromptPlayground(Explorer):
    """Prompt a small GPT: the task, its input, the examples, the temperature and top-k.

    The prompt is :func:`seqlab.prompting.kshot_prompt`: the task's instruction
    line (optional), ``k`` solved examples and the query, "few-shot" in Brown et
    al.'s (2020) sense (``k = 0`` is Radford et al.'s, 2019, zero-shot). The
    figure shows the prompt, ``samples`` continuations drawn by
    :func:`seqlab.gpt.generate` at the chosen temperature and top-k (each up to
    its newline, marked right when it is the task's answer), and the
    distribution of the first answer token: the model's own (grey) and the one
    sampled from after temperature and top-k (coloured,
    :func:`seqlab.gpt.next_token_distribution`).

    model: a :class:`seqlab.gpt.GPT` over characters; tok: its tokenizer
    (``encode``/``decode``, :class:`seqlab.prompting.CharTokenizer`); queries:
    the (task, input) pairs offered in the menu; settings: the frames of the
    static player (:class:`PromptSetting`; default: the first query at k = 0,
    2, 8, greedy and at temperature 1); seed: seeds the demonstrations and the
    sampling, so that a setting always shows the same samples; dpi: resolution
    of the frames.
    """

    interval = 1500

    def __init__(self, model, tok, queries: Sequence[tuple[str, str]],
                 settings: Sequence[PromptSetting] | None = None, samples: int = 4,
                 seed: int = 0, dpi: int = 72):  # fmt: skip
        queries = [(str(task), str(query)) for task, query in queries]
        if not queries:
            raise ValueError("queries should hold at least one (task, input) pair")
        for task, _ in queries:
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
        if samples < 1:
            raise ValueError(f"samples should be >= 1, got {samples}")
        self.model, self.tok, self.queries = model, tok, queries
        self.samples, self.seed, self.dpi = samples, seed, dpi
        self.max_k = max(KS)
        self.demos = demonstrations(1, self.max_k, seed)[0]  # the same examples for every query
        if settings is None:
            task, query = queries[0]
            settings = [PromptSetting(task, query, k, t) for k in (0, 2, 8) for t in (0.0, 1.0)]
        self.settings = [PromptSetting(*s) for s in settings]
        if not self.settings:
            raise ValueError("settings should hold at least one frame")
        self._seen: dict[PromptSetting, dict] = {}

    def __repr__(self) -> str:
        return f"PromptPlayground({len(self.queries)} queries, {len(self.settings)} frames)"

    def prompt(self, setting: PromptSetting) -> str:
        """The prompt text of a setting (:func:`seqlab.prompting.kshot_prompt`)."""
        if not 0 <= setting.k <= self.max_k:
            raise ValueError(f"k should be in 0..{self.max_k}, got {setting.k}")
        if not setting.query:
            raise ValueError("type an input of at least one letter")
        return kshot_prompt(setting.task, setting.query, self.demos[: setting.k],
                            setting.instruction)  # fmt: skip

    @torch.no_grad()
    def look(self, setting) -> dict:
        """What the figure shows for a setting, cached.

        -> {"prompt": str, "answer": str, "samples": [str], "right": [bool],
        "p_model": (V,) softmax of the logits, "p_sample": (V,) the distribution
        the first token is drawn from (one-hot at the argmax when greedy)}.
        """
        setting = PromptSetting(*setting)
        if setting.temperature < 0:
            raise ValueError(f"temperature should be >= 0, got {setting.temperature}")
        if setting not in self._seen:
            text = self.prompt(setting)
            device = next(self.model.parameters()).device
            # (1, T); the tokenizer raises ValueError on a character it does not know
            ids = torch.tensor([self.tok.encode(text)], device=device)
            room = self.model.config.block_size - ids.shape[1]
            if room < 1:
                raise ValueError(f"the prompt's {ids.shape[1]} tokens fill the model's context "
                                 f"of {self.model.config.block_size}")  # fmt: skip
            self.model.eval()
            logits = self.model(ids)[:, -1].float()  # (1, V)
            p_model = next_token_distribution(logits)[0]  # (V,): temperature 1, every token
            p_sample = next_token_distribution(logits, setting.temperature, setting.top_k)[0]
            n = 1 if setting.temperature == 0 else self.samples
            g = torch.Generator(device=device).manual_seed(self.seed)
            out = generate(self.model, ids.repeat(n, 1), min(room, 8), setting.temperature,
                           setting.top_k, generator=g)  # (n, T + new)  # fmt: skip
            samples = [self.tok.decode(row[ids.shape[1]:].tolist()).split("\n")[0]
                       for row in out]  # fmt: skip
            answer = TASKS[setting.task].rule(setting.query)
            self._seen[setting] = {
                "prompt": text, "answer": answer, "samples": samples,
                "right": [s == answer for s in samples],
                "p_model": p_model.cpu(), "p_sample": p_sample.cpu(),
            }  # fmt: skip
        return self._seen[setting]

    # ------------------------------------------------------------ the Explorer's parts

    def frames(self) -> list[PromptSetting]:
        return self.settings

    def figure(self) -> tuple[Figure, list]:
        with course_style():
            fig = Figure(figsize=(8.4, 3.8), dpi=self.dpi, layout="constrained")
            axes = fig.subplots(1, 2, width_ratios=(1.2, 1.0))
        return fig, list(axes)

    def draw(self, setting, axes) -> None:
        """Draw the prompt, the samples and the next-token distribution on ``axes`` (2 Axes)."""
        setting = PromptSetting(*setting)
        seen = self.look(setting)
        text_ax, bars = axes
        top = seen["p_model"].argsort(descending=True)[:10].tolist()  # the 10 likeliest tokens
        chars = [show_char(self.tok.decode([i])) for i in top]
        how = ("greedy (temperature 0)" if setting.temperature == 0 else
               f"temperature {setting.temperature:g}, top-k {setting.top_k or 'all'}")  # fmt: skip
        with course_style():
            text_ax.clear()
            bars.clear()
            text_ax.axis("off")
            lines = seen["prompt"].split("\n")
            lines[-1] += "\u2026"  # where the model continues
            lines += ["", f"{how}:"]
            lines += [f"  {s or '(empty)'}   {'right' if ok else 'wrong'}"
                      for s, ok in zip(seen["samples"], seen["right"], strict=True)]  # fmt: skip
            lines.append(f"answer: {seen['answer']}")
            listing = text_ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9,
                                   family="monospace", transform=text_ax.transAxes,
                                   color=INK)  # fmt: skip
            listing.set_in_layout(False)
            x = np.arange(len(top))
            bars.bar(x - 0.2, seen["p_model"][top].numpy(), width=0.4, color=MUTED,
                     label="model (temperature 1)")  # fmt: skip
            bars.bar(x + 0.2, seen["p_sample"][top].numpy(), width=0.4, color=PALETTE[0],
                     label="sampled from")  # fmt: skip
            bars.set_xticks(x, chars, family="monospace")
            bars.set_ylim(0, 1.05)
            bars.set_ylabel("probability")
            bars.set_title("first token of the answer", fontsize=10)
            bars.legend(loc="upper right")
            title = f"{setting.task}, k = {setting.k}"
            if not setting.instruction:
                title += ", no instruction"
            text_ax.set_title(title, fontsize=10, loc="left")

    def controls(self) -> dict[str, ipywidgets.Widget]:
        """Task, input, k, instruction, temperature and top-k, set to the first frame."""
        first = self.settings[0]
        V = self.model.config.vocab_size
        return {
            "task": ipywidgets.Dropdown(options=sorted(TASKS), value=first.task,
                                        description="task"),
            "query": ipywidgets.Text(value=first.query, description="input",
                                     continuous_update=False),
            "k": ipywidgets.IntSlider(value=first.k, min=0, max=self.max_k,
                                      description="examples k", continuous_update=False),
            "instruction": ipywidgets.Checkbox(value=first.instruction, description="instruction"),
            "temperature": ipywidgets.FloatSlider(value=first.temperature, min=0.0, max=2.0,
                                                  step=0.1, description="temperature",
                                                  continuous_update=False),
            "top_k": ipywidgets.IntSlider(value=first.top_k or V, min=1, max=V,
                                          description="top-k", continuous_update=False),
        }  # fmt: skip

    def setting(self, controls: dict[str, ipywidgets.Widget], changed: str | None) -> PromptSetting:
        """The controls' setting; top-k at the vocabulary size means all tokens (None)."""
        V = self.model.config.vocab_size
        top_k = controls["top_k"].value
        return PromptSetting(controls["task"].value, controls["query"].value.strip(),
                             controls["k"].value, round(controls["temperature"].value, 2),
                             None if top_k >= V else top_k,
                             controls["instruction"].value)  # fmt: skip

    def alt(self) -> str:
        return (
            f"A small GPT prompted with {len(self.settings)} settings, one per frame: the "
            "prompt with its instruction and k solved examples, the continuations sampled "
            "at the frame's temperature and top-k marked right or wrong, and a bar chart of "
            "the probability of each first answer letter"
        )


def prompt_playground(model, tok, queries, **kwargs) -> PromptPlayground:
    """A playground for prompting a small GPT (chapter 6).

    Display the result in a notebook cell: live controls in Jupyter, a player
    of precomputed frames in the static book. Keyword arguments go to
    :class:`PromptPlayground`.
    """
    return PromptPlayground(model, tok, queries, **kwargs)
