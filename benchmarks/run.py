"""Benchmarks, side by side with the tools a user would pick instead (README, "Budgets").

Run: `make bench` (or `.venv/bin/python -m benchmarks.run [--runs N] [--only image,print,...]`).
Prints a table and writes benchmarks/results/latest.txt (latest-image.txt etc. for a partial run).
Nothing here is a pass/fail assertion.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import sample_images
from benchmarks.common import Timing, bytecode_env, machine, run_inprocess, run_process, run_side_by_side

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
    ours_argv = [fw, "fd", str(copy), "--json"]
    if shutil.which("UEFIExtract"):
        # Side by side, alternating (UEFIExtract writes its report beside its input: the copy). Ours
        # runs as an installed program does, from cached bytecode (pip compiles it at install; the
        # warm-up runs fill a private cache here even where PYTHONDONTWRITEBYTECODE is set).
        ours, ue = run_side_by_side(("fwinspect fd OVMF.fd --json (whole process)", ours_argv),
                                    ("UEFIExtract OVMF.fd report", ["UEFIExtract", str(copy), "report"]),
                                    max(runs, 15), cwd=str(tmp), env_a=bytecode_env(tmp / "pycache"))
        ue.note += f"; ratio ours/UEFIExtract = {ours.median_s / ue.median_s:.2f} (budget <= 0.85)"
        out += [ours, ue]
    else:
        ours = run_process("fwinspect fd OVMF.fd --json (whole process)", ours_argv, runs)
        out.append(ours)
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


FIXTURES = ROOT / "tests" / "data"   # third-party logs, HOB and ACPI; tests/data/README.md


def bench_handover(runs: int) -> list[Timing]:
    """Event log vs tpm2_eventlog (whole process), a 13 KiB HOB list and an ACPI set in process."""
    out: list[Timing] = []
    logs = sorted((FIXTURES / "eventlog").rglob("*.bin"), key=lambda p: p.stat().st_size) if FIXTURES.is_dir() else []
    if logs:
        largest = logs[-1]
        fw = str(VENV_BIN / "fwinspect")
        ours = run_process(f"fwinspect eventlog --replay --json {largest.name} (whole process)",
                           [fw, "eventlog", str(largest), "--replay", "--json"], runs)
        out.append(ours)
        if shutil.which("tpm2_eventlog"):
            # the largest fixture crashes tpm2_eventlog 5.4 (fixtures README); time it on the largest it reads
            ok = [p for p in logs if "option_rom" not in p.name][-1]
            t = run_process(f"tpm2_eventlog {ok.name}", ["tpm2_eventlog", str(ok)], runs, ok_codes=(0, 1))
            o2 = run_process(f"fwinspect eventlog --replay --json {ok.name}", [fw, "eventlog", str(ok), "--replay", "--json"], runs)
            o2.note = f"ratio ours/tpm2_eventlog = {o2.median_s / t.median_s:.1f} (budget <= 1)"
            out += [o2, t]
        from decoders.eventlog import decode_event_log
        from decoders.eventlog.replay import replay

        data = largest.read_bytes()
        t = run_inprocess(f"decode + replay {largest.name} ({len(data) >> 10} KiB) in process",
                          lambda: replay(decode_event_log(data)), runs)
        out.append(t)
    hob = FIXTURES / "hob" / "td-shim" / "hob_buffer.bin"
    if hob.exists():
        from decoders.hob import decode_hob_list, memory_map

        raw = hob.read_bytes()
        end = raw.rfind(b"\xff\xff\x08\x00")
        body = raw[:end]
        big = body[:56] + body[56:] * 29 + raw[end:end + 8]  # PHIT + repeated descriptors + END
        t = run_inprocess(f"HOB list of {len(big) >> 10} KiB ({len(big) // 48} HOBs) decode + memory map",
                          lambda: memory_map(decode_hob_list(big)), runs)
        t.note = "budget <= 20 ms"
        out.append(t)
    dump = FIXTURES / "acpi" / "fwts" / "acpidump-0001" / "acpidump.log"
    if dump.exists():
        from inspector.acpisource import decode_acpidump

        t = run_inprocess("ACPI set of a real machine (acpidump, 20 tables) in process",
                          lambda: decode_acpidump(dump), runs)
        t.note = "budget <= 50 ms"
        out.append(t)
    return out


def bench_paging(runs: int) -> list[Timing]:
    import struct as st

    from decoders.memory import BytesMemory
    from decoders.paging import merge, walk

    # OVMF's DXE identity map: 0-1 TiB in 2 MiB pages (MdeModulePkg/Core/DxeIplPeim/X64/
    # VirtualMemory.c), 1 PML4 + 2 PDPT + 1024 PD.
    base = 0x100000
    buf = bytearray(0x1000 * 1027)
    for i in range(2):
        st.pack_into("<Q", buf, i * 8, base + 0x1000 * (1 + i) | 3)
    for j in range(1024):
        st.pack_into("<Q", buf, 0x1000 * (1 + j // 512) + (j % 512) * 8, base + 0x1000 * (3 + j) | 3)
        st.pack_into("<512Q", buf, 0x1000 * (3 + j), *(((j * 512 + k) << 21) | 0x83 for k in range(512)))
    mem = BytesMemory(bytes(buf), base)
    t = run_inprocess("page-table walk, 1 TiB identity map in 2 MiB pages (524,288 leaves)",
                      lambda: merge(walk(mem, base).mappings), runs)
    t.note = "budget <= 500 ms"
    return [t]


def bench_dump(runs: int) -> list[Timing]:
    """A 1 GiB QEMU dump of OVMF at the UEFI shell: open + locate everything, whole process (peak
    RSS included), and the walk of its page tables from the dump."""
    image = sample_images.bookworm("OVMF.fd")
    if image is None or not shutil.which("qemu-system-x86_64"):
        return [Timing("dump benchmarks: needs qemu-system-x86 and ovmf", float("nan"), [])]
    from tests.live.qemu_harness import QemuGuest

    tmp = Path(tempfile.mkdtemp(prefix="fwbench-dump-"))
    elf = tmp / "guest-1g.elf"
    with QemuGuest(image, memory="1G") as g:
        g.wait_for_shell()
        g.stop()
        g.dump_elf(elf)
    fw = str(VENV_BIN / "fwinspect")
    out = [run_process("fwinspect dump guest-1g.elf --json (1 GiB dump, whole process)",
                       [fw, "dump", str(elf), "--json"], runs)]
    out[-1].note = "budget <= 1 s, RSS <= 100 MiB"

    from inspector.dump import dump_pages, open_dump
    from inspector.locate import dump_overview

    def open_locate():
        with open_dump(elf) as d:
            dump_overview(d)

    out.append(run_inprocess("open + locate in process (1 GiB dump)", open_locate, runs))
    with open_dump(elf) as d:
        t = run_inprocess("page-table walk of OVMF's identity map from the dump", lambda: dump_pages(d), runs)
    t.note = "budget <= 500 ms"
    out.append(t)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def bench_print(runs: int) -> list[Timing]:
    """The streaming writers on a 50,000-node tree, in process (budget: under 2 s each), and a whole
    `fwinspect fd` of 12 volumes holding 48,000 empty files (the hostile test's image)."""
    import io

    from decoders.model import Node
    from inspector.render import print_tree, write_json
    from tests.hostile.test_cli_fd_many_files import FILES_PER_VOLUME, VOLUMES, volume

    root = Node("root", "root")
    for i in range(50_000):
        root.append(Node("leaf", f"leaf {i}", offset=i, size=1)).add("Index", i)
    out = []
    t = run_inprocess("text tree of 50,000 nodes, in process", lambda: print_tree(root, out=io.StringIO()), runs)
    t.note = "budget < 2 s"
    out.append(t)
    t = run_inprocess("JSON of 50,000 nodes, in process", lambda: write_json(root, io.StringIO()), runs)
    t.note = "budget < 2 s"
    out.append(t)
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-print-"))
    image = tmp / "empty-files.fd"
    image.write_bytes(volume(FILES_PER_VOLUME) * VOLUMES)
    fw = str(VENV_BIN / "fwinspect")
    for mode in ([], ["--json"]):
        t = run_process(f"fwinspect fd {' '.join(['48,000 empty files', *mode])} (whole process)",
                        [fw, "fd", str(image), *mode], max(3, runs // 2))
        t.note = "budget <= 10 s, <= 256 MiB"
        out.append(t)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def bench_diff(runs: int) -> list[Timing]:
    from benchmarks.bench_diff import bench_diff as run

    return run(runs)


def bench_review(runs: int) -> list[Timing]:
    from benchmarks.bench_review import bench_review as run

    return run(runs)


def bench_measure(runs: int) -> list[Timing]:
    from benchmarks.bench_measure import bench_measure as run

    return run(runs)


def bench_find(runs: int) -> list[Timing]:
    from benchmarks.bench_find import bench_inprocess, bench_process, images

    out: list[Timing] = []
    for path in images([]):
        out += bench_inprocess(path, runs) + bench_process(path, runs)
    return out


def bench_hex_cursor(runs: int) -> list[Timing]:
    from benchmarks.bench_hex_cursor import bench as run

    return run(runs)


BENCHES = {"image": bench_image, "print": bench_print, "handover": bench_handover, "paging": bench_paging,
           "dump": bench_dump, "app": bench_app, "measure": bench_measure,
           "review": bench_review, "diff": bench_diff, "find": bench_find, "hex-cursor": bench_hex_cursor}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated: " + ", ".join(BENCHES))
    args = ap.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHES)
    unknown = [n for n in chosen if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    rows = [f"machine: {machine()}"]
    for bench in (BENCHES[n] for n in chosen):
        for t in bench(args.runs):
            rows.append(t.row())
            print(rows[-1], flush=True)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    # A partial run (--only) does not replace the full table.
    name = "latest.txt" if chosen == list(BENCHES) else f"latest-{'-'.join(chosen)}.txt"
    (results / name).write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
