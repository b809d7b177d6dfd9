"""The sample-image generator: it runs, its output is deterministic, and a third-party decoder
(UEFIExtract) plus the reference libraries (lzma, brotli, efi_compressor, zlib, cryptography)
accept what it wrote. Layout pieces copied from Debian's OVMF.fd are compared with that file.
Nothing here imports our decoders."""
from __future__ import annotations

import json
import lzma
import os
import shutil
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import brotli
import pytest
from uefi_firmware import efi_compressor

from sample_images import generate
from sample_images.build import images, malformed, tdhob
from tests.realdata import bookworm, tool, uefiextract_report

E = images.FD_SIZE


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("generated")
    written = generate.main(out_dir=d)
    assert written, "a fresh directory must be built"
    return d


@pytest.fixture(scope="module")
def reports(out, tmp_path_factory):
    """UEFIExtract report rows for each well-formed image, computed once."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = uefiextract_report(out / name, tmp_path_factory.mktemp("ue"))
        return cache[name]
    return get


def extract_messages(path: Path, tmp: Path) -> str:
    """UEFIExtract's diagnostics (it prints them on stdout/stderr) for a copy of `path`."""
    exe = tool("UEFIExtract", "uefitool-cli")
    copy = tmp / path.name
    shutil.copyfile(path, copy)
    r = subprocess.run([exe, str(copy), "report"], capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


def guid(s: str) -> str:
    return str(uuid.UUID(s)).upper()


def children(rows, parent):
    """Rows directly under `parent` (UEFIExtract's report is a pre-order listing with depth)."""
    i = rows.index(parent)
    out = []
    for r in rows[i + 1:]:
        if r.depth <= parent.depth:
            break
        if r.depth == parent.depth + 1:
            out.append(r)
    return out


def sum16(data: bytes) -> int:
    return sum(struct.unpack(f"<{len(data) // 2}H", data)) & 0xFFFF


# ------------------------------------------------------------------ the generator itself

def test_generator_writes_every_output_and_manifest_names_files(out):
    for name in generate.GOOD:
        assert (out / name).is_file(), name
    manifest = json.loads((out / "malformed" / "MANIFEST.json").read_text())
    assert len(manifest) >= 19
    for entry in manifest:
        assert (out / "malformed" / entry["file"]).is_file()
        assert set(entry) == {"file", "structure", "field", "offset", "problem"}
        int(entry["offset"], 16)


def test_generator_skips_when_up_to_date_and_notices_stale_outputs(out):
    assert generate.main(out_dir=out) == []
    victim = out / "td-hob.bin"
    st = victim.stat()
    try:
        os.utime(victim, (1, 1))
        assert not generate.up_to_date(out)
    finally:
        os.utime(victim, (st.st_atime, st.st_mtime))
    assert generate.up_to_date(out)


def test_generator_is_deterministic(out):
    main_fv = images.fvmain_compact()
    assert images.demo_tdvf(main=main_fv) == (out / "demo-tdvf.fd").read_bytes()
    assert images.compressed_sections() == (out / "compressed-sections.fd").read_bytes()
    assert images.nested_fv() == (out / "nested-fv.fd").read_bytes()
    assert tdhob.td_hob() == (out / "td-hob.bin").read_bytes()


# ------------------------------------------------------------------ demo-tdvf.fd

def test_demo_volumes_found_by_uefiextract_at_ovmf_offsets(reports):
    rows = reports("demo-tdvf.fd")
    vols = {r.name: r for r in rows if r.type == "Volume"}
    nv = vols[guid("FFF12B8D-7696-4C8B-A985-2747075B4F50")]
    assert (nv.subtype, nv.base, nv.size) == ("NVRAM", 0, 0x20000)
    fvmain = vols[guid("48DB5E17-707C-472D-91CD-1613E7EF51B0")]
    assert (fvmain.subtype, fvmain.base, fvmain.size) == ("FFSv2", 0x20000, 0x1AC000)
    sec = vols[guid("763BED0D-DE9F-48F5-81F1-3E90E1B1A015")]
    assert (sec.base, sec.size) == (0x1CC000, 0x34000)
    # decompressed from the LZMA section by UEFIExtract
    assert vols[guid("6938079B-B503-4E3D-9D24-B28337A25806")].size == 0xE0000
    assert vols[guid("7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1")].size == 0xC00000


def test_demo_files_and_sections_found_by_uefiextract(reports):
    rows = reports("demo-tdvf.fd")
    expect = {
        "SecMain": ("SEC core", ["PE32 image section", "UI section", "Version section"]),
        "PeiCore": ("PEI core", ["PE32 image section", "UI section", "Version section"]),
        "PcdPeim": ("PEI module", ["PEI dependency section", "PE32 image section", "UI section", "Version section"]),
        "PlatformPei": ("PEI module", ["PEI dependency section", "PE32 image section", "UI section",
                                       "Version section"]),
        "DxeCore": ("DXE core", ["PE32 image section", "UI section", "Version section"]),
        "PcdDxe": ("DXE driver", ["DXE dependency section", "PE32 image section", "UI section", "Version section"]),
        "DemoDxe": ("DXE driver", ["DXE dependency section", "PE32 image section", "UI section",
                                   "Version section"]),
    }
    for ui, (subtype, secs) in expect.items():
        [f] = [r for r in rows if r.type == "File" and r.text == ui]
        assert f.subtype == subtype
        assert [c.name for c in children(rows, f)] == secs
    raw = [r for r in rows if r.type == "File" and r.name == guid(str(images.DEMO_RAW))]
    assert raw and raw[0].subtype == "Raw"
    assert any(r.type == "File" and r.subtype == "Pad" and r.base is None for r in rows)
    [vtf] = [r for r in rows if r.name == guid("1BA0062E-C779-4582-8566-336AE8F78F09")]
    assert vtf.base + vtf.size == E  # the VTF ends at the top of the image (4 GiB)


def test_demo_pei_depex_is_push_push_and_end(out):
    data = (out / "demo-tdvf.fd").read_bytes()
    inner = lzma.decompress(_guided_payload(data, images.FVMAIN_OFFSET + 0x78 + 24), format=lzma.FORMAT_ALONE)
    want = (b"\x02" + images.PEI_PCD_PPI.bytes_le + b"\x02" + images.PEI_MEMORY_DISCOVERED_PPI.bytes_le
            + b"\x03\x08")
    at = inner.find(want)
    assert at > 0 and inner[at - 1] == 0x1B  # EFI_SECTION_PEI_DEPEX header just before


def test_demo_nv_store_matches_uefiextract_and_debian_layout(reports, out):
    rows = reports("demo-tdvf.fd")
    vss = [r for r in rows if r.type == "VSS entry"]
    assert [(r.subtype, r.text) for r in vss] == [
        ("Auth", "PlatformLang"), ("Invalid", ""), ("Auth", "Timeout"), ("Auth", "Lang"), ("Auth", "db")]
    assert any(r.type == "FTW store" and r.base == 0xF000 for r in rows)
    real = bookworm("OVMF.fd").read_bytes()
    data = (out / "demo-tdvf.fd").read_bytes()
    # FV header + VARIABLE_STORE_HEADER and the FTW working block header, byte for byte
    assert data[:0x64] == real[:0x64]
    assert data[0xF000:0xF020] == real[0xF000:0xF020]


def test_demo_db_holds_a_parseable_x509(out):
    from cryptography import x509
    data = (out / "demo-tdvf.fd").read_bytes()
    cert_x509 = uuid.UUID("A5C059A1-94E4-4AA7-87B5-AB155C2BF072").bytes_le
    at = data.find(cert_x509)
    list_size, header_size, sig_size = struct.unpack_from("<III", data, at + 16)
    assert header_size == 0 and list_size == 28 + sig_size
    cert = x509.load_der_x509_certificate(data[at + 28 + 16:at + 28 + sig_size])
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=fwinspect demo db key"


def test_demo_fv_headers_match_debian_ovmf(out):
    real = bookworm("OVMF.fd").read_bytes()
    data = (out / "demo-tdvf.fd").read_bytes()
    for off in (images.FVMAIN_OFFSET, images.SECFV_OFFSET):
        # header, block map, leading pad file with the ext header (FvName): GenFv's layout
        assert data[off:off + 0x78] == real[off:off + 0x78]
        assert sum16(data[off:off + 0x48]) == 0
    vtf = real.rfind(uuid.UUID("1BA0062E-C779-4582-8566-336AE8F78F09").bytes_le)
    assert data[vtf:vtf + 24] == real[vtf:vtf + 24]  # same VTF size, attributes, checksums


def test_demo_reset_vector_table_matches_debian_ovmf(out):
    real = bookworm("OVMF.fd").read_bytes()
    data = (out / "demo-tdvf.fd").read_bytes()
    assert len(real) == len(data) == E
    # OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc: footer GUID at E-0x30, length at E-0x32; entries walk backwards
    assert data[E - 0x30:E - 0x20] == uuid.UUID("96B582DE-1FB2-45F7-BAEA-A366C55A082D").bytes_le
    length = struct.unpack_from("<H", data, E - 0x32)[0]
    assert data[E - 0x20 - length:E - 0x20] == real[E - 0x20 - length:E - 0x20]
    assert data[E - 0x14:E - 0x10] == b"VTF\0"
    # TDX metadata offset entry -> the TDVF descriptor, identical to Debian's
    tdx = uuid.UUID("E47A6535-984A-4798-865E-4685A7BF8EC2").bytes_le
    at = data.rfind(tdx, E - 0x20 - length, E - 0x20)
    off = struct.unpack_from("<I", data, at - 6)[0]
    desc = E - off
    assert data[desc:desc + 4] == b"TDVF"
    dlen = struct.unpack_from("<I", data, desc + 4)[0]
    assert data[desc - 16:desc + dlen] == real[desc - 16:desc + dlen]
    sev = uuid.UUID("DC886566-984A-4798-A75E-5585A7BF67CC").bytes_le
    at = data.rfind(sev, E - 0x20 - length, E - 0x20)
    asev = E - struct.unpack_from("<I", data, at - 6)[0]
    slen = struct.unpack_from("<I", data, asev + 4)[0]
    assert data[asev:asev + 4] == b"ASEV" and data[asev:asev + slen] == real[asev:asev + slen]


def test_demo_last_16_bytes_are_a_reset_vector_jump(out):
    data = (out / "demo-tdvf.fd").read_bytes()
    rv = data[E - 0x10:]
    assert rv[:3] == b"\x90\x90\xe9"
    target = (0x10000 - 0x10 + 5 + struct.unpack_from("<h", rv, 3)[0]) % 0x10000  # 16-bit IP in F000
    stub = data[E - 0x10000 + target:E - 0x10000 + target + 4]
    assert stub == bytes.fromhex("faf4ebfd")  # cli; hlt; jmp $-1


def test_demo_pe_images_are_linked_where_they_lie(out):
    data = (out / "demo-tdvf.fd").read_bytes()
    sec = data.find(b"MZ", images.SECFV_OFFSET)
    pe = sec + struct.unpack_from("<I", data, sec + 0x3C)[0]
    assert data[pe:pe + 4] == b"PE\0\0"
    machine, = struct.unpack_from("<H", data, pe + 4)
    magic, = struct.unpack_from("<H", data, pe + 24)
    image_base, = struct.unpack_from("<Q", data, pe + 24 + 24)
    assert (machine, magic) == (0x8664, 0x20B)
    assert image_base == images.FD_BASE + sec


# ------------------------------------------------------------------ ffsv3-large.fd

def test_ffsv3_large_file_uses_extended_sizes(reports, out):
    rows = reports("ffsv3-large.fd")
    [vol] = [r for r in rows if r.type == "Volume"]
    assert vol.subtype == "FFSv3"
    [big] = [r for r in rows if r.type == "File" and r.name == guid(str(images.LARGE_FILE))]
    # FFS_FILE_HEADER2 (32) + extended RAW section (8 + payload) + UI section "Large" (16)
    assert big.size > 0xFFFFFF and big.size == 32 + 8 + images.LARGE_PAYLOAD_SIZE + 16
    [raw, ui] = children(rows, big)
    assert (raw.name, raw.size) == ("Raw section", 8 + images.LARGE_PAYLOAD_SIZE)
    assert raw.crc32 == zlib.crc32(b"\xff\xff\xff\x19" + struct.pack("<I", raw.size) + images.large_payload())
    data = (out / "ffsv3-large.fd").read_bytes()
    f = big.base
    assert data[f + 0x13] & 0x01 and data[f + 0x14:f + 0x17] == b"\0\0\0"  # LARGE_FILE, Size 0
    assert struct.unpack_from("<Q", data, f + 0x18)[0] == big.size  # ExtendedSize
    hdr = bytearray(data[f:f + 32])
    hdr[0x11] = hdr[0x17] = 0
    assert sum(hdr) & 0xFF == 0


# ------------------------------------------------------------------ compressed-sections.fd

def _file(data: bytes, name: uuid.UUID) -> int:
    return data.find(name.bytes_le)


def _guided_payload(data: bytes, sec: int) -> bytes:
    size = int.from_bytes(data[sec:sec + 3], "little")
    assert data[sec + 3] == 0x02
    data_offset, = struct.unpack_from("<H", data, sec + 20)
    return data[sec + data_offset:sec + size]


@pytest.mark.parametrize("kind", ["Lzma", "LzmaF86", "EfiCompress", "Tiano", "NotCompressed", "Crc32", "Crc32Bad"])
def test_uefiextract_opens_encapsulation_to_what_we_put_in(reports, kind):
    rows = reports("compressed-sections.fd")
    [f] = [r for r in rows if r.type == "File" and r.text == kind]
    encap = children(rows, f)[0]
    inner = children(rows, encap)
    assert [r.name for r in inner] == ["Raw section", "PE32 image section", "UI section"]
    payload = images.inner_payload(kind)
    raw_size = int.from_bytes(payload[:3], "little")
    assert inner[0].size == raw_size and inner[0].crc32 == zlib.crc32(payload[:raw_size])


def test_uefiextract_flags_only_the_bad_crc32(out, tmp_path):
    text = extract_messages(out / "compressed-sections.fd", tmp_path)
    assert text.count("invalid CRC32") == 1


def test_brotli_section_decompresses_with_brotli(reports, out):
    data = (out / "compressed-sections.fd").read_bytes()
    sec = _file(data, images.COMPRESSED_FILES["Brotli"]) + 24
    assert data[sec + 4:sec + 20] == uuid.UUID("3D532050-5CDA-4FD0-879E-0F7F630D5AFB").bytes_le
    p = _guided_payload(data, sec)
    size, scratch = struct.unpack_from("<QQ", p)
    assert brotli.decompress(p[16:]) == images.inner_payload("Brotli")
    assert size == len(images.inner_payload("Brotli")) and scratch >= size
    # UEFIExtract NE A62 does not know the Brotli GUID: it shows the section but not inside it
    rows = reports("compressed-sections.fd")
    assert any(r.name == guid("3D532050-5CDA-4FD0-879E-0F7F630D5AFB") for r in rows)


def test_lzma_sections_decompress_with_lzma(out):
    data = (out / "compressed-sections.fd").read_bytes()
    p = _guided_payload(data, _file(data, images.COMPRESSED_FILES["Lzma"]) + 24)
    assert struct.unpack_from("<Q", p, 5)[0] == len(images.inner_payload("Lzma"))
    assert lzma.decompress(p, format=lzma.FORMAT_ALONE) == images.inner_payload("Lzma")
    # F86: LZMA, then liblzma's own x86 BCJ decoder (not ours) gives the payload back
    p = _guided_payload(data, _file(data, images.COMPRESSED_FILES["LzmaF86"]) + 24)
    encoded = lzma.decompress(p, format=lzma.FORMAT_ALONE)
    want = images.inner_payload("LzmaF86")
    assert encoded != want  # the filter changed the CALL targets
    raw2 = [{"id": lzma.FILTER_LZMA2}]
    decoded = lzma.decompress(lzma.compress(encoded, format=lzma.FORMAT_RAW, filters=raw2),
                              format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_X86}] + raw2)
    assert decoded == want


def test_efi_and_tiano_sections_decompress_with_efi_compressor(out):
    data = (out / "compressed-sections.fd").read_bytes()
    sec = _file(data, images.COMPRESSED_FILES["EfiCompress"]) + 24
    size = int.from_bytes(data[sec:sec + 3], "little")
    uncompressed, ctype = struct.unpack_from("<IB", data, sec + 4)
    want = images.inner_payload("EfiCompress")
    assert (ctype, uncompressed) == (1, len(want))
    body = data[sec + 9:sec + size]
    assert bytes(efi_compressor.EfiDecompress(body, len(body))) == want
    p = _guided_payload(data, _file(data, images.COMPRESSED_FILES["Tiano"]) + 24)
    assert bytes(efi_compressor.TianoDecompress(p, len(p))) == images.inner_payload("Tiano")


def test_crc32_sections_checked_with_zlib(out):
    data = (out / "compressed-sections.fd").read_bytes()
    for kind, ok in (("Crc32", True), ("Crc32Bad", False)):
        sec = _file(data, images.COMPRESSED_FILES[kind]) + 24
        attributes, = struct.unpack_from("<H", data, sec + 22)
        stored, = struct.unpack_from("<I", data, sec + 24)
        p = _guided_payload(data, sec)
        assert attributes == 0x02 and p == images.inner_payload(kind)
        assert (zlib.crc32(p) == stored) is ok


# ------------------------------------------------------------------ nested, erase polarity, TD HOB

def test_nested_volumes_found_by_uefiextract(reports):
    rows = reports("nested-fv.fd")
    vols = [r for r in rows if r.type == "Volume"]
    assert [r.name for r in vols] == [guid(str(g)) for g in images.NESTED_FV_NAMES]
    depths = [r.depth for r in vols]
    assert depths == sorted(depths) and len(set(depths)) == 4
    assert vols[2].base is None  # decompressed from the LZMA section
    assert any(r.name == guid(str(images.NESTED_FILES[3])) and r.depth > vols[3].depth for r in rows)


def test_erase_polarity_0_volume(reports, out):
    data = (out / "erase-polarity-0.fd").read_bytes()
    attributes, = struct.unpack_from("<I", data, 0x2C)
    assert not attributes & 0x800 and sum16(data[:0x48]) == 0
    rows = reports("erase-polarity-0.fd")
    for name in images.EP0_FILES:
        [f] = [r for r in rows if r.type == "File" and r.name == guid(str(name))]
        assert data[f.base + 0x17] == 0x07  # State not inverted
        hdr = bytearray(data[f.base:f.base + 24])
        hdr[0x11] = hdr[0x17] = 0
        assert sum(hdr) & 0xFF == 0
    last = max(r.base + r.size for r in rows if r.type == "File")
    assert data[(last + 7) // 8 * 8:] == bytes(len(data) - (last + 7) // 8 * 8)


def test_td_hob_follows_qemu_and_the_debian_tdvf_table(out):
    hob = (out / "td-hob.bin").read_bytes()
    hob_type, length, reserved, version, boot_mode = struct.unpack_from("<HHIII", hob)
    assert (hob_type, length, reserved, version, boot_mode) == (1, 56, 0, 9, 0)
    assert struct.unpack_from("<QQQQ", hob, 16) == (0, 0, 0, 0)
    end_of_list, = struct.unpack_from("<Q", hob, 48)
    assert end_of_list == tdhob.HOB_ADDRESS + len(hob)  # just past END (tdvf-hob.c)
    assert hob[-8:] == struct.pack("<HHI", 0xFFFF, 8, 0)
    added, unaccepted = [], []
    for at in range(56, len(hob) - 8, 48):
        t, ln, res = struct.unpack_from("<HHI", hob, at)
        rtype, attr, start, size = struct.unpack_from("<IIQQ", hob, at + 24)
        assert (t, ln, res, hob[at + 8:at + 24]) == (3, 48, 0, bytes(16))
        if rtype == 0:
            assert attr == 0x04000007
            added.append((start, size))
        else:
            assert (rtype, attr) == (7, 0x7)
            unaccepted.append((start, size))
    # the added ranges are exactly the TD_HOB/TempMem sections of Debian's OVMF.fd TDVF table
    real = bookworm("OVMF.fd").read_bytes()
    e = len(real)
    desc = e - struct.unpack_from("<I", real, real.rfind(
        uuid.UUID("E47A6535-984A-4798-865E-4685A7BF8EC2").bytes_le) - 6)[0]
    n, = struct.unpack_from("<I", real, desc + 12)
    secs = [struct.unpack_from("<IIQQII", real, desc + 16 + 32 * i) for i in range(n)]
    assert sorted(added) == sorted((s[2], s[3]) for s in secs if s[4] in (2, 3))
    assert tdhob.HOB_ADDRESS in [s[2] for s in secs if s[4] == 2]


# ------------------------------------------------------------------ malformed

def _manifest(out):
    return {e["file"]: e for e in json.loads((out / "malformed" / "MANIFEST.json").read_text())}


@pytest.mark.parametrize("name, message", [
    ("fv-bad-checksum.fd", "volume header checksum is invalid"),
    ("fv-length-past-file.fd", "overlaps the end of data"),
    ("fv-blockmap-mismatch.fd", "differs from calculated using block map"),
    ("ffs-header-checksum.fd", "invalid header checksum"),
    ("ffs-data-checksum.fd", "invalid data checksum"),
    ("ffs-size-zero.fd", "invalid size"),
    ("section-size-zero.fd", "non-UEFI data found in sections area"),
    ("section-past-file.fd", "non-UEFI data found in sections area"),
    ("lzma-corrupt.fd", "decompression failed"),
    ("truncated.fd", "overlaps the end of data"),
])
def test_uefiextract_sees_the_fault_the_manifest_names(out, tmp_path, name, message):
    assert name in _manifest(out)
    assert message in extract_messages(out / "malformed" / name, tmp_path)


def test_malformed_fv_header_faults_at_manifest_offsets(out):
    m = _manifest(out)
    d = (out / "malformed" / "fv-bad-checksum.fd").read_bytes()
    assert int(m["fv-bad-checksum.fd"]["offset"], 16) == 0x32 and sum16(d[:0x48]) != 0
    for name, fmt, want in (("fv-length-zero.fd", "<Q", 0), ("fv-header-length-small.fd", "<H", 0x20)):
        d = (out / "malformed" / name).read_bytes()
        assert struct.unpack_from(fmt, d, int(m[name]["offset"], 16))[0] == want
        assert sum16(d[:0x48]) == 0  # only the named field is wrong
    d = (out / "malformed" / "fv-length-past-file.fd").read_bytes()
    assert struct.unpack_from("<Q", d, 0x20)[0] > len(d)


def test_malformed_demo_variants(out):
    m = _manifest(out)
    d = (out / "malformed" / "tdx-count-huge.fd").read_bytes()
    assert struct.unpack_from("<I", d, int(m["tdx-count-huge.fd"]["offset"], 16))[0] == 0xFFFFFFFF
    assert d[int(m["tdx-count-huge.fd"]["offset"], 16) - 12:][:4] == b"TDVF"
    d = (out / "malformed" / "tdx-section-past-image.fd").read_bytes()
    at = int(m["tdx-section-past-image.fd"]["offset"], 16)
    data_offset, raw_size = struct.unpack_from("<II", d, at - 4)
    assert data_offset + raw_size > len(d)
    d = (out / "malformed" / "rvtable-length-lies.fd").read_bytes()
    assert struct.unpack_from("<H", d, int(m["rvtable-length-lies.fd"]["offset"], 16))[0] > 0x9B8
    d = (out / "malformed" / "truncated.fd").read_bytes()
    assert len(d) < images.FVMAIN_OFFSET + images.FVMAIN_SIZE
    d = (out / "malformed" / "var-namesize-huge.fd").read_bytes()
    at = int(m["var-namesize-huge.fd"]["offset"], 16)
    assert struct.unpack_from("<H", d, at - 36)[0] == 0x55AA
    assert struct.unpack_from("<I", d, at)[0] == 0xFFFFFFFF


def test_fv_chain_is_64_deep_for_uefiextract(out, tmp_path):
    rows = uefiextract_report(out / "malformed" / "fv-chain-64.fd", tmp_path)
    assert sum(1 for r in rows if r.type == "Volume") == malformed.CHAIN_DEPTH


def test_lzma_bomb_is_small_and_inflates_to_what_it_claims(out):
    m = _manifest(out)
    d = (out / "malformed" / "lzma-bomb.fd").read_bytes()
    assert len(d) < 1 << 20
    at = int(m["lzma-bomb.fd"]["offset"], 16)
    claimed, = struct.unpack_from("<Q", d, at)
    assert claimed == malformed.BOMB_SIZE == 1 << 30
    stream = d[at - 5:]
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    total, chunk = 0, 1 << 24
    out_block = dec.decompress(stream, max_length=chunk)
    while True:  # bounded: at most claimed / chunk + 1 rounds
        assert out_block.count(0) == len(out_block)
        total += len(out_block)
        if dec.eof or total > claimed:
            break
        out_block = dec.decompress(b"", max_length=chunk)
    assert total == claimed


def test_lzma_corrupt_stream_fails_in_lzma(out):
    m = _manifest(out)
    d = (out / "malformed" / "lzma-corrupt.fd").read_bytes()
    at = int(m["lzma-corrupt.fd"]["offset"], 16)
    stream = d[at - 13 - malformed.CORRUPT_AT:]
    with pytest.raises(lzma.LZMAError):
        lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(stream, max_length=1 << 20)


def test_bcj_encoder_is_undone_by_liblzmas_x86_filter():
    """Our Bra86.c port, on CALL/JMP-dense bytes, is exactly inverted by liblzma's BCJ decoder."""
    import random

    from sample_images.build import bcj
    rnd = random.Random(86)
    raw2 = [{"id": lzma.FILTER_LZMA2}]
    for _ in range(20):
        data = bytes(rnd.choice([0xE8, 0xE9, 0x00, 0xFF, rnd.randrange(256)]) for _ in range(rnd.randrange(5, 4000)))
        enc = bcj.encode(data)
        dec = lzma.decompress(lzma.compress(enc, format=lzma.FORMAT_RAW, filters=raw2),
                              format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_X86}] + raw2)
        assert dec == data
