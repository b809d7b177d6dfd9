"""Dumps of a real guest: Debian bookworm's OVMF.fd booted under QEMU (q35, TCG, 256 MiB) to the
UEFI shell, stopped over QMP, then `dump-guest-memory` (ELF, paging=false), `pmemsave` of RAM and
`info registers` / `info tlb` / `info mem` on the same stopped CPU. QEMU is the oracle for the CPU
state and the page tables, iasl for the ACPI bytes, the PE header in RAM for the image bases.
One boot for the whole module; QEMU is killed by PID when the fixture ends."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from decoders.memory import Unreadable
from decoders.paging import merge
from inspector.dump import dump_pages, open_dump
from inspector.locate import dump_overview
from tests.realdata import bookworm, tool

pytestmark = pytest.mark.live

RAM = 256 << 20
DXE_CORE = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")
REPO = Path(__file__).resolve().parents[2]


# Addresses to translate with both QEMU's gva2gpa and `fwinspect translate`: low RAM, the DXE
# area near the top of 256 MiB, the flash, and an address past the 1 TiB identity map.
TRANSLATE_VAS = (0x1234, 0xF000123, 0xFFFFFFF0, 0x20000000000)


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    tool("qemu-system-x86_64", "qemu-system-x86")
    from tests.live.qemu_harness import QemuGuest

    image = bookworm("OVMF.fd")
    out = tmp_path_factory.mktemp("dump")
    with QemuGuest(image, memory="256M") as g:
        g.wait_for_shell()
        g.stop()
        assert g.status() == "paused"
        g.dump_elf(out / "guest.elf")
        g.pmemsave(out / "ram.bin", 0, RAM)
        info = {c: g.hmp(c) for c in ("info registers", "info tlb", "info mem")}
        gva = {va: g.hmp(f"gva2gpa 0x{va:x}") for va in TRANSLATE_VAS}
    return {"image": image, "elf": out / "guest.elf", "raw": out / "ram.bin", "dir": out, "gva2gpa": gva, **info}


@pytest.fixture(scope="module")
def overview(guest):
    with open_dump(guest["elf"], image=guest["image"]) as d:
        yield d, dump_overview(d)


def test_dump_is_elf64_with_the_cpu_state_qemu_reports(guest):
    regs = guest["info registers"]
    with open_dump(guest["elf"]) as d:
        assert d.kind == "elf64" and not [p for p in d.problems if p.severity == "error"]
        cpu = d.cpus[0]
        for name in ("CR0", "CR3", "CR4"):
            assert getattr(cpu, name.lower()) == int(re.search(name + r"=([0-9a-f]+)", regs).group(1), 16)
        assert cpu.rip == int(re.search(r"RIP=([0-9a-f]+)", regs).group(1), 16)
        gdt = re.search(r"GDT=\s+([0-9a-f]+) ([0-9a-f]+)", regs)
        assert cpu.segments["gdt"].base == int(gdt.group(1), 16) and cpu.segments["gdt"].limit == int(gdt.group(2), 16)
        assert cpu.prstatus["rip"] == cpu.rip
        # the ELF's RAM equals the pmemsave of the same stopped guest
        with open_dump(guest["raw"], base=0) as raw:
            for addr in (0x100000, cpu.cr3, RAM - 0x1000):
                assert d.memory.read(addr, 0x1000) == raw.memory.read(addr, 0x1000)


def test_every_leaf_of_the_walk_equals_info_tlb(guest):
    with open_dump(guest["elf"]) as d:
        r = dump_pages(d)
        assert not r.problems
        ours = [f"{m.va:016x}: {m.pa:016x} {m.qemu_tlb_flags()}" for m in r.mappings]
        theirs = [line.strip() for line in guest["info tlb"].splitlines() if line.strip()]
        assert len(ours) == len(theirs) and ours == theirs
        mem = [f"{x.va:016x}-{x.end:016x} {x.size:016x} {'u' if x.user else '-'}r{'w' if x.writable else '-'}"
               for x in merge(r.mappings, nx=False)]
        assert mem == [line.strip() for line in guest["info mem"].splitlines() if line.strip()]


def test_system_table_and_its_configuration_tables(overview):
    d, o = overview
    st = next(o.find("efi-system-table"))
    assert not st.problems and st.get("FirmwareVendorString") == "EDK II"
    names = {c.get("VendorGuid") for c in st.children}
    for g in ("7739f24c-93d7-11d4-9a3a-0090273fc14d", "8868e871-e4f1-11d3-bc22-0080c73c8881",
              "49152e77-1ada-4764-b7a2-7afefed95e8b"):
        assert uuid.UUID(g) in names
    ptr = next(o.find("efi-system-table-pointer"))
    assert not ptr.problems and ptr.get("EfiSystemTableBase") == o.get("SystemTable")
    assert o.get("SystemTablePointer") % (4 << 20) == 0


def test_raw_pmemsave_locates_the_same_tables(guest, overview):
    _d, o = overview
    with open_dump(guest["raw"], base=0) as raw:
        r = dump_overview(raw)
    assert r.get("SystemTable") == o.get("SystemTable") and r.get("Rsdp") == o.get("Rsdp")


def test_hob_list_reaches_end_with_system_memory(overview):
    _d, o = overview
    hob = next(o.find("hob-list"))
    assert not hob.problems and hob.children[-1].get("HobType") == 0xFFFF
    res = [h for h in hob.children if h.get("HobType") == 3 and int(h.get("ResourceType")) == 0]
    assert res and max(h.get("PhysicalStart") + h.get("ResourceLength") for h in res) == RAM


def test_acpi_tables_as_qemu_q35_builds_them_and_iasl_reads_them(guest, overview):
    d, o = overview
    acpi = next(o.find("acpi"))
    tables = {t.bytes[:4].decode(): t for t in acpi.children if t.kind == "acpi-table"}
    assert {"FACP", "DSDT", "APIC", "HPET", "MCFG", "WAET", "FACS"} <= set(tables)
    for sig, t in tables.items():
        assert not [p for p in t.problems if "Checksum" in p.message], sig
    iasl = tool("iasl", "acpica-tools")
    dsdt = tables["DSDT"]
    path = guest["dir"] / "dsdt.dat"
    path.write_bytes(d.memory.read(dsdt.address, dsdt.size))
    out = subprocess.run([iasl, "-d", str(path)], capture_output=True, text=True, timeout=60, cwd=guest["dir"])
    assert out.returncode == 0, out.stderr
    dsl = (guest["dir"] / "dsdt.dsl").read_text(errors="replace")
    assert int(re.search(r"Length\s+0x([0-9A-F]+)", dsl).group(1), 16) == dsdt.size
    assert 'OEM ID           "BOCHS "' in dsl and "Checksum         0x" in dsl and "Incorrect" not in dsl


def test_loaded_images_include_dxecore_named_from_the_image(overview):
    d, o = overview
    images = next(o.find("efi-debug-image-info-table")).children
    assert len(images) > 50
    core = [i for i in images if i.get("FileGuid") == DXE_CORE]
    assert len(core) == 1 and core[0].get("Name") == "DxeCore"
    for img in images:
        # every image base holds a PE/COFF (MZ) or TE (VZ) header
        assert d.memory.read(img.get("ImageBase"), 2) in (b"MZ", b"VZ"), img.title


def test_open_and_locate_budget(guest):
    """Open + locate in a fresh process (peak RSS and time of that work only), and the walk of
    OVMF's identity map; printed for the report."""
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "def hwm():  # VmHWM: ru_maxrss would carry pytest's peak over fork+exec\n"
        "    return next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
        "from inspector.dump import open_dump, dump_pages; from inspector.locate import dump_overview\n"
        "base = hwm()\n"
        "t = time.perf_counter(); d = open_dump(%r); o = dump_overview(d); t1 = time.perf_counter() - t\n"
        "rss = hwm()\n"
        "t = time.perf_counter(); r = dump_pages(d); t2 = time.perf_counter() - t\n"
        "print(t1, t2, base / 1024, rss / 1024, len(r.mappings), hwm() / 1024)\n"
    ) % (str(REPO), str(guest["elf"]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    locate_s, walk_s, rss_imports, rss_peak, leaves, rss_walk = out.stdout.split()
    print(f"\nopen+locate {float(locate_s):.3f} s, peak RSS {float(rss_peak):.1f} MiB (imports "
          f"{float(rss_imports):.1f} MiB); walk {float(walk_s):.3f} s ({leaves} leaves), peak RSS after "
          f"the walk {float(rss_walk):.1f} MiB")
    assert float(locate_s) < 1.0 and float(rss_peak) < 100
    assert float(walk_s) < 1.0


# -- a guest with a TPM (swtpm): the TCG2 event log --------------------------------------------------
@pytest.fixture(scope="module")
def tpm_guest(tmp_path_factory):
    tool("qemu-system-x86_64", "qemu-system-x86")
    tool("swtpm", "swtpm")
    from tests.live.qemu_harness import QemuGuest

    out = tmp_path_factory.mktemp("tpmdump")
    with QemuGuest(bookworm("OVMF.fd"), memory="256M", tpm=True) as g:
        g.wait_for_shell()
        g.stop()
        g.dump_elf(out / "guest.elf")
    return out


def test_tcg2_log_is_found_in_bs_data_and_agrees_with_tpm2_eventlog(tpm_guest):
    """QEMU's TPM2 table points at an empty LASA area (Tcg2Dxe keeps its own log); the log is found by the scan.
    tpm2_eventlog reads the same bytes (the 64 KiB log area; it stops with an error at the 0xFF
    padding after the last event, having printed every event)."""
    import yaml

    exe = tool("tpm2_eventlog", "tpm2-tools")
    with open_dump(tpm_guest / "guest.elf") as d:
        o = dump_overview(d)
        logs = [n for n in o.children if n.kind == "event-log"]
        assert any("LASA area" in p.message and "empty" in p.message for p in o.problems)
        assert len(logs) == 1 and logs[0].get("Format") == "tcg"
        area = tpm_guest / "log.bin"
        area.write_bytes(d.memory.read(logs[0].get("Address"), 0x10000))
    out = subprocess.run([exe, str(area)], capture_output=True, text=True, timeout=60)
    ref = yaml.safe_load(out.stdout)["events"]
    from decoders.eventlog.decode import event_digests, log_events

    ours = log_events(logs[0])
    assert len(ours) == len(ref) > 10
    for ev, r in zip(ours, ref):
        assert ev.get("PCRIndex") == r["PCRIndex"]
        assert ev.field("EventType").text == r["EventType"]
        if "Digests" in r:
            theirs = [(x["AlgorithmId"], x["Digest"]) for x in r["Digests"]]
            assert [(a, h.hex()) for a, h in event_digests(ev)] == theirs


@pytest.mark.parametrize("name, pflash, kind", [("OVMF.fd", False, "elf64"), ("OVMF_CODE_4M.fd", True, "elf32")])
def test_reset_vector_dump_is_em386_with_real_mode_state(tmp_path, name, pflash, kind):
    """Stopped before the first instruction QEMU writes EM_386 with the i386 PRSTATUS (no LMA).
    The class is ELF32 unless a block ends above 0xFFFFFFFF (arch_dump.c cpu_get_dump_info): with
    -bios the flash ROM block ends exactly at 4 GiB, so it is ELF64 and the reset vector is in the
    dump; with pflash the flash is not in the dump and the class is ELF32."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    from tests.live.qemu_harness import QemuGuest

    image = bookworm(name)
    with QemuGuest(image, memory="256M", paused=True, pflash=pflash) as g:
        g.dump_elf(tmp_path / "reset.elf")
        regs = g.hmp("info registers")
    with open_dump(tmp_path / "reset.elf") as d:
        assert d.kind == kind and d.machine == 3 and not [p for p in d.problems if p.severity == "error"]
        cpu = d.cpus[0]
        cs = re.search(r"CS =([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", regs)
        assert (cpu.segments["cs"].selector, cpu.segments["cs"].base, cpu.segments["cs"].limit) == \
            tuple(int(cs.group(i), 16) for i in (1, 2, 3))
        assert cpu.rip == int(re.search(r"EIP=([0-9a-f]+)", regs).group(1), 16)
        assert cpu.prstatus_layout == "i386" and cpu.prstatus["eip"] == cpu.rip
        assert cpu.cr0 == int(re.search(r"CR0=([0-9a-f]+)", regs).group(1), 16)
        flash = image.read_bytes()
        if pflash:
            with pytest.raises(Unreadable):
                d.memory.read((1 << 32) - 16, 16)
        else:
            assert d.memory.read((1 << 32) - 16, 16) == flash[-16:]
    with open_dump(tmp_path / "reset.elf", image=image) as d:
        assert d.memory.read((1 << 32) - 16, 16) == flash[-16:]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_cli_dump_overview_json(guest):
    r = run_cli("dump", str(guest["elf"]), "--image", str(guest["image"]), "--json")
    assert r.returncode in (0, 1), r.stderr[-2000:]
    tree = json.loads(r.stdout)
    assert tree["kind"] == "dump-overview"
    found = next(f["value"] for f in tree["fields"] if f["name"] == "Found")
    assert {"system table", "HOB list", "ACPI"} <= set(found)


def test_cli_pages_merged_json_equals_info_mem(guest):
    r = run_cli("pages", str(guest["elf"]), "--json", "--merged")
    assert r.returncode == 0, r.stderr[-2000:]
    tree = json.loads(r.stdout)
    assert tree["kind"] == "page-tables"
    ranges = [{f["name"]: f["value"] for f in c["fields"]} for c in tree["children"]]
    assert all(c["kind"] == "page-range" for c in tree["children"])
    # info mem merges by U/S and R/W only; ours also splits on NX: every info mem range must be a
    # union of consecutive ranges of ours with the same U/S and R/W.
    ours = [(r["VirtualAddress"], r["VirtualAddress"] + r["Size"], r["User"], r["Writable"]) for r in ranges]
    for line in guest["info mem"].splitlines():
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ([0-9a-f]+) ([u-])r([w-])", line.strip())
        if not m:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        inside = [o for o in ours if start <= o[0] < end]
        assert inside and inside[0][0] == start and inside[-1][1] == end, line
        assert all(o[2] == (m.group(4) == "u") and o[3] == (m.group(5) == "w") for o in inside), line


def test_cli_translate_agrees_with_gva2gpa(guest):
    for va, text in guest["gva2gpa"].items():
        r = run_cli("translate", str(guest["elf"]), hex(va))
        m = re.search(r"gpa: 0x([0-9a-f]+)", text)
        if m:
            assert r.returncode == 0, r.stdout + r.stderr
            assert r.stdout.strip().splitlines()[-1] == f"0x{va:x} -> 0x{int(m.group(1), 16):x}"
        else:  # QEMU: "Unmapped"
            assert r.returncode == 1 and "not mapped" in r.stdout, (text, r.stdout)


def test_app_source_for_a_dump_has_overview_and_page_ranges(guest):
    from inspector.sources import load_source

    kind, root = load_source(guest["elf"])
    assert kind == "dump" and root.kind == "dump-overview"
    pages = next(root.find("page-tables"))
    assert pages.get("Leaves") == sum(1 for line in guest["info tlb"].splitlines() if ": " in line)
    # The hex spaces: physical memory, and virtual memory through CR3 (identity-mapped by OVMF, so
    # both read the system table pointer's signature at the address QEMU's gva2gpa agrees on).
    phys, virt = (n for n in root.find("memory") if "Physical" in n.title), \
        (n for n in root.find("memory") if "Virtual" in n.title)
    phys, virt = next(phys), next(virt)
    st = next(root.find("efi-system-table-pointer")).address
    assert phys.space.data[st:st + 8] == b"IBI SYST" == virt.space.data[st:st + 8]
    assert virt.space.data[1 << 46:(1 << 46) + 16] == b""  # not mapped: blank, no exception
