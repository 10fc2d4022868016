"""seqlab.base.env: the device the course runs on, and seeding."""

import pytest
import torch

import seqlab

pytestmark = pytest.mark.base


def test_device_prefers_cuda_then_mps_then_cpu_and_obeys_the_override(monkeypatch):
    monkeypatch.delenv("SEQLAB_DEVICE", raising=False)
    want = "cuda" if torch.cuda.is_available() else None
    if want is None and torch.backends.mps.is_available():
        want = "mps"
    assert seqlab.device().type == (want or "cpu")
    monkeypatch.setenv("SEQLAB_DEVICE", "cpu")
    assert seqlab.device() == torch.device("cpu")


def test_seed_makes_runs_repeatable_and_rejects_non_integers():
    seqlab.seed(3)
    a = torch.randn(4)
    seqlab.seed(3)
    assert torch.equal(a, torch.randn(4))
    g1, g2 = seqlab.seed(5), seqlab.seed(5)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))
    with pytest.raises(TypeError, match="seed expects an int, got float"):
        seqlab.seed(1.5)
