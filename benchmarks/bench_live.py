"""Live-target latencies, side by side: our RSP client, gdb/MI through pygdbmi, the /proc fast path.

Run: `.venv/bin/python -m benchmarks.bench_live [--image PATH] [--n 200]`. Starts one QEMU per
backend (paused, TCG), runs the guest to the SEC entry so RAM and flash are live, and times
physical reads of 8 bytes (median of N requests) and of 1 MiB (median of a few), a full register
read, and `monitor info registers`. Budgets (README, "Budgets"): RSP ≤ 0.2 ms per 8-byte read and
≤ 25 ms per MiB; gdb backend ≤ 2 ms per request; fast path ≤ 5 ms per MiB. Nothing here asserts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import sample_images
from benchmarks.common import machine
from inspector.live.qemu import QemuProcess

RAM_ADDR = 0x100000          # inside pc.ram above 1 MiB: both the stub and the fast path serve it
MIB = 1 << 20


def median_time(fn, n: int) -> float:
    fn()                                  # warm-up (mode switch, caches)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:9.2f} ms"


def bench_backend(image: Path, backend: str, n: int, n_big: int) -> list[tuple[str, float, str]]:
    rows = []
    with QemuProcess(image) as q:
        t = q.attach(backend, fast_path=True)
        try:
            hostmem, t.hostmem = t.hostmem, None      # time the stub first
            rows.append((f"{backend}: physical read 8 B (median of {n})",
                         median_time(lambda: t.read_physical(RAM_ADDR, 8), n),
                         "budget <= 0.2 ms" if backend == "rsp" else "budget <= 2 ms"))
            rows.append((f"{backend}: physical read 1 MiB (median of {n_big})",
                         median_time(lambda: t.read_physical(RAM_ADDR, MIB, 30.0), n_big),
                         "budget <= 25 ms" if backend == "rsp" else ""))
            rows.append((f"{backend}: read_registers (registers + info registers)",
                         median_time(lambda: t.read_registers(), max(10, n // 10)), ""))
            rows.append((f"{backend}: monitor('info registers')",
                         median_time(lambda: t.monitor("info registers"), max(10, n // 10)), ""))
            if backend == "rsp" and hostmem is not None:
                t.hostmem = hostmem
                rows.append((f"fast path: physical read 8 B (median of {n})",
                             median_time(lambda: hostmem.read(RAM_ADDR, 8), n), ""))
                rows.append((f"fast path: physical read 1 MiB (median of {n_big})",
                             median_time(lambda: hostmem.read(RAM_ADDR, MIB), n_big), "budget <= 5 ms"))
            elif backend == "rsp":
                rows.append(("fast path: unavailable (no /proc/PID/mem access)", float("nan"), ""))
        finally:
            t.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--n-big", type=int, default=9)
    args = ap.parse_args()
    image = args.image or sample_images.bookworm("OVMF_CODE_4M.fd") or sample_images.bookworm("OVMF.fd")
    if image is None:
        print("no OVMF image: install Debian's `ovmf` or pass --image")
        return 1
    print(f"machine: {machine()}\nimage: {image}")
    for backend in ("rsp", "gdb"):
        for label, secs, note in bench_backend(image, backend, args.n, args.n_big):
            print(f"{label:<58} {fmt(secs)}  {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
