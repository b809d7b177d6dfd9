"""`fwinspect diff A B` on hostile and malformed inputs, each a whole process (README, "Budgets":
exit 0/1/2, no traceback or internal error, peak RSS <= 256 MiB; the time is only a hang detector).

The hostile flash images are test_fd_hostile's (LZMA/Brotli bombs, nesting, thousands of files,
bad checksums), diffed against a real image and against each other, both decoded at once. The
malformed ones are copies of Debian 13's OVMF.fd with one structure broken, written with
struct.pack at offsets found by the layouts (PI 1.8 vol 3 FFS, PE/COFF, the OVMF reset-vector
table of OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm, TDVF_DESCRIPTOR of
OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm): the diff of what decoded goes on and the broken
image's problems are on the diff's root.
"""
from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pytest

from tests.hostile.harness import run_fwinspect
from tests.hostile.test_fd_hostile import (FD_CLASSES, build_in_child, check_clean, ffs_file, fv, section,
                                           sections)
from tests.realdata import fixture, trixie

# The classes diffed against a real image and, the cheaper ones, against themselves.
SELF_CLASSES = ("fd-empty-files", "fd-bad-checksums", "fd-many-sections", "fd-deep-volumes")
TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diff-hostile")
    return {cls: build_in_child(gen, folder / f"{cls}.fd") for cls, gen in FD_CLASSES.items()}


def diff(tmp: Path, a, b, *extra):
    out = run_fwinspect(["diff", "--json", *extra, a, b], stdout_to=tmp / "out.json")
    check_clean(out)
    return out


def tree_of(tmp: Path) -> dict:
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("cls", sorted(FD_CLASSES))
def test_diff_hostile_image_against_real_image(cls, hostile, tmp_path):
    out = diff(tmp_path, trixie("OVMF.fd"), hostile[cls])
    assert out.returncode == 1, out.describe()
    tree = tree_of(tmp_path)
    assert tree["kind"] == "diff"
    assert any(p["message"].startswith("B (") for p in tree["problems"]), "B's problems are on the root"


@pytest.mark.parametrize("cls", SELF_CLASSES)
def test_diff_hostile_image_against_itself(cls, hostile, tmp_path):
    out = diff(tmp_path, hostile[cls], hostile[cls])
    assert out.returncode == 1, out.describe()      # the images have problems; they do not differ
    assert [f for f in tree_of(tmp_path)["fields"] if f["name"] == "Change"][0]["value"] == "unchanged"


def test_diff_two_bomb_images_at_once_stay_within_memory(hostile, tmp_path):
    out = diff(tmp_path, hostile["fd-lzma-bombs"], hostile["fd-nested-bombs"])
    assert out.returncode == 1, out.describe()


def test_diff_two_big_bomb_images_at_once(hostile, tmp_path):
    out = diff(tmp_path, hostile["fd-big-image-bombs"], hostile["fd-bcj-code"])
    assert out.returncode == 1, out.describe()


# ---- malformed copies of a real image -----------------------------------------------------------

def _real() -> bytearray:
    return bytearray(trixie("OVMF.fd").read_bytes())


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(bytes(data))
    return p


def _lzma_payload_at(data: bytes) -> int:
    # gLzmaCustomDecompressGuid EE4E5898-3914-4259-9D6E-DC7BD79403CF, then DataOffset/Attributes.
    at = data.find(uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf").bytes_le)
    assert at > 0
    return at - 4 + struct.unpack_from("<H", data, at + 16)[0]


def corrupt_lzma(data: bytearray) -> bytearray:
    p = _lzma_payload_at(data)
    data[p + 13 + 0x1000:p + 13 + 0x1100] = bytes(0x100)     # inside the stream, past the header
    return data


def lzma_size_lie(data: bytearray) -> bytearray:
    struct.pack_into("<Q", data, _lzma_payload_at(data) + 5, 1 << 40)    # UINT64 decompressed size
    return data


def truncated_half(data: bytearray) -> bytearray:
    return data[:len(data) // 2]


def truncated_tail(data: bytearray) -> bytearray:
    return data[len(data) // 2:]


def zeroed_fv_headers(data: bytearray) -> bytearray:
    at = data.find(b"_FVH")
    while at >= 0:
        if data[at - 0x28:at - 0x18] == bytes(16):
            data[at:at + 4] = b"\0\0\0\0"
        at = data.find(b"_FVH", at + 1)
    return data


def secfv_pe_sections_absurd(data: bytearray) -> bytearray:
    # SECFV's SecMain: the last "MZ" whose e_lfanew points at "PE\0\0" (PE/COFF), NumberOfSections = 0xFFFF.
    at = len(data)
    while True:
        at = data.rfind(b"MZ", 0, at)
        assert at > 0
        lfanew = struct.unpack_from("<I", data, at + 0x3C)[0]
        if at + lfanew + 4 < len(data) and data[at + lfanew:at + lfanew + 4] == b"PE\0\0":
            struct.pack_into("<H", data, at + lfanew + 6, 0xFFFF)
            return data


def secfv_debug_directory_wild(data: bytearray) -> bytearray:
    at = len(data)
    while True:
        at = data.rfind(b"MZ", 0, at)
        lfanew = struct.unpack_from("<I", data, at + 0x3C)[0]
        if at + lfanew + 4 < len(data) and data[at + lfanew:at + lfanew + 4] == b"PE\0\0":
            opt = at + lfanew + 24
            magic = struct.unpack_from("<H", data, opt)[0]
            debug_dir = opt + (96 if magic == 0x10B else 112) + 6 * 8   # DataDirectory[6]
            struct.pack_into("<II", data, debug_dir, 0x10, 0xFFFFFFF0)
            return data


def tdx_metadata_absurd(data: bytearray) -> bytearray:
    at = data.find(b"TDVF")
    assert at > 0
    struct.pack_into("<I", data, at + 12, 0xFFFFFFFF)      # NumberOfSectionEntry
    return data


def ovmf_table_footer_broken(data: bytearray) -> bytearray:
    # The table's footer GUID sits at 4 GiB - 0x30, its length just before it.
    end = len(data) - 0x20
    struct.pack_into("<H", data, end - 16 - 2, 0xFFFF)
    return data


def random_bytes(data: bytearray) -> bytearray:
    import random
    rng = random.Random(1234)
    return bytearray(rng.randbytes(len(data)))


def all_ff(data: bytearray) -> bytearray:
    return bytearray(b"\xff" * len(data))


def one_byte(data: bytearray) -> bytearray:
    return bytearray(b"\x00")


MALFORMED = {
    "corrupt-lzma": corrupt_lzma,
    "lzma-size-lie": lzma_size_lie,
    "truncated-half": truncated_half,
    "truncated-tail": truncated_tail,
    "zeroed-fv-headers": zeroed_fv_headers,
    "pe-sections-absurd": secfv_pe_sections_absurd,
    "debug-directory-wild": secfv_debug_directory_wild,
    "tdx-metadata-absurd": tdx_metadata_absurd,
    "ovmf-table-broken": ovmf_table_footer_broken,
    "random-bytes": random_bytes,
    "all-ff": all_ff,
    "one-byte": one_byte,
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_diff_malformed_copy_reports_problems_and_diffs_the_rest(name, tmp_path):
    real = trixie("OVMF.fd")
    bad = _write(tmp_path, f"{name}.fd", MALFORMED[name](_real()))
    for a, b in ((real, bad), (bad, real)):
        out = diff(tmp_path, a, b)
        assert out.returncode == 1, out.describe()
        tree = tree_of(tmp_path)
        assert tree["kind"] == "diff" and tree["children"][0]["kind"] == "diff-summary"


def test_diff_pe_sections_absurd_names_only_secmain(tmp_path):
    real = trixie("OVMF.fd")
    bad = _write(tmp_path, "bad.fd", secfv_pe_sections_absurd(_real()))
    diff(tmp_path, real, bad)
    tree = tree_of(tmp_path)
    changed = [n for n in _walk(tree) if n["kind"] == "diff-file"]
    assert [_f(n)["UiName"] for n in changed] == ["SecMain"]
    assert any("NumberOfSections" in p["message"] for p in tree["problems"])


def _walk(node):
    yield node
    for c in node["children"]:
        yield from _walk(c)


def _f(node) -> dict:
    return {f["name"]: f["value"] for f in node["fields"]}


def test_diff_duplicate_guids_and_duplicate_volume_names(tmp_path):
    """Two files with one GUID in a volume, and two volumes without names: matched by order."""
    g = uuid.UUID("0badf00d-0000-0000-0000-000000000001")
    one = ffs_file(g, 0x02, sections(section(0x19, b"first")))
    two = ffs_file(g, 0x02, sections(section(0x19, b"second")))
    a = _write(tmp_path, "a.fd", fv([one, two]) + fv([one]))
    b = _write(tmp_path, "b.fd", fv([one, one]) + fv([two]))
    out = diff(tmp_path, a, b)
    assert out.returncode == 1, out.describe()
    changed = [_f(n) for n in _walk(tree_of(tmp_path)) if n["kind"] == "diff-file"]
    assert [(c["Name"], c["Change"], c["Changes"]) for c in changed] == [(str(g), "changed", ["raw"])] * 2


def test_diff_many_differing_variables(tmp_path):
    """Two VARS files whose stores hold thousands of variables (VariableFormat.h
    AUTHENTICATED_VARIABLE_HEADER, StartId 0x55AA, State VAR_ADDED), every one different."""
    def store(tag: bytes) -> bytes:
        out = b""
        vendor = uuid.UUID("12345678-1234-1234-1234-123456789abc").bytes_le
        for i in range(3000):
            name = f"V{i}".encode("utf-16-le") + b"\0\0"
            data = tag + struct.pack("<I", i)
            hdr = struct.pack("<HBBI Q16s I I I 16s", 0x55AA, 0x3F, 0, 7, 0, bytes(16), 0, len(name), len(data),
                              vendor)
            rec = hdr + name + data
            out += rec + b"\xff" * (-len(rec) % 4)
        return out

    def vars_fv(tag: bytes) -> bytes:
        body = store(tag)
        size = 0x48 + 28 + len(body)
        total = (size + 0xFFFF) & ~0xFFFF
        signature = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792").bytes_le    # gEfiAuthenticatedVariableGuid
        vs = signature + struct.pack("<IBBHI", total - 0x48, 0x5A, 0xFE, 0, 0) + body
        nv = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
        hdr = bytearray(bytes(16) + nv.bytes_le + struct.pack("<Q4sIHHHBB", total, b"_FVH", 0x0004FEFF, 0x48, 0, 0,
                        0, 2) + struct.pack("<IIII", total // 0x1000, 0x1000, 0, 0))
        struct.pack_into("<H", hdr, 0x32, -sum(struct.unpack("<36H", hdr)) & 0xFFFF)
        return bytes(hdr) + vs + b"\xff" * (total - 0x48 - len(vs))

    a = _write(tmp_path, "a.fd", vars_fv(b"A"))
    b = _write(tmp_path, "b.fd", vars_fv(b"B"))
    out = diff(tmp_path, a, b)
    assert out.returncode == 1, out.describe()
    variables = [n for n in _walk(tree_of(tmp_path)) if n["kind"] == "diff-variable"]
    assert len(variables) == 3000
    assert {tuple(_f(v)["Changes"]) for v in variables} == {("data",)}


@pytest.mark.parametrize("other", ["eventlog", "hob-like", "directory", "missing", "empty"])
def test_diff_not_an_image_is_a_usage_error(other, tmp_path):
    image = trixie("OVMF.fd")
    if other == "eventlog":
        b = fixture("eventlog/tpm2-tss/binary_measurements_pc_client.bin")
    elif other == "hob-like":
        # EFI_HOB_HANDOFF_INFO_TABLE: HobType 1, HobLength 0x38, Reserved 0 (PI vol 3, 5.3).
        b = _write(tmp_path, "hob.bin", struct.pack("<HHI", 1, 0x38, 0) + bytes(0x38 - 8) + b"\xff" * 64)
    elif other == "directory":
        b = tmp_path
    elif other == "missing":
        b = tmp_path / "nothing-here.fd"
    else:
        b = _write(tmp_path, "empty.fd", b"")
    for args in ((image, b), (b, image)):
        out = run_fwinspect(["diff", *args])
        check_clean(out)
        assert out.returncode == 2, out.describe()
        assert out.stderr.count(b"\n") == 1, out.describe()
