"""`fwinspect tour` on more real configurations: each booted once to BDS with `--json --record F`,
then told again with `fwinspect tour --replay F --json` (no QEMU), which must give the same chapters.
Every chapter's values are then checked against the recorded stops' trees, with the checks of
tests/inspector/test_tour_stops.py (handoff chapters) and tests/inspector/test_tour_offline.py
(offline chapters), and the mode-switch chapter against the registers of its recorded stops.

- Debian 13 (trixie, edk2 2025.02) OVMF_CODE_4M.fd with its OVMF_VARS_4M.fd (`--vars`) and a swtpm
  TPM (`--tpm`): the BDS chapter tells the TCG event log;
- Debian 12's OVMF.fd on the gdb backend (`--backend gdb`): the same chapters, value for value, as
  the rsp backend's tour of the same image (tests/live/test_tour_live.py);
- our DEBUG OvmfPkgX64 build: no chapter has an unexpected line, and the chapters agree with its
  debug log.

One boot per configuration (about 5 s each here under TCG), whole processes; QEMU and swtpm are
ended by the CLI that started them, every wait bounded by --timeout and the subprocess timeout.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tests.inspector.test_tour_offline as offline_checks
from inspector.tour.model import chapters_json
from inspector.tour.modes import mode_pairs
from inspector.tour.run import replay_tour
from tests.inspector.test_tour_stops import check_value
from tests.live.test_tour_live import TOUR_TIMEOUT, bookworm_tour_once, fwinspect
from tests.realdata import bookworm, firmware, tool, trixie

pytestmark = pytest.mark.live

BOOT = ["reset", "to-long-mode", "sec", "pei", "dxe-ipl", "dxe-core", "bds"]
WITH_TDX = ["flash-image", "reset-vector-table", "tdx-metadata", "mrtd", "sev-metadata", "config-a-vs-b"]
EV_NO_ACTION = 3          # TCG PC Client Platform Firmware Profile, 10.4.1 Event Types


class Tour:
    """One configuration booted with `fwinspect tour --json --record`, and its replay."""

    def __init__(self, image: Path, rec: Path, chapters: list, replayed: list):
        self.image, self.rec, self.chapters, self.replayed = image, rec, chapters, replayed
        # The chapters told again here from the recording as `fwinspect tour --replay` tells them:
        # Chapter objects whose values hold their nodes in the recorded stops' trees.
        self.told, self.stops, self.loaded, code = replay_tour(str(rec), None)
        assert code == 0
        self.by_index = {s.index: s for s in self.stops}

    def values(self, chapter: str) -> dict:
        return {v.name: v.value for c in self.told if c.chapter == chapter for v in c.values}

    def chapter(self, chapter: str):
        return next(c for c in self.told if c.chapter == chapter)


def run_tour(tmp_path_factory, name: str, image: Path, *extra: str) -> Tour:
    tool("qemu-system-x86_64", "qemu-system-x86")
    rec = tmp_path_factory.mktemp("tour") / f"{name}.rec"
    live = fwinspect("tour", str(image), "--json", "--record", str(rec), "--timeout", str(TOUR_TIMEOUT), *extra)
    assert live.returncode == 0, live.stderr[-3000:]
    again = fwinspect("tour", "--replay", str(rec), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    return Tour(image, rec, json.loads(live.stdout), json.loads(again.stdout))


@pytest.fixture(scope="module")
def trixie_tour(tmp_path_factory):
    tool("swtpm", "swtpm")
    return run_tour(tmp_path_factory, "trixie", trixie("OVMF_CODE_4M.fd"), "--vars", str(trixie("OVMF_VARS_4M.fd")),
                    "--tpm")


@pytest.fixture(scope="module")
def gdb_tour(tmp_path_factory):
    return run_tour(tmp_path_factory, "bookworm-gdb", bookworm("OVMF.fd"), "--backend", "gdb")


@pytest.fixture(scope="module")
def debug_tour(tmp_path_factory):
    return run_tour(tmp_path_factory, "debug", firmware("ovmf-debug/OVMF.fd"))


@pytest.fixture(scope="module")
def bookworm_tour(tmp_path_factory):
    """The rsp backend's tour of the same image, shared with tests/live/test_tour_live.py (one boot)."""
    return bookworm_tour_once(tmp_path_factory)


@pytest.fixture(params=["trixie", "gdb", "debug"])
def tour(request) -> Tour:
    return request.getfixturevalue(f"{request.param}_tour")


def check_mode_chapter(t: Tour, c) -> None:
    """The to-long-mode chapter's values against the registers of the recorded stops it tells."""
    pairs = mode_pairs(t.stops, t.loaded)
    got = {v.name: v.value for v in c.values}
    assert got["count"] == len(pairs) and pairs
    for k, (before, after, register) in enumerate(pairs):
        key = "efer" if register == "EFER" else register.lower()
        assert got[f"at_{k}"] == before.linear_rip
        assert got[f"insn_{k}"] == before.disassembly[0][1]
        old, new = before.registers[key], after.registers[key]
        assert (got[f"old_{k}"], got[f"new_{k}"]) == (old, new)
        assert got.get(f"set_{k}", 0) == new & ~old and got.get(f"cleared_{k}", 0) == old & ~new
        assert got.get(f"mode_{k}", after.mode) == after.mode
    assert c.stop == pairs[0][0].index
    # The reset vector's exit jumps to SEC's entry: the entry the SEC handoff stop is at.
    sec = next(s for s in t.stops if s.handoff == "sec")
    assert got["sec_entry"] == sec.linear_rip and got["exit_mode"] == "long64"


class TestReplayAndValues:
    def test_the_replay_gives_the_live_chapters_value_for_value(self, tour):
        assert tour.replayed == tour.chapters
        names = [c["chapter"] for c in tour.chapters]
        assert [n for n in names if n in BOOT] == BOOT and names[-len(BOOT):] == BOOT
        assert set(WITH_TDX) <= set(names[:-len(BOOT)])
        # ... which are the chapters told from the recorded stops.
        assert chapters_json(tour.told) == tour.chapters

    def test_every_value_checks_against_the_recorded_trees(self, tour):
        for c in tour.told:
            if c.phase == "offline":
                continue
            assert c.values, c.chapter
            for v in c.values:
                assert v.text in c.text, (c.chapter, v.name, v.text)
            if c.chapter == "to-long-mode":
                check_mode_chapter(tour, c)
            else:
                for v in c.values:
                    check_value(tour.by_index[c.stop], tour.loaded, v)
        # The offline chapters: each value is the value at the image's node it names.
        offline_checks.test_every_offline_value_is_the_value_at_its_node_and_in_the_text(
            lambda _name: tour.loaded, tour.image.name)

    def test_each_handoff_chapter_is_told_at_its_handoff_stop(self, tour):
        handoffs = {c.chapter: tour.by_index[c.stop].handoff for c in tour.told if c.phase not in ("offline", "reset")}
        assert handoffs == {"sec": "sec", "pei": "pei-core", "dxe-ipl": "dxe-ipl", "dxe-core": "dxe-core",
                            "bds": "bds"}
        assert tour.stops[-1].handoff == "bds"


class TestTrixieWithVarsAndTpm:
    def test_the_bds_chapter_tells_the_tcg_event_log(self, trixie_tour):
        t = trixie_tour
        bds_stop = t.by_index[t.chapter("bds").stop]
        logs = [c for c in bds_stop.tree.children if c.kind == "event-log"]
        assert len(logs) == 1
        events = [e for e in logs[0].children if e.kind == "event"]
        got = t.values("bds")
        # OVMF's Tcg2Pei measures the CRTM version and the two firmware volumes (PEIFV, DXEFV) into PCR0
        # (SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.c MeasureCRTMVersion, MeasureFvImage), after the log's
        # Spec ID header event (EV_NO_ACTION, PCR0); Tcg2Dxe measures the Secure Boot variables into PCR7.
        pcr0 = [e for e in events if e.get("PCRIndex") == 0]
        assert len(pcr0) == 4 and [e.get("EventType") for e in pcr0][0] == EV_NO_ACTION
        assert sum(1 for e in pcr0 if e.get("EventType") != EV_NO_ACTION) == 3
        assert got["log_events_0"] == len(events) == logs[0].get("EventCount") == 10
        assert got["log_pcrs_0"] == sorted({e.get("PCRIndex") for e in events if e.get("EventType") != EV_NO_ACTION}) \
               == [0, 7]
        assert got["log_format_0"] == "tcg"
        assert "holds 10 events so far; measurements went to PCR0, PCR7." in t.chapter("bds").text
        assert "gEfiTcg2FinalEventsTableGuid" in t.chapter("bds").text

    def test_edk2_2025_02_temporary_ram_and_stack(self, trixie_tour):
        # Debian 13's edk2 2025.02: the log of the same version's DEBUG build
        # (tests/data/edk2log/ovmf-debug-2025.02.log) gives "Temp Stack : BaseAddress=0x818800
        # Length=0x7800", "Temp Heap : BaseAddress=0x811000 Length=0x7800", 61440 bytes in all.
        got = trixie_tour.values("pei")
        assert (got["temp_base"], got["temp_size"], got["stack_base"], got["stack_size"]) == \
               (0x811000, 0xF000, 0x818800, 0x7800)
        assert (got["bfv_base"], got["bfv_size"]) == (0x820000, 0xE0000)
        assert trixie_tour.values("sec")["mode"] == "long64"
        # The reset vector's tables (OvmfPkg/ResetVector/Ia32/PageTables64.asm): 2048 2 MiB leaves
        # identity-mapping 4 GiB, writable and executable, so one merged range.
        sec = trixie_tour.chapter("sec")
        assert (trixie_tour.values("sec")["leaves"], trixie_tour.values("sec")["ranges"]) == (2048, 1)
        assert "Merged, they are 1 range: 0 of them no-execute (NX), 0 read-only." in sec.text

    def test_no_chapter_has_an_unexpected_line(self, trixie_tour):
        assert {c["chapter"]: c["unexpected"] for c in trixie_tour.chapters} == \
               {c["chapter"]: [] for c in trixie_tour.chapters}


class TestGdbBackend:
    def test_the_gdb_backend_tells_the_same_chapters_as_rsp(self, gdb_tour, bookworm_tour):
        image, _rec, rsp_chapters = bookworm_tour
        assert gdb_tour.image == image
        assert gdb_tour.chapters == rsp_chapters

    def test_debian_12s_values(self, gdb_tour):
        got = gdb_tour.values("pei")
        assert (got["temp_base"], got["temp_size"], got["stack_base"], got["stack_size"]) == \
               (0x810000, 0x10000, 0x818000, 0x8000)
        assert gdb_tour.values("reset")["linear"] == 0xFFFFFFF0
        assert gdb_tour.values("to-long-mode")["count"] == 5


class TestDebugBuild:
    def test_no_chapter_has_an_unexpected_line(self, debug_tour):
        assert {c["chapter"]: c["unexpected"] for c in debug_tour.chapters} == \
               {c["chapter"]: [] for c in debug_tour.chapters}

    def test_the_chapters_agree_with_the_debug_log(self, debug_tour):
        t = debug_tour
        bds_tree = t.by_index[t.chapter("bds").stop].tree
        log = next(bds_tree.find("debug-log"))
        check = next(bds_tree.find("debug-log-cross-check"))
        assert check.problems == [] and "agree" in check.title
        ipl, core, bds = t.chapter("dxe-ipl"), t.chapter("dxe-core"), t.chapter("bds")
        assert "The debug log agrees: its line" in ipl.text
        assert "The debug log's `Loading DXE CORE at` line" in core.text and "gives the same base and entry" in core.text
        assert "That is the range the debug log's PeiInstallPeiMemory line" in core.text
        assert "Every driver the log started is in the debug image info table" in bds.text
        # Each value told from the log is the log's (the log nodes of the stop, by check_value above), and:
        loads = list(t.by_index[core.stop].tree.find("log-dxe-core-load"))
        assert len(loads) == 1
        got = t.values("dxe-core")
        assert (got["base"], got["entry"]) == (loads[0].get("ImageBase"), loads[0].get("EntryPoint"))
        dxe = [m for m in next(bds_tree.find("log-modules")).children if "(DXE" in m.title]
        failed = [m.get("Name") for m in dxe if "start failed" in m.title]
        got = t.values("bds")
        assert got["drivers_loaded"] == len(dxe) == log.get("DriversLoaded")
        assert got["image_count"] == len(dxe) - len(failed) + 1
        assert [got[f"failed_{i}"] for i in range(got["failed_count"])] == failed
