"""Benchmarks, side by side with the tools a user would pick instead (DESIGN.md "Budgets").

Run: `make bench` (or `.venv/bin/python -m benchmarks.run [--runs N]`). Prints a table and writes
benchmarks/results/latest.txt. Nothing here is a pass/fail assertion.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import sample_images
from benchmarks.common import Timing, machine, run_inprocess, run_process

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def bench_image(runs: int) -> list[Timing]:
    out: list[Timing] = []
    image = sample_images.bookworm("OVMF.fd")
    if image is None:
        return [Timing("image benchmarks: bookworm OVMF.fd missing (install `ovmf`)", float("nan"), [])]
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-"))
    copy = tmp / "OVMF.fd"
    shutil.copyfile(image, copy)
    fw = str(VENV_BIN / "fwinspect")
    ours = run_process("fwinspect fd OVMF.fd --json (whole process)", [fw, "fd", str(copy), "--json"], runs)
    out.append(ours)
    if shutil.which("UEFIExtract"):
        ue = run_process("UEFIExtract OVMF.fd report", ["UEFIExtract", str(copy), "report"], runs, cwd=str(tmp))
        ue.note = f"ratio ours/UEFIExtract = {ours.median_s / ue.median_s:.2f} (budget <= 0.7)"
        out.append(ue)
    ufp = VENV_BIN / "uefi-firmware-parser"
    if ufp.exists():
        u = run_process("uefi-firmware-parser -b OVMF.fd", [str(ufp), "-b", str(copy)], max(3, runs // 2))
        u.note = f"ratio ours/uefi-firmware-parser = {ours.median_s / u.median_s:.2f} (budget <= 0.5)"
        out.append(u)

    from decoders.fd import decode_image
    from decoders.mrtd import compute_mrtd
    from decoders.ovmf.metadata import tdx_sections
    from inspector.image import load_image

    data = image.read_bytes()
    out.append(run_inprocess("decode_image(OVMF.fd) in process", lambda: decode_image(data, name="OVMF.fd"), runs))
    img = load_image(image)
    secs = tdx_sections(img.tdx_metadata())
    t = run_inprocess("MRTD per-page of OVMF.fd in process", lambda: compute_mrtd(img.data, secs, order="per-page"), runs)
    t.note = "budget <= 100 ms"
    out.append(t)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def bench_app(runs: int) -> list[Timing]:
    image = sample_images.bookworm("OVMF.fd")
    if image is None:
        return []
    import asyncio
    import time

    from inspector.image import load_image
    from views.app import FwInspectApp

    def first_frame() -> None:
        img = load_image(image)

        async def go():
            app = FwInspectApp(img.root, "OVMF.fd")
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause()

        asyncio.run(go())

    t = run_inprocess("app: load OVMF.fd + first frame (headless run_test)", first_frame, max(3, runs // 2))
    t.note = "budget <= 1 s"
    return [t]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    rows = [f"machine: {machine()}"]
    for bench in (bench_image, bench_app):
        for t in bench(args.runs):
            rows.append(t.row())
            print(rows[-1], flush=True)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.txt").write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
