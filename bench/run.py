"""`make bench`: the course measured end to end, in one run, on the machine it runs on.

    python bench/run.py [--students 100] [--cluster-students 40]
                        [--skip book,exercises,class,cluster,layers,decoding,generation]

Writes bench/results.json (every figure) and bench/results.md (the table the
README shows between its ``bench`` markers). Chapters that are not written yet
appear as "not yet" rows, so the table shows what is missing.

Sections:
* book: a build from clean (a new output folder, so no execution cache) and a
  cached rebuild; seconds each chapter took to execute (from jupyter-cache);
* exercises: each exercise, answered with its solution, run top to bottom;
  autograding that submission (``make grade``'s code, one at a time); one
  student's six notebooks graded by one ``make grade``, in the grading sandbox
  and without it;
* class: N chapter-1 submissions, ``make grade`` (in the sandbox and without
  it) against nbgrader's sequential ``nbgrader autograde`` (bench/grade_class.py);
* cluster: a class graded locally and on a local Dask cluster of two workers,
  seconds per submission per worker (bench/grade_cluster.py; needs PostgreSQL);
* layers: seqlab's explicit layers, and their fast paths, against torch's
  built-ins, forward and forward+backward, as time ratios (seqlab / torch);
* decoding: greedy and beam (size 5) sentences per second on chapter 3's
  translation model, one sentence at a time and batched, and the speed-up;
* generation: tokens per second of a GPT the size of chapter 6's with and
  without its key/value cache, 256 new tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

from seqlab.base import checkpoints
from seqlab.chapters import CHAPTERS  # the chapter ids, in the book's order
from seqlab.kit import course, grade, sandbox

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    return dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"], MPLBACKEND="Agg")


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


# --- book -------------------------------------------------------------------------------


def _build_book(out: Path) -> float:
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "jupyter-book"), "build", str(REPO), "--path-output", str(out)]
    seconds, proc = _timed(subprocess.run, cmd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the book did not build:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds


def bench_book() -> dict:
    from jupyter_cache import get_cache

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        clean = _build_book(out)
        cached = _build_book(out)
        chapters = {}
        for record in get_cache(out / "_build" / ".jupyter_cache").list_cache_records():
            name = Path(record.uri).stem
            chapters[name] = record.data.get("execution_seconds")
    return {"clean_s": clean, "cached_s": cached, "chapter_execution_s": chapters}


# --- exercises and grading --------------------------------------------------------------


def _answered(root: Path, aid: str) -> nbformat.NotebookNode:
    nb = nbformat.read(root / "exercises" / aid / f"{aid}.ipynb", as_version=4)
    answers = course.solution_answers(root, aid)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def _scratch_course(root: Path) -> Path:
    """A course in ``root`` with this repository's config, solutions and exercises."""
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for folder in ("solutions", "exercises"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def bench_exercises() -> dict:
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = _scratch_course(Path(tmp))
        for aid in course.assignments(root):
            nb = _answered(root, aid)
            run_dir = root / "run" / aid
            run_dir.mkdir(parents=True)
            client = NotebookClient(nb, timeout=600, resources={"metadata": {"path": run_dir}})
            top_to_bottom, _ = _timed(client.execute)
            folder = root / "submitted" / "student" / aid
            folder.mkdir(parents=True)
            nbformat.write(_answered(root, aid), folder / f"{aid}.ipynb")
            autograde, summary = _timed(grade.grade, root, [aid], 1)
            if summary.failed:
                raise RuntimeError(f"{aid}: the solution did not grade: {summary.failed}")
            result[aid] = {"notebook_s": top_to_bottom, "autograde_s": autograde}
    result["one student, all chapters"] = bench_one_student()
    return result


def bench_one_student() -> dict:
    """One student's notebooks, every chapter answered with its solution, graded by one
    ``make grade`` (its default: as many jobs as cores) on a new course with an empty
    gradebook: recording the assignments, autograding, feedback and grades.csv. Graded
    in the grading sandbox (as always) and without it, interleaved, twice each."""
    result = {"jobs": os.cpu_count()}
    # interleaved and repeated, the fastest of each kept: whichever runs first pays for
    # cold caches, which would otherwise read as the sandbox's cost
    for label in ("unsandboxed_s", "seconds") * 2:
        with tempfile.TemporaryDirectory() as tmp:
            root = _scratch_course(Path(tmp))
            ids = course.assignments(root)
            for aid in ids:
                folder = root / "submitted" / "student" / aid
                folder.mkdir(parents=True)
                nbformat.write(_answered(root, aid), folder / f"{aid}.ipynb")
            if label == "unsandboxed_s":
                os.environ[sandbox.NO_SANDBOX] = "1"
            try:
                seconds, summary = _timed(grade.grade, root, ids)
            finally:
                os.environ.pop(sandbox.NO_SANDBOX, None)
            if summary.failed or len(summary.graded) != len(ids):
                raise RuntimeError(f"one student's notebooks did not all grade: {summary.failed}")
            scores = {row["assignment"]: float(row["score"]) for row in course.read_grades(root)}
        result[label] = min(seconds, result.get(label, seconds))
        result.setdefault("scores", scores)
        result["same_scores"] = result["scores"] == scores
    return result | {"notebooks": len(ids)}


def _script(name: str, *args: str) -> dict:
    """Run bench/<name> with ``args`` and ``--out`` a scratch file; returns what it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, str(REPO / "bench" / name), *args, "--out", str(out)],
            env=_env(),
            check=True,
            capture_output=True,
        )
        return json.loads(out.read_text())


def bench_class(students: int) -> dict:
    return _script("grade_class.py", "--students", str(students))


def bench_cluster(students: int) -> dict:
    """bench/grade_cluster.py: the same class graded locally and on a local Dask cluster of
    two workers (a scratch PostgreSQL gradebook), per submission and worker."""
    return _script("grade_cluster.py", "--students", str(students), "--workers", "2")


# --- layers -----------------------------------------------------------------------------


def _best_of(fn, repeats: int = 7) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by whatever else the machine does."""
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _ratio(ours, theirs, inputs) -> dict:
    """Best time of seqlab's module over torch's, forward and forward+backward."""

    def forward(module):
        with torch.no_grad():
            module(*inputs)

    def both(module):
        out = module(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()

    f_ours, f_theirs = _best_of(lambda: forward(ours)), _best_of(lambda: forward(theirs))
    b_ours, b_theirs = _best_of(lambda: both(ours)), _best_of(lambda: both(theirs))
    return {
        "forward_ratio": f_ours / f_theirs,
        "forward_backward_ratio": b_ours / b_theirs,
        "forward_ms": 1e3 * f_ours,
        "torch_forward_ms": 1e3 * f_theirs,
    }


def bench_layers() -> dict:
    from seqlab.lstm import GRU, LSTM
    from seqlab.rnn import RNN

    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread: ratios that do not depend on the other core's load
    B, T, D, H = 32, 50, 32, 64
    xs = torch.randn(B, T, D)
    result = {}
    for name, Ours, Theirs in (
        ("RNN", RNN, torch.nn.RNN),
        ("LSTM", LSTM, torch.nn.LSTM),
        ("GRU", GRU, torch.nn.GRU),
    ):
        theirs = Theirs(D, H, batch_first=True)
        result[name] = _ratio(Ours(D, H).load_from_torch(theirs), theirs, (xs,))
        fast = Ours(D, H, fast=True).load_from_torch(theirs)
        result[f"{name}, fast path"] = _ratio(fast, theirs, (xs,))
    result.update(bench_attention())
    return result


class _TorchMHA(torch.nn.Module):
    """torch.nn.MultiheadAttention called as seqlab's is: (q, k, v) -> output only."""

    def __init__(self, mha: torch.nn.MultiheadAttention):
        super().__init__()
        self.mha = mha

    def forward(self, q, k, v):
        return self.mha(q, k, v, need_weights=False)[0]


class _Function(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        out = self.fn(*args)
        return out[0] if isinstance(out, tuple) else out


def bench_attention() -> dict:
    """Chapter 5's attention against torch's, at the issue's size (B=32, T=128, 256, 8 heads)."""
    import torch.nn.functional as F

    from seqlab.transformer import MultiHeadAttention, copy_torch_mha, scaled_dot_product_attention

    B, T, d_model, n_heads = 32, 128, 256, 8
    x = torch.randn(B, T, d_model, requires_grad=True)
    theirs = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True)
    result = {}
    for name, fast in (("multi-head attention", False), ("multi-head attention, fast path", True)):
        ours = MultiHeadAttention(d_model, n_heads, fast=fast)
        copy_torch_mha(ours, theirs)
        result[name] = _ratio(ours, _TorchMHA(theirs), (x, x, x))
    q = torch.randn(B, n_heads, T, d_model // n_heads, requires_grad=True)
    result["scaled dot-product attention"] = _ratio(
        _Function(scaled_dot_product_attention), _Function(F.scaled_dot_product_attention),
        (q, q, q),
    )  # fmt: skip
    return result


# --- generation -------------------------------------------------------------------------


def bench_generation() -> dict:
    """Tokens per second of a GPT the size of chapter 6's shipped model, 256 new tokens after a
    one-token prompt, with and without the cache. The shipped model reads at most 144
    positions, so the timed model has its widths and depth with room for 257 (random
    weights: the speed does not depend on them)."""
    from dataclasses import asdict, replace

    from seqlab.gpt import GPT, GPTConfig, tokens_per_second

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = GPTConfig(**checkpoints.load(checkpoints.path_of("gpt_prompting")).config)
    model = GPT(replace(cfg, block_size=max(cfg.block_size, 257)))
    new = 256
    which = ", ".join(f"{k} {v}" for k, v in asdict(cfg).items() if k in ("n_layer", "n_embd"))
    which = f"the shipped model's size: {which}, vocabulary {cfg.vocab_size}"
    return {
        "model": which,
        "new_tokens": new,
        "cached_tokens_per_s": tokens_per_second(model, 1, new, use_cache=True),
        "uncached_tokens_per_s": tokens_per_second(model, 1, new, use_cache=False),
    }


# --- decoding ---------------------------------------------------------------------------


def bench_decoding() -> dict:
    """Sentences per second on chapter 3's translation test set (one CPU thread)."""
    from seqlab.seq2seq import Seq2Seq, Seq2SeqConfig, decode_ids, make_task

    torch.set_num_threads(1)
    saved = checkpoints.load(checkpoints.path_of("seq2seq_translation"))
    model = Seq2Seq(Seq2SeqConfig(**saved.config))
    model.load_state_dict(saved.state)
    model.eval()
    task = make_task(**saved.meta["task"])
    examples = task.test[:200]

    def rate(**kwargs) -> float:
        seconds, _ = _timed(decode_ids, model, task, examples, max_len=25, **kwargs)
        return len(examples) / seconds

    result = {
        "greedy_sentences_per_s": rate(method="greedy", batched=False),
        "beam5_sentences_per_s": rate(method="beam", beam_size=5, batched=False),
        "batched_greedy_sentences_per_s": rate(method="greedy"),
        "batched_beam5_sentences_per_s": rate(method="beam", beam_size=5),
    }
    result["batched_beam5_speedup"] = (
        result["batched_beam5_sentences_per_s"] / result["beam5_sentences_per_s"]
    )
    return result


# --- report -----------------------------------------------------------------------------


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "not yet"
    return f"{value:.{digits}f}{unit}"


def table(results: dict) -> str:
    rows = ["| what | measured | target |", "| --- | --- | --- |"]
    book = results.get("book")
    if book:
        rows.append(f"| book, build from clean | {_fmt(book['clean_s'], ' s')} | <= 300 s |")
        rows.append(f"| book, cached rebuild | {_fmt(book['cached_s'], ' s')} | <= 30 s |")
        for aid in CHAPTERS:
            seconds = book["chapter_execution_s"].get(aid)
            rows.append(f"| book chapter `{aid}` executes in | {_fmt(seconds, ' s')} | |")
    exercises = dict(results.get("exercises") or {})
    one = exercises.pop("one student, all chapters", None)
    if exercises:
        for aid in CHAPTERS:
            row = exercises.get(aid, {})
            rows.append(
                f"| exercise `{aid}`: top to bottom / autograde one | "
                f"{_fmt(row.get('notebook_s'), ' s')} / {_fmt(row.get('autograde_s'), ' s')} "
                f"| <= 60 s / <= 30 s |"
            )
    if one:
        rows.append(
            f"| one student's {one['notebooks']} notebooks autograded by one `make grade` "
            f"({one['jobs']} jobs, new gradebook, feedback and grades.csv included) "
            f"| {_fmt(one['seconds'], ' s')} | <= 60 s (six) |"
        )
        if one.get("unsandboxed_s"):
            rows.append(
                f"| grading sandbox's cost, one student's {one['notebooks']} notebooks: "
                f"sandboxed / not | {_fmt(one['seconds'], ' s')} / "
                f"{_fmt(one['unsandboxed_s'], ' s')} "
                f"({_fmt(100 * (one['seconds'] / one['unsandboxed_s'] - 1), ' %', 0)}) "
                f"| <= 10 % |"
            )
    grading = results.get("class")
    if grading:
        rows.append(
            f"| class of {grading['students']} chapter-1 submissions: `make grade` / "
            f"`nbgrader autograde` | {_fmt(grading['parallel_s'], ' s')} / "
            f"{_fmt(grading['sequential_autograde_s'], ' s')} "
            f"({_fmt(grading['speedup'], 'x', 2)}, same scores: {grading['same_scores']}) | |"
        )
        if grading.get("unsandboxed_s"):
            rows.append(
                f"| grading sandbox's cost, class of {grading['students']}: sandboxed / not "
                f"| {_fmt(grading['parallel_s'], ' s')} / {_fmt(grading['unsandboxed_s'], ' s')} "
                f"({_fmt(100 * (grading['parallel_s'] / grading['unsandboxed_s'] - 1), ' %', 0)}, "
                f"same scores: {grading['unsandboxed_same_scores']}) | <= 10 % |"
            )
    dask = results.get("cluster")
    if dask:
        rows.append(
            f"| class of {dask['students']} chapter-1 submissions on a local Dask cluster "
            f"({dask['workers']} workers, PostgreSQL gradebook): seconds per submission per "
            f"worker, cluster / local | {_fmt(dask['cluster_s_per_submission_per_worker'], ' s')}"
            f" / {_fmt(dask['local_s_per_submission_per_worker'], ' s')} "
            f"({_fmt(dask['cluster_over_local'], 'x', 2)}, same scores: {dask['same_scores']}) "
            f"| <= 1.2x |"
        )
    layers = results.get("layers")
    if layers:
        for name, row in layers.items():
            cell = (
                "not yet"
                if row is None
                else f"{row['forward_ratio']:.2f}x forward, "
                f"{row['forward_backward_ratio']:.2f}x forward+backward"
            )
            target = "<= 1.5x" if "fast path" in name else "(explicit: what the book teaches)"
            rows.append(f"| seqlab {name} / torch built-in | {cell} | {target} |")
    for key, value in (results.get("decoding") or {}).items():
        rows.append(f"| decoding (chapter 3): {key.replace('_', ' ')} | {_fmt(value, '', 1)} | |")
    gen = results.get("generation")
    if gen:
        rows.append(
            f"| GPT generation ({gen['model']}, {gen['new_tokens']} new tokens), tokens/s with / "
            f"without the cache | {_fmt(gen['cached_tokens_per_s'], '', 0)} / "
            f"{_fmt(gen['uncached_tokens_per_s'], '', 0)} | |"
        )
    else:
        rows.append("| GPT generation tokens/s, with / without the cache | not yet | |")
    machine = results["machine"]
    head = (
        f"Measured by `make bench` on {results['date']}: {machine['cpus']} CPU cores, "
        f"{machine['platform']}, torch {machine['torch']}, device used: CPU.\n\n"
    )
    return head + "\n".join(rows) + "\n"


def _update_readme(md: str) -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1]
        readme.write_text(f"{before}{begin}\n{md}{end}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=100, help="size of the graded class")
    parser.add_argument(
        "--cluster-students", type=int, default=40, help="size of the class graded on the cluster"
    )
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out")
    parser.add_argument("--out", type=Path, default=REPO / "bench")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "torch": torch.__version__,
        },
    }
    sections = {
        "book": bench_book,
        "exercises": bench_exercises,
        "class": lambda: bench_class(args.students),
        "cluster": lambda: bench_cluster(args.cluster_students),
        "layers": bench_layers,
        "decoding": bench_decoding,
        "generation": bench_generation,
    }
    for name, fn in sections.items():
        if name in skip:
            continue
        print(f"[bench] {name} ...", flush=True)
        seconds, results[name] = _timed(fn)
        print(f"[bench] {name} done in {seconds:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = table(results)
    (args.out / "results.md").write_text("# Benchmarks\n\n" + md)
    if not skip:
        _update_readme(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
