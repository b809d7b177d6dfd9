"""--symbols costs on the DEBUG OvmfPkgX64 build (README, "Budgets": the index of all modules <= 1 s
in process, lazy per module; a stop with symbols <= 20 ms over one without).

Run: `.venv/bin/python -m benchmarks.bench_symbols [--symbols DIR] [--image OVMF.fd] [--runs 7]`
(DIR defaults to .cache/debug-symbols/DEBUG, which tests/realdata.debug_symbols() unpacks).

1. index: SymbolIndex(DIR) over the flat folder of 124 .debug files (listing only).
2. cold lookup: a fresh index, then symbolize() at an address in DxeCore: finds DxeCore.debug,
   compares its .text with the loaded one (147 KiB), reads the symbol table and the line program of
   the one CU holding the address.
3. warm lookup: symbolize() again at other DxeCore addresses (what every later stop pays).
4. name: a fresh index, then the module holding `CoreDispatcher` (every symbol table, no DWARF) and
   its offset (DxeCore's code checked against the image).
5. with --live: QEMU booting that OVMF.fd to the DXE core entry, then `Session.current()` rebuilt
   (page cache dropped each time) with and without the SymbolIndex: the first stop with symbols
   (DxeCore's .text read from the guest and checked, one CU's lines) and the median of later ones.
Medians of RUNS. Nothing here asserts.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from benchmarks.common import machine
from decoders.memory import BytesMemory
from inspector.image import load_image
from inspector.live.symbols import LoadedModule, SymbolIndex, pe_info, symbolize

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SYMBOLS = ROOT / ".cache" / "debug-symbols" / "DEBUG"
DEFAULT_IMAGE = ROOT.parent / "shared" / "firmware" / "ovmf-debug" / "OVMF.fd"


def median_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", type=Path, default=DEFAULT_SYMBOLS)
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--live", action="store_true", help="also time stops of a real session (boots QEMU)")
    args = p.parse_args(argv)
    if not (args.symbols / "DxeCore.debug").is_file():
        raise SystemExit(f"no DxeCore.debug in {args.symbols} (run the tests once, or unpack DEBUG.tar.xz there)")
    img = load_image(args.image)
    ffs = next(f for f in img.root.find("ffs") if f.get("UI") == "DxeCore")
    pe = bytes(next(c for c in ffs.walk() if c.kind == "pe").bytes)
    # DxeCore's linked ImageBase is 0 and GenFw's FileAlignment equals its SectionAlignment, so the
    # file bytes at 0 are the image as loaded there.
    mem = BytesMemory(pe + bytes(0x1000), 0)
    info = pe_info(mem, 0)
    mod = [LoadedModule("DxeCore", 0, len(pe), ffs.get("Name"))]
    rng = random.Random(1)
    pcs = [info.text_rva + rng.randrange(info.text_size) for _ in range(1000)]

    results = {"index (124 files)": median_of(args.runs, lambda: SymbolIndex(args.symbols))}

    def cold():
        symbolize(SymbolIndex(args.symbols), mod, mem, pcs[0])
    results["cold lookup in DxeCore"] = median_of(args.runs, cold)

    warm = SymbolIndex(args.symbols)
    for pc in pcs:                       # every CU's line program parsed once
        symbolize(warm, mod, mem, pc)
    it = iter(pcs * args.runs)
    results["warm lookup (one stop)"] = median_of(len(pcs), lambda: symbolize(warm, mod, mem, next(it)))

    def name():
        index = SymbolIndex(args.symbols)
        [m] = index.modules_with("CoreDispatcher")
        index.function_in_pe(m, ffs.get("Name"), pe, "CoreDispatcher")
    results["name -> DxeCore+offset (fresh index)"] = median_of(args.runs, name)

    if args.live:
        results.update(live(args, img))
    print(f"# bench_symbols on {machine()}: {args.symbols}, medians of {args.runs}")
    for k, v in results.items():
        print(f"{k:40s} {v * 1000:9.2f} ms")
    return 0


def live(args, img) -> dict:
    from inspector.live.qemu import QemuProcess
    from inspector.live.session import Session
    out = {}
    with QemuProcess(args.image) as q:
        s = Session(q.attach("rsp"), img, q, symbols=SymbolIndex(args.symbols))
        stop = s.run_to("dxe-core", 120.0)
        if stop.handoff != "dxe-core":
            raise SystemExit(f"dxe-core not reached: {stop.problems}")
        t = s.target
        s.symbols = SymbolIndex(args.symbols)
        t.generation += 1
        t0 = time.perf_counter()
        s.current()
        out["live: first stop in DxeCore, symbols"] = time.perf_counter() - t0

        def rebuild():
            t.generation += 1           # drops the page cache and the cached Stop
            s.current()
        out["live: stop with symbols (warm)"] = median_of(args.runs, rebuild)
        index, s.symbols = s.symbols, None
        out["live: stop without symbols"] = median_of(args.runs, rebuild)
        s.symbols = index
        s.close()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
