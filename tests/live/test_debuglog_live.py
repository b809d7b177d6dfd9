"""The DEBUG log at live stops: the debug build of OvmfPkgX64 (../shared/firmware/ovmf-debug, README
there) booted under QEMU 7.2 TCG to the dxe-core and bds handoffs, its debugcon log parsed at each
stop and cross-checked against what the session derived without it.

Expected values: the DxeCore base and entry are the session's (found by following the loader's
copies, inspector/live/copies.py) and are compared with the raw log text read with one regex here;
the cross-check must find no disagreement on a real boot, and must find one when the session's
view is tampered with. One QEMU for the module (plus one for the CLI test), ended by PID; every
wait bounded.
"""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from decoders.model import Node
from inspector.image import load_image
from inspector.live.debuglog import cross_check
from inspector.live.qemu import QemuProcess
from inspector.live.record import Recorder, load_recording
from inspector.live.session import Session
from inspector.live.symbols import LoadedModule
from tests.realdata import firmware, tool

TIMEOUT = 180.0       # TCG on 2 shared cores with other QEMUs: dxe-core ~3 s, bds ~6 s alone


class Run:
    def __init__(self, tmp):
        tool("qemu-system-x86_64", "qemu-system-x86")
        self.path = firmware("ovmf-debug/OVMF.fd")
        self.image = load_image(self.path)
        self.qemu = QemuProcess(self.path, memory="256M").start()
        self.record = tmp / "session.rec"
        try:
            self.session = Session(self.qemu.attach("rsp"), self.image, self.qemu)
            self.recorder = Recorder(self.session, self.record)
            self.core = self.recorder.run_to("dxe-core", TIMEOUT)
            self.bds = self.recorder.run_to("bds", TIMEOUT)
        except BaseException:
            self.session.close() if hasattr(self, "session") else self.qemu.close()
            raise

    def close(self):
        self.recorder.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    r = Run(tmp_path_factory.mktemp("debuglog"))
    yield r
    r.close()


def debug_log(stop) -> Node:
    assert stop.tree is not None, stop.problems
    return next(stop.tree.find("debug-log"))


def check_node(stop) -> Node:
    return next(debug_log(stop).find("debug-log-cross-check"))


def agreed(node: Node) -> tuple[int, int]:
    m = re.fullmatch(r"cross-check: (\d+) modules agree, (\d+) memory facts agree", node.title)
    assert m, node.title
    return int(m.group(1)), int(m.group(2))


def test_stops_reached(run):
    assert (run.core.handoff, run.bds.handoff) == ("dxe-core", "bds"), (run.core.problems, run.bds.problems)


def test_dxe_core_stop_cross_check_agrees(run):
    node = check_node(run.core)
    assert node.problems == []
    modules, facts = agreed(node)
    # The XIP PEIMs dispatched before memory, DxeIpl and DxeCore at the copies the session followed,
    # and DxeCore's handoff entry; the PHIT, LowMemory, the reserved range, the allocation HOBs.
    assert modules >= 3 and facts >= 3


def test_log_names_dxe_core_at_the_base_the_session_derived(run):
    entry = run.core.tree
    assert entry.kind == "dxe-core-entry"
    base, ep = entry.get("ImageBase"), entry.get("EntryPoint")
    assert ep == run.core.linear_rip
    log = debug_log(run.core)
    core = [m for m in next(log.find("log-modules")).children if m.get("Name") == "DxeCore"]
    assert [(m.get("ImageBase"), m.get("EntryPoint")) for m in core] == [(base, ep)]
    # The raw log text, read independently of the decoder.
    found = re.findall(r"Loading DXE CORE at 0x([0-9A-F]+) EntryPoint=0x([0-9A-F]+)", run.core.log)
    assert [(int(b, 16), int(e, 16)) for b, e in found] == [(base, ep)]


def test_bds_stop_cross_check_agrees_with_more_modules(run):
    node = check_node(run.bds)
    assert node.problems == []
    modules, facts = agreed(node)
    assert modules > agreed(check_node(run.core))[0]
    log = debug_log(run.bds)
    assert log.get("DriversLoaded") > 0
    bds = [m for m in next(log.find("log-modules")).children if m.get("Name") == "BdsDxe"]
    assert [m.get("ImageBase") for m in bds] == [run.bds.tree.get("ImageBase")]


def test_json_and_recording_carry_the_log(run):
    assert "Loading DXE CORE at" in run.core.to_json()["log"]
    stops = load_recording(run.record)
    assert [s.handoff for s in stops if s.handoff in ("dxe-core", "bds")] == ["dxe-core", "bds"]
    replayed = {s.handoff: s for s in stops}
    for live in (run.core, run.bds):
        again = replayed[live.handoff]
        assert again.log == live.log
        assert check_node(again).title == check_node(live).title


def test_cross_check_reports_a_session_image_the_log_disagrees_with(run):
    parser = run.session.debug_log.parser
    images = run.session.images()
    core = run.core.tree.get("ImageBase")
    renamed = [dataclasses.replace(i, name="NotDxeCore") if i.base == core else i for i in images]
    node = cross_check(parser, renamed, set(), run.bds.tree)
    assert any("the session has NotDxeCore there" in p.message for p in node.problems)
    moved = images + [LoadedModule("BdsDxe", 0x1000, 0x1000)]
    node = cross_check(parser, moved, set(), run.bds.tree)
    assert any("the session found BdsDxe at 0x1000" in p.message for p in node.problems)


def test_cross_check_reports_a_phit_the_log_disagrees_with(run):
    tree = run.core.tree
    phit = next(h for h in next(tree.find("hob-list")).children if h.get("HobType") == 1)
    field = phit.field("EfiMemoryTop")
    saved = field.value
    field.value = saved + 0x1000
    try:
        node = cross_check(run.session.debug_log.parser, run.session.images(), set(), tree)
    finally:
        field.value = saved
    assert [p.message for p in node.problems if "PHIT" in p.message] != []


def test_cli_until_json_prints_the_log_and_the_cross_check(tmp_path, capsys):
    from inspector.cli import main

    tool("qemu-system-x86_64", "qemu-system-x86")
    path = firmware("ovmf-debug/OVMF.fd")
    code = main(["qemu", str(path), "--until", "dxe-core", "--timeout", str(TIMEOUT), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    stop = json.loads(out.splitlines()[0])
    assert "Loading DXE CORE at" in stop["log"]
    nodes, stack = [], [stop["tree"]]
    while stack:
        n = stack.pop()
        nodes.append(n)
        stack.extend(n["children"])
    check = next(n for n in nodes if n["kind"] == "debug-log-cross-check")
    assert check["problems"] == [] and check["title"].startswith("cross-check: ")
