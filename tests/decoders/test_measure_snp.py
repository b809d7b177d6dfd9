"""SEV-SNP launch digest of Debian's OVMF images and of crafted ones, against sev-snp-measure.

The anchor is sev-snp-measure 0.0.13 (`--mode snp --vmm-type QEMU`) run on the same files. The
crafted image is built here with struct.pack from edk2's layouts (OvmfPkg/ResetVector/Ia16/
ResetVectorVtf0.asm: the GUIDed table; OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm: "ASEV"), and
`reference_ld` recomputes its digest straight from the SNP ABI's PAGE_INFO layout (#56860,
SNP_LAUNCH_UPDATE), so the crafted checks hold even where the anchor tool is absent.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from decoders.measure.snp import NO_SEV_METADATA, VCPU_TYPES, predict_snp, snp_node
from decoders.measure.vmsa import vmsa_page
from tests.realdata import bookworm, firmware, missing, trixie

PAGE = 4096


# -- the anchor tool -----------------------------------------------------------------------------
def oracle_path() -> str:
    """sev-snp-measure: on PATH, else beside the interpreter (the venv's bin is not on PATH when
    pytest runs as `.venv/bin/python -m pytest`)."""
    path = shutil.which("sev-snp-measure")
    if path is None:
        beside = Path(sys.executable).parent / "sev-snp-measure"
        if beside.is_file():
            path = str(beside)
    if path is None:
        missing("`sev-snp-measure` not found: `pip install sev-snp-measure==0.0.13` into the venv")
    return path


def oracle(image: Path, vcpus: int, vcpu_type: str, kernel: Path | None = None, initrd: Path | None = None,
           append: str | None = None, cwd: Path | None = None, extra: tuple = ()) -> subprocess.CompletedProcess:
    args = [oracle_path(), "--mode", "snp", "--vmm-type", "QEMU", "--ovmf", str(image), "--vcpus", str(vcpus),
            "--vcpu-type", vcpu_type, *extra]
    if kernel is not None:
        args += ["--kernel", str(kernel)]
    if initrd is not None:
        args += ["--initrd", str(initrd)]
    if append is not None:
        args += ["--append", append]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd)


def oracle_ld(*a, **k) -> str:
    r = oracle(*a, **k)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def real_blobs() -> tuple[Path, Path]:
    """Two real files of a few MB to stand for a kernel and an initrd (only their hashes count)."""
    found = [p for p in (Path("/usr/lib/x86_64-linux-gnu/libc.so.6"), Path("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"),
                         Path(sys.executable).resolve()) if p.is_file()]
    if len(found) < 2:
        missing("no system libraries to use as kernel/initrd bytes")
    return found[0], found[1]


# -- a crafted image, from the edk2 layouts ------------------------------------------------------
def guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


FOOTER = guid("96b582de-1fb2-45f7-baea-a366c55a082d")
RESET_BLOCK = guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
HASH_BLOCK = guid("7255371f-3a3b-4b04-927b-1da6efa8d454")
SECRET_BLOCK = guid("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
SEV_META = guid("dc886566-984a-4798-a75e-5585a7bf67cc")

# Like edk2's OvmfPkg/AmdSev/AmdSevX64.fdf: the kernel hashes page shares its page with the launch
# secret, the hashes table at +0xC00 (PcdQemuHashTableBase), 0x400 bytes.
CRAFTED_SECTIONS = [
    (0x800000, 0x9000, 0x1),     # SNP_SEC_MEM
    (0x809000, 0x1000, 0x2),     # SNP_SECRETS
    (0x80A000, 0x1000, 0x3),     # CPUID
    (0x80B000, 0x1000, 0x4),     # SVSM_CAA
    (0x80C000, 0x1000, 0x10),    # KERNEL_HASHES
    (0x80D000, 0x3000, 0x1),     # SNP_SEC_MEM
]
CRAFTED_RESET = 0x0080B004
CRAFTED_HASH_AREA = (0x80CC00, 0x400)
DESCRIPTOR_AT = 0x1000


def entry(data: bytes, g: bytes) -> bytes:
    """One GUIDed table entry: data, UINT16 length (data + 18), GUID (ResetVectorVtf0.asm)."""
    return data + struct.pack("<H", len(data) + 18) + g


def crafted_image(size: int = 0x10000, sections=None, reset: int | None = CRAFTED_RESET,
                  hash_area=CRAFTED_HASH_AREA, descriptor_at: int = DESCRIPTOR_AT, version: int = 1,
                  entries: list[bytes] | None = None) -> bytes:
    """An image of `size` bytes: deterministic filler, an "ASEV" descriptor at `descriptor_at`, and
    the GUIDed table ending at E-0x32 with its footer at E-0x30, then 0x20 bytes of VTF top."""
    sections = CRAFTED_SECTIONS if sections is None else sections
    img = bytearray(hashlib.shake_256(b"fwinspect snp crafted").digest(size))
    desc = struct.pack("<4sIII", b"ASEV", 16 + 12 * len(sections), version, len(sections))
    desc += b"".join(struct.pack("<III", *s) for s in sections)
    img[descriptor_at:descriptor_at + len(desc)] = desc
    if entries is None:
        entries = [entry(struct.pack("<I", size - descriptor_at), SEV_META)]
        if hash_area is not None:
            entries.append(entry(struct.pack("<II", *hash_area), HASH_BLOCK))
        entries.append(entry(struct.pack("<II", 0, 0), SECRET_BLOCK))
        if reset is not None:
            entries.append(entry(struct.pack("<I", reset), RESET_BLOCK))
    body = b"".join(entries)
    table = body + struct.pack("<H", len(body) + 18) + FOOTER
    top = bytes(12) + b"VTF\0" + bytes.fromhex("9090e9") + bytes(13)
    end = size - 0x20
    img[end - len(table):end] = table
    img[end:] = top
    assert len(img) == size
    return bytes(img)


# -- an independent reference, from the SNP ABI text ---------------------------------------------
def page_info(ld: bytes, contents: bytes, page_type: int, gpa: int) -> bytes:
    """SNP ABI #56860, SNP_LAUNCH_UPDATE, PAGE_INFO: DIGEST_CUR, CONTENTS, LENGTH=0x70, PAGE_TYPE,
    IMI_PAGE, VMPL3/2/1_PERMS, reserved, GPA."""
    return hashlib.sha384(ld + contents + struct.pack("<HBBBBBBQ", 0x70, page_type, 0, 0, 0, 0, 0, gpa)).digest()


def expected_hash_table(kernel: bytes, initrd: bytes, cmdline: bytes) -> bytes:
    """QEMU's PaddedSevHashTable: header GUID, UINT16 168, then cmdline, initrd, kernel entries
    (GUID, UINT16 50, SHA-256), zero-padded to 176 bytes (edk2 BlobVerifierSevHashes.c GUIDs)."""
    out = guid("9438d606-4f22-4cc9-b479-a793d411fd21") + struct.pack("<H", 168)
    for g, blob in (("97d02dd8-bd20-4c94-aa78-e7714d36ab2a", cmdline), ("44baf731-3a2f-4bd7-9af1-41e29169781d", initrd),
                    ("4de79437-abd2-427f-b835-d5b172d2045b", kernel)):
        out += guid(g) + struct.pack("<H", 50) + hashlib.sha256(blob).digest()
    return out + bytes(176 - len(out))


def reference_ld(image: bytes, vcpus: int, sig: int, table: bytes | None = None, features: int = 1) -> bytes:
    """The crafted image's launch digest, written out page by page."""
    ld = bytes(48)
    base = (1 << 32) - len(image)
    for off in range(0, len(image), PAGE):
        ld = page_info(ld, hashlib.sha384(image[off:off + PAGE]).digest(), 1, base + off)
    for gpa, size, typ in CRAFTED_SECTIONS:
        for off in range(0, size, PAGE):
            if typ == 0x10 and table is not None:
                page = bytearray(PAGE)
                page[0xC00:0xC00 + len(table)] = table
                ld = page_info(ld, hashlib.sha384(page).digest(), 1, gpa + off)
            else:
                ld = page_info(ld, bytes(48), {2: 5, 3: 6}.get(typ, 3), gpa + off)
    for i in range(vcpus):
        eip = 0xFFFFFFF0 if i == 0 else CRAFTED_RESET
        ld = page_info(ld, hashlib.sha384(reference_vmsa(eip, sig, features)).digest(), 2, 0xFFFFFFFFF000)
    return ld


def reference_vmsa(eip: int, sig: int, features: int) -> bytes:
    """APM vol. 2 Table B-4 offsets with QEMU/KVM's reset values."""
    v = bytearray(PAGE)
    for at, (sel, attr, base) in {0x00: (0, 0x93, 0), 0x10: (0xF000, 0x9B, eip & 0xFFFF0000), 0x20: (0, 0x93, 0),
                                  0x30: (0, 0x93, 0), 0x40: (0, 0x93, 0), 0x50: (0, 0x93, 0), 0x60: (0, 0, 0),
                                  0x70: (0, 0x82, 0), 0x80: (0, 0, 0), 0x90: (0, 0x8B, 0)}.items():
        struct.pack_into("<HHIQ", v, at, sel, attr, 0xFFFF, base)
    for at, val in {0xD0: 0x1000, 0x148: 0x40, 0x158: 0x10, 0x160: 0x400, 0x168: 0xFFFF0FF0, 0x170: 2,
                    0x178: eip & 0xFFFF, 0x268: 0x0007040600070406, 0x310: sig, 0x3B0: features, 0x3E8: 1}.items():
        struct.pack_into("<Q", v, at, val)
    struct.pack_into("<IHHH", v, 0x408, 0x1F80, 0, 0, 0x37F)    # MXCSR, x87 FTW, FSW, FCW
    return bytes(v)


# -- real images ---------------------------------------------------------------------------------
REAL = [("bookworm", "OVMF.fd"), ("bookworm", "OVMF_CODE.fd"), ("trixie", "OVMF.fd"), ("trixie", "OVMF_CODE_4M.fd"),
        ("trixie", "OVMF_CODE_4M.secboot.fd")]
RUNS = [(1, "EPYC"), (2, "EPYC-v4"), (4, "EPYC-Milan"), (64, "EPYC-Genoa")]


def real(where: str, name: str) -> Path:
    return bookworm(name) if where == "bookworm" else trixie(name)


@pytest.mark.parametrize("name", ["OVMF.fd", "OVMF_CODE.fd"])
def test_snp_digest_equals_sev_snp_measure_on_our_edk2_debug_build(name):
    """Our edk2 2025.02 OvmfPkgX64 DEBUG build (../shared/firmware/README.md)."""
    path = firmware(f"ovmf-debug/{name}")
    p = predict_snp(path.read_bytes(), name, vcpus=4, vcpu_type="EPYC-Milan")
    assert not p.problems and p.hex == oracle_ld(path, 4, "EPYC-Milan")


def test_snp_tdvf_config_b_zero_size_sections_are_refused():
    """IntelTdxX64 (Config-B) carries an ASEV descriptor whose SVSM_CAA and last SNP_SEC_MEM
    sections are 0 + 0: QEMU stops at a zero-length SNP_LAUNCH_UPDATE
    (sev_snp_launch_update), so there is no digest; sev-snp-measure measures nothing for them and
    prints one."""
    path = firmware("inteltdx/OVMF.fd")
    p = predict_snp(path.read_bytes(), "OVMF.fd", vcpus=1, vcpu_type="EPYC")
    assert p.digest is None and p.has_metadata
    zero = [x for x in p.problems if "Size 0; QEMU refuses" in x.message]
    assert [x.message.split(":")[0] for x in zero] == ["section 4 (SVSM_CAA)", "section 5 (SNP_SEC_MEM)"]
    assert oracle(path, 1, "EPYC").returncode == 0


@pytest.mark.parametrize("where,name", REAL, ids=[f"{w}-{n}" for w, n in REAL])
@pytest.mark.parametrize("vcpus,vcpu_type", RUNS, ids=[f"{n}x{t}" for n, t in RUNS])
def test_snp_digest_equals_sev_snp_measure_on_debian_images(where, name, vcpus, vcpu_type):
    path = real(where, name)
    p = predict_snp(path.read_bytes(), name, vcpus=vcpus, vcpu_type=vcpu_type)
    assert not p.problems
    assert p.hex == oracle_ld(path, vcpus, vcpu_type)


def test_snp_bookworm_ovmf_exact_digest_and_regions():
    """bookworm's OVMF.fd, 4 EPYC-v4 vCPUs: the value sev-snp-measure 0.0.13 printed here, and the
    regions of its five SEV metadata sections (edk2 2022.11 OvmfPkgX64)."""
    p = predict_snp(bookworm("OVMF.fd").read_bytes(), "OVMF.fd", vcpus=4, vcpu_type="EPYC-v4")
    assert p.hex == ("32ac9d7a17d28f7cd4404a4516d2f00519668c40ada2062351c36767e908eb3f"
                     "090d66c33ab10f80150e00a4385b6d0f")
    assert [(s.region, s.gpa, s.pages, s.page_type_name) for s in p.steps] == [
        ("firmware image", 0xFFE00000, 512, "NORMAL"),
        ("SNP_SEC_MEM #0", 0x800000, 9, "ZERO"),
        ("SNP_SEC_MEM #1", 0x80A000, 3, "ZERO"),
        ("SNP_SECRETS #2", 0x80D000, 1, "SECRETS"),
        ("CPUID #3", 0x80E000, 1, "CPUID"),
        ("SNP_SEC_MEM #4", 0x80F000, 0x11, "ZERO"),
        ("VMSA BSP", 0xFFFFFFFFF000, 1, "VMSA"),
        ("VMSA APs", 0xFFFFFFFFF000, 3, "VMSA"),
    ]
    assert p.ap_eip == 0x80B004 and p.vcpu_sig == 0x800F12
    assert p.steps[-1].digest == p.digest
    meta = p.metadata
    assert meta is not None and meta.kind == "sev-metadata" and len(meta.children) == 5


@pytest.mark.parametrize("vcpu_type", sorted(VCPU_TYPES))
def test_snp_every_vcpu_type_equals_sev_snp_measure(vcpu_type):
    path = trixie("OVMF.fd")
    p = predict_snp(path.read_bytes(), "OVMF.fd", vcpus=2, vcpu_type=vcpu_type)
    assert p.hex == oracle_ld(path, 2, vcpu_type)


def test_snp_vcpu_types_are_sev_snp_measures():
    """The same names as sev-snp-measure's --vcpu-type choices (argparse lists them, quoted, when
    refusing one)."""
    r = subprocess.run([oracle_path(), "--mode", "snp", "--ovmf", "x", "--vcpus", "1", "--vcpu-type", "none"],
                       capture_output=True, text=True, timeout=60)
    listed = r.stderr.split("choose from", 1)[1]
    assert set(VCPU_TYPES) == set(re.findall(r"'([^']+)'", listed))


def test_snp_vcpu_signatures_by_family_model_stepping():
    """CPUID Fn0000_0001_EAX (AMD #25481): EPYC 23/1/2, Rome 23/49/0, Milan 25/1/1, Genoa 25/17/0, Turin 26/0/0."""
    sigs = {t: predict_snp(crafted_image(), "c", vcpus=1, vcpu_type=t).vcpu_sig
            for t in ("EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin")}
    assert sigs == {"EPYC": 0x00800F12, "EPYC-Rome": 0x00830F10, "EPYC-Milan": 0x00A00F11,
                    "EPYC-Genoa": 0x00A10F10, "EPYC-Turin": 0x00B00F00}


def test_snp_vmsa_pages_equal_sev_snp_measure_dump(tmp_path):
    """--dump-vmsa writes the measured VMSAs: BSP at the reset vector, AP at the reset block."""
    path = bookworm("OVMF.fd")
    oracle_ld(path, 2, "EPYC-Milan", cwd=tmp_path, extra=("--dump-vmsa",))
    assert (tmp_path / "vmsa0.bin").read_bytes() == vmsa_page(0xFFFFFFF0, 1, 0x00A00F11)
    assert (tmp_path / "vmsa1.bin").read_bytes() == vmsa_page(0x80B004, 1, 0x00A00F11)
    assert vmsa_page(0x80B004, 1, 0x00A00F11) == reference_vmsa(0x80B004, 0x00A00F11, 1)


def test_snp_guest_features_and_vcpu_sig_equal_sev_snp_measure(tmp_path):
    path = bookworm("OVMF.fd")
    p = predict_snp(path.read_bytes(), "OVMF.fd", vcpus=3, vcpu_sig=0x00A10F11, guest_features=0x21)
    r = subprocess.run([oracle_path(), "--mode", "snp", "--ovmf", str(path), "--vcpus", "3", "--vcpu-sig", "0xa10f11",
                        "--guest-features", "0x21"], capture_output=True, text=True, timeout=60)
    assert p.hex == r.stdout.strip()


def test_snp_image_without_sev_metadata_has_no_digest():
    """bookworm's OVMF_CODE_4M.fd (Ia32X64) has the SEV-ES reset block but no SEV metadata: QEMU
    refuses it as an SNP guest (sev-snp-measure still prints a digest: it does not check)."""
    p = predict_snp(bookworm("OVMF_CODE_4M.fd").read_bytes(), "OVMF_CODE_4M.fd", vcpus=1, vcpu_type="EPYC")
    assert p.digest is None and p.metadata is None and not p.has_metadata
    assert any(NO_SEV_METADATA in x.message for x in p.problems)
    node = snp_node(p)
    assert not list(node.find("predicted-register")) and node.problems


def test_snp_vars_file_has_no_digest():
    p = predict_snp(bookworm("OVMF_VARS.fd").read_bytes(), "OVMF_VARS.fd", vcpus=1, vcpu_type="EPYC")
    assert p.digest is None
    assert [x.message for x in p.problems if x.severity.value == "error"] == [
        "no SEV metadata: the image has no OVMF GUIDed table"]


def test_snp_kernel_on_debian_image_is_refused():
    """Debian's OvmfPkgX64 builds have no KERNEL_HASHES section and a zero hash table area: QEMU
    refuses `-kernel` with kernel-hashes=on, and so does sev-snp-measure."""
    kernel, _ = real_blobs()
    path = bookworm("OVMF.fd")
    p = predict_snp(path.read_bytes(), "OVMF.fd", vcpus=1, vcpu_type="EPYC", kernel=kernel.read_bytes())
    assert p.digest is None
    assert any("hash table area (base 0x0, size 0x0) is invalid" in x.message for x in p.problems)
    assert oracle(path, 1, "EPYC", kernel=kernel).returncode != 0


# -- crafted images ------------------------------------------------------------------------------
@pytest.mark.parametrize("vcpus", [1, 2, 5])
def test_snp_crafted_image_equals_reference_and_sev_snp_measure(tmp_path, vcpus):
    img = crafted_image()
    p = predict_snp(img, "crafted.fd", vcpus=vcpus, vcpu_type="EPYC-Genoa")
    assert not p.problems
    assert p.digest == reference_ld(img, vcpus, 0x00A10F10)
    (tmp_path / "crafted.fd").write_bytes(img)
    assert p.hex == oracle_ld(tmp_path / "crafted.fd", vcpus, "EPYC-Genoa")
    assert [(s.region, s.gpa, s.pages, s.page_type_name) for s in p.steps][:7] == [
        ("firmware image", 0xFFFF0000, 16, "NORMAL"), ("SNP_SEC_MEM #0", 0x800000, 9, "ZERO"),
        ("SNP_SECRETS #1", 0x809000, 1, "SECRETS"), ("CPUID #2", 0x80A000, 1, "CPUID"),
        ("SVSM_CAA #3", 0x80B000, 1, "ZERO"), ("KERNEL_HASHES #4", 0x80C000, 1, "ZERO"),
        ("SNP_SEC_MEM #5", 0x80D000, 3, "ZERO")]


KERNEL_CASES = [(True, "console=ttyS0 root=/dev/vda1"), (False, None), (True, None), (False, "quiet")]


@pytest.mark.parametrize("with_initrd,append", KERNEL_CASES,
                         ids=["initrd+append", "kernel-only", "initrd", "append"])
def test_snp_crafted_kernel_hashes_equal_reference_and_sev_snp_measure(tmp_path, with_initrd, append):
    kernel, initrd = real_blobs()
    kb, ib = kernel.read_bytes(), (initrd.read_bytes() if with_initrd else None)
    img = crafted_image()
    p = predict_snp(img, "crafted.fd", vcpus=2, vcpu_type="EPYC-Milan", kernel=kb, initrd=ib, append=append)
    assert not p.problems
    table = expected_hash_table(kb, ib or b"", (append or "").encode() + b"\0")
    assert p.digest == reference_ld(img, 2, 0x00A00F11, table)
    step = p.steps[5]
    assert (step.region, step.page_type_name) == ("KERNEL_HASHES #4", "NORMAL")
    (tmp_path / "crafted.fd").write_bytes(img)
    assert p.hex == oracle_ld(tmp_path / "crafted.fd", 2, "EPYC-Milan", kernel=kernel,
                              initrd=initrd if with_initrd else None, append=append)


def test_snp_hash_table_layout():
    from decoders.measure.snp import hash_table

    t = hash_table(b"kernel", b"initrd", "a b")
    assert t == expected_hash_table(b"kernel", b"initrd", b"a b\0")
    assert len(t) == 176 and struct.unpack_from("<H", t, 16)[0] == 168 and t[168:] == bytes(8)


def test_snp_no_reset_block_starts_aps_at_reset_vector():
    """Without the SEV-ES reset block QEMU leaves the APs at the architectural reset state
    (sev_es_set_reset_vector does nothing), so every VMSA is the BSP's."""
    img = crafted_image(reset=None)
    p = predict_snp(img, "c", vcpus=2, vcpu_type="EPYC")
    assert p.digest is not None and p.ap_eip == 0xFFFFFFF0
    assert any("no SEV-ES reset block" in x.message for x in p.problems)
    one = predict_snp(img, "c", vcpus=1, vcpu_type="EPYC")
    assert one.digest is not None and not one.problems


def test_snp_node_shape():
    p = predict_snp(crafted_image(), "crafted.fd", vcpus=2, vcpu_type="EPYC")
    node = snp_node(p)
    assert node.kind == "snp-prediction"
    events = [c for c in node.children if c.kind == "predicted-event"]
    regs = [c for c in node.children if c.kind == "predicted-register"]
    assert len(events) == len(p.steps) == 9 and len(regs) == 1
    first = events[0]
    assert [f.name for f in first.fields] == ["Register", "Region", "Gpa", "Pages", "PageType", "Source", "Digests"]
    assert first.get("Register") == "SNP_LD" and first.get("Gpa") == 0xFFFF0000 and first.get("Pages") == 16
    assert first.get("PageType") == 1 and first.size == 0x10000
    assert events[1].offset == DESCRIPTOR_AT + 16 and events[1].size == 12
    assert events[-1].get("Digests") == {"sha384": p.hex}
    assert regs[0].get("Register") == "SNP_LD" and regs[0].get("Bank") == "sha384" and regs[0].get("Value") == p.hex


def test_snp_unknown_vcpu_type_is_a_problem():
    p = predict_snp(crafted_image(), "c", vcpus=1, vcpu_type="Skylake-Server")
    assert p.digest is None and any("unknown vCPU type 'Skylake-Server'" in x.message for x in p.problems)
    p = predict_snp(crafted_image(), "c", vcpus=1)
    assert p.digest is None and any("no vCPU type or signature" in x.message for x in p.problems)
