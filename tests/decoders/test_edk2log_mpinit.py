"""MpInitLib's DEBUG lines as events of decoders/edk2log.py, and inspector/aps.py reading them from there.

Real logs (tests/data/edk2log/, README there): ovmf-debug-2025.02.log (one CPU) and
ovmf-debug-2025.02-smp2.log (the same DEBUG OvmfPkgX64 build under QEMU 7.2 TCG with -smp 2); the
expected values were read off them with grep (`grep -nE "AP Loop|AP Vector|WakeupBuffer|processors in
system|CPU count|ProcessorIndex=|APIC MODE"`). The formats are UefiCpuPkg/Library/MpInitLib's
(MpLib.c, PeiMpLib.c, DxeMpLib.c) and UefiCpuPkg/CpuDxe/CpuMp.c's. Hostile logs: lines cut short,
values that are not hex or decimal or are longer than a UINTN prints, bytes that are not text.
"""
from __future__ import annotations

import pytest

from decoders.edk2log import LogParser, decode_log, parse_log
from inspector.aps import aps_node, log_facts, wakeup_buffers
from tests.realdata import fixture

MP = ("mp-hand-off", "mp-loop-mode", "mp-vector-high", "mp-wakeup-buffer", "mp-vector", "mp-apic-mode",
      "mp-processors", "cpu-count")

# (line, kind, values) of every MpInitLib line of the -smp 2 log: CpuMpPei (PEI) then CpuDxe (DXE).
SMP2 = [
    (134, "mp-loop-mode", {"ApLoopMode": 1}),
    (135, "mp-vector-high", {"WakeupBufferHigh": 0xFEA4000, "Size": 0x44A}),
    (136, "mp-wakeup-buffer", {"WakeupBufferStart": 0x9F000, "WakeupBufferSize": 0x1000}),
    (137, "mp-vector", {"WakeupBuffer": 0x9F000, "ModeTransitionOffset": 0x39, "ExchangeInfo": 0x9F039,
                        "ExchangeInfoSize": 0xA4}),
    (139, "mp-apic-mode", {"ApicMode": 1}),
    (140, "mp-processors", {"CpuCount": 2}),
    (388, "mp-hand-off", {"ProcessorIndex": 0, "CpuCount": 2}),
    (389, "mp-loop-mode", {"ApLoopMode": 1}),
    (390, "mp-vector-high", {"WakeupBufferHigh": 0xF0FA000, "Size": 0x44A}),
    (393, "mp-wakeup-buffer", {"WakeupBufferStart": 0x87000, "WakeupBufferSize": 0xDD}),
    (394, "mp-vector", {"WakeupBuffer": 0x87000, "ModeTransitionOffset": 0x39, "ExchangeInfo": 0x87039,
                        "ExchangeInfoSize": 0xA4}),
    (399, "cpu-count", {"CpuCount": 2}),
]
# The one-CPU boot: MpInitLib wakes no AP, so no wake-up buffer, no 16-bit vector, no "Find %d processors".
ONE = [
    (134, "mp-loop-mode", {"ApLoopMode": 1}),
    (135, "mp-vector-high", {"WakeupBufferHigh": 0xFEB4000, "Size": 0x44A}),
    (370, "mp-hand-off", {"ProcessorIndex": 0, "CpuCount": 1}),
    (371, "mp-loop-mode", {"ApLoopMode": 1}),
    (372, "mp-vector-high", {"WakeupBufferHigh": 0xECD8000, "Size": 0x44A}),
    (376, "cpu-count", {"CpuCount": 1}),
]


@pytest.fixture(scope="module")
def smp2() -> bytes:
    return fixture("edk2log/ovmf-debug-2025.02-smp2.log").read_bytes()


def mp_events(p: LogParser) -> list[tuple]:
    return [(e.line, e.kind, e.values) for e in p.events if e.kind in MP]


def test_real_smp2_log_mpinitlib_events_with_their_values(smp2):
    p = parse_log(smp2)
    assert mp_events(p) == SMP2
    assert not p.notes and p.malformed == 0
    for e in p.events:            # located: the line's bytes at its offset, CRLF and all
        assert smp2[e.offset:e.offset + e.size].decode() == e.text
        assert smp2[:e.offset].count(b"\n") + 1 == e.line
    assert smp2[p.last("mp-wakeup-buffer").offset:].startswith(b"WakeupBufferStart = 87000, WakeupBufferSize = DD\r\n")


def test_real_one_cpu_log_mpinitlib_events():
    assert mp_events(parse_log(fixture("edk2log/ovmf-debug-2025.02.log").read_bytes())) == ONE


def test_mpinitlib_events_are_nodes_of_the_decoded_log(smp2):
    root = decode_log(smp2, "smp2.log")
    buffers = [n for n in next(root.find("log-events")).children if n.kind == "log-mp-wakeup-buffer"]
    assert [(n.title, n.offset, n.get("WakeupBufferStart"), n.get("WakeupBufferSize")) for n in buffers] == [
        ("line 136: AP wake-up buffer at 0x9f000, 0x1000 bytes (SIPI page)", smp2.index(b"WakeupBufferStart = 9F000"),
         0x9F000, 0x1000),
        ("line 393: AP wake-up buffer at 0x87000, 0xdd bytes (SIPI page)", smp2.index(b"WakeupBufferStart = 87000"),
         0x87000, 0xDD)]
    counts = root.get("EventCounts")
    assert {k: counts[k] for k in MP} == {"mp-hand-off": 1, "mp-loop-mode": 2, "mp-vector-high": 2,
                                          "mp-wakeup-buffer": 2, "mp-vector": 2, "mp-apic-mode": 1,
                                          "mp-processors": 1, "cpu-count": 1}


def test_aps_reads_the_buffers_and_facts_from_the_real_log_events(smp2):
    bufs = wakeup_buffers([], smp2.decode())
    assert [(b.address, b.size, b.exchange_info, b.module) for b in bufs] == [
        (0x9F000, 0x1000, 0x9F039, "CpuMpPei"), (0x87000, 0xDD, 0x87039, "CpuDxe")]
    assert log_facts(smp2.decode()) == {"ApLoopMode": 1, "CpuCount": 2}
    assert log_facts(parse_log(smp2)) == {"ApLoopMode": 1, "CpuCount": 2}     # a parser already fed


HOSTILE = (b"Loading PEIM at 0x0000FEBE000 EntryPoint=0x0000FEC4225 CpuMpPei.efi\n"
           b"AP Loop Mode is x1\n"                                                   # 1: not decimal
           b"WakeupBufferStart = 9F000, WakeupBufferSize = 1G00\n"                   # 2: not hex
           b"WakeupBufferStart = 9F000, WakeupBuff\n"                               # 3: cut in half
           b"AP Vector: 16-bit = 9F000/39, ExchangeInfo = 11112222333344445/A4\n"   # 4: 17 hex digits
           b"MpInitLib: Find -1 processors in system.\n"                            # 5: negative
           b"Detect CPU count: 12345678901\n"                                       # 6: 11 digits
           b"WakeupBufferStart = 9\xff000, WakeupBufferSize = 1000\n"               # 7: not text
           b"WakeupBufferStart = FFFFFFFFFFFFFFFF, WakeupBufferSize = DD\n"        # DxeMpLib.c: no page free
           b"AP Loop Mode is 2\n"
           b"Loading driver at 0x0000ECB0000 EntryPoint=0x0000ECBD59E CpuDxe.efi\n"
           b"WakeupBufferStart = 87000, WakeupBufferSize = DD\n"
           b"Detect CPU count: 3\n"
           b"WakeupBufferStart = 86000, WakeupBufferSi")                           # 8: the log ends mid-line


def test_hostile_log_bad_mpinitlib_lines_are_located_problems_and_skipped():
    p = parse_log(HOSTILE)
    assert mp_events(p) == [(9, "mp-wakeup-buffer", {"WakeupBufferStart": 0xFFFFFFFFFFFFFFFF,
                                                     "WakeupBufferSize": 0xDD}),
                            (10, "mp-loop-mode", {"ApLoopMode": 2}),
                            (12, "mp-wakeup-buffer", {"WakeupBufferStart": 0x87000, "WakeupBufferSize": 0xDD}),
                            (13, "cpu-count", {"CpuCount": 3})]
    assert p.malformed == 7 and p.garbage == 1 and p.cut_short      # the cut last line is malformed too
    starts = [HOSTILE.index(t) for t in (b"AP Loop Mode is x1", b"WakeupBufferStart = 9F000, WakeupBufferSize = 1G",
                                         b"WakeupBufferStart = 9F000, WakeupBuff\n", b"AP Vector: 16-bit",
                                         b"MpInitLib: Find -1", b"Detect CPU count: 1234")]
    last = HOSTILE.index(b"WakeupBufferStart = 86000")
    assert [(o, ln) for o, ln, _s, _m in p.notes] == [(starts[0], 2), (starts[1], 3), (starts[2], 4), (starts[3], 5),
                                                      (starts[4], 6), (starts[5], 7),
                                                      (HOSTILE.index(b"\xff"), 8), (last, 14), (last, 14)]
    assert "starts as 'AP Loop Mode is' (AP loop mode) but does not match its format" in p.notes[0][3]
    assert "ends inside a line" in p.notes[-2][3] and "'WakeupBufferStart =' (AP wake-up buffer)" in p.notes[-1][3]


def test_aps_on_a_hostile_log_keeps_what_parsed_and_nothing_else():
    bufs = wakeup_buffers([], HOSTILE.decode("latin-1"))
    # the (UINTN)-1 start is not a page below 1 MiB; the cut and garbage lines give nothing
    assert [(b.address, b.size, b.exchange_info, b.module) for b in bufs] == [(0x87000, 0xDD, None, "CpuDxe")]
    assert log_facts(HOSTILE) == {"ApLoopMode": 2, "CpuCount": 3}
    node = aps_node([], log=HOSTILE.decode("latin-1"))
    assert node.get("ApLoopMode") == 2 and node.get("LogCpuCount") == 3


def test_a_mutated_real_log_loses_exactly_the_mutated_buffer(smp2):
    """The second WakeupBufferStart line given a size with a non-hex digit (what the decoder calls
    malformed) gives aps no buffer there: one reading of the log, not two."""
    bad = smp2.replace(b"WakeupBufferSize = DD\r", b"WakeupBufferSize = DZ\r")
    p = parse_log(bad)
    assert [e.line for e in p.of_kind("mp-wakeup-buffer")] == [136] and p.malformed == 1
    assert p.notes[0][:2] == (bad.index(b"WakeupBufferStart = 87000"), 393)
    assert [(b.address, b.size) for b in wakeup_buffers([], bad.decode())] == [(0x9F000, 0x1000)]
    # cut at the middle of the CpuDxe reset-vector line: its ExchangeInfo is not known, the rest is
    cut = smp2[:smp2.index(b"AP Vector: 16-bit = 87000") + 25]
    bufs = wakeup_buffers([], cut.decode())
    assert [(b.address, b.exchange_info) for b in bufs] == [(0x9F000, 0x9F039), (0x87000, None)]
    assert log_facts(cut.decode()) == {"ApLoopMode": 1, "CpuCount": 2}     # PEI's "Find 2 processors"


def test_counts_and_modes_are_decimal_and_the_last_line_wins():
    log = (b"MpInitLibInitialize: ProcessorIndex=0 CpuCount=12\r\nMpInitLib: Find 12 processors in system.\r\n"
           b"APIC MODE is 2\r\nAP Loop Mode is 1\r\nDetect CPU count: 10\r\nAP Loop Mode is 3\r\n")
    assert mp_events(parse_log(log)) == [(1, "mp-hand-off", {"ProcessorIndex": 0, "CpuCount": 12}),
                                         (2, "mp-processors", {"CpuCount": 12}), (3, "mp-apic-mode", {"ApicMode": 2}),
                                         (4, "mp-loop-mode", {"ApLoopMode": 1}), (5, "cpu-count", {"CpuCount": 10}),
                                         (6, "mp-loop-mode", {"ApLoopMode": 3})]
    assert log_facts(log) == {"ApLoopMode": 3, "CpuCount": 10}
    # MpInitLib's count after CpuDxe's: the later line is the count
    assert log_facts(b"Detect CPU count: 10\nMpInitLib: Find 12 processors in system.\n") == {"CpuCount": 12}
    node = aps_node([], log=log.decode())
    assert node.field("ApLoopMode").text == "3 (run loop, debug log)" and node.get("LogCpuCount") == 10
