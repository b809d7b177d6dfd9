"""`fwinspect review OVMF.fd`, whole process, side by side with `fwinspect fd OVMF.fd --json`
(budget: review <= 1.2 x fd --json; both decode the whole image with its LZMA volumes, review
then runs its rules instead of printing the tree).

Run: `.venv/bin/python -m benchmarks.bench_review`.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import sample_images
from benchmarks.common import Timing, bytecode_env, run_side_by_side

VENV_BIN = Path(sys.executable).parent
BUDGET = 1.2


def bench_review(runs: int) -> list[Timing]:
    image = sample_images.bookworm("OVMF.fd")
    if image is None:
        return [Timing("review benchmark: bookworm OVMF.fd missing (install `ovmf`)", float("nan"), [])]
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-review-"))
    # Both sides the same way: through env(1) with the bytecode cache on (run_side_by_side sets an
    # environment for its first command only).
    cache = bytecode_env(tmp / "pycache")["PYTHONPYCACHEPREFIX"]
    fw = ["env", "-u", "PYTHONDONTWRITEBYTECODE", f"PYTHONPYCACHEPREFIX={cache}", str(VENV_BIN / "fwinspect")]
    img = str(image)
    out: list[Timing] = []
    pairs = [
        ("fwinspect review OVMF.fd", [*fw, "review", img], "fwinspect fd OVMF.fd --json", [*fw, "fd", img, "--json"]),
        ("fwinspect review OVMF.fd --json --profile tdx", [*fw, "review", img, "--json", "--profile", "tdx"],
         "fwinspect fd OVMF.fd --json", [*fw, "fd", img, "--json"]),
    ]
    for name_a, argv_a, name_b, argv_b in pairs:
        ours, theirs = run_side_by_side((f"{name_a} (whole process)", argv_a), (f"{name_b} (whole process)", argv_b),
                                        max(runs, 15), cwd=str(tmp))
        ours.note += f"; ratio review/fd = {ours.median_s / theirs.median_s:.2f} (budget <= {BUDGET})"
        out += [ours, theirs]
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for t in bench_review(15):
        print(t.row(), flush=True)
