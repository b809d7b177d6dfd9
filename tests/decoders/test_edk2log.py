"""decoders/edk2log.py on a real DEBUG OVMF log (tests/data/edk2log/, README there) and on crafted bad logs.

The expected values were read off the real log with grep (`grep -c "Loading PEIM at"`, `grep -n
BdsDxe.efi`, ...); `test_real_log_modules_equal_an_independent_regex` reads them a second way.
"""
from __future__ import annotations

import re
import uuid

import pytest

from decoders import budget
from decoders.edk2log import MAX_EVENTS, MAX_LINE_BYTES, MAX_MODULES, LogParser, decode_log
from decoders.model import Severity
from inspector.cli import main
from tests.realdata import fixture

LOG = "edk2log/ovmf-debug-2025.02.log"


@pytest.fixture(scope="module")
def real() -> bytes:
    return fixture(LOG).read_bytes()


@pytest.fixture(scope="module")
def parsed(real) -> LogParser:
    p = LogParser()
    p.feed(real)
    p.finish()
    return p


def module(p: LogParser, name: str, index: int = -1):
    return [m for m in p.modules if m.name == name][index]


# ---- the real log ---------------------------------------------------------------------------------

def test_real_log_counts(parsed):
    assert parsed.lines == 1627
    assert parsed.bytes == 95837
    assert parsed.counts["peim-load"] == 16          # grep -c "Loading PEIM at"
    assert parsed.counts["peim-guid"] == 16
    assert parsed.counts["driver-load"] == 89        # grep -c "Loading driver at"
    assert parsed.counts["driver-guid"] == 88        # Shell.efi is loaded by BDS, not the dispatcher
    assert parsed.counts["dxe-core-load"] == 1
    assert parsed.counts["image-start-failed"] == 8
    assert parsed.counts["memory-allocation"] == 41
    assert parsed.counts["ppi-install"] == 25
    assert (parsed.garbage, parsed.overlong, parsed.malformed, parsed.cut_short) == (0, 0, 0, False)
    assert parsed.notes == []


def test_real_log_names_shadowed_peims_and_drivers(parsed):
    xip, shadowed = module(parsed, "PcdPeim", 0), module(parsed, "PcdPeim", 1)
    assert (xip.base, xip.entry, xip.after_memory, xip.line) == (0x82CA80, 0x82FCE1, False, 15)
    assert (shadowed.base, shadowed.entry, shadowed.after_memory, shadowed.line) == (0xFEE2000, 0xFEE5261, True, 118)
    assert xip.guid == uuid.UUID("9B3ADA4F-AE56-4C24-8DEA-F03B7558AE50")
    ipl = module(parsed, "DxeIpl")
    assert (ipl.base, ipl.entry, ipl.phase) == (0xFEDD000, 0xFEE0479, "pei")
    core = module(parsed, "DxeCore")
    assert (core.base, core.entry, core.line) == (0xFE62000, 0xFE7957A, 173)
    ev = parsed.last("dxe-core-load")
    assert (ev.get("ImageBase"), ev.get("EntryPoint"), ev.get("Name"), ev.line) == (0xFE62000, 0xFE7957A, "DxeCore", 174)
    bds = module(parsed, "BdsDxe")
    assert (bds.base, bds.entry, bds.size, bds.line, bds.phase) == (0xE99C000, 0xE9B04FA, 0x1FEC0, 807, "dxe")
    assert bds.guid == uuid.UUID("6D33944A-EC75-4855-A54D-809C75241F6C")


def test_real_log_failed_start_frees_the_base_for_the_next_driver(parsed):
    sev, tdx = module(parsed, "AmdSevDxe"), module(parsed, "TdxDxe")
    assert sev.base == tdx.base == 0xF113000
    assert (sev.failed, tdx.failed) == ("Unsupported", None)
    assert parsed.module_at(0xF113000) is tdx
    loaded = {m.base: m.name for m in parsed.loaded()}
    assert loaded[0xF113000] == "TdxDxe"
    assert "AmdSevDxe" not in loaded.values()


def test_real_log_memory_facts(parsed):
    mem = parsed.last("pei-memory")
    assert (mem.get("MemoryBegin"), mem.get("MemoryLength"), mem.line) == (0xBB6C000, 0x440C000, 71)
    assert parsed.last("low-memory").get("LowMemory") == 0x10000000
    reserved = parsed.last("reserved-memory")
    assert (reserved.get("Base"), reserved.get("End")) == (0xFD00000000, 0x10000000000)
    assert parsed.last("hob-list").get("HobList") == 0xF4E7018
    stack = parsed.last("stack-hob")
    assert (stack.get("BaseAddress"), stack.get("Length")) == (0xBB6C000, 0x20000)
    first = parsed.of_kind("memory-allocation")[0]
    assert (first.get("MemoryType"), first.get("MemoryBaseAddress"), first.get("MemoryEnd")) == (0xA, 0xFF78000, 0xFFFFFFF)
    publish = parsed.last("publish-pei-memory")
    assert (publish.get("PhysMemAddressWidth"), publish.get("PeiMemoryCapKB")) == (40, 69680)
    fvs = [(e.get("Index"), e.get("BaseAddress"), e.get("Length")) for e in parsed.of_kind("fv")]
    assert fvs == [(0, 0x820000, 0xE0000), (1, 0x900000, 0xE80000)]


def test_real_log_modules_equal_an_independent_regex(real, parsed):
    """The module loads found by one plain regex over the whole text, in order."""
    found = re.findall(rb"Loading (PEIM|driver) at 0x(\w+) EntryPoint=0x(\w+) (\w+)\.efi\r?\n", real)
    assert len(found) == 16 + 89
    expect = [(kind.decode().lower().replace("driver", "dxe").replace("peim", "pei"), name.decode(), int(base, 16),
               int(entry, 16)) for kind, base, entry, name in found]
    assert [(m.phase, m.name, m.base, m.entry) for m in parsed.modules] == expect


def test_real_log_event_locations_are_line_and_byte_offset(real, parsed):
    for ev in parsed.events:
        assert real[ev.offset:ev.offset + ev.size].decode() == ev.text
        assert real[:ev.offset].count(b"\n") + 1 == ev.line


def test_real_log_tree(real):
    root = decode_log(real, "ovmf.log")
    assert root.kind == "edk2-log"
    assert (root.get("PeimsLoaded"), root.get("DriversLoaded"), root.get("Lines")) == (16, 89, 1627)
    assert not root.problems
    mods = next(root.find("log-modules"))
    assert len(mods.children) == 105
    bds = next(c for c in mods.children if c.get("Name") == "BdsDxe")
    assert bds.offset == real.index(b"Loading driver at 0x0000E99C000")
    assert bds.bytes.startswith(b"Loading driver at 0x0000E99C000 EntryPoint=0x0000E9B04FA BdsDxe.efi")
    events = next(root.find("log-events"))
    # 494 events of the loader and memory lines, and 6 of MpInitLib's (tests/decoders/test_edk2log_mpinit.py):
    # `grep -cE "^(MpInitLibInitialize: ProcessorIndex=|AP Loop Mode is|AP Vector: |Detect CPU count: )"` = 6
    assert len(events.children) == sum(root.get("EventCounts").values()) == 500


def test_incremental_feed_equals_whole(real, parsed):
    """A live session feeds the log a piece at a time, cutting lines anywhere."""
    p = LogParser()
    for i in range(0, len(real), 37):
        p.feed(real[i:i + 37])
    p.finish()
    assert [(e.kind, e.line, e.offset, e.values) for e in p.events] == \
           [(e.kind, e.line, e.offset, e.values) for e in parsed.events]


def test_a_line_not_ended_is_pending_until_its_newline():
    p = LogParser()
    p.feed(b"Loading driver at 0x0000F107000 EntryPoint=0x0000F10F2F9 ")
    assert p.modules == [] and p.pending == 57
    p.feed(b"DevicePathDxe.efi\n")
    assert [(m.name, m.base) for m in p.modules] == [("DevicePathDxe", 0xF107000)]
    assert p.pending == 0


# ---- crafted bad logs ------------------------------------------------------------------------------

GOOD = b"Loading driver at 0x0000F107000 EntryPoint=0x0000F10F2F9 DevicePathDxe.efi\n"


def problems(root):
    return [(p.offset, p.severity, p.message) for _, p in root.all_problems()]


def test_garbage_line_is_located_and_skipped():
    data = GOOD + b"Install PPI: \xff\xfe\x80garbage\n" + GOOD
    root = decode_log(data)
    [(offset, severity, message)] = problems(root)
    assert offset == len(GOOD) + len(b"Install PPI: ") and severity is Severity.WARNING
    assert "line 2" in message and "0xff" in message
    assert root.get("DriversLoaded") == 2


def test_nul_bytes_are_garbage():
    data = GOOD + b"\x00" * 100 + b"\n" + b"Loading PEIM at 0x\x00\x00 EntryPoint=0x1 X.efi\n" + GOOD
    p = LogParser()
    p.feed(data)
    p.finish()
    assert p.garbage == 2 and p.counts["driver-load"] == 2 and p.counts["peim-load"] == 0
    assert [n[:2] for n in p.notes] == [(len(GOOD), 2), (len(GOOD) + 101 + len("Loading PEIM at 0x"), 3)]


def test_line_cut_in_half_is_malformed_and_the_next_line_still_parses():
    cut = b"Loading driver at 0x0000F1\n"
    data = GOOD + cut + GOOD
    root = decode_log(data)
    [(offset, severity, message)] = problems(root)
    assert offset == len(GOOD) and "line 2" in message and "Loading driver at" in message
    assert root.get("DriversLoaded") == 2


def test_log_ending_inside_a_line_is_cut_short():
    p = LogParser()
    p.feed(GOOD + GOOD[:30])
    p.finish()
    assert p.cut_short and p.counts["driver-load"] == 1
    assert p.notes[0][:2] == (len(GOOD), 2) and "cut short" in p.notes[0][3]


def test_ten_megabyte_line_is_skipped_without_holding_it():
    big = 10 << 20
    p = LogParser()
    for _ in range(big // (1 << 20)):
        p.feed(b"A" * (1 << 20))
        assert len(p._partial) <= MAX_LINE_BYTES
    p.feed(b"\n" + GOOD)
    p.finish()
    assert p.overlong == 1 and p.counts["driver-load"] == 1
    assert p.notes[0][:2] == (0, 1) and f"{big:,} bytes" in p.notes[0][3]
    ev = p.events[0]
    assert (ev.line, ev.offset) == (2, big + 1)


def test_million_lines_are_counted_and_events_capped():
    lines = 1_000_000
    data = b"Install PPI: 8C8CE578-8A3D-4F1C-9935-896185C32DD3\n" * (lines // 2) + b"x\n" * (lines // 2)
    p = LogParser()
    p.feed(data)
    p.finish()
    assert p.lines == lines and p.counts["ppi-install"] == lines // 2 and p.unrecognised == lines // 2
    assert len(p.events) == MAX_EVENTS and p.events_dropped == lines // 2 - MAX_EVENTS


def test_module_loads_are_capped():
    p = LogParser()
    p.feed(GOOD * (MAX_MODULES + 10))
    assert len(p.modules) == MAX_MODULES and p.modules_dropped == 10
    assert p.counts["driver-load"] == MAX_MODULES + 10


def test_many_bad_lines_keep_a_bounded_number_of_problems():
    root = decode_log(b"\x01\n" * 5000)
    messages = [p.message for _, p in root.all_problems()]
    assert len(messages) == 257 and "4,744 more bad lines" in messages[-1]


def test_tree_is_bounded_by_the_node_budget():
    with budget.scope(budget.Limits(nodes=100)):
        root = decode_log(GOOD * 500)
    assert sum(1 for _ in root.walk()) <= 103
    assert any("not shown" in p.message for _, p in root.all_problems())


# ---- fwinspect log -----------------------------------------------------------------------------------

def test_cli_log_exit_status(tmp_path, capsys):
    assert main(["log", str(fixture(LOG))]) == 0
    out = capsys.readouterr().out
    assert "16 PEIM and 89 driver loads" in out and "BdsDxe at 0xe99c000" in out
    bad = tmp_path / "bad.log"
    bad.write_bytes(GOOD + b"\xff\n")
    assert main(["log", str(bad), "--json"]) == 1
    assert main(["log", str(tmp_path / "missing.log")]) == 2
    assert main(["log", str(tmp_path)]) == 2


def test_events_that_change_parser_state_are_capped_too():
    p = LogParser()
    p.feed(b"Loading driver 9B680FCE-AD6B-4F3A-B60B-F59899003443\n" * (MAX_EVENTS + 5))
    assert len(p.events) == MAX_EVENTS and p.events_dropped == 5 and p.counts["driver-guid"] == MAX_EVENTS + 5
