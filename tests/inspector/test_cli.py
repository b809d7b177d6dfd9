"""The CLI as a user and a script see it: exit codes, JSON shape, MRTD values, extraction safety."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.cli import main
from tests.realdata import bookworm

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# td-shim's td_shim_tee_info_hash.py gives this per-page MRTD for bookworm's OVMF.fd
# (confidential-containers/td-shim, td-shim-tools/src/bin/td-shim-tee-info-hash).
BOOKWORM_MRTD_PER_PAGE = ("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057"
                          "fb887fed0744d5631a212967fb231c47")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])


def walk(node: dict):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n["children"])


def test_fd_json_of_ovmf_has_volumes_files_sections_with_canonical_guids():
    r = run_cli("fd", str(bookworm("OVMF.fd")), "--json")
    assert r.returncode == 0, r.stderr
    tree = json.loads(r.stdout)
    nodes = list(walk(tree))
    kinds = {n["kind"] for n in nodes}
    assert {"fv", "ffs", "section", "tdx-section"} <= kinds
    names = [f["value"] for n in nodes if n["kind"] == "ffs" for f in n["fields"] if f["name"] == "Name"]
    assert names and all(GUID_RE.match(v) for v in names)
    # DxeCore's file GUID (MdeModulePkg/Core/Dxe/DxeMain.inf), inside the LZMA-compressed DXEFV.
    assert "d6a2cb7f-6a18-4e2f-b43b-9920a733700a" in names
    tdx = [n for n in nodes if n["kind"] == "tdx-section"]
    assert len(tdx) == 6  # OvmfPkg/ResetVector/X64/IntelTdxMetadata.nasm.inc, 2022.11


def test_mrtd_of_bookworm_ovmf_matches_td_shim_reference():
    r = run_cli("mrtd", str(bookworm("OVMF.fd")))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == BOOKWORM_MRTD_PER_PAGE
    assert "per-page" in r.stdout


def test_mrtd_json_names_the_order():
    r = run_cli("mrtd", str(bookworm("OVMF.fd")), "--order", "both", "--json")
    assert r.returncode == 0, r.stderr
    tree = json.loads(r.stdout)
    orders = {f["value"] for n in walk(tree) for f in n["fields"] if f["name"] == "Order"}
    assert orders == {"per-page", "two-pass"}


def test_mrtd_of_image_without_tdx_metadata_says_so():
    r = run_cli("mrtd", str(bookworm("OVMF_CODE_4M.fd")))
    assert r.returncode == 1
    assert "no TDX metadata" in r.stderr


def test_usage_errors_exit_2(tmp_path):
    assert main([]) == 2
    assert main(["fd"]) == 2
    assert main(["fd", str(tmp_path / "nope.fd")]) == 2
    empty = tmp_path / "empty.fd"
    empty.write_bytes(b"")
    assert main(["fd", str(empty)]) == 2


def test_garbage_file_exits_1_with_located_problem(tmp_path, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 4096)
    code = main(["fd", str(junk), "--json"])
    out = capsys.readouterr()
    assert code == 1
    tree = json.loads(out.out)
    assert tree["kind"] == "image"
    assert any(p for n in walk(tree) for p in n["problems"])


def test_extract_writes_decompressed_volumes_inside_dir(tmp_path):
    out = tmp_path / "x"
    r = run_cli("extract", str(bookworm("OVMF.fd")), str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    decompressed = [m for m in manifest if m["kind"] == "decompressed"]
    assert decompressed, "the LZMA section's payload must be written"
    for m in manifest:
        p = (out / m["path"]).resolve()
        assert p.is_relative_to(out.resolve())
        assert p.stat().st_size == m["size"]
    # The PEIFV+DXEFV payload of FVMAIN_COMPACT starts with sections holding FVs: _FVH inside it.
    assert any(b"_FVH" in (out / m["path"]).read_bytes()[:0x100] for m in decompressed)


def test_hob_cli_on_td_shim_fixture_gives_memory_map_and_digest():
    import hashlib

    from tests.realdata import fixture

    path = fixture("hob/td-shim/hob_buffer.bin")
    r = run_cli("hob", str(path), "--json")
    assert r.returncode == 0, r.stderr
    tree = json.loads(r.stdout)
    hobs = [n for n in tree["children"] if n["kind"] == "hob"]
    assert [f["value"] for n in hobs for f in n["fields"] if f["name"] == "HobType"][0] == 1  # PHIT first
    assert hobs[-1]["fields"][0]["value"] == 0xFFFF
    digest = next(f["value"] for f in tree["fields"] if f["name"] == "TdHobDigest")
    raw = path.read_bytes()
    off = 0  # a plain walk by HobLength (PI vol 3 generic header) to the END HOB
    while int.from_bytes(raw[off:off + 2], "little") != 0xFFFF:
        off += int.from_bytes(raw[off + 2:off + 4], "little")
    assert digest == hashlib.sha384(raw[:off]).hexdigest()
    assert any(n["kind"] == "memory-map" for n in tree["children"])


def test_eventlog_cli_matches_quote_and_flags_tampered_log():
    from tests.realdata import fixture

    log = fixture("ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.bin")
    quote = fixture("ccel/go-tdx-guest/cos-113-tdx-quote.dat")
    ok = run_cli("eventlog", str(log), "--expect-quote", str(quote))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("match") == 4 and "MISMATCH" not in ok.stdout
    bad = run_cli("eventlog", str(fixture("ccel/go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin")),
                  "--expect-quote", str(quote))
    assert bad.returncode == 1
    assert "RTMR1: MISMATCH" in bad.stdout and "part at event #" in bad.stdout


def test_eventlog_yaml_parses_like_tpm2_eventlog_output():
    import yaml

    from tests.realdata import fixture

    path = fixture("eventlog/tpm2-tools/event-arch-linux.bin")
    r = run_cli("eventlog", str(path), "--yaml", "--tpm2-tools-54")
    ours = yaml.safe_load(r.stdout)
    oracle = yaml.safe_load((path.parent / (path.name + ".tpm2_eventlog-5.4.yaml")).read_text())
    assert ours["pcrs"] == oracle["pcrs"]
    assert len(ours["events"]) == len(oracle["events"])


def test_pages_json_lists_every_leaf_as_a_mapping_node(tmp_path):
    """A raw physical-memory file (as pmemsave writes) with page tables built here (SDM layouts)."""
    import struct

    base, pml4, pdpt, pd, pt = 0x100000, 0x100000, 0x101000, 0x102000, 0x103000
    buf = bytearray(0x4000)
    struct.pack_into("<Q", buf, pml4 - base, pdpt | 0x7)
    struct.pack_into("<Q", buf, pdpt - base, pd | 0x7)
    struct.pack_into("<Q", buf, pd - base, pt | 0x7)
    struct.pack_into("<Q", buf, pd - base + 8, 0x200000 | 0x83 | (1 << 63))  # 2 MiB, NX, supervisor
    struct.pack_into("<Q", buf, pt - base + 5 * 8, 0x5000 | 0x67)            # 4 KiB, U, W, A, D
    raw = tmp_path / "ram.bin"
    raw.write_bytes(bytes(buf))
    r = run_cli("pages", str(raw), "--base", hex(base), "--cr3", hex(pml4), "--json")
    assert r.returncode == 0, r.stderr
    tree = json.loads(r.stdout)
    leaves = [{f["name"]: f["value"] for f in c["fields"]} for c in tree["children"]]
    assert [c["kind"] for c in tree["children"]] == ["mapping", "mapping"]
    small, large = leaves
    assert (small["VirtualAddress"], small["PhysicalAddress"], small["Size"], small["Level"]) == (0x5000, 0x5000, 0x1000, 1)
    assert small["User"] and small["Writable"] and small["Dirty"] and small["Accessed"] and not small["NX"]
    assert (large["VirtualAddress"], large["Size"], large["Level"]) == (0x200000, 0x200000, 2)
    assert large["NX"] and not large["User"]
    t = run_cli("translate", str(raw), "--base", hex(base), "--cr3", hex(pml4), "0x5123")
    assert t.stdout.strip().endswith("0x5123 -> 0x5123")


def test_console_script_one_shot_path_flushes_output_and_keeps_exit_codes(tmp_path):
    """run() skips the GC and the interpreter's teardown for one-shot commands: the JSON must still
    be complete and the exit status unchanged."""
    code = "import sys; from inspector.cli import run; sys.argv = ['fwinspect'] + sys.argv[1:]; run()"
    ok = subprocess.run([sys.executable, "-c", code, "fd", str(bookworm("OVMF.fd")), "--json"],
                        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert ok.returncode == 0 and json.loads(ok.stdout)["kind"] == "image"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    bad = subprocess.run([sys.executable, "-c", code, "fd", str(junk)], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert bad.returncode == 1 and "no firmware volume" in bad.stdout + bad.stderr
    usage = subprocess.run([sys.executable, "-c", code, "fd", str(tmp_path / "missing")], capture_output=True,
                           text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert usage.returncode == 2


def test_internal_error_exits_3_with_one_line(monkeypatch, capsys, tmp_path):
    """A bug of ours (here: a decoder raising) is exit 3, distinct from 1 (the input had problems)."""
    import inspector.image

    def broken(path, *args):
        raise KeyError("a bug")

    monkeypatch.setattr(inspector.image, "load_image", broken)
    monkeypatch.delenv("FWINSPECT_DEBUG", raising=False)
    (tmp_path / "x.fd").write_bytes(b"\xff" * 4096)
    assert main(["fd", str(tmp_path / "x.fd")]) == 3
    assert capsys.readouterr().err == ("fwinspect: internal error (KeyError: 'a bug'); FWINSPECT_DEBUG=1 shows the "
                                       "traceback: please report it with the input\n")


def test_version_and_help_exit_0_and_no_command_is_usage(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"fwinspect {version('fwinspect')}\n"
    assert main(["fd", "--version"]) == 0
    assert main(["--help"]) == 0
    assert "exit status: 0 clean; 1 the input had problems" in capsys.readouterr().out.replace("\n", " ")
    assert main([]) == 2


def test_offline_commands_import_nothing_of_the_live_session_or_the_app():
    code = ("import sys; from inspector.cli import main; main(sys.argv[1:]); "
            "print(sorted(m for m in sys.modules if m.startswith(('inspector.live', 'views', 'textual', 'rich'))))")
    r = subprocess.run([sys.executable, "-c", code, "fd", str(bookworm("OVMF.fd")), "--json"], capture_output=True,
                       text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"
