"""The chapters' command line: train the models the book ships.

    python -m seqlab.chapters checkpoints                 # every chapter's presets
    python -m seqlab.chapters checkpoints seq2seq         # one chapter's
    python -m seqlab.chapters checkpoints attention --only attention_translation_dot_32
    python -m seqlab.chapters stale                       # which shipped files are out of date

A chapter that ships trained weights has ``CHECKPOINTS`` (file name -> the
preset it is trained from) and ``make_checkpoint(name, progress, device)``,
which trains that preset and saves ``seqlab/checkpoints/<name>.pt`` with
:func:`seqlab.base.checkpoints.save`.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from seqlab.base import checkpoints
from seqlab.chapters import (
    CHAPTERS,
    attention,
    gpt_prompting,
    lstm_gru,
    rnn_gradients,
    seq2seq,
    transformers,
)

MODULES = {
    m.__name__.rsplit(".", 1)[1]: m
    for m in (rnn_gradients, lstm_gru, seq2seq, attention, transformers, gpt_prompting)
}


def shipped(chapter: str) -> dict:
    """The checkpoints a chapter ships: {file name: preset} (empty when it trains nothing)."""
    return getattr(MODULES[chapter], "CHECKPOINTS", {})


def stale_checkpoints(chapters=CHAPTERS) -> list[str]:
    """One line per shipped checkpoint whose stored preset differs from today's."""
    out = []
    for chapter in chapters:
        for name, preset in shipped(chapter).items():
            why = checkpoints.stale(name, preset)
            if why:
                out.append(f"{chapter}: {why}: python -m seqlab.chapters checkpoints "
                           f"{chapter} --only {name}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqlab.chapters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("checkpoints", help="train presets and save their checkpoints")
    train.add_argument("chapters", nargs="*", default=list(CHAPTERS), help="chapter ids")
    train.add_argument("--only", nargs="+", default=None, metavar="NAME",
                       help="only these checkpoints (file names without .pt)")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    train.add_argument("--device", default="cpu", help="where to train (cpu, cuda, mps)")
    sub.add_parser("stale", help="list shipped checkpoints made from another preset")
    args = parser.parse_args(argv)

    if args.command == "stale":
        lines = stale_checkpoints()
        print("\n".join(lines) if lines else "every shipped checkpoint matches its preset")
        return 1 if lines else 0

    unknown = [c for c in args.chapters if c not in MODULES]
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; chapters: {', '.join(CHAPTERS)}")
    names = {c: list(shipped(c)) for c in args.chapters}
    if args.only:
        known = {n for ns in names.values() for n in ns}
        missing = sorted(set(args.only) - known)
        if missing:
            parser.error(f"no checkpoint named {missing} in {args.chapters}; "
                         f"known: {', '.join(sorted(known))}")  # fmt: skip
        names = {c: [n for n in ns if n in args.only] for c, ns in names.items()}
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    for chapter, chosen in names.items():
        for name in chosen:
            t0 = time.perf_counter()
            path = MODULES[chapter].make_checkpoint(name, progress=True, device=args.device)
            print(f"{chapter}: {path.name} ({path.stat().st_size / 1024:.0f} kB) "
                  f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
