"""Chapter 2's experiments: gated cells keep gradients alive, and solve the adding problem.

Each function runs one experiment of the book chapter and returns numbers,
so that the page, the exercise and the tests all compute the same thing.

Training the three networks on the adding problem takes minutes, longer than
a book page may take to execute, so it is done once by this module's command
line, which saves small checkpoints (weights and training curves) that the
book only evaluates::

    python -m seqlab.chapters.lstm_gru --out seqlab/checkpoints/adding_checkpoints.pt
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..base.env import seed
from ..base.train import History, to_device, train
from ..lstm import GRU, LSTM
from ..rnn import RNN

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints" / "adding_checkpoints.pt"
KINDS = ("rnn", "lstm", "gru")
LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}


def adding_batch(
    batch_size: int, seq_len: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the adding problem (Hochreiter & Schmidhuber, 1997).

    Each step carries two features: a value drawn uniformly from [0, 1] and a
    marker, 1 at exactly two steps (one in each half of the sequence) and 0
    elsewhere. The target is the sum of the two marked values.
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
    batch_size: int = 64
    clip_norm: float = 1.0  # global-norm gradient clipping (chapter 1)
    eval_every: int = 100  # steps between two test losses on the curves
    test_size: int = 1000  # sequences in the test set the curves are measured on
    random_seed: int = 0


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
        input_size: int = 2,
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


def save_checkpoints(path: Path, cfg: AddingSetup | None = None, progress: bool = True) -> dict:
    """Train the three models and save their weights and curves to ``path``.

    The file holds {"setup": dict, "models": {kind: {"state": state_dict of the
    fused model, "loss": (steps,), "eval_step": (E,), "eval_loss": (E,),
    "seconds": float}}}, in float32 (a few hundred kB).
    """
    cfg = cfg or AddingSetup()
    out = {"setup": asdict(cfg), "models": {}}
    for kind in KINDS:
        start = time.perf_counter()
        model, history = train_adding(kind, cfg, progress=progress)
        out["models"][kind] = {
            "state": {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()},
            "loss": torch.tensor(history.loss, dtype=torch.float32),
            "eval_step": torch.tensor(history.eval_step),
            "eval_loss": torch.tensor(history.eval_loss, dtype=torch.float32),
            "seconds": time.perf_counter() - start,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def load_checkpoints(
    path: Path = CHECKPOINTS,
) -> tuple[AddingSetup, dict[str, AddingModel], dict[str, History]]:
    """The trained adding-problem models, as explicit seqlab models, and their histories."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = AddingSetup(**saved["setup"])
    models, histories = {}, {}
    for kind, entry in saved["models"].items():
        fused = AddingModel(kind, cfg.hidden_size, fused=True)
        fused.load_state_dict(entry["state"])
        models[kind] = fused.explicit().eval()
        histories[kind] = History(
            loss=entry["loss"].tolist(),
            eval_step=entry["eval_step"].tolist(),
            eval_loss=entry["eval_loss"].tolist(),
        )
    return cfg, models, histories


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqlab.chapters.lstm_gru",
        description="Train the RNN, LSTM and GRU of chapter 2 on the adding problem "
        "and save their checkpoints.",
    )
    parser.add_argument("--out", type=Path, default=CHECKPOINTS, help="checkpoint file")
    parser.add_argument("--steps", type=int, default=AddingSetup.steps)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    saved = save_checkpoints(args.out, AddingSetup(steps=args.steps))
    for kind, entry in saved["models"].items():
        final = entry["eval_loss"][-1].item()
        print(f"{LABELS[kind]:>9}: test MSE {final:.4f} after {entry['seconds']:.0f} s")
    size = args.out.stat().st_size / 1024
    print(f"saved {args.out} ({size:.0f} kB) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
