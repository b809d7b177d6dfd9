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
from benchmarks.common import Timing, bytecode_env, compare_pairs

VENV_BIN = Path(sys.executable).parent
BUDGET = 1.2


def bench_review(runs: int) -> list[Timing]:
    image = sample_images.bookworm("OVMF.fd")
    if image is None:
        return [Timing("review benchmark: bookworm OVMF.fd missing (install `ovmf`)", float("nan"), [])]
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-review-"))
    # Both sides the same way: through env(1) with the bytecode cache on (compare_pairs sets an
    # environment for its first command only).
    cache = bytecode_env(tmp / "pycache")["PYTHONPYCACHEPREFIX"]
    fw = ["env", "-u", "PYTHONDONTWRITEBYTECODE", f"PYTHONPYCACHEPREFIX={cache}", str(VENV_BIN / "fwinspect")]
    img = str(image)
    pairs = [
        ("fwinspect review OVMF.fd", [*fw, "review", img], "fwinspect fd OVMF.fd --json", [*fw, "fd", img, "--json"]),
        ("fwinspect review OVMF.fd --json --profile tdx", [*fw, "review", img, "--json", "--profile", "tdx"],
         "fwinspect fd OVMF.fd --json", [*fw, "fd", img, "--json"]),
    ]
    out = compare_pairs([(a, x, f"{b} (whole process)", y) for a, x, b, y in pairs], max(runs, 15), cwd=str(tmp),
                        ratio="review/fd", budget=f"<= {BUDGET}")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for t in bench_review(15):
        print(t.row(), flush=True)
