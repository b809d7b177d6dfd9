"""Byte search, byte -> nodes and offline disassembly on real images (README, "Budgets": a search of
the 4 MiB image and its decompressed volumes <= 0.3 s in process; the hex cursor's path <= 30 ms).

Run: `.venv/bin/python -m benchmarks.bench_find [--image FILE] [--runs 9]` (default: Debian's
OVMF_CODE_4M.fd, then Debian 13's 4 MiB OVMF.fd and the debug build when present).

1. in process, image already decoded: find() for several patterns over every space (the flash
   and the decompressed volumes), the NodeIndex built once beforehand (as the app keeps it);
2. NodeIndex build, and path() lookups at random bytes of every space (median and worst);
3. disassemble_image() of 64 instructions at DxeCore's entry;
4. whole process: `fwinspect find IMAGE PATTERN` side by side with `grep -c -a -b` and a Python
   bytes.find count over the file alone (neither decompresses anything: context, not a contest).
Medians of RUNS; the load average is printed. Nothing here asserts.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import Timing, bytecode_env, machine, run_inprocess, run_side_by_side

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PATTERNS = ["MZ", "8c8ce578-8a3d-4f1c-9935-896185c32dd3", "PlatformPei", "u32:0xfffffff0", "4d5a??00",
            "?? 50 45 00 00 ?? 86", "??"]


def images(given: list[str]) -> list[Path]:
    if given:
        return [Path(p) for p in given]
    out = [Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
           ROOT / "sample_images/real/trixie/usr/share/ovmf/OVMF.fd",
           ROOT.parent / "shared/firmware/ovmf-debug/OVMF.fd"]
    return [p for p in out if p.is_file()]


def bench_inprocess(path: Path, runs: int) -> list[Timing]:
    from inspector.find import find, index_for, parse_pattern
    from inspector.image import load_image
    from inspector.nodes_at import NodeIndex
    from inspector.pe_disasm import disassemble_image, find_module

    img = load_image(path)
    out: list[Timing] = []
    idx = index_for(img.root)
    spaces = idx.spaces()
    total = sum(s.size for s in spaces)
    for text in PATTERNS:
        pattern = parse_pattern(text)
        r = find(img.root, pattern)
        t = run_inprocess(f"find {text!r} ({len(spaces)} spaces, {total / 2**20:.1f} MiB)",
                          lambda: find(img.root, pattern), runs)
        t.note = f"{len(r.hits)} hits{' (limit)' if r.truncated else ''}"
        out.append(t)
    # Paths of every hit, as `fwinspect find` prints them (the hits' paths are worked out lazily).
    pattern = parse_pattern("MZ")

    def find_with_paths():
        for h in find(img.root, pattern).hits:
            h.chain()
    out.append(run_inprocess("find 'MZ' + every hit's path", find_with_paths, runs))

    nodes = sum(1 for _ in img.root.walk())
    t = run_inprocess(f"NodeIndex build ({nodes} nodes)", lambda: NodeIndex(img.root), runs)
    out.append(t)
    rng = random.Random(0)
    probes = [(s, rng.randrange(s.size)) for s in spaces for _ in range(2000)]
    per = []
    for s, off in probes:
        t0 = time.perf_counter()
        idx.path(s, off)
        per.append(time.perf_counter() - t0)
    per.sort()
    out.append(Timing(f"NodeIndex.path, {len(probes)} random bytes", statistics.median(per), per,
                      note=f"median {statistics.median(per) * 1e6:.1f} us, 99th percentile "
                           f"{per[int(len(per) * 0.99)] * 1e6:.1f} us, worst {per[-1] * 1e6:.0f} us"))
    dxe = find_module(img.root, "DxeCore")
    if not isinstance(dxe, str):
        out.append(run_inprocess("disassemble_image DxeCore entry, 64 instructions",
                                 lambda: disassemble_image(dxe, count=64), runs))
    return out


def bench_process(path: Path, runs: int) -> list[Timing]:
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="fwbench-find-"))
    fw = str(VENV_BIN / "fwinspect")
    out: list[Timing] = []
    ours = ("fwinspect find IMAGE PlatformPei", [fw, "find", str(path), "PlatformPei"])
    env = bytecode_env(tmp / "pycache")
    if shutil.which("grep"):
        a, b = run_side_by_side(ours, ("grep -c -a -b PlatformPei IMAGE (file only)",
                                       ["grep", "-c", "-a", "-b", "PlatformPei", str(path)]), runs, env_a=env)
        out += [a, b]
    py = [sys.executable, "-c", "import sys; d=open(sys.argv[1],'rb').read(); n=0; i=d.find(b'PlatformPei')\n"
          "while i>=0: n+=1; i=d.find(b'PlatformPei', i+1)\nprint(n)", str(path)]
    a, b = run_side_by_side(ours, ("python bytes.find count (file only)", py), runs, env_a=env)
    out += [a, b]
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process comparison")
    args = ap.parse_args()
    print(machine())
    print(f"load average before: {os.getloadavg()}")
    for path in images(args.image):
        print(f"\n== {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        for t in bench_inprocess(path, args.runs):
            print(t.row())
        if not args.no_process:
            for t in bench_process(path, args.runs):
                print(t.row())
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
