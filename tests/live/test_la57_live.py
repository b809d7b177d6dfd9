"""A real 5-level boot: our DEBUG OvmfPkgX64 build (PcdUse5LevelPageTable) under QEMU 7.2 with
`-cpu max -fw_cfg name=opt/org.tianocode/PagingLevel,string=5`, where the reset vector turns on
CR4.LA57 and every later phase runs on 5-level page tables.

QEMU is the oracle, on the same stopped CPU:
- `info registers` says LA57 is on (CR4 bit 12, Intel SDM vol. 3A 2.5);
- `info tlb` lists every leaf (target/i386/monitor.c tlb_info_la57 -> print_pte: VA sign-extended at
  bit 56, the entry's address bits, flags X G P D A C T U W);
- `info mem` should list the ranges, but QEMU 7.2's mem_info_la57 tests the PDPTE and PDE present
  bits the wrong way round (`if (pdpe & PG_PRESENT_MASK) { prot = 0; ... continue; }`) and prints
  nothing for these tables. The ranges are checked against `info tlb`'s leaves merged by
  mem_print's rule (a range ends at a VA gap or where U/S or R/W change), and against `info mem`
  itself when it prints anything (a QEMU with the check fixed);
- `gva2gpa` translates one VA (target/i386/helper.c x86_cpu_get_phys_page_attrs_debug), "Unmapped"
  for a VA with no leaf or one that is not canonical.

Two boots: one driven handoff by handoff by a Session (sec, pei-core, dxe-ipl, dxe-core, bds), one
run to the UEFI shell and dumped with `dump-guest-memory` for `fwinspect pages` / `translate`.
Every wait is bounded; QEMU is ended by its PID.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from decoders.paging import PagingConfig, merge, walk
from decoders.paging_nodes import cpu_page_tables_node, cpu_paging_config
from decoders.paging_translate import translate, virtual_memory_node
from tests.realdata import firmware, tool

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parents[2]
IMAGE = "ovmf-debug/OVMF.fd"
LA57_ARGS = ["-fw_cfg", "name=opt/org.tianocode/PagingLevel,string=5"]
MEMORY = "256M"
PHASES = ("sec", "pei-core", "dxe-ipl", "dxe-core", "bds")
# The boot to BdsDxe is ~14 s under TCG here with the debug build's log; generous for 2 loaded cores.
HANDOFF_TIMEOUT = 120.0
# QEMU 7.2's `info mem` under LA57 visits 512^3 entries below every present PML4E (the inverted
# present tests, module docstring), about 4 s each time here.
MONITOR_TIMEOUT = 120.0
# The shell comes a few seconds after BDS boots it; the debug log says when (BdsDxe's DEBUG line).
SHELL_MARKER = "Booting EFI Internal Shell"
SHELL_TIMEOUT = 180.0
SHELL_SETTLE = 3.0
CR4_LA57 = 1 << 12

# VAs for gva2gpa and translate: low RAM, the flash, the last page OVMF's identity map covers at the
# shell (1 TiB: 2^40 - 4 KiB), past it, above 2^48 in the lower half (a 57-bit address no 4-level
# CPU has), the last lower-half page, the first and last upper-half pages; and a non-canonical one.
PROBES = (0x1000, 0xFFFFFFF0, 0xFFFFFFF000, 0x10000000000, 0x0001000000000000, 0x00FFFFFFFFFFF000,
          0xFF00000000000000, 0xFFFFFFFFFFFFF000)
NON_CANONICAL = (0x0100000000000000, 0xFE00000000000000)


def tlb_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def tlb_ranges(lines: list[str]) -> list[tuple[int, int, str]]:
    """info tlb's leaves merged as target/i386/monitor.c mem_print merges (a range ends at a VA gap
    or where U/S or R/W change): (start, end, 'u'/'-' + 'r' + 'w'/'-'). Leaf sizes come from the PS
    flag and the VA's alignment within the walk (a 'P' leaf is 1 GiB or 2 MiB: the next VA says)."""
    leaves = []
    for line in lines:
        m = re.fullmatch(r"([0-9a-f]{16}): ([0-9a-f]{16}) ([X-][G-][P-][D-][A-][C-][T-][U-][W-])", line)
        assert m, line
        leaves.append((int(m.group(1), 16), m.group(3)))
    out: list[list] = []
    for i, (va, flags) in enumerate(leaves):
        if flags[2] == "P":
            size = 1 << 30 if va % (1 << 30) == 0 and (i + 1 == len(leaves) or leaves[i + 1][0] - va >= 1 << 30) \
                else 1 << 21
        else:
            size = 1 << 12
        prot = ("u" if flags[7] == "U" else "-") + "r" + ("w" if flags[8] == "W" else "-")
        if out and out[-1][1] == va and out[-1][2] == prot:
            out[-1][1] = va + size
        else:
            out.append([va, va + size, prot])
    return [tuple(r) for r in out]


def gva2gpa(text: str) -> int | None:
    m = re.search(r"gpa: 0x([0-9a-f]+)", text)
    if m:
        return int(m.group(1), 16)
    assert "Unmapped" in text, text
    return None


# -- boot 1: the handoffs, one Session stop each ----------------------------------------------------
@pytest.fixture(scope="module")
def stops():
    tool("qemu-system-x86_64", "qemu-system-x86")
    from inspector.image import load_image
    from inspector.live.qemu import QemuProcess
    from inspector.live.session import Session

    path = firmware(IMAGE)
    qemu = QemuProcess(path, memory=MEMORY, extra_args=["-cpu", "max", *LA57_ARGS]).start()
    seen: dict[str, dict] = {}
    try:
        session = Session(qemu.attach("rsp"), load_image(path), qemu)

        def monitor(line: str) -> str:
            # Through the stub (qRcmd) with a timeout of its own: `info mem` takes seconds here.
            return session.target.monitor(line, MONITOR_TIMEOUT)

        session.current()
        for _ in range(len(PHASES) + 1):
            stop = session.next_handoff(HANDOFF_TIMEOUT)
            assert stop.handoff is not None, stop.problems
            r = stop.registers
            cfg = cpu_paging_config(r["cr0"], r["cr4"], r["efer"])
            result = walk(session.phys, r["cr3"], cfg) if cfg else None
            seen[stop.handoff] = {
                "registers": dict(r), "tree": stop.tree, "config": cfg, "walk": result,
                "node": cpu_page_tables_node(session.phys, r["cr0"], r["cr3"], r["cr4"], r["efer"]),
                "translate": {va: translate(session.phys, r["cr3"], va, cfg) for va in PROBES + NON_CANONICAL}
                if cfg else {},
                **{c: monitor(c) for c in ("info registers", "info tlb", "info mem")},
                "gva2gpa": {va: monitor(f"gva2gpa 0x{va:x}") for va in PROBES + NON_CANONICAL},
            }
            if stop.handoff == "bds":
                break
    finally:
        qemu.close()
    return seen


@pytest.mark.parametrize("phase", PHASES)
def test_the_stop_walks_5_level_tables_leaf_for_leaf_as_info_tlb(stops, phase):
    s = stops[phase]
    cr4 = int(re.search(r"CR4=([0-9a-f]+)", s["info registers"]).group(1), 16)
    cr3 = int(re.search(r"CR3=([0-9a-f]+)", s["info registers"]).group(1), 16)
    assert cr4 & CR4_LA57 and s["registers"]["cr4"] == cr4 and s["registers"]["cr3"] == cr3
    r = s["walk"]
    assert s["config"].levels == 5 and not r.problems
    theirs = tlb_lines(s["info tlb"])
    ours = [f"{m.va:016x}: {m.pa:016x} {m.qemu_tlb_flags()}" for m in r.mappings]
    assert len(ours) == len(theirs) and ours == theirs
    node = s["node"]
    assert node.get("Levels") == 5 and node.get("CR3") == cr3 and node.get("Leaves") == len(theirs)
    print(f"\n{phase}: CR3 0x{cr3:x}, {r.tables_read} table pages, {len(ours)} leaves, "
          f"{len(node.children)} ranges (NX kept), {len(tlb_ranges(theirs))} by info mem's rule")


@pytest.mark.parametrize("phase", PHASES)
def test_merged_ranges_equal_info_tlb_merged_as_info_mem_merges(stops, phase):
    s = stops[phase]
    theirs = tlb_ranges(tlb_lines(s["info tlb"]))
    ours = [(x.va, x.end, ("u" if x.user else "-") + "r" + ("w" if x.writable else "-"))
            for x in merge(s["walk"].mappings, nx=False)]
    assert ours == theirs
    mem = tlb_lines(s["info mem"])
    # QEMU 7.2 prints nothing here (the inverted present tests in mem_info_la57); a fixed QEMU
    # prints exactly these ranges ("start-end size prot", mem_print).
    assert mem == [] or mem == [f"{a:016x}-{b:016x} {b - a:016x} {p}" for a, b, p in theirs]
    # The stop's node lists the ranges with NX kept: each of info mem's ranges is a union of them.
    kids = [(c.get("VirtualAddress"), c.get("VirtualAddress") + c.get("Size")) for c in s["node"].children]
    for a, b, _ in theirs:
        inside = [k for k in kids if a <= k[0] < b]
        assert inside[0][0] == a and inside[-1][1] == b


@pytest.mark.parametrize("phase", PHASES)
def test_translate_57_bit_addresses_as_gva2gpa(stops, phase):
    s = stops[phase]
    for va in PROBES:
        pa, steps = s["translate"][va]
        assert pa == gva2gpa(s["gva2gpa"][va]), (hex(va), steps)
        assert steps[0].startswith(f"PML5E[{va >> 48 & 0x1FF}] ")
    for va in NON_CANONICAL:     # QEMU: "Unmapped"; ours: not canonical, no table read
        assert gva2gpa(s["gva2gpa"][va]) is None
        assert s["translate"][va] == (None, [f"0x{va:016x} is not canonical for 5-level paging: bits 63:57 must "
                                             "all equal bit 56 (lower half 0x0-0xffffffffffffff, upper half from "
                                             "0xff00000000000000)"])


def test_the_session_s_own_dxe_core_page_tables_are_5_level(stops):
    """Every handoff in long mode decodes CR3's tables itself (inspector/live/handoffs.py): 5-level,
    the leaves info tlb lists, at sec, pei-core, dxe-ipl, dxe-core and bds."""
    for phase in PHASES:
        s = stops[phase]
        pages = next(s["tree"].find("page-tables"), None) if s["tree"] is not None else None
        assert pages is not None, phase
        assert pages.get("Levels") == 5 and pages.get("Leaves") == len(tlb_lines(s["info tlb"])), phase
        assert pages.get("CR3") == s["registers"]["cr3"], phase


# -- boot 2: at the UEFI shell, dumped ------------------------------------------------------------------
@pytest.fixture(scope="module")
def shell_dump(tmp_path_factory):
    tool("qemu-system-x86_64", "qemu-system-x86")
    from tests.live.qemu_harness import QemuGuest, QmpError

    path = firmware(IMAGE)
    out = tmp_path_factory.mktemp("la57dump")
    log = out / "debug.log"
    with QemuGuest(path, memory=MEMORY, cpu="max", extra=LA57_ARGS, debugcon=log) as g:
        deadline = time.monotonic() + SHELL_TIMEOUT
        while SHELL_MARKER not in (log.read_text(errors="replace") if log.exists() else ""):
            if time.monotonic() > deadline:
                raise QmpError(f"no {SHELL_MARKER!r} in the debug log within {SHELL_TIMEOUT} s")
            g.wait_for_shell(delay=time.monotonic() - g.started + 0.5)   # checks QEMU is alive
        g.wait_for_shell(delay=time.monotonic() - g.started + SHELL_SETTLE)
        g.stop()
        g.dump_elf(out / "guest.elf")
        info = {c: g.hmp(c) for c in ("info registers", "info tlb", "info mem")}
        gva = {va: g.hmp(f"gva2gpa 0x{va:x}") for va in PROBES + NON_CANONICAL}
    return {"elf": out / "guest.elf", "gva2gpa": gva, **info}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_pages_of_the_dump_equal_info_tlb(shell_dump):
    cr3 = int(re.search(r"CR3=([0-9a-f]+)", shell_dump["info registers"]).group(1), 16)
    theirs = tlb_lines(shell_dump["info tlb"])
    r = run_cli("pages", str(shell_dump["elf"]), "--leaves")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert f"Page tables at CR3 0x{cr3:x} (5-level, {len(theirs)} leaves," in lines[0]
    units = {"1 GiB": "P", "2 MiB": "P", "4 KiB": "-"}
    leaves = [re.search(r"0x([0-9a-f]{16}) -> 0x([0-9a-f]+) (\d \w+) ", ln) for ln in lines]
    leaves = [(int(m.group(1), 16), int(m.group(2), 16), units[m.group(3)]) for m in leaves if m]
    assert leaves == [(int(t[:16], 16), int(t[18:34], 16), t[37]) for t in theirs]
    print(f"\nshell: {lines[0]}; {len(tlb_ranges(theirs))} ranges by info mem's rule")


def test_pages_json_merged_equals_info_tlb_merged(shell_dump):
    theirs = tlb_ranges(tlb_lines(shell_dump["info tlb"]))
    r = run_cli("pages", str(shell_dump["elf"]), "--json", "--merged")
    assert r.returncode == 0, r.stderr[-2000:]
    tree = json.loads(r.stdout)
    assert {f["name"]: f["value"] for f in tree["fields"]}["Levels"] == 5
    ranges = [{f["name"]: f["value"] for f in c["fields"]} for c in tree["children"]]
    ours = [(x["VirtualAddress"], x["VirtualAddress"] + x["Size"], x["User"], x["Writable"]) for x in ranges]
    for a, b, prot in theirs:       # each of info mem's ranges is a union of ours (ours also split on NX)
        inside = [o for o in ours if a <= o[0] < b]
        assert inside[0][0] == a and inside[-1][1] == b
        assert all(o[2] == (prot[0] == "u") and o[3] == (prot[2] == "w") for o in inside)
    assert sum(o[1] - o[0] for o in ours) == sum(b - a for a, b, _ in theirs)
    assert tlb_lines(shell_dump["info mem"]) in ([], [f"{a:016x}-{b:016x} {b - a:016x} {p}" for a, b, p in theirs])


@pytest.mark.parametrize("va", PROBES)
def test_translate_of_the_dump_agrees_with_gva2gpa(shell_dump, va):
    r = run_cli("translate", str(shell_dump["elf"]), hex(va))
    expected = gva2gpa(shell_dump["gva2gpa"][va])
    assert r.stdout.splitlines()[0].startswith(f"PML5E[{va >> 48 & 0x1FF}] at ")
    if expected is None:
        assert r.returncode == 1 and r.stdout.splitlines()[-1] == f"0x{va:x}: not mapped", r.stdout
    else:
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == f"0x{va:x} -> 0x{expected:x}", r.stdout


@pytest.mark.parametrize("va", NON_CANONICAL)
def test_translate_of_a_non_canonical_57_bit_address_says_so(shell_dump, va):
    assert gva2gpa(shell_dump["gva2gpa"][va]) is None
    r = run_cli("translate", str(shell_dump["elf"]), hex(va))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stdout.splitlines()[0] == (f"0x{va:016x} is not canonical for 5-level paging: bits 63:57 must all "
                                        "equal bit 56 (lower half 0x0-0xffffffffffffff, upper half from "
                                        "0xff00000000000000)")


def test_the_dump_s_virtual_space_reaches_both_halves(shell_dump):
    """Through the dump's CR3, 5-level: the lower half as the identity map shows it, the upper
    half (not mapped by OVMF, gva2gpa says so) blank, and no address past 2^57 offsets."""
    from inspector.dump import dump_pages, open_dump

    with open_dump(shell_dump["elf"]) as d:
        r = dump_pages(d)
        node = virtual_memory_node(d.memory, r.cr3, r.config, owner=d)
        space = node.space
        assert r.config.la57 and len(space.data) == 1 << 57
        pa = gva2gpa(shell_dump["gva2gpa"][0x1000])
        assert space.data[0x1000:0x1010] == d.memory.read(pa, 16)
        top = space.offset_of(0xFFFFFFFFFFFFF000)
        assert top == (1 << 57) - 0x1000 and space.address_of(top) == 0xFFFFFFFFFFFFF000
        assert space.data[top:top + 16] == b""     # gva2gpa: Unmapped
        assert space.offset_of(0x0100000000000000) is None
