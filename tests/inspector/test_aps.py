"""What the APs were given (inspector/aps.py), from crafted dumps and hand-made live Stops: the module
each AP's RIP is in, wait-for-SIPI vs parked after a HLT, the wake-up buffer from a real-mode AP's CS
base and from MpInitLib's debug lines, the MADT Multiprocessor Wakeup mailbox, and the dump overview
that shows it all only when the dump has more than one CPU. Dumps are ELF cores built with
struct.pack (tests/decoders/test_elfcore_cpus.py); the log lines are copied from a real -smp 2 boot
of our DEBUG OVMF (edk2 2025.02) on QEMU 7.2."""
from __future__ import annotations

import struct

from decoders.acpi import decode_acpi_from_rsdp
from decoders.model import Node
from inspector.aps import aps_node, dump_aps_node, facts_from_dump, facts_from_stop, stop_aps_node, wakeup_buffers
from inspector.dump import open_dump
from inspector.live.session_api import CpuView, Stop
from inspector.locate import dump_overview
from tests.decoders.test_elfcore_cpus import CPUS, CS_RESET, core, note, page_tables, prstatus, qemu_state
from tests.decoders.test_madt_wakeup import MAILBOX_AT, RSDP_AT, mailbox, memory

# Lines of the debug log of a real -smp 2 boot (our DEBUG OvmfPkgX64 build, QEMU 7.2, TCG).
REAL_LOG = """Loading PEIM at 0x0000FEBE000 EntryPoint=0x0000FEC4225 CpuMpPei.efi
AP Loop Mode is 1
AP Vector: non-16-bit = FEA4000/44A
WakeupBufferStart = 9F000, WakeupBufferSize = 1000
AP Vector: 16-bit = 9F000/39, ExchangeInfo = 9F039/A4
MpInitLib: Find 2 processors in system.
Loading driver at 0x0000ECB0000 EntryPoint=0x0000ECBD59E CpuDxe.efi
MpInitLibInitialize: ProcessorIndex=0 CpuCount=2
AP Loop Mode is 1
AP Vector: non-16-bit = ECD0000/44A
WakeupBufferStart = 87000, WakeupBufferSize = DD
AP Vector: 16-bit = 87000/39, ExchangeInfo = 87039/A4
Detect CPU count: 2
"""


def images_tree(*images: tuple[int, int, str]) -> Node:
    """A located tree's loaded images (inspector.locate's efi-debug-image-info-table)."""
    root = Node("dump-overview", "t")
    table = root.append(Node("efi-debug-image-info-table", "images"))
    for base, size, name in images:
        img = table.append(Node("efi-debug-image", name))
        img.add("ImageBase", base)
        img.add("ImageSize", size)
        img.add("Name", name)
    return root


def four_cpu_dump(tmp_path, extra_cpu: dict | None = None):
    cpus = CPUS + ([extra_cpu] if extra_cpu else [])
    notes = b"".join(note(b"CORE", 1, prstatus(c["rip"], i + 1)) for i, c in enumerate(cpus))
    notes += b"".join(note(b"QEMU", 0, qemu_state(**c)) for c in cpus)
    # Code pages: a HLT right before AP 1's RIP (0xECC0F91), a NOP before AP 2's (0x7FFF1234).
    code1 = bytearray(0x1000)
    code1[0xF90] = 0xF4
    code2 = bytearray(0x1000)
    code2[0x233] = 0x90
    p = tmp_path / "aps.elf"
    p.write_bytes(core(notes, [(0, page_tables()), (0xECC0000, bytes(code1)), (0x7FFF1000, bytes(code2))]))
    return p


def test_dump_aps_name_the_module_and_the_state_of_each_ap(tmp_path):
    with open_dump(four_cpu_dump(tmp_path)) as d:
        tree = images_tree((0xECB0000, 0x1D440, "CpuDxe"), (0xF000000, 0x100000, "DxeCore"))
        node = dump_aps_node(d, tree)
    aps = [c for c in node.children if c.kind == "ap"]
    assert [(a.get("Index"), a.get("State"), a.get("Mode"), a.get("Module")) for a in aps] == [
        (1, "parked", "long64", "CpuDxe"), (2, "unknown", "long64", None), (3, "wait-for-sipi", "real", None)]
    assert aps[0].get("Rip") == 0xECC0F91 and aps[0].get("SameCr3AsBsp") is True
    assert aps[1].get("SameCr3AsBsp") is False and aps[2].get("LinearRip") == 0xFFFFFFF0
    assert node.get("CpuCount") == 4 and node.get("ApCount") == 3 and node.get("BspModule") == "DxeCore"
    assert node.get("States") == {"parked": 1, "unknown": 1, "wait-for-sipi": 1}
    # the low-RAM buffer is not in a shell-time dump: said, not guessed
    assert any("no wake-up buffer seen" in p.message for p in node.problems)


def test_a_real_mode_ap_outside_the_reset_state_names_the_wakeup_buffer(tmp_path):
    # An AP just started by SIPI vector 0x87: CS 0x8700 base 0x87000 (SDM vol. 3A 11.6.1), in MpInitLib's
    # 16-bit code (RendezvousFunnelProc) a few bytes in.
    started = dict(rip=0x1C, cr0=0x60000010, cr3=0, cr4=0, cs_sel=0x8700, cs_base=0x87000, cs_flags=CS_RESET)
    with open_dump(four_cpu_dump(tmp_path, started)) as d:
        facts = facts_from_dump(d)
        buffers = wakeup_buffers(facts)
        assert [(b.address, b.cpus) for b in buffers] == [(0x87000, [4])]
        node = dump_aps_node(d, None)
    buf = next(c for c in node.children if c.kind == "ap-wakeup-buffer")
    assert buf.get("Address") == 0x87000 and buf.get("SipiVector") == 0x87 and buf.get("RunningFromIt") == [4]
    ap4 = next(c for c in node.children if c.kind == "ap" and c.get("Index") == 4)
    assert ap4.get("LinearRip") == 0x8701C and ap4.get("State") == "unknown"


def test_wakeup_buffers_and_loop_mode_from_mpinitlib_debug_lines():
    cpus = [facts for facts in facts_from_stop(hand_stop())]
    node = aps_node(cpus, log=REAL_LOG)
    bufs = [(c.get("Address"), c.get("Size"), c.get("ExchangeInfo"), c.get("Module")) for c in node.children
            if c.kind == "ap-wakeup-buffer"]
    assert bufs == [(0x9F000, 0x1000, 0x9F039, "CpuMpPei"), (0x87000, 0xDD, 0x87039, "CpuDxe")]
    assert node.get("ApLoopMode") == 1 and node.get("LogCpuCount") == 2
    assert not [p for p in node.problems if p.severity != "info"]
    wrong = aps_node(cpus + cpus[1:], log=REAL_LOG)        # 3 CPUs against the log's 2
    assert any("counted 2 CPUs, the target has 3" in p.message for p in wrong.problems)


def hand_stop() -> Stop:
    bsp = CpuView(0, "1", "long64", 0xECC0F91, "bds", "CpuDxe", "halted",
                  {"rip": 0xECC0F91, "cr0": 0x80010033, "cr3": 0xF801000, "cr4": 0x668, "cs": 0x38, "cs_base": 0},
                  "info registers -a: HLT=1")
    ap = CpuView(1, "2", "long64", 0xECC0F91, "bds", "CpuDxe", "halted",
                 {"rip": 0xECC0F91, "cr0": 0x80010033, "cr3": 0xF801000, "cr4": 0x660, "cs": 0x38, "cs_base": 0},
                 "info registers -a: HLT=1")
    return Stop(7, "handoff", "bds", "long64", 0xECC0F91, {}, cpus=[bsp, ap])


def test_a_live_stop_gives_the_backends_state_and_module():
    node = stop_aps_node(hand_stop())
    ap = next(c for c in node.children if c.kind == "ap")
    assert (ap.get("Index"), ap.get("State"), ap.get("Module"), ap.get("Cr4")) == (1, "halted", "CpuDxe", 0x660)
    assert "stop 7, bds" in node.title and node.get("BspModule") == "CpuDxe"
    sipi = Stop(0, "reset", "reset", "real", 0xFFFFFFF0, {}, cpus=[
        CpuView(0, "1", "real", 0xFFFFFFF0, "reset", None, "running", {"rip": 0xFFF0, "cs": 0xF000,
                                                                       "cs_base": 0xFFFF0000}),
        CpuView(1, "2", "real", 0xFFFFFFF0, "reset", None, "wait-for-sipi", {"rip": 0xFFF0, "cs": 0xF000,
                                                                             "cs_base": 0xFFFF0000})])
    ap = next(c for c in stop_aps_node(sipi).children if c.kind == "ap")
    assert ap.get("State") == "wait-for-sipi"


def test_mp_wakeup_mailbox_of_the_madt_is_summarised():
    entry = struct.pack("<BBHIQ", 0x10, 16, 0, 0, MAILBOX_AT)
    acpi = decode_acpi_from_rsdp(memory(entry, mailbox(command=0, apic_id=0, vector=0)), RSDP_AT)
    tree = Node("t", "t")
    tree.append(acpi)
    node = aps_node(facts_from_stop(hand_stop()), tree=tree)
    mp = next(c for c in node.children if c.kind == "mp-wakeup")
    assert (mp.get("MailBoxAddress"), mp.get("Command"), mp.get("ApicId")) == (MAILBOX_AT, 0, 0)
    assert "no request pending" in mp.title


def test_dump_overview_shows_the_aps_node_only_with_more_than_one_cpu(tmp_path):
    with open_dump(four_cpu_dump(tmp_path)) as d:
        o = dump_overview(d)
        assert len(list(o.find("aps"))) == 1
    one = note(b"CORE", 1, prstatus(CPUS[0]["rip"], 1)) + note(b"QEMU", 0, qemu_state(**CPUS[0]))
    p = tmp_path / "one.elf"
    p.write_bytes(core(one, [(0, page_tables())]))
    with open_dump(p) as d:
        assert list(dump_overview(d).find("aps")) == []


def test_the_reset_state_needs_ip_fff0_too():
    # The BSP a few bytes into the reset vector has the reset CS but not IP 0xFFF0: it is running, not
    # waiting for a SIPI (Intel SDM vol. 3A 9.1.4).
    moved = Stop(1, "step", "reset", "real", 0xFFFFFFF3, {}, cpus=[
        CpuView(0, "1", "real", 0xFFFFFFF0, "reset", None, "running", {"rip": 0xFFF0, "cs": 0xF000,
                                                                       "cs_base": 0xFFFF0000}),
        CpuView(1, "2", "real", 0xFFFFFFF3, "reset", None, "unknown", {"rip": 0xFFF3, "cs": 0xF000,
                                                                       "cs_base": 0xFFFF0000})])
    ap = next(c for c in stop_aps_node(moved).children if c.kind == "ap")
    assert ap.get("State") == "unknown" and ap.get("LinearRip") == 0xFFFFFFF3


def test_a_peim_the_debug_log_loaded_names_an_aps_rip_with_the_images_size_of_image():
    """A DEBUG build's log gives a PEIM's base and file GUID but no size ("Loading PEIM at ..."); the size
    is the SizeOfImage of that file's PE in the image (our DEBUG OvmfPkgX64 build)."""
    from decoders.edk2log import decode_log
    from inspector.image import load_image
    from tests.realdata import firmware

    image = load_image(firmware("ovmf-debug/OVMF.fd"))
    pe = next(c for f in image.root.find("ffs") if f.get("UI") == "CpuMpPei"
              and str(f.get("Name")).upper() == "EDADEB9D-DDBA-48BD-9D22-C1C169C8C5C6"
              for c in f.walk() if c.kind == "pe")
    size = pe.get("SizeOfImage")
    log = decode_log(b"Loading PEIM EDADEB9D-DDBA-48BD-9D22-C1C169C8C5C6\n"
                     b"Loading PEIM at 0x0000FEBE000 EntryPoint=0x0000FEC4225 CpuMpPei.efi\n", "dbg.log")
    tree = Node("stop-tree", "t")
    tree.append(log)
    inside, past = 0xFEBE000 + size - 1, 0xFEBE000 + size
    stop = Stop(4, "handoff", "dxe-core", "long64", 0x1000, {}, handoff="dxe-core", tree=tree, cpus=[
        CpuView(0, "1", "long64", 0xF000000, "dxe-core", "DxeCore", "running", {"rip": 0xF000000}),
        CpuView(1, "2", "long64", inside, "dxe-core", None, "halted", {"rip": inside}),
        CpuView(2, "3", "long64", past, "dxe-core", None, "halted", {"rip": past})])
    aps = [c for c in stop_aps_node(stop, image).children if c.kind == "ap"]
    assert [(a.get("Index"), a.get("Module")) for a in aps] == [(1, "CpuMpPei"), (2, None)]
    assert str(aps[0].get("ModuleFile")).upper() == "EDADEB9D-DDBA-48BD-9D22-C1C169C8C5C6"


def test_a_replayed_stop_with_garbage_registers_reads_as_unknown():
    """A recording is input: registers that are not integers, a CPU without an index."""
    bad = Stop(2, "handoff", "bds", "long64", 0x1000, {}, handoff="bds", cpus=[
        CpuView(0, "1", "long64", 0x1000, "bds", None, "running", {"rip": 0x1000}),
        CpuView(1, "2", "long64", "x", "bds", ["no"], "halted", {"rip": "0xzz", "cs": None, "cr3": -5}),
        CpuView(None, "3", "real", 0, "reset", None, "unknown", "not a dict")])
    node = stop_aps_node(bad)
    aps = [c for c in node.children if c.kind == "ap"]
    assert [(a.get("Index"), a.get("Rip"), a.get("Module"), a.get("State")) for a in aps] == [(1, None, None, "halted")]
    from inspector.tour.aps import aps_boot_chapter

    bad.cpus.append(CpuView(2, "3", "long64", 0x2000, "bds", None, "halted", {"rip": 0x2000}))
    c = aps_boot_chapter([bad])
    assert "AP 1 halted at ?" in c.text and "AP 2 halted at 0x2000" in c.text
