"""`fwinspect tour` to BDS against `fwinspect qemu --until bds` on the same image, and the replay.

Run: `.venv/bin/python -m benchmarks.bench_tour [--image PATH] [--runs 3] [-- QEMU/TOUR OPTIONS]`.
Whole processes, timed in alternation (tour, qemu, tour, qemu, ...) so other load on the machine
falls on both alike (benchmarks.common.run_side_by_side); medians of --runs each, after one
warm-up pair. The tour does what `qemu --until bds` does (one stop per handoff, each decoded) plus
the offline chapters, the walk over the reset vector's mode switches (a breakpoint and a step per
switch) and the chapters; the difference is the tour's own cost. Then one tour is recorded
(--record) and `fwinspect tour --replay FILE --json` is timed (no QEMU). Nothing here asserts.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import sample_images
from benchmarks.common import machine, run_process, run_side_by_side

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "inspector.cli"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_tour")
    p.add_argument("--image", type=Path, help="firmware image (default: Debian 12's OVMF.fd)")
    p.add_argument("--runs", type=int, default=3, help="alternating runs of each (default 3)")
    p.add_argument("extra", nargs="*", help="after --: options for both commands, e.g. --tpm, --backend gdb")
    args = p.parse_args(argv)
    image = args.image or sample_images.bookworm("OVMF.fd")
    if image is None or not Path(image).is_file():
        print("no OVMF image: install Debian's `ovmf` or pass --image")
        return 2
    print(f"machine: {machine()}\nimage: {image} {' '.join(args.extra)}", flush=True)
    tour = ("fwinspect tour IMAGE --json (to BDS)", [*CLI, "tour", str(image), "--json", *args.extra])
    qemu = ("fwinspect qemu IMAGE --until bds --json", [*CLI, "qemu", str(image), "--until", "bds", "--json",
                                                         *args.extra])
    a, b = run_side_by_side(tour, qemu, runs=args.runs, warmup=1, cwd=str(ROOT))
    print(a.row(), flush=True)
    print(b.row(), flush=True)
    print(f"{'tour - qemu --until bds (medians)':<58} {(a.median_s - b.median_s) * 1000:9.1f} ms", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "tour.rec"
        made = run_process("fwinspect tour IMAGE --json --record F", [*tour[1], "--record", str(rec)], runs=1,
                           cwd=str(ROOT), ok_codes=(0,))
        print(made.row(), f"recording {rec.stat().st_size / 1e6:.1f} MB" if rec.exists() else "", flush=True)
        replay = run_process("fwinspect tour --replay F --json", [*CLI, "tour", "--replay", str(rec), "--json"],
                             runs=args.runs, cwd=str(ROOT), ok_codes=(0,))
        print(replay.row(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
