"""seqlab.base.train: the one training loop, its hooks, and moving batches to the device."""

import itertools

import pytest
import torch

from seqlab.base.train import History, to_device, train

pytestmark = pytest.mark.base


def test_train_moves_batches_to_the_model_device_and_seeds_itself():
    def run(draws_before):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1).double()
        torch.randn(draws_before)  # leaves the global generator somewhere else each time
        batches = ((torch.randn(4, 2), torch.randn(4, 1)) for _ in itertools.count())

        def loss_fn(m, batch):
            x, y = batch
            assert x.dtype == torch.float32  # moved to the device, dtype left alone
            return ((m(x.double()) - y.double()) ** 2).mean()

        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return train(model, batches, loss_fn, opt, 5, random_seed=3, eval_fn=lambda m: 1.0)

    first, second = run(1), run(7)
    assert isinstance(first, History) and first.loss == second.loss
    assert first.eval_step == [5] and first.eval_loss == [1.0]


def test_to_device_handles_nested_batches():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), [torch.ones(3)]), "n": 3}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["n"] == 3 and isinstance(moved["pair"], tuple)
    assert isinstance(moved["pair"][1], list) and torch.equal(moved["pair"][1][0], torch.ones(3))


def test_to_device_moves_an_object_through_its_own_to_method():
    class Pair:
        def __init__(self, a):
            self.a = a

        def to(self, device):
            return Pair(self.a.to(device=device, dtype=torch.float64))

    moved = to_device([Pair(torch.zeros(2))], torch.device("cpu"))
    assert moved[0].a.dtype == torch.float64  # Pair.to ran


def _line_fit(steps, **kwargs) -> tuple[History, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    batches = ((torch.ones(2, 1), torch.full((2, 1), 100.0)) for _ in itertools.count())

    def loss_fn(m, batch):
        x, y = batch
        return ((m(x) - y) ** 2).mean()

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return train(model, batches, loss_fn, opt, steps, **kwargs), model


def test_train_calls_after_step_from_one_and_sets_the_learning_rate_before_each_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batches = ((torch.ones(1, 1), torch.ones(1, 1)) for _ in itertools.count())
    seen = []
    train(model, batches, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), opt, 3,
          lr_at=lambda s: 0.5**s,
          after_step=lambda step, m: seen.append((step, opt.param_groups[0]["lr"])))  # fmt: skip
    assert seen == [(1, 1.0), (2, 0.5), (3, 0.25)]


def test_train_clips_the_gradient_and_records_its_norm_before_clipping():
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in torch.nn.Linear(1, 1).parameters()])
    runs = {clip: _line_fit(1, clip_norm=clip) for clip in (None, 1.0)}  # the same start
    (plain, _), (clipped, _) = runs.values()
    assert clipped.grad_norm == pytest.approx(plain.grad_norm) and plain.grad_norm[0] > 1.0
    step = {
        clip: (torch.cat([p.detach().flatten() for p in model.parameters()]) - start).norm().item()
        for clip, (_, model) in runs.items()
    }
    assert step[1.0] == pytest.approx(0.01 * 1.0, rel=1e-4)  # lr * threshold
    assert step[None] > 10 * step[1.0]


def test_train_stops_when_the_loss_is_no_longer_finite():
    batches = iter([torch.ones(1), torch.full((1,), float("inf")), torch.ones(1)])
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train(model, batches, lambda m, x: (m(x[:, None]) ** 2).mean(), opt, 3)
    assert history.diverged and history.loss[-1] == float("inf") and len(history.loss) == 2
    assert len(history.grad_norm) == 1
