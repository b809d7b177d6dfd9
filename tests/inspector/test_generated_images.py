"""Our decoders on our generator's images: what the writer (sample_images/build, which imports no
decoder) put in must come back out. These images cover what Debian's lack: FFSv3 large files,
Brotli / LZMA-BCJ / EFI / Tiano sections, deep nesting, erase polarity 0, a TD HOB."""
from __future__ import annotations

import subprocess
import sys

import pytest

import sample_images
from inspector.sources import hob_tree
from inspector.image import load_image
from sample_images.build import images as I


@pytest.fixture(scope="module", autouse=True)
def generated():
    if not (sample_images.OUT / "demo-tdvf.fd").exists():
        subprocess.run([sys.executable, "-m", "sample_images.generate"], check=True, timeout=300)


def ffs_by_name(root):
    return {n.get("Name"): n for n in root.find("ffs") if n.get("Name") is not None}


def test_demo_image_decodes_cleanly_with_what_was_written():
    img = load_image(sample_images.generated("demo-tdvf.fd"))
    assert not [p for _, p in img.root.all_problems() if p.severity.value != "info"]
    files = ffs_by_name(img.root)
    for guid in (I.SEC_CORE, I.PEI_CORE, I.PCD_PEIM, I.PLATFORM_PEI, I.DXE_CORE, I.PCD_DXE, I.DEMO_DRIVER):
        assert guid in files, guid
    assert files[I.DXE_CORE].get("UI") == "DxeCore"
    fv_names = {n.get("FvName") for n in img.root.find("fv")}
    assert {I.PEIFV_NAME, I.DXEFV_NAME, I.SECFV_NAME, I.FVMAIN_COMPACT_NAME} <= fv_names
    assert img.info.get("TDX") is True and "Config-A" in img.info.field("TDX").display
    assert len(list(img.root.find("tdx-section"))) >= 4
    deleted = [v for v in img.root.find("variable") if "deleted" in v.title]
    assert deleted, "the generator writes one deleted Timeout variable"
    certs = [s for s in img.root.find("signature") if s.get("Subject")]
    assert certs and certs[0].get("Subject") == certs[0].get("Issuer")  # self-signed demo certificate


def test_ffsv3_large_file_and_extended_section():
    img = load_image(sample_images.generated("ffsv3-large.fd"))
    large = ffs_by_name(img.root)[I.LARGE_FILE]
    assert large.get("ExtendedSize") == large.size > 0x1000000
    raw = next(s for s in large.find("section") if s.get("ExtendedSize"))
    body_offset = raw.offset + 8  # EFI_COMMON_SECTION_HEADER2
    assert raw.space.data[body_offset:body_offset + len(I.LARGE_MARKER)] == I.LARGE_MARKER
    assert raw.get("ExtendedSize") == I.LARGE_PAYLOAD_SIZE + 8


@pytest.mark.parametrize("kind", ["Brotli", "LzmaF86", "Lzma", "EfiCompress", "Tiano", "NotCompressed", "Crc32"])
def test_every_compression_gives_back_the_written_sections(kind):
    img = load_image(sample_images.generated("compressed-sections.fd"))
    f = ffs_by_name(img.root)[I.COMPRESSED_FILES[kind]]
    inner = I.inner_payload(kind)
    spaces = {id(n.space): n.space for n in f.walk() if n.space is not None and n.space.parent is not None}
    if kind in ("Crc32", "NotCompressed"):
        assert any(bytes(f.space.data[s.offset:s.offset + len(inner)]) == inner
                   for s in f.find("section") if s.get("Type") in (0x01, 0x02)) or \
            inner in bytes(f.space.data[f.offset:f.offset + f.size])
    else:
        assert any(bytes(s.data) == inner for s in spaces.values()), f"{kind}: decompressed bytes differ"
    uis = [s.get("String") for s in f.find("section") if s.get("Type") == 0x15]
    assert f"Inner{kind}" in uis
    assert not [p for n in f.walk() for p in n.problems if p.severity.value == "error"]


def test_bad_crc32_is_a_located_problem():
    img = load_image(sample_images.generated("compressed-sections.fd"))
    f = ffs_by_name(img.root)[I.COMPRESSED_FILES["Crc32Bad"]]
    assert any("CRC32" in p.message for n in f.walk() for p in n.problems)


def test_nested_volumes_all_found_one_inside_lzma():
    img = load_image(sample_images.generated("nested-fv.fd"))
    names = [n.get("FvName") for n in img.root.find("fv")]
    assert names == I.NESTED_FV_NAMES
    deep = [n for n in img.root.find("fv") if n.get("FvName") == I.NESTED_FV_NAMES[2]][0]
    assert deep.space.parent is not None  # lives in the LZMA section's space


def test_erase_polarity_zero_states_and_free_space():
    img = load_image(sample_images.generated("erase-polarity-0.fd"))
    files = ffs_by_name(img.root)
    for guid in I.EP0_FILES:
        assert "0x07" in files[guid].field("State").display
    assert not [p for _, p in img.root.all_problems() if p.severity.value == "error"]


def test_td_hob_as_qemu_builds_it():
    data = sample_images.generated("td-hob.bin").read_bytes()
    root = hob_tree(data, "td-hob.bin", None, "edk2-stable202408")
    assert root.children[0].get("HobType") == 1 and root.children[0].get("Version") == 9
    types = [h.get("ResourceType") for h in root.children if h.get("HobType") == 3]
    assert 7 in types  # unaccepted memory (QEMU hw/i386/tdvf-hob.c)
    assert not [p for _, p in root.all_problems() if p.severity.value == "error"]
    assert root.get("TdHobDigest") is not None


def test_five_level_tables_of_the_generator_walk_to_the_leaves_it_describes():
    import json as _json

    facts = _json.loads(sample_images.generated("la57-pages.json").read_text())
    r = subprocess.run([sys.executable, "-m", "inspector.cli", "pages", str(sample_images.generated("la57-pages.bin")),
                        "--base", "0", "--cr3", hex(facts["cr3"]), "--la57", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    leaves = [{f["name"]: f["value"] for f in c["fields"]} for c in _json.loads(r.stdout)["children"]]
    got = [{"va": m["VirtualAddress"], "pa": m["PhysicalAddress"], "size": m["Size"], "level": m["Level"],
            "writable": m["Writable"], "user": m["User"], "nx": m["NX"]} for m in leaves]
    assert got == facts["leaves"]
    # The same tables read as 4-level miss the upper half: the mode matters.
    four = subprocess.run([sys.executable, "-m", "inspector.cli", "pages", str(sample_images.generated("la57-pages.bin")),
                           "--base", "0", "--cr3", hex(facts["cr3"]), "--no-la57", "--json"],
                          capture_output=True, text=True, timeout=120)
    vas = {c["fields"][0]["value"] for c in _json.loads(four.stdout)["children"]}
    assert not vas & {m["va"] for m in facts["leaves"] if m["va"] >= 1 << 63}
