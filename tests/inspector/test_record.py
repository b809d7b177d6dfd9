"""Record and replay of live stops (inspector/live/record.py).

Stops come from the fake session of tests/views/test_live_screen.py, whose data is real
(registers measured on QEMU, capstone over Debian's OVMF_CODE_4M.fd, the decoded TD HOB
fixture). A recording is checked against those stops and against the fixture's own bytes.
"""
from __future__ import annotations

import json
import struct

import pytest

from decoders.model import Node, Space
from inspector.live.record import (MAX_RECORD_OBJECTS, MAX_SPACE_BYTES, MAX_TREE_DEPTH, Recorder, RecordingError,
                                   ReplaySession, load_recording, tree_record)
from inspector.live.session_api import Stop
from tests.realdata import bookworm, fixture
from tests.views.test_live_screen import SIZE, FakeSession, real_stops, shown_index, wait_for
from views.live_app import LiveApp, replay_main


@pytest.fixture
def stops() -> list[Stop]:
    return real_stops()


@pytest.fixture
def recording(tmp_path, stops):
    path = tmp_path / "session.fwrec"
    rec = Recorder(FakeSession(stops), path)
    rec.current()
    rec.next_handoff()
    rec.next_handoff()
    rec.current()               # the same stop again: not recorded twice
    rec.close()
    return path


def flat(node: Node) -> list[tuple]:
    """Everything the views show of a tree: titles, kinds, places, fields' text, problems."""
    return [(n.kind, n.title, n.offset, n.size, n.space.name if n.space else None,
             [(f.name, f.text, f.offset, f.size) for f in n.fields],
             [(p.offset, p.severity, p.message) for p in n.problems]) for n in node.walk()]


class TestRecorder:
    def test_recorded_stops_come_back_the_same(self, recording, stops):
        loaded = load_recording(recording)
        assert [s.index for s in loaded] == [0, 1, 2]
        for got, want in zip(loaded, stops):
            assert (got.phase, got.reason, got.mode, got.linear_rip, got.module, got.handoff) == \
                   (want.phase, want.reason, want.mode, want.linear_rip, want.module, want.handoff)
            assert got.registers == want.registers
            assert got.disassembly == want.disassembly
            assert got.log == want.log
        assert loaded[0].tree is None
        assert flat(loaded[2].tree) == flat(stops[2].tree)

    def test_space_bytes_are_the_fixture_bytes(self, recording):
        raw = fixture("hob/td-shim/hob_buffer.bin").read_bytes()
        tree = load_recording(recording)[2].tree
        assert bytes(tree.space.data) == raw and tree.space.base == 0x1BB95000
        # Every HOB node shares that one space, and its bytes are the HOB's header in the file.
        for hob in tree.children:
            assert hob.space is tree.space
            hob_type, length = struct.unpack_from("<HH", raw, hob.offset)
            assert hob.size == length
        # GUID values come back as strings; their display text is unchanged.
        owner = tree.children[1].field("Owner")
        assert isinstance(owner.value, str) and "00000000-0000-0000-0000-000000000000" in owner.text

    def test_blob_written_once_for_repeated_space(self, tmp_path, stops):
        """Two stops showing the same bytes store them once (the file grows by the tree only)."""
        again = Stop(3, "step", "dxe-core", "long64", stops[2].linear_rip + 1, stops[2].registers,
                     tree=stops[2].tree, log=stops[2].log)
        path = tmp_path / "r.fwrec"
        rec = Recorder(FakeSession([stops[2], again]), path)
        rec.current()
        rec.next_handoff()
        rec.close()
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert sum("blob" in line for line in lines) == 1
        assert sum("stop" in line for line in lines) == 2
        # The second stop stored no log text: it is the first stop's log, by prefix.
        assert lines[-1]["stop"]["log"] == "" and lines[-1]["stop"]["log_prefix"] == len(stops[2].log)

    def test_large_space_is_cut_with_a_note(self, tmp_path):
        image = bookworm("OVMF_CODE_4M.fd").read_bytes()    # 3.5 MiB: fits
        big = image * 2                                      # 7 MiB: cut
        root = Node("image", "two copies", Space("flash", big), 0, len(big))
        root.append(Node("fv", "first", root.space, 0, len(image)))
        path = tmp_path / "big.fwrec"
        rec = Recorder(FakeSession([Stop(0, "reset", "reset", "real", 0xFFFFFFF0, {"rip": 0xFFF0}, tree=root)]),
                       path)
        rec.current()
        rec.close()
        tree = load_recording(path)[0].tree
        assert bytes(tree.space.data) == big[:MAX_SPACE_BYTES]
        note = f"kept the first 0x{MAX_SPACE_BYTES:x} of 0x{len(big):x} bytes"
        assert any(note in p.message for p in tree.problems)

    def test_a_tree_past_what_a_stop_holds_is_recorded_in_part_and_reads_back(self, tmp_path):
        """30,001 nodes of 5 fields each: the recorder keeps what a line may hold when read back."""
        root = Node("n", "root")
        for node in [root] + [root.append(Node("n", str(i))) for i in range(30_000)]:
            for j in range(5):
                node.add(f"F{j}", j)
        path = tmp_path / "wide.fwrec"
        r = Recorder(FakeSession([Stop(0, "step", "sec", "prot32", 0, {}, tree=root)]), path)
        r.current()
        r.close()
        tree = load_recording(path)[0].tree
        kept = MAX_RECORD_OBJECTS // 6
        assert len(tree.children) == kept - 1
        assert [p.message for p in tree.problems] == [
            f"the recording left out {30_001 - kept} nodes past what one stop holds (200,000 nodes, "
            f"{MAX_RECORD_OBJECTS:,} nodes, fields and problems)"]

    def test_deep_tree_records_without_recursion_and_loads_to_the_depth_bound(self, tmp_path):
        root = node = Node("n", "0")
        for i in range(1, 5000):
            node = node.append(Node("n", str(i)))
        blobs: dict = {}
        rec = tree_record(root, blobs)
        assert len(rec["nodes"]) == 5000 and rec["nodes"][-1]["parent"] == 4998
        path = tmp_path / "deep.fwrec"
        r = Recorder(FakeSession([Stop(0, "step", "sec", "prot32", 0, {}, tree=root)]), path)
        r.current()
        r.close()
        tree = load_recording(path)[0].tree
        assert list(tree.walk())[-1].title == str(MAX_TREE_DEPTH)
        assert [p.message for p in tree.problems] == [f"{4999 - MAX_TREE_DEPTH} nodes deeper than "
                                                      f"{MAX_TREE_DEPTH} levels were not read"]


class TestReplaySession:
    def test_next_and_previous_move_and_stay_at_the_ends(self, recording):
        s = ReplaySession(recording)
        assert s.live is False and s.count == 3
        assert s.current().phase == "reset"
        assert s.previous().phase == "reset"                 # already at the first stop
        assert s.next_handoff().phase == "sec"
        assert s.cont().phase == "dxe-core"
        assert s.step().phase == "dxe-core"                  # stays at the last stop
        assert s.previous().phase == "sec"
        assert s.interrupt() is s.current()
        s.position = 0
        assert s.run_to("dxe-core").index == 2
        with pytest.raises(ValueError, match="phase 'bds'"):
            s.run_to("bds")

    @pytest.mark.asyncio
    async def test_replay_in_the_app_shows_the_recorded_stops(self, recording, stops):
        """The live screen over a ReplaySession: same phases, registers and HOB tree as the
        live stops; n / p move; run control says read-only."""
        session = ReplaySession(recording)
        app = LiveApp(session, "replay")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.live_screen
            await wait_for(pilot, lambda: shown_index(app) == 0)
            assert screen.phase_bar.current == "reset" and "replay 1/3" in screen.status_text
            await pilot.press("n", "n")
            await wait_for(pilot, lambda: shown_index(app) == 2)
            assert screen.phase_bar.current == "dxe-core"
            assert screen.registers.registers == stops[2].registers
            assert {"rip", "cr0", "cr3", "cr4", "efer", "rcx"} <= screen.registers.changed
            await wait_for(pilot, lambda: screen.node_tree is not None and screen.node_tree.index.root is
                           session.stops[2].tree)
            tree = screen.node_tree
            assert [str(c.label) for c in tree.root.children] == [c.title for c in stops[2].tree.children]
            assert "last recorded stop" in screen.status_text
            await pilot.press("p")
            await wait_for(pilot, lambda: shown_index(app) == 1)
            assert screen.phase_bar.current == "sec"
            await pilot.press("c")      # run control is not offered in a replay: nothing moves
            await pilot.pause()
            assert shown_index(app) == 1 and screen.check_action("cont", ()) is False


class TestBadRecordings:
    def test_truncated_recording_names_the_line(self, recording, tmp_path):
        data = recording.read_bytes()
        cut = tmp_path / "cut.fwrec"
        cut.write_bytes(data[:len(data) - 100])
        with pytest.raises(RecordingError, match=r"line \d+: the line is cut short"):
            load_recording(cut)

    def test_garbage_is_refused(self, tmp_path):
        junk = tmp_path / "junk"
        junk.write_bytes(bookworm("OVMF.fd").read_bytes()[:4096])   # a firmware image, not a recording
        with pytest.raises(RecordingError):
            load_recording(junk)
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        with pytest.raises(RecordingError, match="empty file"):
            load_recording(empty)
        header_only = tmp_path / "header"
        header_only.write_text('{"format": "fwinspect-recording", "version": 1}\n')
        with pytest.raises(RecordingError, match="no stops"):
            ReplaySession(header_only)
        other = tmp_path / "other.json"
        other.write_text('{"hello": 1}\n')
        with pytest.raises(RecordingError, match="line 1: not an fwinspect recording"):
            load_recording(other)

    def test_hostile_values_are_refused_with_the_key(self, recording, tmp_path):
        lines = recording.read_text().splitlines()
        last = json.loads(lines[-1])

        def attempt(mutate, pattern):
            bad = json.loads(json.dumps(last))
            mutate(bad["stop"])
            path = tmp_path / "bad.fwrec"
            path.write_text("\n".join(lines[:-1] + [json.dumps(bad)]) + "\n")
            with pytest.raises(RecordingError, match=pattern):
                load_recording(path)

        attempt(lambda s: s["registers"].update(rip="0x10"), r"stop\.registers\.rip: expected an integer")
        attempt(lambda s: s["tree"]["nodes"][3].update(parent=7), r"nodes\[3\]\.parent")
        attempt(lambda s: s["tree"]["nodes"][0].update(space=99), r"nodes\[0\]\.space: 99")
        attempt(lambda s: s["tree"]["spaces"][0].update(blob="00" * 32), r"no blob")
        attempt(lambda s: s.update(log_prefix=10 ** 9), r"log_prefix")
        attempt(lambda s: s.update(index=True), r"stop\.index: expected int, found bool")
        # A deeply nested line: refused, no RecursionError escapes.
        path = tmp_path / "deep.fwrec"
        path.write_text(lines[0] + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
        with pytest.raises(RecordingError, match="line 2"):
            load_recording(path)
        # A blob whose bytes do not match its hash.
        blob_line = next(i for i, line in enumerate(lines) if line.startswith('{"blob"'))
        blob = json.loads(lines[blob_line])
        blob["data"] = "AAAA"
        path.write_text("\n".join(lines[:blob_line] + [json.dumps(blob)] + lines[blob_line + 1:]) + "\n")
        with pytest.raises(RecordingError, match="SHA-256"):
            load_recording(path)

    def test_replay_main_reports_a_bad_file(self, tmp_path, capsys):
        bad = tmp_path / "bad.fwrec"
        bad.write_text("not json\n")
        assert replay_main(bad) == 1
        err = capsys.readouterr().err
        assert "bad.fwrec: line 1: not JSON" in err
        assert replay_main(tmp_path / "missing.fwrec") == 1
        assert "No such file" in capsys.readouterr().err


def test_cli_replay_json_prints_the_recorded_stops(recording, stops):
    import json
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run([sys.executable, "-m", "inspector.cli", "replay", str(recording), "--json"],
                       capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [s["phase"] for s in lines] == [s.phase for s in stops]
    assert [s["linear_rip"] for s in lines] == [s.linear_rip for s in stops]


def test_replay_refuses_breakpoints_and_console_commands(recording):
    replay = ReplaySession(recording)
    for call in (lambda: replay.add_breakpoint("0x1000"), lambda: replay.console("info registers")):
        with pytest.raises(ValueError, match="read-only"):
            call()
