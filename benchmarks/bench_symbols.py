"""--symbols costs on the DEBUG OvmfPkgX64 build (README, "Budgets": the index of all modules <= 1 s
in process, lazy per module; a stop with symbols <= 20 ms over one without).

Run: `.venv/bin/python -m benchmarks.bench_symbols [--symbols DIR] [--image OVMF.fd] [--runs 7]`
(DIR defaults to .cache/debug-symbols/DEBUG, which tests/realdata.debug_symbols() unpacks).

1. index: SymbolIndex(DIR) over the flat folder of 124 .debug files (listing only).
2. cold lookups: a fresh index, then symbolize() at one function of DxeCore loaded at DXE_BASE
   (relocated by its base relocations, as at a live stop): finds DxeCore.debug, compares its .text
   with the loaded one (147 KiB, a few hundred DIR64 fixups), reads the symbol table and the line
   program of the one CU holding the address. One line per CU: the four LTO partitions (the
   largest line program, 37 KB, is CoreEfiNotAvailableYetArg1's), a one-function CU, and an
   address .debug_aranges does not name (nasm code: every CU's line program is read).
3. warm lookup: symbolize() again at other DxeCore addresses (what every later stop pays).
4. name: a fresh index, then the module holding `CoreDispatcher` (symbol tables, no DWARF) and
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
import struct
import time
from pathlib import Path

from benchmarks.common import machine
from decoders.memory import BytesMemory
from inspector.image import load_image
from inspector.live.elfdebug import ModuleSymbols
from inspector.live.symbols import LoadedModule, SymbolIndex, pe_info, symbolize

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SYMBOLS = ROOT / ".cache" / "debug-symbols" / "DEBUG"
DEFAULT_IMAGE = ROOT.parent / "shared" / "firmware" / "ovmf-debug" / "OVMF.fd"
DXE_BASE = 0x7E000000           # where DxeCore is "loaded" (OVMF puts it near the top of low RAM)
# One function per DxeCore CU timed cold (None: an address in no .debug_aranges range).
COLD = ("CoreSetWatchdogTimer", "CoreDispatcher", "CoreEfiNotAvailableYetArg1", "LzmaDec_DecodeReal2",
        "__stack_chk_fail", "SevNoRepIo")


def median_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_at(pe: bytes, base: int) -> bytes:
    """The PE image as a loader leaves it at `base`: sections at their RVAs and the DIR64 base
    relocations applied (PE/COFF spec 3.4 section table, 6.6 .reloc), read with struct."""
    lfanew = struct.unpack_from("<I", pe, 0x3C)[0]
    nsec, opt_size = struct.unpack_from("<H", pe, lfanew + 6)[0], struct.unpack_from("<H", pe, lfanew + 20)[0]
    opt = lfanew + 24
    image_base, = struct.unpack_from("<Q", pe, opt + 24)
    size, headers = struct.unpack_from("<II", pe, opt + 56)
    reloc, reloc_size = struct.unpack_from("<II", pe, opt + 112 + 5 * 8)
    mem = bytearray(size)
    mem[:headers] = pe[:headers]
    for i in range(nsec):
        vsize, va, raw_size, raw = struct.unpack_from("<IIII", pe, opt + opt_size + 40 * i + 8)
        n = min(vsize, raw_size)
        mem[va:va + n] = pe[raw:raw + n]
    delta, at = base - image_base, reloc
    while at + 8 <= reloc + reloc_size:
        page, block = struct.unpack_from("<II", mem, at)
        if block < 8:
            break
        for (entry,) in struct.iter_unpack("<H", mem[at + 8:at + block]):
            if entry >> 12 == 10:                                   # IMAGE_REL_BASED_DIR64
                o = page + (entry & 0xFFF)
                struct.pack_into("<Q", mem, o, (struct.unpack_from("<Q", mem, o)[0] + delta) % (1 << 64))
        at += block
    return bytes(mem)


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
    loaded = load_at(pe, DXE_BASE)
    mem = BytesMemory(loaded + bytes(0x1000), DXE_BASE)
    info = pe_info(mem, DXE_BASE)
    mod = [LoadedModule("DxeCore", DXE_BASE, len(loaded), ffs.get("Name"))]
    elf = ModuleSymbols(args.symbols / "DxeCore.debug")
    elf.header()

    def pc_of(function: str) -> int:
        return DXE_BASE + info.text_rva + elf.addresses_of(function)[0] - elf.text.addr

    results = {"index (124 files)": median_of(args.runs, lambda: SymbolIndex(args.symbols))}
    for function in COLD:
        pc = pc_of(function)
        results[f"cold: DxeCore {function}"] = median_of(
            args.runs, lambda: symbolize(SymbolIndex(args.symbols), mod, mem, pc))

    rng = random.Random(1)
    pcs = [DXE_BASE + info.text_rva + rng.randrange(info.text_size) for _ in range(1000)]
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
        print(f"{k:44s} {v * 1000:9.2f} ms")
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
