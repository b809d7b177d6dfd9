"""`fwinspect tour` without QEMU: the offline chapters on real images (Debian's OVMF, Config-A with and
without TDX metadata; our TDVF Config-B build), every value checked against the node it names and
against the bytes read with struct; the CLI's --offline --json/--export; --replay of recordings
that are whole, cut short, of another version, or not recordings at all."""
from __future__ import annotations

import json
import shutil
import struct
import uuid
from pathlib import Path

import pytest

from decoders.model import Node
from inspector.cli import main
from inspector.image import load_image
from inspector.live.session_api import Stop
from inspector.tour.model import chapters_json
from inspector.tour.offline import offline_chapters
from inspector.tour.run import tour_offline_chapters
from inspector.tour.run import TourRecorder, boot_chapters, markdown
from tests.realdata import bookworm, firmware

# td-shim's td-shim-tee-info-hash gives this per-page MRTD for bookworm's OVMF.fd (tests/inspector/test_cli.py).
BOOKWORM_MRTD_PER_PAGE = ("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057"
                          "fb887fed0744d5631a212967fb231c47")
CONFIG_B_MRTD_PER_PAGE = ("44f7ee99e490d55182a13fa2d595922929f317d866af7ee7efcf38a9918be6df"
                          "f876d8f4f7d55d8f41113fcb1a35775a")
# OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc and OvmfPkg/Include/Guid: the table's GUIDs.
FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")

WITH_TDX = ["flash-image", "reset-vector-table", "tdx-metadata", "mrtd", "sev-metadata", "config-a-vs-b"]
# What `fwinspect tour` tells offline: those, with the MRTD page by page (inspector/tour/tdx.py) after "mrtd".
# and "application-processors" (inspector/tour/aps.py) before "config-a-vs-b".
TOLD_WITH_TDX = ["flash-image", "reset-vector-table", "tdx-metadata", "mrtd", "mrtd-pages", "sev-metadata",
                 "application-processors", "config-a-vs-b"]


def images():
    return {"bookworm-OVMF.fd": lambda: bookworm("OVMF.fd"),
            "bookworm-OVMF_CODE_4M.fd": lambda: bookworm("OVMF_CODE_4M.fd"),
            "inteltdx-configB": lambda: firmware("inteltdx/OVMF.fd")}


@pytest.fixture(scope="module")
def loaded():
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_image(images()[name]())
        return cache[name]
    return get


def node_at(root: Node, path) -> Node:
    n = root
    for i in path:
        n = n.children[i]
    return n


def tdvf_sections_by_struct(data: bytes) -> list[tuple[int, int, int, int, int, int]]:
    """(DataOffset, RawDataSize, MemoryAddress, MemoryDataSize, Type, Attributes) of every TDVF_SECTION,
    read with struct: the GUIDed table walked back from its footer (UINT16 length at E-0x32, GUID at
    E-0x30), the TDX metadata offset entry's UINT32, the "TDVF" descriptor at E - offset
    (ResetVectorVtf0.nasm.inc, IntelTdxMetadata.asm)."""
    end = len(data)
    footer = end - 0x32
    assert uuid.UUID(bytes_le=data[footer + 2:footer + 18]) == FOOTER_GUID
    left = struct.unpack_from("<H", data, footer)[0] - 18
    pos, offset = footer, None
    while left > 0:
        guid = uuid.UUID(bytes_le=data[pos - 16:pos])
        length = struct.unpack_from("<H", data, pos - 18)[0]
        if guid == TDX_OFFSET_GUID:
            offset = struct.unpack_from("<I", data, pos - length)[0]
        pos, left = pos - length, left - length
    at = end - offset
    assert data[at:at + 4] == b"TDVF"
    count = struct.unpack_from("<I", data, at + 12)[0]
    return [struct.unpack_from("<IIQQII", data, at + 16 + 32 * i) for i in range(count)]


# ---- every value is the value at its node --------------------------------------------------------

@pytest.mark.parametrize("name", list(images()))
def test_every_offline_value_is_the_value_at_its_node_and_in_the_text(loaded, name):
    img = loaded(name)
    chapters = offline_chapters(img)
    assert chapters
    for c in chapters:
        assert c.phase == "offline"
        assert c.command in (f"fwinspect fd {img.path.name}", f"fwinspect mrtd {img.path.name} --order both")
        for v in c.values:
            assert v.text in c.text, (c.chapter, v.name, v.text)
            if v.kind in ("mrtd", "mrtd-section"):
                # Computed from the image (not part of its tree): the node it names holds it.
                assert v.path is None and v.node.get(v.field) == v.value, (c.chapter, v.name)
                continue
            assert v.path is not None, (c.chapter, v.name)
            n = node_at(img.root, v.path)
            assert n is v.node and n.kind == v.kind and n.address == v.address, (c.chapter, v.name)
            if v.field is not None:
                assert n.get(v.field) == v.value, (c.chapter, v.name)
            else:
                # A count of children of one kind (0 for a kind it has none of).
                counts = {0} | {sum(1 for x in n.children if x.kind == k) for k in {x.kind for x in n.children}}
                assert v.value in {n.size, n.address, n.offset, len(n.children)} | counts, (c.chapter, v.name)


def test_chapters_of_each_kind_of_image(loaded):
    assert [c.chapter for c in offline_chapters(loaded("bookworm-OVMF.fd"))] == WITH_TDX
    assert [c.chapter for c in offline_chapters(loaded("inteltdx-configB"))] == WITH_TDX
    # No TDX metadata, no SEV descriptor: those chapters are left out, and the Config chapter says why.
    no_tdx = offline_chapters(loaded("bookworm-OVMF_CODE_4M.fd"))
    assert [c.chapter for c in no_tdx] == ["flash-image", "reset-vector-table", "config-a-vs-b"]
    config = no_tdx[-1]
    assert "no TDX metadata (not a TDVF image)" in config.text
    assert "this tour has no TDX metadata or MRTD chapter" in config.text
    flash = no_tdx[0]
    assert "It has no NV store" in flash.text


# ---- exact values, read from the bytes -----------------------------------------------------------

def test_config_b_tdx_sections_are_the_bytes_of_its_tdvf_descriptor(loaded):
    img = loaded("inteltdx-configB")
    raw = tdvf_sections_by_struct(img.data)
    # IntelTdxMetadata.asm's order in our Config-B build: BFV, CFV, TempMem x2, TD_HOB, TempMem.
    assert [(gpa, size, typ, attr) for _o, _r, gpa, size, typ, attr in raw] == [
        (0xFFC84000, 0x37C000, 0, 1), (0xFFC00000, 0x84000, 1, 0), (0x810000, 0x10000, 3, 0),
        (0x80B000, 0x2000, 3, 0), (0x809000, 0x2000, 2, 0), (0x800000, 0x6000, 3, 0)]
    tdx = {c.chapter: c for c in offline_chapters(img)}["tdx-metadata"]
    values = {v.name: v for v in tdx.values}
    assert values["tdvf_count"].value == len(raw) == 6
    for i, (data_offset, raw_size, gpa, size, typ, attr) in enumerate(raw):
        assert values[f"s{i}_gpa"].value == gpa
        assert values[f"s{i}_size"].value == size
        assert values[f"s{i}_type"].value == typ
        assert values[f"s{i}_attr"].value == attr
        if raw_size:
            assert (values[f"s{i}_raw"].value, values[f"s{i}_from"].value) == (raw_size, data_offset)
        else:
            assert f"s{i}_raw" not in values
    # What the VMM does follows from the Attributes: BFV MR.EXTENDed, the others PAGE.ADDed only.
    assert ("Section 0, BFV: GPA 0xffc84000, 0x37c000 bytes, Attributes MR.EXTEND." in tdx.text)
    assert ("The VMM copies 0x37c000 bytes from image offset 0x84000 there and adds each page (TDH.MEM.PAGE.ADD) "
            "and measures its bytes into MRTD (TDH.MR.EXTEND)." in tdx.text)
    assert ("Section 1, CFV: GPA 0xffc00000, 0x84000 bytes, Attributes 0." in tdx.text)
    assert ("The VMM copies 0x84000 bytes from image offset 0 there and adds each page (TDH.MEM.PAGE.ADD); "
            "MRTD records only the page's address." in tdx.text)
    assert "Section 4, TD_HOB: GPA 0x809000, 0x2000 bytes, Attributes 0." in tdx.text
    assert tdx.text.count("Nothing comes from the image") == 4
    assert tdx.unexpected == []


def test_config_b_mrtd_chapter_has_both_orders_and_the_pages_each_section_adds(loaded):
    img = loaded("inteltdx-configB")
    mrtd = {c.chapter: c for c in offline_chapters(img)}["mrtd"]
    values = {v.name: v for v in mrtd.values}
    assert values["mrtd_per_page"].value.hex() == CONFIG_B_MRTD_PER_PAGE
    assert values["mrtd_two_pass"].value.hex() != CONFIG_B_MRTD_PER_PAGE
    raw = tdvf_sections_by_struct(img.data)
    pages = [size // 0x1000 for _o, _r, _g, size, _t, _a in raw]
    assert [values[f"m{i}_added"].value for i in range(len(raw))] == pages == [0x37C, 0x84, 16, 2, 2, 6]
    assert [values[f"m{i}_ext"].value for i in range(len(raw))] == [0x37C, 0, 0, 0, 0, 0]
    assert values["pages_added"].value == sum(pages) == 1050 and values["pages_extended"].value == 892
    assert "Section 0 (BFV) contributes its bytes: 892 pages added, 892 extended." in mrtd.text
    assert mrtd.command == "fwinspect mrtd OVMF.fd --order both"


def test_bookworm_mrtd_is_td_shims_value(loaded):
    mrtd = {c.chapter: c for c in offline_chapters(loaded("bookworm-OVMF.fd"))}["mrtd"]
    assert {v.name: v for v in mrtd.values}["mrtd_per_page"].value.hex() == BOOKWORM_MRTD_PER_PAGE
    assert BOOKWORM_MRTD_PER_PAGE in mrtd.text


def test_flash_chapter_follows_fvmain_compact_to_what_it_decompresses_to(loaded):
    a = {c.chapter: c for c in offline_chapters(loaded("bookworm-OVMF.fd"))}["flash-image"]
    va = {v.name: v for v in a.values}
    data = loaded("bookworm-OVMF.fd").data
    assert va["image_size"].value == len(data) == 0x200000
    assert va["image_base"].value == (1 << 32) - len(data) == 0xFFE00000
    # SECFV is the last volume: its FvLength (at 0x20 in the header) ends at the end of the file.
    assert va["secfv_address"].value + struct.unpack_from("<Q", data, va["secfv_address"].value - 0xFFE00000 + 0x20)[0] \
        == 1 << 32
    assert (va["v0_0_name"].text, va["v0_0_size"].value, va["v0_1_name"].text, va["v0_1_size"].value) == \
        ("PEIFV", 0xE0000, "DXEFV", 0xC00000)
    assert a.unexpected == []
    assert "/ FVMAIN_COMPACT" in a.try_this and "g 0xfffcc000" in a.try_this
    b = {c.chapter: c for c in offline_chapters(loaded("inteltdx-configB"))}["flash-image"]
    vb = {v.name: v for v in b.values}
    assert (vb["v0_0_name"].text, vb["v0_1_name"].text) == ("DXEFV", "gEfiNonCcFvGuid")
    assert b.unexpected == ["no PEIFV comes out of FVMAIN_COMPACT: this image has no PEI phase, SEC loads the DXE "
                            "core from DXEFV itself."]
    config = {c.chapter: c for c in offline_chapters(loaded("inteltdx-configB"))}["config-a-vs-b"]
    assert "Config-B (PEI-less: no PEIFV, no PEI_CORE file)" in config.text and "Without PEI" in config.text


def test_reset_vector_table_chapter_lists_the_entries_at_their_offsets(loaded):
    img = loaded("bookworm-OVMF.fd")
    table = {c.chapter: c for c in offline_chapters(img)}["reset-vector-table"]
    values = {v.name: v for v in table.values}
    assert values["entries"].value == 5
    end = len(img.data)
    tdx = next(v for v in table.values if v.text == "TdxMetadataOffsetGuid")
    i = tdx.name
    assert values[f"{i}_at"].value == end - values[f"{i}_offset"].value == 0x1FF7C0
    assert struct.unpack_from("<H", img.data, end - 0x32)[0] == values["table_length"].value == 0x88


# ---- the CLI -------------------------------------------------------------------------------------

def test_cli_offline_json_is_the_chapters(loaded, capsys):
    path = images()["inteltdx-configB"]()
    assert main(["tour", str(path), "--offline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == chapters_json(tour_offline_chapters(loaded("inteltdx-configB")))
    assert [c["chapter"] for c in out] == TOLD_WITH_TDX
    tdx = out[2]
    assert {v["name"]: v["value"] for v in tdx["values"]}["s0_gpa"] == 0xFFC84000
    assert tdx["values"][0]["path"] == [4, 4, 0] and tdx["values"][0]["kind"] == "tdx-metadata"


def test_cli_export_markdown_has_every_chapter_title_and_value(loaded, tmp_path, capsys):
    path = images()["bookworm-OVMF.fd"]()
    md = tmp_path / "tour.md"
    assert main(["tour", str(path), "--offline", "--export", str(md)]) == 0
    text = md.read_text()
    chapters = tour_offline_chapters(loaded("bookworm-OVMF.fd"))
    for c in chapters:
        assert f"## {c.title}\n" in text
        assert c.text in text
        assert f"Reproduce: `{c.command}`" in text
        for v in c.values:
            row = f"| {v.name} | {v.text.replace('|', chr(92) + '|')} | {v.kind or ''} |"
            assert row in text, row
    assert f"{len(chapters)} chapters written to {md}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["tour"], "give an IMAGE"),
    (["tour", "IMG", "--offline", "--record", "x"], "no boot to --record"),
    (["tour", "IMG", "--offline", "--bogus"], "--bogus: an unknown option"),
    (["tour", "IMG", "--offline", "--json", "--export", "x.md"], "give one"),
    (["tour", "--replay", "NOFILE"], "NOFILE: no such file"),
])
def test_cli_usage_errors_are_one_line_exit_2(argv, message, capsys):
    argv = [str(images()["bookworm-OVMF.fd"]()) if a == "IMG" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ---- replay: recordings whole, cut short, of another version, or none -----------------------------

class FakeSession:
    """Hands out prepared Stops as a Session would (reset first, then one per next_handoff)."""

    live = True

    def __init__(self, stops):
        self.stops, self.at = stops, 0

    def current(self):
        return self.stops[self.at]

    def next_handoff(self, timeout=60.0):
        self.at = min(self.at + 1, len(self.stops) - 1)
        return self.stops[self.at]

    def close(self):
        pass


def entry_node(phase: str, mode: str, address: int) -> Node:
    """A handoff stop's tree as inspector/live/handoffs.py decode_handoff starts it."""
    node = Node(f"{phase}-entry", f"{phase} entry at 0x{address:x} ({mode})")
    node.add("Mode", mode)
    node.add("EntryPoint", address, display=f"0x{address:x}")
    return node


def fake_stops(last: str) -> list[Stop]:
    regs = {"rip": 0xFFF0, "cs": 0xF000, "cs_base": 0xFFFF0000, "cr0": 0x60000010, "cr3": 0, "cr4": 0, "efer": 0}
    out = [Stop(0, "reset", "reset", "real", 0xFFFFFFF0, dict(regs), handoff="reset",
                tree=entry_node("reset", "real", 0xFFFFFFF0))]
    for i, phase in enumerate(["sec", "pei-core", "dxe-ipl", "dxe-core", "bds"], 1):
        long_regs = dict(regs, rip=0xFFFD26A4 + i, cs=0x38, cs_base=0, cr0=0x80000033, cr4=0x668, efer=0x500)
        out.append(Stop(i, "handoff", phase, "long64", 0xFFFD26A4 + i, long_regs, handoff=phase,
                        tree=entry_node(phase, "long64", 0xFFFD26A4 + i)))
        if phase == last:
            break
    return out


def record(tmp_path: Path, img, stops: list[Stop], name: str = "tour.rec") -> Path:
    path = tmp_path / name
    rec = TourRecorder(FakeSession(stops), path, img)
    rec.current()
    for _ in stops[1:]:
        rec.next_handoff()
    rec.close()
    return path


@pytest.fixture(autouse=True)
def handoff_chapters_left_out(request, monkeypatch):
    """The replay tests are about reading recordings: the handoff and mode chapters (their own modules,
    told from real stops in tests/live/test_tour_live.py) are left out, as when those modules are
    missing, so the few registers of these stops need not make a whole boot."""
    if "replay" not in request.node.name:
        return
    import inspector.tour.run as run

    monkeypatch.setattr(run, "_function", lambda module, name: f"{module} is left out of this test")


@pytest.fixture
def image_copy(tmp_path):
    p = tmp_path / "OVMF.fd"
    shutil.copyfile(images()["bookworm-OVMF.fd"](), p)
    return p


def replay(capsys, *argv):
    code = main(["tour", "--replay", *map(str, argv), "--json"])
    cap = capsys.readouterr()
    return code, (json.loads(cap.out) if cap.out else None), cap.err


def test_replay_to_bds_tells_the_offline_chapters_from_the_recorded_image(tmp_path, image_copy, capsys):
    img = load_image(image_copy)
    path = record(tmp_path, img, fake_stops("bds"))
    code, chapters, err = replay(capsys, path)
    assert code == 0, err
    told = chapters_json(tour_offline_chapters(img))
    assert chapters[:len(told)] == told
    assert chapters[-1]["chapter"] != "stopped"
    assert "stopped" not in [c["chapter"] for c in chapters]


def test_replay_ending_before_bds_ends_in_a_stopped_chapter_exit_1(tmp_path, image_copy, capsys):
    img = load_image(image_copy)
    path = record(tmp_path, img, fake_stops("sec"))
    code, chapters, _err = replay(capsys, path)
    assert code == 1
    last = chapters[-1]
    assert last["chapter"] == "stopped" and last["stop"] == 1
    assert "The tour stopped at stop 1, in sec at 0xfffd26a5" in last["text"]
    assert "before bds" in last["text"]


def test_replay_of_a_truncated_recording_tells_what_it_can_exit_1(tmp_path, image_copy, capsys):
    img = load_image(image_copy)
    path = record(tmp_path, img, fake_stops("bds"))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 40])          # the last stop's line cut short
    code, chapters, err = replay(capsys, path)
    assert code == 1
    assert "line is cut short" in err and err.count("\n") == 1
    last = chapters[-1]
    assert last["chapter"] == "stopped" and "the recording is cut short" in last["text"]
    assert last["stop"] == 4                          # the stops before the cut are told
    told = chapters_json(tour_offline_chapters(img))
    assert chapters[:len(told)] == told


def test_replay_of_another_version_is_a_clear_message_exit_1(tmp_path, image_copy, capsys):
    path = record(tmp_path, load_image(image_copy), fake_stops("bds"))
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"version":1', '"version":99')
    path.write_text("".join(lines))
    code, chapters, err = replay(capsys, path)
    assert code == 1
    assert "recording version 99; this fwinspect reads 1" in err
    assert chapters[-1]["chapter"] == "stopped" and "recording version 99" in chapters[-1]["text"]


@pytest.mark.parametrize("content", [b"", b"not a recording\n", b'{"format":"something-else"}\n', b"\x00\xff" * 100])
def test_replay_of_what_is_not_a_recording_is_exit_2(tmp_path, capsys, content):
    path = tmp_path / "x.rec"
    path.write_bytes(content)
    code, chapters, err = replay(capsys, path)
    assert code == 2 and chapters is None
    assert err.startswith("fwinspect: tour --replay: ") and err.count("\n") == 1


def test_replay_with_a_changed_image_says_so_and_takes_an_image_argument(tmp_path, image_copy, capsys):
    img = load_image(image_copy)
    path = record(tmp_path, img, fake_stops("bds"))
    data = bytearray(image_copy.read_bytes())
    data[0x100] ^= 0xFF                               # in the NV store's free space
    image_copy.write_bytes(bytes(data))
    code, chapters, _err = replay(capsys, path)
    assert chapters[0]["chapter"] == "offline"
    assert chapters[0]["text"] == (f"The chapters on the flash image: not available: {image_copy} has changed since the "
                                   f"recording (its SHA-256 differs).")
    # The image given on the command line is used as it is.
    code, chapters, _err = replay(capsys, path, images()["bookworm-OVMF.fd"]())
    assert code == 0 and [c["chapter"] for c in chapters[:len(TOLD_WITH_TDX)]] == TOLD_WITH_TDX


def test_boot_chapters_without_stops_module_say_the_chapter_is_not_available(monkeypatch):
    import inspector.tour.run as run

    real = run._function
    monkeypatch.setattr(run, "_function", lambda module, name: f"{module} has no {name}"
                        if module == "inspector.tour.stops" else real(module, name))
    chapters, code = boot_chapters(fake_stops("bds"), None)
    assert chapters[0].chapter == "boot"
    assert chapters[0].text == ("The chapters on the handoffs: not available: inspector.tour.stops has no "
                                "stop_chapters.")
    assert code == 0


def test_markdown_escapes_pipes_in_values(loaded):
    c = offline_chapters(loaded("bookworm-OVMF.fd"))[0]
    c.values[0].text = "a|b"
    assert "| a\\|b |" in markdown([c])


# ---- malformed images, a QEMU that does not start, no tour screen ----------------------------------

def malformed_cases():
    import subprocess
    import sys

    import sample_images

    manifest = sample_images.OUT / "malformed" / "MANIFEST.json"
    if not manifest.exists():
        subprocess.run([sys.executable, "-m", "sample_images.generate"], check=True, timeout=300)
    return [pytest.param(sample_images.OUT / "malformed" / e["file"], id=e["file"])
            for e in json.loads(manifest.read_text())]


@pytest.mark.parametrize("path", malformed_cases())
def test_offline_tour_of_a_malformed_image_is_told_with_its_problems_exit_1(path, capsys):
    assert main(["tour", str(path), "--offline", "--json"]) == 1     # the image has problems, as `fd` says
    chapters = json.loads(capsys.readouterr().out)
    assert chapters[0]["chapter"] == "flash-image" and chapters[-1]["chapter"] == "config-a-vs-b"
    img = load_image(path)
    for c in offline_chapters(img):
        for v in c.values:
            assert v.text in c.text
            if v.path is not None:
                assert node_at(img.root, v.path) is v.node


def test_live_tour_whose_qemu_does_not_start_ends_in_a_stopped_chapter(monkeypatch, capsys):
    from inspector.live.qemu import QemuError, QemuProcess

    def fail(self, timeout=0):
        raise QemuError("`qemu-system-x86_64` not found: install Debian's `qemu-system-x86`")

    monkeypatch.setattr(QemuProcess, "start", fail)
    assert main(["tour", str(images()["bookworm-OVMF.fd"]()), "--json"]) == 1
    chapters = json.loads(capsys.readouterr().out)
    assert [c["chapter"] for c in chapters] == TOLD_WITH_TDX + ["stopped"]
    assert chapters[-1]["text"] == ("The tour tells no boot: QEMU did not start: `qemu-system-x86_64` not found: "
                                    "install Debian's `qemu-system-x86`.")


def test_without_a_tour_screen_the_chapters_are_printed_as_text(monkeypatch, capsys, loaded):
    import inspector.cli as cli

    monkeypatch.setattr(cli, "start_app", lambda kind, *args: None)
    assert main(["tour", str(images()["inteltdx-configB"]()), "--offline"]) == 0
    out = capsys.readouterr().out
    for c in offline_chapters(loaded("inteltdx-configB")):
        assert f"== {c.title} ({c.chapter}; offline)" in out
        assert f"   reproduce: {c.command}" in out
    assert "0xffc84000" in out and CONFIG_B_MRTD_PER_PAGE[:40] in out.replace("\n", "")


def test_record_path_that_cannot_be_written_is_a_usage_error_before_qemu_starts(monkeypatch, tmp_path, capsys):
    from inspector.live.qemu import QemuProcess

    started = []
    monkeypatch.setattr(QemuProcess, "start", lambda self, timeout=0: started.append(self))
    bad = tmp_path / "no-such-dir" / "tour.rec"
    assert main(["tour", str(images()["bookworm-OVMF.fd"]()), "--json", "--record", str(bad)]) == 2
    assert f"--record {bad}: No such file or directory" in capsys.readouterr().err
    assert started == []
