"""What reading every vCPU costs a stop: a Session stop re-read at -smp 4 against -smp 1, side by side.

Run: `.venv/bin/python -m benchmarks.bench_live_cpus [--image PATH] [--n 30] [--backend rsp|gdb|both]`.
Two QEMUs (TCG, paused) boot the same image, one with 1 vCPU and one with 4, each driven by a Session
to the PEI-core and then the DXE-core handoff. At each, two kinds of stop, N times each, the two
guests alternating so that machine load hits both alike:
- re-read: the target's generation is bumped so Session.current() builds the stop again (every
  vCPU's registers, disassembly, the handoff's decode) although no CPU ran; the gdb backend knows
  from gdb's *running records that no thread ran and keeps what it read of each (RSP reads them all);
- step: Session.step() of the boot CPU, a new stop where the boot CPU ran and the APs did not.
Reported: the medians and their ratio. Budget (the "Every vCPU" issue): a stop with 4 vCPUs costs
<= 1.3x a stop with one. Nothing here asserts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import sample_images
from benchmarks.common import machine
from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.session import Session

BUDGET = 1.3
PHASES = ("pei-core", "dxe-core")
HANDOFF_TIMEOUT = 120.0


def rebuild(session: Session) -> float:
    session.target.generation += 1        # the cached stop is stale: current() reads it all again
    t0 = time.perf_counter()
    stop = session.current()
    took = time.perf_counter() - t0
    if stop.problems and any("target" in p for p in stop.problems):
        raise RuntimeError(f"stop re-read failed: {stop.problems}")
    return took


def step(session: Session) -> float:
    t0 = time.perf_counter()
    stop = session.step()
    took = time.perf_counter() - t0
    if stop.reason != "step" or stop.problems:
        raise RuntimeError(f"step failed: {stop.problems}")
    return took


def bench(image: Path, backend: str, n: int) -> list[tuple[str, float, float, float]]:
    img = load_image(image)
    rows = []
    with QemuProcess(image, smp=1) as q1, QemuProcess(image, smp=4) as q4:
        s1 = Session(q1.attach(backend), img, q1)
        s4 = Session(q4.attach(backend), img, q4)
        try:
            for phase in PHASES:
                for s in (s1, s4):
                    stop = s.run_to(phase, timeout=HANDOFF_TIMEOUT)
                    if stop.handoff != phase:
                        raise RuntimeError(f"{phase} not reached: {stop.problems}")
                if len(s4.current().cpus) != 4 or len(s1.current().cpus) != 1:
                    raise RuntimeError("the guests do not have 1 and 4 vCPUs")
                for kind, fn in (("re-read", rebuild), ("step", step)):
                    fn(s1), fn(s4)       # warm-up
                    t1, t4 = [], []
                    for _ in range(n):
                        t1.append(fn(s1))
                        t4.append(fn(s4))
                    m1, m4 = statistics.median(t1), statistics.median(t4)
                    rows.append((f"{backend}: {kind} at {phase}", m1, m4, m4 / m1))
        finally:
            s1.close()
            s4.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--backend", choices=("rsp", "gdb", "both"), default="both")
    args = ap.parse_args()
    image = args.image or sample_images.bookworm("OVMF_CODE_4M.fd")
    if image is None:
        print("no OVMF image: install Debian's `ovmf` or pass --image")
        return 1
    print(f"machine: {machine()}\nimage: {image}\nmedian of {args.n} stop re-reads each; budget: 4 vCPUs <= "
          f"{BUDGET}x one")
    print(f"{'':32} {'-smp 1':>11} {'-smp 4':>11} {'ratio':>7}")
    backends = ("rsp", "gdb") if args.backend == "both" else (args.backend,)
    for backend in backends:
        for label, m1, m4, ratio in bench(image, backend, args.n):
            verdict = "ok" if ratio <= BUDGET else "OVER BUDGET"
            print(f"{label:32} {m1 * 1e3:8.2f} ms {m4 * 1e3:8.2f} ms {ratio:6.2f}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
