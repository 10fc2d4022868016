"""`make bench`'s quick sections run and write the table the README shows: layers (explicit and
fast paths), decoding and generation. The slow sections (book, exercises, a class) are
timed by `make bench` itself; their code is the grading and book code the other tests run."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import run as bench  # noqa: E402

pytestmark = pytest.mark.bench


def test_quick_sections_write_results_and_a_table_without_touching_the_readme(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert bench.main(["--skip", "book,exercises,class,cluster", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    layers = results["layers"]
    for name in ("RNN", "LSTM", "GRU", "multi-head attention"):
        for row in (layers[name], layers[f"{name}, fast path"]):
            assert row["forward_ratio"] > 0 and row["forward_backward_ratio"] > 0
    generation = results["generation"]
    assert generation["new_tokens"] == 256
    assert generation["cached_tokens_per_s"] > 0 and generation["uncached_tokens_per_s"] > 0
    decoding = results["decoding"]
    assert decoding["batched_beam5_speedup"] == pytest.approx(
        decoding["batched_beam5_sentences_per_s"] / decoding["beam5_sentences_per_s"]
    )
    table = (tmp_path / "results.md").read_text()
    assert "| seqlab LSTM, fast path / torch built-in |" in table
    assert "256 new tokens" in table
    assert "book, build from clean" not in table  # skipped sections leave no row
    assert (REPO / "README.md").read_text() == readme  # only a full run rewrites it


def test_the_table_reports_one_students_six_notebooks_against_the_target():
    results = {
        "date": "today",
        "machine": {"cpus": 2, "platform": "here", "torch": "2.13.0"},
        "exercises": {
            "rnn_gradients": {"notebook_s": 4.0, "autograde_s": 17.0},
            "one student, all chapters": {"notebooks": 6, "seconds": 45.0, "jobs": 2},
        },
    }
    table = bench.table(results)
    assert "| one student's 6 notebooks autograded by one `make grade` (2 jobs" in table
    assert "| 45.0 s | <= 60 s (six) |" in table
    assert "exercise `rnn_gradients`: top to bottom / autograde one | 4.0 s / 17.0 s" in table
    assert "exercise `seq2seq`: top to bottom / autograde one | not yet / not yet" in table


def test_the_table_reports_the_sandboxs_cost_and_the_clusters_ratio():
    results = {
        "date": "today",
        "machine": {"cpus": 2, "platform": "here", "torch": "2.13.0"},
        "exercises": {
            "one student, all chapters": {
                "notebooks": 6, "seconds": 46.0, "unsandboxed_s": 40.0, "jobs": 2
            },
        },
        "class": {
            "students": 100, "parallel_s": 220.0, "sequential_autograde_s": 360.0,
            "speedup": 360 / 220, "same_scores": True, "unsandboxed_s": 200.0,
            "unsandboxed_same_scores": True,
        },
        "cluster": {
            "students": 40, "workers": 2, "cluster_s_per_submission_per_worker": 6.6,
            "local_s_per_submission_per_worker": 6.0, "cluster_over_local": 1.1,
            "same_scores": True,
        },
    }  # fmt: skip
    table = bench.table(results)
    assert "sandboxed / not | 46.0 s / 40.0 s (15 %) | <= 10 % |" in table
    assert "class of 100: sandboxed / not | 220.0 s / 200.0 s (10 %, same scores: True)" in table
    assert "cluster / local | 6.6 s / 6.0 s (1.10x, same scores: True) | <= 1.2x |" in table
