"""Hostile recordings for `fwinspect replay --json` (one stop read and written at a time) and for
load_recording (what the app holds): deep trees, deep or huge field values, lines too large to
parse within the memory budget, truncated and foreign files. Each replay runs as a whole process:
exit 0, 1 or 2, no traceback, at most 256 MiB.

The format is inspector/live/record.py's: a header line {"format", "version"}, then `stop` lines
whose tree is a flat list of nodes naming their parent's index.
"""
from __future__ import annotations

import json

import pytest

from inspector.live.record import (MAX_LINE_BYTES, MAX_TREE_DEPTH, MAX_VALUE_DEPTH, MAX_VALUE_ITEMS,
                                   RecordingError, load_recording)
from tests.hostile.harness import run_fwinspect

HEADER = {"format": "fwinspect-recording", "version": 1}


def node(parent: int, fields=()) -> dict:
    return {"parent": parent, "kind": "n", "title": str(parent + 1), "space": None, "offset": 0, "size": 0,
            "fields": list(fields), "problems": []}


def field(value) -> dict:
    return {"name": "F", "value": value, "offset": None, "size": None, "display": "x"}


def stop(nodes: list, index: int = 0) -> dict:
    return {"stop": {"index": index, "reason": "step", "phase": "sec", "mode": "long64", "linear_rip": 0,
                     "module": None, "handoff": None, "registers": {"rip": 0}, "disassembly": [],
                     "tree": {"nodes": nodes, "spaces": [], "nodes_left_out": 0}, "problems": [],
                     "log_prefix": 0, "log": ""}}


def write(path, *stops) -> str:
    with open(path, "w") as f:
        for obj in (HEADER, *stops):
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
    return path


def nested(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def replay_json(path, tmp_path):
    out = run_fwinspect(["replay", path, "--json"], stdout_to=tmp_path / "out.jsonl")
    out.check()
    return out, (tmp_path / "out.jsonl").read_text()


def test_nodes_nested_900_deep_are_read_to_the_depth_bound(tmp_path):
    path = write(tmp_path / "deep.fwrec", stop([node(i - 1) for i in range(900)]))
    out, text = replay_json(path, tmp_path)
    assert out.returncode == 0
    tree = json.loads(text)["tree"]
    depth = 0
    while tree["children"]:
        (tree,) = tree["children"]
        depth += 1
    assert depth == MAX_TREE_DEPTH
    root = load_recording(path)[0].tree
    assert [p.message for p in root.problems] == [f"{899 - MAX_TREE_DEPTH} nodes deeper than {MAX_TREE_DEPTH} "
                                                  f"levels were not read"]


def test_field_value_nested_500_deep_is_replaced_by_a_note(tmp_path):
    path = write(tmp_path / "deepvalue.fwrec", stop([node(-1, [field(nested(500)), field(nested(MAX_VALUE_DEPTH))])]))
    out, text = replay_json(path, tmp_path)
    assert out.returncode == 0
    fields = json.loads(text)["tree"]["fields"]
    assert fields[0]["value"] == (f"(a value nested deeper than {MAX_VALUE_DEPTH} levels or holding more than "
                                  f"{MAX_VALUE_ITEMS:,} items, not kept)")
    assert fields[1]["value"] == nested(MAX_VALUE_DEPTH)


def test_one_node_with_a_million_and_a_half_fields_is_refused_before_parsing(tmp_path):
    """35 MB on one line: json.loads alone would build 1.5 million dicts (650 MiB)."""
    path = write(tmp_path / "wide.fwrec", stop([node(-1, [{"name": "F", "value": 1}] * 1_500_000)]))
    assert (tmp_path / "wide.fwrec").stat().st_size > 34_000_000
    out, text = replay_json(path, tmp_path)
    assert out.returncode == 1 and text == ""
    assert out.stderr.decode() == (f"fwinspect replay: {path}: line 2: line longer than {MAX_LINE_BYTES:,} "
                                   f"bytes\n")


def test_a_line_of_too_many_small_values_is_refused_naming_the_counts(tmp_path):
    path = write(tmp_path / "values.fwrec", stop([node(-1, [field(list(range(1_200_000)))])]))
    out, _ = replay_json(path, tmp_path)
    assert out.returncode == 1
    assert out.stderr.decode() == (f"fwinspect replay: {path}: line 2: 6 objects and 1,200,024 values on one "
                                   f"line, past the bounds (200,000 objects, 1,000,000 values)\n")


def test_a_large_value_within_the_line_bounds_is_not_kept(tmp_path):
    """Near the per-line bound: the costliest shape (one dict of 900,000 keys) stays in budget."""
    value = {f"k{i}": 1 for i in range(900_000)}
    path = write(tmp_path / "dict.fwrec", stop([node(-1, [field(value)])]))
    out, text = replay_json(path, tmp_path)
    assert out.returncode == 0
    assert json.loads(text)["tree"]["fields"][0]["value"].startswith("(a value nested deeper")


def test_stops_past_what_the_app_holds_stream_in_replay_json_and_are_refused_by_the_loader(tmp_path):
    wide = [node(-1, [field(1)] * 9_000)] + [node(0, [field(1)] * 9_000) for _ in range(10)]
    path = write(tmp_path / "many.fwrec", *(stop(wide, i) for i in range(5)))
    out, text = replay_json(path, tmp_path)
    assert out.returncode == 0 and len(text.splitlines()) == 5
    with pytest.raises(RecordingError, match="line 6: more than 400,000 objects in the stops so far"):
        load_recording(path)


@pytest.mark.parametrize("name,content,code,message", [
    ("empty.fwrec", b"", 2, "empty file: not an fwinspect recording"),
    ("foreign.fwrec", b"\x7fELF\x02\x01\x01\n", 2, "line 1: not JSON"),
    ("other.fwrec", b'{"format":"something-else"}\n', 2,
     "line 1: not an fwinspect recording (expected a header with format 'fwinspect-recording')"),
    ("cut.fwrec", json.dumps(HEADER).encode() + b"\n" + json.dumps(stop([node(-1)])).encode()[:-9], 1,
     "line 2: the line is cut short (the file ends without a newline: truncated?)"),
    ("brackets.fwrec", json.dumps(HEADER).encode() + b"\n" + b"[" * 200_000 + b"\n", 1, "line 2: not JSON"),
], ids=["empty", "foreign", "other-format", "truncated", "brackets-200k-deep"])
def test_truncated_foreign_and_malformed_files_exit_with_the_line(tmp_path, name, content, code, message):
    path = tmp_path / name
    path.write_bytes(content)
    out, text = replay_json(path, tmp_path)
    assert out.returncode == code and text == ""
    assert out.stderr.decode().startswith(f"fwinspect replay: {path}") and message in out.stderr.decode()


@pytest.mark.parametrize("content,message", [
    (b"", "empty file: not an fwinspect recording"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(56) + b"\n", "line 1: not JSON"),
    (b'{"format":"fwinspect-recording","version":2}\n', "line 1: recording version 2; this fwinspect reads 1"),
], ids=["empty", "elf", "version-2"])
def test_the_app_is_not_started_on_a_file_that_is_not_a_recording(tmp_path, content, message):
    path = tmp_path / "x.fwrec"
    path.write_bytes(content)
    out = run_fwinspect(["replay", path])
    out.check()
    assert out.returncode == 2 and out.stdout == b""
    (line,) = out.stderr.decode().splitlines()
    assert line.startswith(f"fwinspect: replay: {path}: {message}")
