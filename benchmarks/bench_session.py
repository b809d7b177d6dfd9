"""The live session's own costs (README, "Budgets"), side by side with a plain QEMU boot.

Run: `.venv/bin/python -m benchmarks.bench_session [--image PATH] [--runs 3] [--n 9]`.

1. Refresh at a stop: at the DXE core entry (registers + disassembly + HOB list + page-table walk
   from CR3), the median of N `Session.current()` rebuilds, each with the memory cache dropped
   (Target.generation bumped: TargetMemory refetches every page). RSP backend, with the /proc fast
   path and through the stub alone. Budget <= 150 ms.
2. Next handoff, reset -> DXE core entry: `Session.run_to("dxe-core")` (SEC and PEI core by
   breakpoint, DXE IPL and DXE core by following copies) against a plain QEMU boot to the same
   RIP (one hardware breakpoint at the DXE core entry the session found, one `c`). Fresh QEMU for
   every run; the median of RUNS. Budget: within 10 % of the plain boot.
Nothing here asserts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import machine
from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.session import Session

DEFAULT_IMAGE = Path("/usr/share/ovmf/OVMF.fd")
BOOT_TIMEOUT = 120.0


def refresh(session: Session, n: int) -> float:
    t = session.target
    times = []
    for _ in range(n + 1):
        t.generation += 1                 # drops TargetMemory's page cache and the cached Stop
        t0 = time.perf_counter()
        session.current()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def session_boot(image: Path, loaded, n: int, with_refresh: bool) -> tuple[float, int, dict]:
    out = {}
    with QemuProcess(image) as q:
        s = Session(q.attach("rsp"), loaded, q)
        s.current()
        t0 = time.perf_counter()
        stop = s.run_to("dxe-core", BOOT_TIMEOUT)
        elapsed = time.perf_counter() - t0
        if stop.handoff != "dxe-core":
            raise SystemExit(f"dxe-core not reached: {stop.problems}")
        if with_refresh:
            # The session's own _build at dxe-core: HOBs + page tables are in its tree.
            kinds = [c.kind for c in stop.tree.children]
            out["tree"] = kinds
            out["refresh fast path"] = refresh(s, n)
            hostmem, s.target.hostmem = s.target.hostmem, None
            out["refresh stub only"] = refresh(s, n)
            s.target.hostmem = hostmem
        entry = stop.linear_rip
        s.close()
    return elapsed, entry, out


def plain_boot(image: Path, entry: int) -> float:
    with QemuProcess(image) as q:
        t = q.attach("rsp")
        try:
            t.read_registers()
            t.set_breakpoint(entry)
            t0 = time.perf_counter()
            t.cont(BOOT_TIMEOUT)
            elapsed = time.perf_counter() - t0
            pc = t.read_registers().pc
            if pc != entry:
                raise SystemExit(f"plain boot stopped at 0x{pc:x}, not 0x{entry:x}")
        finally:
            t.close()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=9)
    args = ap.parse_args()
    if not args.image.is_file():
        print(f"{args.image}: absent (Debian package `ovmf`)", file=sys.stderr)
        return 1
    loaded = load_image(args.image)
    print(f"# bench_session on {args.image} ({machine()})")
    sess, plain, extra = [], [], {}
    for i in range(args.runs):
        elapsed, entry, out = session_boot(args.image, loaded, args.n, with_refresh=(i == 0))
        extra.update(out)
        sess.append(elapsed)
        plain.append(plain_boot(args.image, entry))
    print(f"DXE core entry 0x{entry:x}; stop tree at dxe-core: {', '.join(extra.get('tree', []))}")
    for k in ("refresh fast path", "refresh stub only"):
        v = extra[k]
        print(f"{k + ' at dxe-core (median of ' + str(args.n) + ')':55s} {v * 1e3:8.1f} ms   budget <= 150 ms "
              f"{'OK' if v <= 0.150 else 'OVER'}")
    s_med, p_med = statistics.median(sess), statistics.median(plain)
    ratio = s_med / p_med
    print(f"{'next handoff reset -> dxe-core (session run_to)':55s} {s_med * 1e3:8.1f} ms   runs "
          + ", ".join(f"{x * 1e3:.0f}" for x in sess))
    print(f"{'plain QEMU boot to the same RIP (one Z1 + c)':55s} {p_med * 1e3:8.1f} ms   runs "
          + ", ".join(f"{x * 1e3:.0f}" for x in plain))
    print(f"{'ratio session / plain':55s} {ratio:8.3f}      budget <= 1.10 {'OK' if ratio <= 1.10 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
