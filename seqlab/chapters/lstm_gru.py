"""Chapter 2's experiments: gated cells keep gradients alive, and solve the adding problem.

Each function runs one experiment of the book chapter and returns numbers,
so that the page, the exercise and the tests all compute the same thing.

Training the three networks on the adding problem takes minutes, longer than
a book page may take to execute, so it is done once by the chapters' command
line, which saves one small checkpoint (weights and training curves) that the
book only evaluates (:func:`load_adding`)::

    python -m seqlab.chapters checkpoints lstm_gru

The chapter's explorer, :func:`gate_explorer`, shows a trained LSTM's gates
along one sequence, with the first marker on a slider.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ipywidgets
import torch
from matplotlib.figure import Figure
from torch import nn

from ..base import checkpoints
from ..base.env import seed
from ..base.explorer import Explorer
from ..base.plots import INK, MUTED, PALETTE, course_style
from ..base.train import History, to_device, train
from ..lstm import GRU, LSTM
from ..rnn import RNN

KINDS = ("rnn", "lstm", "gru")
LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}
INPUT_SIZE = 2  # the adding problem's two features per step: a value and a marker


def adding_batch(
    batch_size: int, seq_len: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the adding problem, in the variant of Le et al. (2015) and Arjovsky et al. (2016).

    Each step carries two features: a value drawn uniformly from [0, 1] and a
    marker, 1 at exactly two steps (one in each half of the sequence) and 0
    elsewhere. The target is the sum of the two marked values. (Hochreiter &
    Schmidhuber's original, 1997, experiment 4, drew the values from [-1, 1]
    and asked for 0.5 + (X1 + X2) / 4.)
    -> (xs (B, T, 2), ys (B, 1)).
    """
    if seq_len < 2:
        raise ValueError(f"the adding problem needs seq_len >= 2, got {seq_len}")
    values = torch.rand(batch_size, seq_len, generator=generator)  # (B, T)
    half = seq_len // 2
    first = torch.randint(0, half, (batch_size,), generator=generator)
    second = torch.randint(half, seq_len, (batch_size,), generator=generator)
    markers = torch.zeros(batch_size, seq_len)
    rows = torch.arange(batch_size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    xs = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    return xs, (values * markers).sum(dim=1, keepdim=True)  # (B, 1)


def trivial_baseline_mse() -> float:
    """The test MSE of always predicting 1, the mean of the target.

    The target is a sum of two independent uniforms on [0, 1]: its variance is
    2 * 1/12 = 1/6.
    """
    return 2 / 12


@dataclass
class AddingSetup:
    """The adding-problem experiment: task, models and training."""

    seq_len: int = 100  # T: the two marked values are 50 steps apart on average
    hidden_size: int = 64  # H, the same for the three models
    forget_bias: float = 1.0  # added to the LSTM's forget-gate bias at initialisation
    lr: float = 3e-3  # Adam
    steps: int = 4000  # optimiser steps of batch_size sequences each
    batch_size: int = 64  # sequences per step, fresh ones every step
    clip_norm: float = 1.0  # global-norm gradient clipping (chapter 1)
    eval_every: int = 100  # steps between two test losses on the curves
    test_size: int = 1000  # sequences in the test set the curves are measured on
    random_seed: int = 0  # seeds the initial weights and the training batches


ADDING = "lstm_gru_adding"  # the checkpoint the book loads
# The checkpoints the chapter ships: file stem -> the preset its models are trained from.
CHECKPOINTS = {ADDING: AddingSetup()}


class AddingModel(nn.Module):
    """A one-layer recurrent network with a linear read-out of its last state.

    kind: "rnn", "lstm" or "gru". The recurrent layer is seqlab's explicit one
    (:class:`seqlab.rnn.RNN`, :class:`seqlab.lstm.LSTM`, :class:`seqlab.lstm.GRU`),
    or with ``fused=True`` the torch module with the same weights, for speed
    (the tests check that the two agree).
    forward(xs: (B, T, D)) -> (B, 1).
    """

    def __init__(
        self,
        kind: str,
        hidden_size: int,
        input_size: int = INPUT_SIZE,
        forget_bias: float = 0.0,
        fused: bool = False,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind should be one of {KINDS}, got {kind!r}")
        self.kind, self.fused = kind, fused
        if fused:
            layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
            self.rnn = layer(input_size, hidden_size, batch_first=True)
            if kind == "lstm":
                with torch.no_grad():
                    self.rnn.bias_ih_l0[hidden_size : 2 * hidden_size] += forget_bias
        elif kind == "lstm":
            self.rnn = LSTM(input_size, hidden_size, forget_bias=forget_bias)
        else:
            self.rnn = {"rnn": RNN, "gru": GRU}[kind](input_size, hidden_size)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        out = self.rnn(xs)
        hs = out[0] if isinstance(out, tuple) else out  # (B, T, H)
        return self.head(hs[:, -1])  # (B, 1)

    def explicit(self) -> AddingModel:
        """This model with seqlab's explicit recurrent layer (a copy when it is fused)."""
        if not self.fused:
            return self
        model = AddingModel(self.kind, self.rnn.hidden_size, self.rnn.input_size)
        model = model.to(device=self.head.weight.device, dtype=self.head.weight.dtype)
        model.rnn.load_from_torch(self.rnn)
        model.head.load_state_dict(self.head.state_dict())
        return model


def mse(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> float:
    """Mean squared error of model(xs) against ys, without gradients."""
    with torch.no_grad():
        return ((model(xs) - ys) ** 2).mean().item()


def train_adding(
    kind: str,
    cfg: AddingSetup | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[AddingModel, History]:
    """Train one model on the adding problem with the fused torch layer.

    Every model sees the same batches and the same test set. Returns the
    trained (fused) model, on ``device``, and its history, whose eval_loss is
    the test MSE.
    """
    cfg = cfg or AddingSetup()
    seed(cfg.random_seed)
    model = AddingModel(kind, cfg.hidden_size, forget_bias=cfg.forget_bias, fused=True)
    model = model.to(device)
    test = adding_batch(cfg.test_size, cfg.seq_len, torch.Generator().manual_seed(10_000))
    test = to_device(test, torch.device(device))
    g = torch.Generator().manual_seed(cfg.random_seed)

    def batches():
        while True:
            yield adding_batch(cfg.batch_size, cfg.seq_len, g)

    def loss_fn(m, batch):
        xs, ys = batch
        return ((m(xs) - ys) ** 2).mean()

    history = train(
        model,
        batches(),
        loss_fn,
        torch.optim.Adam(model.parameters(), lr=cfg.lr),
        cfg.steps,
        clip_norm=cfg.clip_norm,
        progress=progress,
        desc=LABELS[kind],
        eval_fn=lambda m: mse(m, *test),
        eval_every=cfg.eval_every,
    )
    return model, history


def make_checkpoint(name: str, progress: bool = False, device: str | torch.device = "cpu") -> Path:
    """Train the three models of preset ``name`` and save ``seqlab/checkpoints/<name>.pt``.

    The file (:func:`seqlab.base.checkpoints.save`) holds the preset, the
    models' sizes as config, state = {kind: state dict of the fused model} in
    float32 and meta = {"histories": {kind: history dict}, "seconds": {kind:
    training time}}: a few hundred kB.
    """
    if name not in CHECKPOINTS:
        raise ValueError(f"no adding-problem preset named {name!r}; known: {sorted(CHECKPOINTS)}")
    cfg = CHECKPOINTS[name]
    states, histories, seconds = {}, {}, {}
    for kind in KINDS:
        start = time.perf_counter()
        model, history = train_adding(kind, cfg, progress=progress, device=device)
        seconds[kind] = time.perf_counter() - start
        states[kind] = checkpoints.cpu_state(model)
        histories[kind] = checkpoints.history_dict(history)
    config = {"hidden_size": cfg.hidden_size, "input_size": INPUT_SIZE}
    return checkpoints.save(
        checkpoints.path_of(name), cfg, states, config, histories=histories, seconds=seconds
    )


def load_adding(
    name: str = ADDING,
) -> tuple[AddingSetup, dict[str, AddingModel], dict[str, History]]:
    """The trained adding-problem models of checkpoint ``name``, as explicit seqlab
    models in eval mode, with their preset and training histories."""
    saved = checkpoints.load(checkpoints.path_of(name))
    sizes, models, histories = saved.config, {}, {}
    for kind, state in saved.state.items():
        fused = AddingModel(kind, sizes["hidden_size"], sizes["input_size"], fused=True)
        fused.load_state_dict(state)
        models[kind] = fused.explicit().eval()
        histories[kind] = checkpoints.history_from(saved.meta["histories"][kind])
    return AddingSetup(**saved.preset), models, histories


def training_seconds(name: str = ADDING) -> dict[str, float]:
    """{kind: seconds} that training each model of checkpoint ``name`` took."""
    return dict(checkpoints.load(checkpoints.path_of(name)).meta["seconds"])


def prediction_sensitivity(model: nn.Module, xs: torch.Tensor) -> torch.Tensor:
    """How much a model's prediction depends on each input step.

    xs: (B, T, D) -> (T,): the mean over the batch of the norm of the gradient
    of the prediction with respect to x_t, normalised to sum to 1 (each step's
    share, as in chapter 1's sensitivity experiment).
    """
    xs = xs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xs).sum(), xs)  # (B, T, D)
    per_step = grad.norm(dim=2).mean(dim=0)  # (T,)
    return per_step / per_step.sum()


def input_gradient_curves(
    steps: int = 100,
    input_size: int = 8,
    hidden_size: int = 64,
    forget_bias: float = 1.0,
    probes: int = 32,
    random_seed: int = 0,
) -> dict[str, torch.Tensor]:
    """How much of a gradient at the last state reaches each earlier input, at initialisation.

    A tanh RNN, an LSTM (forget-gate bias 0 and ``forget_bias``) and a GRU, all
    with torch's default initialisation, read the same random sequences
    (probes, steps, D); <u, h_T> is backpropagated for a random unit vector u.
    Returns {label: (steps,)}: entry k is the mean over probes of
    ||d<u, h_T>/d x_{T-k}||, divided by its value at k = 0.
    """
    g = seed(random_seed)
    xs = torch.randn(probes, steps, input_size, generator=g, dtype=torch.float64)
    u = torch.randn(probes, hidden_size, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    models = {
        "tanh RNN": RNN(input_size, hidden_size),
        "LSTM, forget bias 0": LSTM(input_size, hidden_size),
        f"LSTM, forget bias {forget_bias:g}": LSTM(input_size, hidden_size, forget_bias),
        "GRU": GRU(input_size, hidden_size),
    }
    curves = {}
    for label, model in models.items():
        x = xs.clone().requires_grad_(True)
        out = model.double()(x)
        hs = out[0] if isinstance(out, tuple) else out  # (probes, T, H)
        (grad,) = torch.autograd.grad((u * hs[:, -1]).sum(), x)  # (probes, T, D)
        norms = grad.norm(dim=2).mean(dim=0).flip(0)  # (T,), k = 0 first
        curves[label] = norms / norms[0]
    return curves


# ------------------------------------------------------------------ the explorer


class GateExplorer(Explorer):
    """An LSTM's gates and cell along one adding-problem sequence, with a marker on a slider.

    The LSTM (a :class:`seqlab.lstm.LSTM`, for example one trained on the
    adding problem) reads a sequence of ``seq_len`` random values whose first
    marker sits at the position the slider chooses and whose second marker is
    fixed at ``second``. The figure shows the inputs, then the input gate
    :math:`i_t`, the forget gate :math:`f_t` and the cell :math:`c_t` of every
    hidden unit as heat maps over time (Hochreiter & Schmidhuber, 1997).

    positions: the slider's values (also the frames of the static player).
    dpi: resolution of the frames.
    """

    def __init__(
        self,
        lstm: LSTM,
        positions: Sequence[int] = tuple(range(0, 50, 5)),
        second: int = 75,  # the second marker's step, the same in every frame
        seq_len: int = 100,  # T
        random_seed: int = 0,  # draws the sequence's values
        dpi: int = 72,
    ):
        positions = [int(p) for p in positions]
        if len(positions) < 2:
            raise ValueError(f"positions should hold at least 2 values, got {positions}")
        if not all(0 <= p < seq_len and p != second for p in positions):
            raise ValueError(
                f"positions should lie in [0, {seq_len}) and differ from second={second}, "
                f"got {positions}"
            )
        self.lstm = lstm
        self.positions = positions
        self.second = second
        self.seq_len = seq_len
        self.dpi = dpi
        g = torch.Generator().manual_seed(random_seed)
        self.values = torch.rand(seq_len, generator=g)  # (T,), the same for every frame
        self._order: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"GateExplorer(first marker at {self.positions[0]}..{self.positions[-1]}, "
            f"second at {self.second}, {self.seq_len} steps)"
        )

    def sequence(self, first: int) -> torch.Tensor:
        """The input (1, T, 2): the fixed values, and markers at ``first`` and ``second``."""
        if not 0 <= first < self.seq_len or first == self.second:
            raise ValueError(
                f"the first marker should lie in [0, {self.seq_len}) and differ from the "
                f"second, at {self.second}; got {first}"
            )
        markers = torch.zeros(self.seq_len)
        markers[[first, self.second]] = 1.0
        return torch.stack([self.values, markers], dim=-1)[None]

    def trace(self, first: int) -> dict[str, torch.Tensor]:
        """{"i", "f", "g", "o", "c", "h"}: each (T, H), from :meth:`seqlab.lstm.LSTM.trace`."""
        p = next(self.lstm.parameters())
        xs = self.sequence(first).to(device=p.device, dtype=p.dtype)
        return {k: v[0].cpu().float() for k, v in self.lstm.trace(xs).items()}

    def unit_order(self) -> torch.Tensor:
        """Units sorted by their mean forget gate on the first frame (most remembering on top)."""
        if self._order is None:
            self._order = self.trace(self.positions[0])["f"].mean(dim=0).argsort(descending=True)
        return self._order

    def frames(self) -> list[int]:
        return self.positions

    def figure(self):
        with course_style():
            fig = Figure(figsize=(6.4, 6.4), dpi=self.dpi, layout="constrained")
            axes = fig.subplots(4, 1, sharex=True, height_ratios=(1, 1.4, 1.4, 1.4))
        return fig, axes

    def draw(self, first: int, axes) -> None:
        """Draw the four panels for one marker position on ``axes`` (4 Axes, cleared first)."""
        trace = self.trace(first)
        order = self.unit_order()
        T = self.seq_len
        with course_style():
            for ax in axes:
                ax.clear()
                ax.grid(False)
            ax = axes[0]
            ax.plot(range(T), self.values.numpy(), color=MUTED, linewidth=1.0)
            for pos in (first, self.second):
                ax.plot([pos, pos], [0, self.values[pos].item()], color=PALETTE[1], linewidth=2.0)
            ax.plot(
                [first, self.second],
                self.values[[first, self.second]].numpy(),
                "o",
                color=PALETTE[1],
            )
            target = self.values[[first, self.second]].sum().item()
            ax.set_title(
                f"marked values (orange) at steps {first} and {self.second}: sum {target:.2f}"
            )
            ax.set_ylim(0, 1.05)
            ax.set_xlim(-0.5, T - 0.5)
            ax.set_ylabel("input")
            panels = (
                ("i", r"input gate $i_t$", 0.0, 1.0, "viridis"),
                ("f", r"forget gate $f_t$", 0.0, 1.0, "viridis"),
                ("c", r"cell $c_t$", -2.0, 2.0, "RdBu_r"),
            )
            for ax, (key, label, low, high, cmap) in zip(axes[1:], panels, strict=True):
                data = trace[key][:, order].T.numpy()  # (H, T)
                image = ax.imshow(
                    data, aspect="auto", vmin=low, vmax=high, cmap=cmap, interpolation="nearest"
                )
                ax.set_ylabel(f"{label}\nunit")
                ax.set_yticks([])
                for pos in (first, self.second):
                    ax.axvline(pos, color=INK, linewidth=0.6, linestyle=":")
                ax.figure.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
            axes[-1].set_xlabel("step t")

    def controls(self) -> dict[str, ipywidgets.Widget]:
        """A slider over the first marker's position, anywhere in the first half."""
        slider = ipywidgets.IntSlider(
            value=self.positions[0],
            min=0,
            max=self.seq_len // 2 - 1,
            step=1,
            description="1st marker",
            continuous_update=False,
        )
        return {"first": slider}

    def alt(self) -> str:
        return (
            "Inputs, input gate, forget gate and cell state of an LSTM over one "
            "adding-problem sequence, one frame per position of the first marker from "
            f"{self.positions[0]} to {self.positions[-1]}"
        )


def gate_explorer(lstm: LSTM, **kwargs) -> GateExplorer:
    """An explorer of an LSTM's gates along an adding-problem sequence.

    Display the result in a notebook cell: a live slider in Jupyter, a player
    of precomputed frames in the static book. Keyword arguments go to
    :class:`GateExplorer`.
    """
    return GateExplorer(lstm, **kwargs)
