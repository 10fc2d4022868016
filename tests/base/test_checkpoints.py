"""One checkpoint format for every chapter: save, load, presets compared with today's."""

from dataclasses import dataclass, field

import pytest
import torch

from seqlab.base import checkpoints
from seqlab.base.train import History

pytestmark = pytest.mark.base


@dataclass
class Preset:
    hidden: int = 8  # H
    task: dict = field(default_factory=lambda: {"n": 3})
    sizes: tuple = (1, 2)


def test_save_then_load_gives_back_preset_config_state_and_meta(tmp_path):
    model = torch.nn.Linear(3, 2).double()
    state = checkpoints.cpu_state(model)
    new_folder = tmp_path / "sub"
    path = checkpoints.save(new_folder / "m.pt", Preset(), state, config={"d": 3}, seconds=1.5)
    saved = checkpoints.load(path)
    assert saved.preset == {"hidden": 8, "task": {"n": 3}, "sizes": (1, 2)}
    assert saved.config == {"d": 3} and saved.meta == {"seconds": 1.5}
    assert saved.state.keys() == model.state_dict().keys()
    assert saved.state["weight"].dtype == torch.float32  # cast for a small file
    assert torch.allclose(saved.state["weight"].double(), model.weight, atol=1e-7)


def test_cpu_state_can_keep_the_dtype():
    model = torch.nn.Linear(2, 2).half()
    assert checkpoints.cpu_state(model, dtype=None)["weight"].dtype == torch.float16


def test_history_round_trips_through_a_checkpoint():
    history = History(loss=[3.0, 2.0], eval_step=[2], eval_loss=[2.5])
    back = checkpoints.history_from(checkpoints.history_dict(history))
    assert (back.loss, back.eval_step, back.eval_loss) == ([3.0, 2.0], [2], [2.5])
    tensors = {"loss": torch.tensor([1.0]), "eval_step": torch.tensor([1]), "eval_loss": []}
    assert checkpoints.history_from(tensors).eval_step == [1]


def test_load_refuses_a_file_of_another_format_and_names_the_command_for_a_missing_one(tmp_path):
    torch.save({"state": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="not a seqlab checkpoint"):
        checkpoints.load(tmp_path / "old.pt")
    with pytest.raises(FileNotFoundError, match="python -m seqlab.chapters checkpoints"):
        checkpoints.load(tmp_path / "missing.pt")


def test_stale_names_the_fields_that_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    checkpoints.save(checkpoints.path_of("m"), Preset(), {})
    assert checkpoints.stale("m", Preset()) is None
    why = checkpoints.stale("m", Preset(hidden=16))
    assert "m.pt" in why and "hidden" in why and "task" not in why
    assert "missing" in checkpoints.stale("other", Preset())


def test_as_dict_accepts_dataclasses_and_dicts_only():
    assert checkpoints.as_dict({"a": 1}) == {"a": 1}
    with pytest.raises(TypeError):
        checkpoints.as_dict(3)
