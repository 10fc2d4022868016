"""Chapter 1's experiments: vanishing and exploding gradients in a vanilla RNN.

Each function runs one experiment of the book chapter and returns numbers,
so that the page, the exercise and the tests all compute the same thing. The
chapter's explorer, :func:`spectral_radius_explorer`, puts the spectral radius
of W_hh on a slider (the page writes its numbers into the prose with
:mod:`seqlab.base.book`). :func:`truncation_experiment` measures the bias and the cost of
truncated backpropagation through time on the clipping experiment's task, and
:func:`depth_experiment` compares stacked RNNs of several depths.
"""

from __future__ import annotations

import copy
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..base.env import seed
from ..base.explorer import Explorer
from ..base.plots import course_style, plot_norms_against_distance
from ..base.train import History, train
from ..gradients import (
    hidden_gradient_norms,
    input_sensitivity,
    scale_spectral_radius,
    truncated_bptt,
    w_hh_gradient_terms,
)
from ..rnn import RNN, StackedRNN

# ------------------------------------------------------------------ the experiments


def gradient_norm_curves(
    rhos: list[float],
    hidden_size: int = 32,
    steps: int = 60,
    nonlinearity: str = "tanh",
    orthogonal_at_one: bool = True,
    random_seed: int = 0,
    input_scale: float = 1.0,
) -> dict[float, torch.Tensor]:
    """Gradient norm against distance for recurrent matrices of several spectral radii.

    For each rho, W_hh is one fixed random Gaussian matrix rescaled to spectral
    radius rho (a random orthogonal matrix for rho == 1 when
    ``orthogonal_at_one``: all its eigenvalues have modulus 1, so a linear RNN
    carries the gradient unchanged). ``input_scale`` is the standard deviation
    of the random inputs: small inputs keep a tanh RNN out of saturation, so
    its gradients can explode; large ones saturate it and make them vanish.
    Returns {rho: (steps,)} from :func:`seqlab.gradients.hidden_gradient_norms`.
    """
    g = seed(random_seed)
    base = torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64)
    gaussian = torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64)
    ortho, _ = torch.linalg.qr(gaussian)
    curves = {}
    for rho in rhos:
        W = ortho if (orthogonal_at_one and rho == 1.0) else scale_spectral_radius(base, rho)
        curves[rho] = hidden_gradient_norms(
            W,
            steps,
            nonlinearity,
            input_scale=input_scale,
            generator=torch.Generator().manual_seed(random_seed),
        )
    return curves


@dataclass
class ClippingSetup:
    """The regression task and model of the clipping experiment."""

    seq_len: int = 40  # T: long enough for W_hh^T to explode
    hidden_size: int = 32  # H
    rho: float = 1.5  # initial spectral radius of W_hh: past the edge, so W_hh^T explodes
    lr: float = 0.1  # plain SGD, so that the step is exactly lr * gradient
    steps: int = 400  # enough for the clipped run to beat the baseline
    batch_size: int = 64  # sequences per step, fresh ones every step
    target_scale: float = 3.0  # target = target_scale * mean of the inputs


def _mean_task_batches(cfg: ClippingSetup, g: torch.Generator):
    while True:
        x = torch.rand(cfg.batch_size, cfg.seq_len, 1, generator=g) * 2 - 1  # (B, T, 1)
        yield x, cfg.target_scale * x.mean(dim=1)  # (B, 1)


def baseline_mse(cfg: ClippingSetup | None = None) -> float:
    """The loss of always predicting 0 (the target's variance), computed exactly.

    A mean of T uniforms on [-1, 1] has variance 1 / (3T).
    """
    cfg = cfg or ClippingSetup()
    return cfg.target_scale**2 / (3 * cfg.seq_len)


def clipping_experiment(
    mode: str,
    threshold: float = 1.0,
    cfg: ClippingSetup | None = None,
    random_seed: int = 0,
) -> tuple[History, torch.nn.ModuleDict]:
    """Train an RNN to output 3 x the mean of its inputs, starting at spectral radius rho.

    mode: "none" (plain SGD), "gradient" (clip the gradient's global norm to
    ``threshold`` before each step: the right fix) or "weights" (clamp every
    weight into [-threshold, threshold] after each step: the common
    misstatement). Returns (history, model).
    """
    if mode not in ("none", "gradient", "weights"):
        raise ValueError(f"mode should be 'none', 'gradient' or 'weights', got {mode!r}")
    cfg = cfg or ClippingSetup()
    g = seed(random_seed)
    rnn = RNN(1, cfg.hidden_size)
    with torch.no_grad():
        W = torch.randn(cfg.hidden_size, cfg.hidden_size, generator=g)
        rnn.W_hh[0].copy_(scale_spectral_radius(W, cfg.rho))
    model = torch.nn.ModuleDict({"rnn": rnn, "head": torch.nn.Linear(cfg.hidden_size, 1)})

    def loss_fn(m, batch):
        x, y = batch
        return ((m["head"](m["rnn"](x)[:, -1]) - y) ** 2).mean()

    params = list(model.parameters())

    def clamp_weights(_step, _model):
        with torch.no_grad():
            for p in params:
                p.clamp_(-threshold, threshold)

    history = train(
        model,
        _mean_task_batches(cfg, g),
        loss_fn,
        torch.optim.SGD(params, lr=cfg.lr),
        cfg.steps,
        clip_norm=threshold if mode == "gradient" else None,
        after_step=clamp_weights if mode == "weights" else None,
    )
    return history, model


def late_loss(history: History, last: int = 50) -> float:
    """A run's final loss: the mean training loss over its last ``last`` steps
    (one batch is noisy)."""
    tail = history.loss[-last:]
    return sum(tail) / len(tail)


def share_on_wall(weights: torch.Tensor, threshold: float) -> float:
    """The share of the entries of ``weights`` that sit on the wall of the box
    [-threshold, threshold], where weight clamping pushes them."""
    return (weights.abs() >= threshold - 1e-6).float().mean().item()


def sensitivity_experiment(
    seq_len: int = 50,
    input_size: int = 8,
    hidden_size: int = 32,
    batch_size: int = 64,
    random_seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per-position input sensitivity of a unidirectional and a bidirectional RNN.

    Both RNNs have torch's default initialisation and read the same random
    sequences. Returns {"unidirectional": (T,), "bidirectional": (T,)}, each
    normalised to sum to 1: the share of the summary's sensitivity that each
    input position gets.
    """
    g = seed(random_seed)
    xs = torch.randn(batch_size, seq_len, input_size, generator=g)
    out = {}
    for name, bidirectional in (("unidirectional", False), ("bidirectional", True)):
        rnn = RNN(input_size, hidden_size, bidirectional=bidirectional)
        s = input_sensitivity(rnn, xs, generator=g)
        out[name] = s / s.sum()
    return out


# ------------------------------------------------------------------ truncated BPTT


class _Saved:
    """What the pack hook hands autograd: the tensor, in a box a finalizer can watch."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


class SavedTensorMeter:
    """Counts what autograd keeps for the backward pass while the context is open.

    Every tensor a forward operation saves for its backward is counted while it
    is alive (until the backward pass, or the graph, frees it). ``peak`` is the
    largest number alive at once; ``peak_bytes`` the largest total size of the
    storages they keep alive, each storage counted once (a view of the input
    and a weight saved at every step cost nothing extra).
    """

    def __init__(self):
        self.live = 0  # saved tensors alive now
        self.peak = 0  # the most alive at once
        self.peak_bytes = 0  # the most bytes of distinct storages alive at once
        self._storages: dict[int, list[int]] = {}  # data pointer -> [count, bytes]
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    def _pack(self, tensor: torch.Tensor) -> _Saved:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        entry = self._storages.setdefault(key, [0, storage.nbytes()])
        entry[0] += 1
        self.live += 1
        self.peak = max(self.peak, self.live)
        live_bytes = sum(size for _, size in self._storages.values())
        self.peak_bytes = max(self.peak_bytes, live_bytes)
        # detached: a box holding an op's own output would otherwise keep that output's
        # graph alive in a reference cycle (output -> grad_fn -> box -> output)
        box = _Saved(tensor.detach())
        weakref.finalize(box, self._release, key)
        return box

    def _release(self, key: int) -> None:
        self.live -= 1
        entry = self._storages[key]
        entry[0] -= 1
        if entry[0] == 0:
            del self._storages[key]

    @staticmethod
    def _unpack(box: _Saved) -> torch.Tensor:
        return box.tensor


@dataclass
class TruncationResult:
    """Truncated BPTT with chunks of k steps against full BPTT, on one batch."""

    k: int  # the chunk length: the state is detached every k steps
    cosine: float  # cosine similarity of the truncated gradient of W_hh with the full one
    relative_error: float  # ||g_k - g|| / ||g|| for the gradients of W_hh
    saved_tensors: int  # the most tensors autograd held for the backward pass at once
    saved_bytes: int  # the most bytes of distinct storages those tensors kept alive
    seconds: float  # median time of one forward and backward pass over the batch
    gradient: torch.Tensor  # the truncated gradient of W_hh, (H, H)


def mean_task_batch(
    cfg: ClippingSetup, batch_size: int = 256, random_seed: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the clipping experiment's task: xs (B, T, 1) uniform on [-1, 1],
    targets (B, 1) = target_scale * the mean of each sequence."""
    g = seed(random_seed)
    x = torch.rand(batch_size, cfg.seq_len, 1, generator=g) * 2 - 1  # (B, T, 1)
    return x, cfg.target_scale * x.mean(dim=1)  # (B, 1)


def truncation_experiment(
    model: torch.nn.ModuleDict,
    cfg: ClippingSetup | None = None,
    ks: Sequence[int] = (1, 2, 5, 10, 20, 40),
    batch_size: int = 256,
    random_seed: int = 1000,
    repeats: int = 15,
) -> tuple[list[TruncationResult], torch.Tensor]:
    """The gradient of the clipping task's loss under truncated BPTT, for each k in ``ks``.

    ``model`` is a clipping experiment's model ({"rnn": RNN, "head": Linear});
    a float64 copy of it reads one batch of the task (:func:`mean_task_batch`),
    and :func:`seqlab.gradients.truncated_bptt` computes the gradient of the
    loss (at the last step only) with the state detached every k steps. Each
    result compares the gradient of W_hh with full BPTT's (k = T) and records
    the cost: the saved tensors at their peak (:class:`SavedTensorMeter`) and
    the median time of ``repeats`` passes. Returns (results, terms), terms
    (T, H, H) being full BPTT's per-step terms of the gradient of W_hh
    (:func:`seqlab.gradients.w_hh_gradient_terms`).
    """
    cfg = cfg or ClippingSetup()
    model = copy.deepcopy(model).double()
    rnn, head = model["rnn"], model["head"]
    x, y = mean_task_batch(cfg, batch_size, random_seed)
    x, y = x.double(), y.double()
    T = cfg.seq_len

    def chunk_loss(hs: torch.Tensor, start: int) -> torch.Tensor | None:
        if start + hs.shape[1] < T:
            return None  # the loss reads the last state only
        return ((head(hs[:, -1]) - y) ** 2).mean()

    def gradient(k: int) -> tuple[torch.Tensor, SavedTensorMeter]:
        model.zero_grad()
        with SavedTensorMeter() as meter:
            truncated_bptt(rnn, x, k, chunk_loss)
        return rnn.W_hh[0].grad.detach().clone(), meter

    full, _ = gradient(T)
    # time every k once per round, so that a busy moment of the machine (or the
    # first, slower calls) does not fall on one k only
    for k in ks:
        gradient(k)  # warm up
    seconds: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(repeats):
        for k in ks:
            start = time.perf_counter()
            gradient(k)
            seconds[k].append(time.perf_counter() - start)
    results = []
    for k in ks:
        g, meter = gradient(k)
        cosine = torch.nn.functional.cosine_similarity(g.flatten(), full.flatten(), dim=0)
        results.append(
            TruncationResult(
                k=k,
                cosine=cosine.item(),
                relative_error=((g - full).norm() / full.norm()).item(),
                saved_tensors=meter.peak,
                saved_bytes=meter.peak_bytes,
                seconds=float(np.median(seconds[k])),
                gradient=g,
            )
        )
    # the same gradient, term by term: the loss sends back dL/dh_T only
    hs = rnn(x)  # (B, T, H)
    (dl_dhs,) = torch.autograd.grad(((head(hs[:, -1]) - y) ** 2).mean(), hs)
    h0 = x.new_zeros(batch_size, rnn.hidden_size)
    terms = w_hh_gradient_terms(hs.detach(), h0, rnn.W_hh[0].detach(), dl_dhs)
    return results, terms


# ------------------------------------------------------------------ stacked RNNs


def depth_experiment(
    depths: Sequence[int] = (1, 2, 3, 4),
    seq_len: int = 50,
    input_size: int = 8,
    hidden_size: int = 32,
    batch_size: int = 64,
    random_seed: int = 0,
) -> dict[int, dict[str, int | torch.Tensor]]:
    """Parameters and input sensitivity of stacked RNNs of each depth.

    For each number of layers L, a :class:`seqlab.rnn.StackedRNN` with torch's
    default initialisation reads the same random sequences. Returns
    {L: {"parameters": int, "sensitivity": (T,)}}: the sensitivity is
    :func:`seqlab.gradients.input_sensitivity`, the mean norm of the gradient of
    the top layer's last state with respect to each input x_t (not normalised).
    """
    g = seed(random_seed)
    xs = torch.randn(batch_size, seq_len, input_size, generator=g)
    out = {}
    for depth in depths:
        rnn = StackedRNN(input_size, hidden_size, depth)
        out[depth] = {
            "parameters": sum(p.numel() for p in rnn.parameters()),
            "sensitivity": input_sensitivity(rnn, xs, generator=g),
        }
    return out


# ------------------------------------------------------------------ the explorer


class SpectralRadiusExplorer(Explorer):
    """Gradient norm against distance, with the spectral radius of W_hh on a slider.

    For each rho, W_hh is one fixed random Gaussian (H, H) matrix rescaled to
    spectral radius rho, and the figure shows how much of a gradient at the last
    step reaches each earlier hidden state (:func:`gradient_norm_curves`) for a
    linear RNN and a tanh RNN, beside the rate rho**k that the spectral radius
    predicts (Pascanu et al., 2013).

    rhos: the slider's values, evenly spaced (also the frames of the static
    player). steps: distances 0..steps-1. input_scale: standard deviation of
    the inputs of the tanh RNN; small inputs keep tanh out of saturation.
    dpi: resolution of the frames (the static player embeds one PNG per rho).
    """

    interval = 400  # milliseconds per frame of the static player

    def __init__(
        self,
        rhos: Sequence[float] = tuple(np.round(np.linspace(0.6, 2.2, 17), 2)),
        steps: int = 40,  # distances k = 0, ..., steps - 1
        hidden_size: int = 32,  # H
        input_scale: float = 0.1,  # std of the tanh RNN's inputs: small keeps it unsaturated
        random_seed: int = 0,
        dpi: int = 72,
        ylim: tuple[float, float] = (1e-12, 1e12),  # the same y axis for every frame
    ):
        if len(rhos) < 2:
            raise ValueError(f"rhos should hold at least 2 values, got {list(rhos)}")
        self.rhos = [float(r) for r in rhos]
        self.steps = steps
        self.hidden_size = hidden_size
        self.input_scale = input_scale
        self.random_seed = random_seed
        self.dpi = dpi
        self.ylim = ylim
        self._curves: dict[float, dict[str, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return (
            f"SpectralRadiusExplorer(rho from {self.rhos[0]:g} to {self.rhos[-1]:g}, "
            f"{len(self.rhos)} values, {self.steps} steps)"
        )

    def curves(self, rho: float) -> dict[str, torch.Tensor]:
        """{"linear RNN": (steps,), "tanh RNN, ...": (steps,)}: gradient norms for this rho."""
        rho = float(rho)
        if rho not in self._curves:
            common = dict(
                hidden_size=self.hidden_size,
                steps=self.steps,
                orthogonal_at_one=False,  # the same matrix for every rho, only rescaled
                random_seed=self.random_seed,
                input_scale=self.input_scale,
            )
            self._curves[rho] = {
                "linear RNN": gradient_norm_curves([rho], nonlinearity="linear", **common)[rho],
                f"tanh RNN, inputs of std {self.input_scale:g}": gradient_norm_curves(
                    [rho], nonlinearity="tanh", **common
                )[rho],
            }
        return self._curves[rho]

    def frames(self) -> list[float]:
        return self.rhos

    def figure(self) -> tuple[Figure, Axes]:
        with course_style():
            fig = Figure(figsize=(6.4, 3.4), dpi=self.dpi, layout="constrained")
            ax = fig.add_subplot()
        return fig, ax

    def draw(self, rho: float, ax: Axes) -> None:
        """Draw the figure for one rho on ``ax`` (cleared first)."""
        with course_style():
            ax.clear()
            plot_norms_against_distance(
                self.curves(rho),
                ax=ax,
                ylabel=r"$\|\partial \langle u, h_T \rangle / \partial h_{T-k}\|$",
                title=rf"spectral radius of $W_{{hh}}$: $\rho = {rho:.2f}$",
                ylim=self.ylim,
                reference_rho=rho,
            )
            ax.set_xlim(0, self.steps - 1)
            ax.legend(loc="upper left")

    def controls(self) -> dict[str, ipywidgets.Widget]:
        """A slider over rho, starting at the value closest to 1 (the edge)."""
        slider = ipywidgets.FloatSlider(
            value=min(self.rhos, key=lambda r: abs(r - 1.0)),
            min=self.rhos[0],
            max=self.rhos[-1],
            step=self.rhos[1] - self.rhos[0],
            description="ρ",
            readout_format=".2f",
            continuous_update=False,
        )
        return {"rho": slider}

    def alt(self) -> str:
        return (
            "Gradient norm against distance for a linear and a tanh RNN, one frame per "
            f"spectral radius from {self.rhos[0]:g} to {self.rhos[-1]:g}"
        )


def spectral_radius_explorer(**kwargs) -> SpectralRadiusExplorer:
    """An explorer of how the spectral radius of W_hh sets the gradient's fate.

    Display the result in a notebook cell: a live slider in Jupyter, a player
    of precomputed frames in the static book. Keyword arguments go to
    :class:`SpectralRadiusExplorer`.
    """
    return SpectralRadiusExplorer(**kwargs)
