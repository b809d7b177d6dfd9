"""The SEV-SNP launch digest (SNP_LD) of an OVMF image as QEMU launches it (`-bios IMAGE` with an
`sev-snp-guest` object; `kernel-hashes=on` when a kernel is given).

The launch digest is one running SHA-384 over 0x70-byte PAGE_INFO records, one per 4 KiB page the
VMM hands to SNP_LAUNCH_UPDATE (AMD SEV-SNP Firmware ABI Specification #56860, 8.17.2
"SNP_LAUNCH_UPDATE", Table 67 "Layout of the PAGE_INFO Structure" in revision 1.55):

    0x00 DIGEST_CUR  the launch digest so far (48 bytes, zero at SNP_LAUNCH_START)
    0x30 CONTENTS    SHA-384 of the page for NORMAL and VMSA pages, zero for the others
    0x60 LENGTH      u16 0x70
    0x62 PAGE_TYPE   u8 (the section's page type encodings: NORMAL 1, VMSA 2, ZERO 3, UNMEASURED 4, SECRETS 5, CPUID 6)
    0x63 IMI_PAGE    bit 0, 0 here;  0x64-0x66 VMPL3/2/1_PERMS, 0 here;  0x67 reserved
    0x68 GPA         u64

DIGEST_CUR becomes SHA-384(PAGE_INFO). QEMU's order (target/i386/sev.c): the whole image as NORMAL
pages ending at 4 GiB (sev_encrypt_flash, queued first), then the SEV metadata sections in
descriptor order (snp_populate_metadata_pages, at sev_snp_launch_finish), then KVM adds one VMSA
page per vCPU at SNP_LAUNCH_FINISH (arch/x86/kvm/svm/sev.c, snp_launch_update_vmsa), BSP first.

What the image must hold (edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm, the GUIDed table
walked back from E-0x30; OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm, the "ASEV" descriptor):
the SEV metadata offset entry and the SEV-ES reset block (where the APs start). QEMU refuses an SNP
launch of an image without SEV metadata (sev_snp_launch_finish: "Failed to locate SEV metadata
header").

Only the GUIDed table and the descriptor are read, with `struct`: this module is on the path of a
one-shot command timed against sev-snp-measure, and the Node decoders of decoders.ovmf (with
the GUID name table) cost more to import than that whole run. `SnpPrediction.metadata` decodes the
descriptor with them when asked.
"""
from __future__ import annotations

import hashlib
import struct

from decoders.measure.vmsa import BSP_EIP, PAGE_SIZE, cpu_signature, vmsa_page
from decoders.model import Node, Problem, Severity, Space

FOUR_GIB = 1 << 32
LD_SIZE = 48
NO_SEV_METADATA = "no SEV metadata"

# SNP ABI #56860, SNP_LAUNCH_UPDATE: the PAGE_TYPE encodings.
PAGE_TYPE_NORMAL, PAGE_TYPE_VMSA, PAGE_TYPE_ZERO, PAGE_TYPE_UNMEASURED, PAGE_TYPE_SECRETS, PAGE_TYPE_CPUID = \
    1, 2, 3, 4, 5, 6
PAGE_TYPE_NAMES = {1: "NORMAL", 2: "VMSA", 3: "ZERO", 4: "UNMEASURED", 5: "SECRETS", 6: "CPUID"}
PAGE_INFO_LEN = 0x70
_PAGE_INFO_TAIL = struct.Struct("<HBBBBBBQ")   # LENGTH, PAGE_TYPE, IMI_PAGE, VMPL3/2/1_PERMS, reserved, GPA
_ZERO_CONTENTS = bytes(LD_SIZE)
# The GPA a VMSA page is measured with: KVM assigns it in the RMP with the (page-aligned, 52-bit)
# GPA -1 (arch/x86/kvm/svm/sev.c, INITIAL_VMSA_GPA).
VMSA_GPA = 0xFFFFFFFFF000

# OvmfSevMetadata.asm section types.
SNP_SEC_MEM, SNP_SECRETS, CPUID, SVSM_CAA, KERNEL_HASHES = 0x1, 0x2, 0x3, 0x4, 0x10
SECTION_TYPE_NAMES = {SNP_SEC_MEM: "SNP_SEC_MEM", SNP_SECRETS: "SNP_SECRETS", CPUID: "CPUID",
                      SVSM_CAA: "SVSM_CAA", KERNEL_HASHES: "KERNEL_HASHES"}
# QEMU target/i386/sev.c, snp_metadata_desc_to_page_type: secrets and CPUID pages have their own
# types, everything else (SNP_SEC_MEM, SVSM_CAA, unknown types) goes in as ZERO pages; a
# KERNEL_HASHES section is NORMAL when it holds the hashes table (snp_launch_update_kernel_hashes).
SECTION_PAGE_TYPES = {SNP_SECRETS: PAGE_TYPE_SECRETS, CPUID: PAGE_TYPE_CPUID}

# The QEMU vCPU models with SNP support and their family/model/stepping (QEMU target/i386/cpu.c,
# builtin_x86_defs and their versions): the names sev-snp-measure accepts for --vcpu-type.
_EPYC, _ROME, _MILAN, _GENOA, _TURIN = (23, 1, 2), (23, 49, 0), (25, 1, 1), (25, 17, 0), (26, 0, 0)
VCPU_TYPES = {
    "EPYC": _EPYC, "EPYC-v1": _EPYC, "EPYC-v2": _EPYC, "EPYC-IBPB": _EPYC, "EPYC-v3": _EPYC, "EPYC-v4": _EPYC,
    "EPYC-Rome": _ROME, "EPYC-Rome-v1": _ROME, "EPYC-Rome-v2": _ROME, "EPYC-Rome-v3": _ROME,
    "EPYC-Milan": _MILAN, "EPYC-Milan-v1": _MILAN, "EPYC-Milan-v2": _MILAN,
    "EPYC-Genoa": _GENOA, "EPYC-Genoa-v1": _GENOA,
    "EPYC-Turin": _TURIN,
}

# GUIDs in their on-disk (little-endian EFI_GUID) byte order, from ResetVectorVtf0.asm's DB lines.
def _guid(text: str) -> bytes:
    a, b, c, d, e = text.split("-")
    return struct.pack("<IHH", int(a, 16), int(b, 16), int(c, 16)) + bytes.fromhex(d + e)


TABLE_FOOTER_GUID = _guid("96b582de-1fb2-45f7-baea-a366c55a082d")
SEV_ES_RESET_BLOCK_GUID = _guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
SEV_HASH_TABLE_BLOCK_GUID = _guid("7255371f-3a3b-4b04-927b-1da6efa8d454")
SEV_METADATA_OFFSET_GUID = _guid("dc886566-984a-4798-a75e-5585a7bf67cc")
# The SEV hashes table (edk2 OvmfPkg/AmdSev/BlobVerifierLibSevHashes/BlobVerifierSevHashes.c; QEMU
# target/i386/sev.c SevHashTable): <GUID>|UINT16 len|entries, each <GUID>|UINT16 len|SHA-256.
SEV_HASH_TABLE_GUID = _guid("9438d606-4f22-4cc9-b479-a793d411fd21")
SEV_KERNEL_HASH_GUID = _guid("4de79437-abd2-427f-b835-d5b172d2045b")
SEV_INITRD_HASH_GUID = _guid("44baf731-3a2f-4bd7-9af1-41e29169781d")
SEV_CMDLINE_HASH_GUID = _guid("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
HASH_ENTRY_SIZE = 16 + 2 + 32
HASH_TABLE_SIZE = 16 + 2 + 3 * HASH_ENTRY_SIZE          # 168
PADDED_HASH_TABLE_SIZE = (HASH_TABLE_SIZE + 15) & ~15   # 176: QEMU PaddedSevHashTable, 16-byte aligned

# The table (ResetVectorVtf0.asm): UINT16 length at E-0x32, footer GUID at E-0x30; entries end
# with UINT16 length (data + 18) and their GUID.
TABLE_FOOTER_AT = 0x30
ENTRY_TAIL = 18
# The table length is a UINT16 and an entry at least 18 bytes: at most 3,640 entries; edk2 writes
# 5-6, so a walk stops at this many.
MAX_TABLE_ENTRIES = 64
# edk2 writes 5-7 SEV metadata sections; NumSections is a UINT32.
MAX_SECTIONS = 64
# The work cap on metadata pages: each is one PAGE_INFO hash (a KERNEL_HASHES page one more 4 KiB
# hash). edk2's sections total 128 KiB (32 pages); 64 MiB of them is far past any real firmware and
# still hashes in well under a second, while a descriptor asking for GiBs is refused unhashed.
MAX_METADATA_PAGES = (64 << 20) // PAGE_SIZE
# KVM's x86 KVM_MAX_VCPUS (arch/x86/include/asm/kvm_host.h).
MAX_VCPUS = 4096


class SnpStep:
    """One measured region: what it is, where, how many pages of which type, and the launch digest
    after it. `at`/`size` locate the bytes that describe it in the image (the image itself, or the
    metadata section entry)."""

    __slots__ = ("region", "gpa", "pages", "page_type", "source", "digest", "at", "size")

    def __init__(self, region: str, gpa: int, pages: int, page_type: int, source: str, digest: bytes,
                 at: int | None = None, size: int = 0):
        self.region, self.gpa, self.pages, self.page_type = region, gpa, pages, page_type
        self.source, self.digest, self.at, self.size = source, digest, at, size

    @property
    def page_type_name(self) -> str:
        return PAGE_TYPE_NAMES.get(self.page_type, str(self.page_type))

    def __repr__(self) -> str:
        return (f"SnpStep({self.region!r}, gpa=0x{self.gpa:x}, pages={self.pages}, {self.page_type_name}, "
                f"{self.digest.hex()[:16]}…)")


class SnpPrediction:
    """The predicted launch digest (None when it could not be computed: see `problems`), the
    regions that made it, and the metadata they came from."""

    def __init__(self, name: str, space: Space):
        self.name = name
        self.space = space
        self.digest: bytes | None = None
        self.steps: list[SnpStep] = []
        self.problems: list[Problem] = []
        self.vcpus = 0
        self.vcpu_sig: int | None = None
        self.vcpu_type: str | None = None
        self.guest_features = 0
        self.ap_eip: int | None = None
        self.metadata_at: int | None = None   # file offset of the "ASEV" descriptor
        self.metadata_found = False           # QEMU would find it (signature and Length good)
        self._metadata: Node | None = None

    @property
    def hex(self) -> str | None:
        return None if self.digest is None else self.digest.hex()

    @property
    def has_metadata(self) -> bool:
        """False when QEMU would find no SEV metadata and refuse the SNP launch."""
        return self.metadata_found

    @property
    def metadata(self) -> Node | None:
        """The "sev-metadata" node (decoders.ovmf.metadata), decoded on first use."""
        if self._metadata is None and self.metadata_at is not None:
            from decoders import budget
            from decoders.ovmf.metadata import decode_sev_metadata

            with budget.scope():
                self._metadata = decode_sev_metadata(self.space, self.metadata_at)
        return self._metadata

    def _problem(self, at: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        self.problems.append(Problem(at, severity, message))

    def _error(self, at: int | None, message: str) -> None:
        self._problem(at, message)

    def _warn(self, at: int | None, message: str) -> None:
        self._problem(at, message, Severity.WARNING)

    def _note(self, at: int | None, message: str) -> None:
        self._problem(at, message, Severity.INFO)


class _Digest:
    """The running launch digest: DIGEST_CUR = SHA-384(PAGE_INFO) per page."""

    __slots__ = ("ld",)

    def __init__(self) -> None:
        self.ld = bytes(LD_SIZE)

    def page(self, page_type: int, gpa: int, contents: bytes) -> None:
        self.ld = hashlib.sha384(self.ld + contents + _PAGE_INFO_TAIL.pack(
            PAGE_INFO_LEN, page_type, 0, 0, 0, 0, 0, gpa)).digest()

    def data_pages(self, gpa: int, data) -> None:
        """NORMAL pages: CONTENTS is the SHA-384 of each page."""
        view = memoryview(data)
        sha384, pack, ld = hashlib.sha384, _PAGE_INFO_TAIL.pack, self.ld
        for off in range(0, len(view), PAGE_SIZE):
            ld = sha384(ld + sha384(view[off:off + PAGE_SIZE]).digest()
                        + pack(PAGE_INFO_LEN, PAGE_TYPE_NORMAL, 0, 0, 0, 0, 0, gpa + off)).digest()
        self.ld = ld

    def empty_pages(self, page_type: int, gpa: int, pages: int) -> None:
        """ZERO, SECRETS, CPUID, UNMEASURED pages: CONTENTS is zero."""
        sha384, pack, ld = hashlib.sha384, _PAGE_INFO_TAIL.pack, self.ld
        head = _ZERO_CONTENTS
        for i in range(pages):
            ld = sha384(ld + head + pack(PAGE_INFO_LEN, page_type, 0, 0, 0, 0, 0, gpa + i * PAGE_SIZE)).digest()
        self.ld = ld


# -- reading the image ---------------------------------------------------------------------------
def _table(data, p: SnpPrediction) -> dict[bytes, tuple[int, int]] | None:
    """GUID -> (file offset of the entry's data, data length) of the OVMF GUIDed table, None
    without one. The first entry from the end wins, as in QEMU hw/i386/pc_sysfw_ovmf.c
    (pc_system_ovmf_table_find), which also stops at an entry whose length is < 18 or runs past
    the table."""
    end = len(data)
    if end < TABLE_FOOTER_AT or bytes(data[end - TABLE_FOOTER_AT:end - TABLE_FOOTER_AT + 16]) != TABLE_FOOTER_GUID:
        p._note(None, "no OVMF GUIDed table (no footer GUID 96b582de-… at E-0x30)")
        return None
    footer_at = end - TABLE_FOOTER_AT
    length = struct.unpack_from("<H", data, footer_at - 2)[0]
    left = length - ENTRY_TAIL
    if left < 0 or left > footer_at - 2:
        # QEMU pc_system_parse_ovmf_flash rejects such a length and then has no table.
        p._error(footer_at - 2, f"GUIDed table length 0x{length:x} is shorter than its footer or reaches "
                                f"before the image")
        return {}
    entries: dict[bytes, tuple[int, int]] = {}
    pos = footer_at - 2                      # the end of the next entry (exclusive)
    count = 0
    while left >= ENTRY_TAIL:
        if count >= MAX_TABLE_ENTRIES:
            p._warn(pos, f"more than {MAX_TABLE_ENTRIES} GUIDed table entries; the rest is ignored")
            break
        guid = bytes(data[pos - 16:pos])
        elen = struct.unpack_from("<H", data, pos - ENTRY_TAIL)[0]
        if elen < ENTRY_TAIL or elen > left:
            # Entries nearer the footer are still found; a missing one is reported where it is needed.
            p._warn(pos - ENTRY_TAIL, f"GUIDed table entry length 0x{elen:x} is < 18 or runs past the table "
                                      f"(0x{left:x} bytes left); QEMU stops looking here")
            break
        if guid in entries:
            p._warn(pos - elen, f"GUID {_guid_text(guid)} appears twice in the table; QEMU uses the one "
                                f"nearest the footer, sev-snp-measure the other")
        else:
            entries[guid] = (pos - elen, elen - ENTRY_TAIL)
        pos -= elen
        left -= elen
        count += 1
    return entries


def _guid_text(raw: bytes) -> str:
    a, b, c = struct.unpack_from("<IHH", raw)
    return f"{a:08x}-{b:04x}-{c:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


def _u32_entry(data, entries, guid: bytes, what: str, p: SnpPrediction, count: int = 1) -> tuple | None:
    if guid not in entries:
        return None
    at, dlen = entries[guid]
    if dlen < 4 * count:
        p._error(at, f"{what} entry holds {dlen} data bytes, needs {4 * count}")
        return None
    return struct.unpack_from(f"<{count}I", data, at)


def _sections(data, entries, p: SnpPrediction) -> list[tuple[int, int, int, int]] | None:
    """The (entry file offset, Base, Size, Type) of every SEV metadata section, or None (with a
    Problem) when the image has no usable metadata."""
    v = _u32_entry(data, entries, SEV_METADATA_OFFSET_GUID, "SEV metadata offset", p)
    if v is None:
        if SEV_METADATA_OFFSET_GUID not in entries:
            p._error(None, f"{NO_SEV_METADATA}: the GUIDed table has no SEV metadata offset entry "
                           f"(dc886566-…); QEMU refuses to launch it as an SNP guest "
                           f"(target/i386/sev.c, sev_snp_launch_finish)")
        return None
    offset = v[0]
    end = len(data)
    entry_at = entries[SEV_METADATA_OFFSET_GUID][0]
    # QEMU target/i386/sev.c (pc_system_parse_sev_metadata): the descriptor is at E - offset, must
    # say "ASEV" and its Length must fit between there and the end of the image, else QEMU has no
    # SEV metadata; it keeps Length bytes and reads NumSections entries from them.
    if offset < 16 or offset > end:
        p._error(entry_at, f"{NO_SEV_METADATA}: SEV metadata offset 0x{offset:x} points outside the "
                           f"0x{end:x}-byte image")
        return None
    at = end - offset
    sig, length, version, num = struct.unpack_from("<4sIII", data, at)
    if sig != b"ASEV":
        p._error(at, f"{NO_SEV_METADATA}: signature {sig!r} at 0x{at:x}, expected b'ASEV'")
        return None
    p.metadata_at = at
    if version != 1:
        # QEMU does not check it; sev-snp-measure refuses any other version.
        p._warn(at + 8, f"SEV metadata Version {version}, only 1 is defined (OvmfSevMetadata.asm)")
    if length < 16 or length > offset:
        p._error(at + 4, f"{NO_SEV_METADATA}: the descriptor's Length 0x{length:x} is < 16 or runs past the "
                         f"end of the image")
        return None
    p.metadata_found = True
    if num > MAX_SECTIONS:
        p._error(at + 12, f"SEV metadata NumSections {num} is more than {MAX_SECTIONS}")
        return None
    if 16 + 12 * num > length:
        p._error(at + 12, f"{num} sections need 0x{16 + 12 * num:x} bytes, the descriptor's Length is 0x{length:x}")
        return None
    if 16 + 12 * num < length:
        p._warn(at + 4, f"SEV metadata Length 0x{length:x} is more than 16 + 12 * {num}")
    return [(at + 16 + 12 * i, *struct.unpack_from("<III", data, at + 16 + 12 * i)) for i in range(num)]


def _check_sections(sections, image_gpa: int, p: SnpPrediction) -> bool:
    """KVM's SNP_LAUNCH_UPDATE takes page-aligned, non-empty ranges (arch/x86/kvm/svm/sev.c,
    snp_launch_update), the firmware refuses a page twice (its RMP entry is then already
    assigned), and the sections are 32-bit GPAs in guest RAM."""
    ok = True
    pages = 0
    spans = []
    for i, (at, base, size, typ) in enumerate(sections):
        name = f"section {i} ({SECTION_TYPE_NAMES.get(typ, f'type 0x{typ:x}')})"
        if size == 0:
            # QEMU target/i386/sev.c, sev_snp_launch_update: "SNP_LAUNCH_UPDATE called with invalid
            # address / length", and the launch stops (sev-snp-measure measures nothing for it).
            p._error(at + 4, f"{name}: Size 0; QEMU refuses a zero-length SNP_LAUNCH_UPDATE")
            ok = False
            continue
        if base % PAGE_SIZE or size % PAGE_SIZE:
            p._error(at, f"{name}: Base 0x{base:x} / Size 0x{size:x} not whole 4 KiB pages "
                         f"(KVM SNP_LAUNCH_UPDATE rejects it)")
            ok = False
            continue
        if base + size > FOUR_GIB:
            p._error(at, f"{name}: 0x{base:x} + 0x{size:x} runs past 4 GiB")
            ok = False
            continue
        if base + size > image_gpa:
            p._error(at, f"{name}: 0x{base:x}..0x{base + size:x} overlaps the firmware image mapped at "
                         f"0x{image_gpa:x}")
            ok = False
        if typ not in SECTION_TYPE_NAMES:
            p._warn(at + 8, f"{name}: unknown type; QEMU (snp_metadata_desc_to_page_type) adds it as ZERO "
                            f"pages, sev-snp-measure refuses it")
        if typ in (SNP_SECRETS, CPUID) and size != PAGE_SIZE:
            p._warn(at + 4, f"{name}: 0x{size:x} bytes; KVM measures every page of it, sev-snp-measure only "
                            f"the first")
        pages += size // PAGE_SIZE
        spans.append((base, base + size, i, at))
    spans.sort()
    for (a0, a1, ia, _), (b0, b1, ib, at) in zip(spans, spans[1:]):
        if b0 < a1:
            p._error(at, f"section {ib} (0x{b0:x}..0x{b1:x}) overlaps section {ia} (ends 0x{a1:x}): the "
                         f"firmware refuses to add a page twice")
            ok = False
    if pages > MAX_METADATA_PAGES:
        p._error(None, f"the SEV metadata sections measure {pages:,} pages; the limit is "
                       f"{MAX_METADATA_PAGES:,} (64 MiB); not computed")
        ok = False
    return ok


def hash_table(kernel: bytes, initrd: bytes | None, append: str | None) -> bytes:
    """The padded SEV hashes table QEMU puts in the KERNEL_HASHES section (target/i386/sev.c,
    build_kernel_loader_hashes): entries cmdline, initrd, kernel, each the SHA-256 of the blob;
    the command line is hashed with its terminating NUL (hw/i386/x86-common.c, x86_load_linux:
    cmdline_size = strlen + 1), a missing initrd as empty."""
    cmdline = (append or "").encode() + b"\0"
    out = [SEV_HASH_TABLE_GUID, struct.pack("<H", HASH_TABLE_SIZE)]
    for guid, blob in ((SEV_CMDLINE_HASH_GUID, cmdline), (SEV_INITRD_HASH_GUID, initrd or b""),
                       (SEV_KERNEL_HASH_GUID, kernel)):
        out += [guid, struct.pack("<H", HASH_ENTRY_SIZE), hashlib.sha256(blob).digest()]
    table = b"".join(out)
    return table + bytes(PADDED_HASH_TABLE_SIZE - len(table))


# -- the prediction ------------------------------------------------------------------------------
def predict_snp(image: bytes, name: str, *, vcpus: int, vcpu_type: str | None = None,
                vcpu_sig: int | None = None, kernel: bytes | None = None, initrd: bytes | None = None,
                append: str | None = None, guest_features: int = 0x1) -> SnpPrediction:
    """The SNP launch digest of `image` (a whole firmware file, its last byte at 4 GiB - 1) booted
    by QEMU with `vcpus` vCPUs of `vcpu_type` (or CPUID signature `vcpu_sig`), SEV_FEATURES
    `guest_features`, and with `kernel` (kernel-hashes=on, `initrd`, `append`) when given."""
    space = Space(name, image, FOUR_GIB - len(image))
    p = SnpPrediction(name, space)
    p.vcpus, p.guest_features, p.vcpu_type = vcpus, guest_features, vcpu_type
    ok = _check_options(p, vcpus, vcpu_type, vcpu_sig, kernel, initrd, append, guest_features)
    size = len(image)
    if size == 0 or size % PAGE_SIZE:
        p._error(None, f"the image is 0x{size:x} bytes, not whole 4 KiB pages (KVM SNP_LAUNCH_UPDATE "
                       f"measures whole pages)")
        ok = False
    if size < TABLE_FOOTER_AT + 2:
        if size:
            p._error(None, f"{NO_SEV_METADATA}: {size} bytes are too few for the OVMF GUIDed table")
        return p
    image_gpa = FOUR_GIB - size

    entries = _table(image, p)
    if entries is None:
        p._error(None, f"{NO_SEV_METADATA}: the image has no OVMF GUIDed table")
        return p
    sections = _sections(image, entries, p)
    if sections is None:
        return p
    ok = _check_sections(sections, image_gpa, p) and ok

    reset = _u32_entry(image, entries, SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block", p)
    if reset is None:
        if SEV_ES_RESET_BLOCK_GUID not in entries:
            # QEMU then leaves the APs at the architectural reset state, like the BSP
            # (target/i386/sev.c, sev_es_set_reset_vector: reset_data_valid false).
            if vcpus > 1:
                p._warn(None, "no SEV-ES reset block (00f771de-…): the APs start at the reset vector like "
                              "the BSP; sev-snp-measure refuses such an image")
            p.ap_eip = BSP_EIP
        else:
            ok = False
    elif reset[0] == 0:
        p._error(entries[SEV_ES_RESET_BLOCK_GUID][0], "SEV-ES reset address is 0 (QEMU sev_es_parse_reset_block "
                                                      "refuses it)")
        ok = False
    else:
        p.ap_eip = reset[0]

    table = None
    if kernel is not None:
        table = _kernel_hashes(image, entries, sections, kernel, initrd, append, p)
        ok = ok and table is not None
    if not ok:
        return p

    d = _Digest()
    d.data_pages(image_gpa, image)
    p.steps.append(SnpStep("firmware image", image_gpa, size // PAGE_SIZE, PAGE_TYPE_NORMAL,
                           f"{name}: the whole file (QEMU sev_encrypt_flash)", d.ld, 0, size))
    for i, (at, base, sz, typ) in enumerate(sections):
        pages = sz // PAGE_SIZE
        tname = SECTION_TYPE_NAMES.get(typ, f"type 0x{typ:x}")
        if typ == KERNEL_HASHES and table is not None:
            # snp_launch_update_kernel_hashes: the section zeroed, the table at the page offset of
            # the hash table block's base, all of it NORMAL pages.
            offset, blob = table
            content = bytearray(sz)
            content[offset:offset + len(blob)] = blob
            d.data_pages(base, content)
            ptype, source = PAGE_TYPE_NORMAL, f"SEV hashes table at +0x{offset:x} (kernel, initrd, cmdline)"
        else:
            ptype = SECTION_PAGE_TYPES.get(typ, PAGE_TYPE_ZERO)
            d.empty_pages(ptype, base, pages)
            source = f"SEV metadata section {i}"
        p.steps.append(SnpStep(f"{tname} #{i}", base, pages, ptype, source, d.ld, at, 12))

    features = guest_features
    sig = p.vcpu_sig
    bsp = vmsa_page(BSP_EIP, features, sig)
    d.page(PAGE_TYPE_VMSA, VMSA_GPA, hashlib.sha384(bsp).digest())
    p.steps.append(SnpStep("VMSA BSP", VMSA_GPA, 1, PAGE_TYPE_VMSA,
                           f"vCPU 0 at 0x{BSP_EIP:x}, signature 0x{sig:x}, SEV_FEATURES 0x{features:x}", d.ld))
    if vcpus > 1:
        ap = hashlib.sha384(vmsa_page(p.ap_eip, features, sig)).digest()
        for _ in range(vcpus - 1):
            d.page(PAGE_TYPE_VMSA, VMSA_GPA, ap)
        p.steps.append(SnpStep("VMSA APs", VMSA_GPA, vcpus - 1, PAGE_TYPE_VMSA,
                               f"vCPUs 1-{vcpus - 1} at 0x{p.ap_eip:x} (SEV-ES reset block)", d.ld))
    p.digest = d.ld
    return p


def _check_options(p: SnpPrediction, vcpus, vcpu_type, vcpu_sig, kernel, initrd, append, guest_features) -> bool:
    ok = True
    if not isinstance(vcpus, int) or not 1 <= vcpus <= MAX_VCPUS:
        p._error(None, f"--vcpus {vcpus!r}: between 1 and {MAX_VCPUS} (KVM_MAX_VCPUS)")
        ok = False
    if vcpu_sig is not None:
        if not 0 <= vcpu_sig <= 0xFFFFFFFF:
            p._error(None, f"vCPU signature 0x{vcpu_sig:x} is not a 32-bit CPUID value")
            ok = False
        else:
            p.vcpu_sig = vcpu_sig
    elif vcpu_type is not None:
        fms = VCPU_TYPES.get(vcpu_type)
        if fms is None:
            p._error(None, f"unknown vCPU type {vcpu_type!r}; known: {', '.join(VCPU_TYPES)}")
            ok = False
        else:
            p.vcpu_sig = cpu_signature(*fms)
    else:
        p._error(None, "no vCPU type or signature: the VMSA's RDX holds the CPUID signature")
        ok = False
    if not 0 <= guest_features < 1 << 64:
        p._error(None, f"guest features 0x{guest_features:x} do not fit SEV_FEATURES (64 bits)")
        ok = False
    if kernel is None and (initrd is not None or append is not None):
        p._error(None, "an initrd or command line without a kernel: QEMU measures them only with a kernel")
        ok = False
    return ok


def _kernel_hashes(image, entries, sections, kernel, initrd, append, p: SnpPrediction):
    """(offset in the KERNEL_HASHES section, padded table), or None with a Problem. QEMU
    target/i386/sev.c (sev_snp_build_kernel_loader_hashes, sev_add_kernel_loader_hashes): the hash
    table block (7255371f-…) must exist with a non-zero base and room for the padded table; the
    table goes at base's offset in its page (kernel_hashes_offset) of every KERNEL_HASHES section."""
    block = _u32_entry(image, entries, SEV_HASH_TABLE_BLOCK_GUID, "SEV hash table block", p, 2)
    if block is None:
        if SEV_HASH_TABLE_BLOCK_GUID not in entries:
            p._error(None, "a kernel was given but the image has no SEV hash table block (7255371f-…): QEMU "
                           "refuses it (\"kernel specified but guest firmware has no hashes table GUID\")")
        return None
    at = entries[SEV_HASH_TABLE_BLOCK_GUID][0]
    base, size = block
    if base == 0 or size < PADDED_HASH_TABLE_SIZE:
        p._error(at, f"a kernel was given but the hash table area (base 0x{base:x}, size 0x{size:x}) is "
                     f"invalid: QEMU needs a non-zero base and {PADDED_HASH_TABLE_SIZE} bytes")
        return None
    holders = [s for s in sections if s[3] == KERNEL_HASHES]
    if not holders:
        p._error(None, "a kernel was given but the SEV metadata has no KERNEL_HASHES section: the hashes "
                       "table would never reach the guest")
        return None
    offset = base & (PAGE_SIZE - 1)
    ok = True
    for sat, sbase, ssize, _ in holders:
        if offset + PADDED_HASH_TABLE_SIZE > ssize:
            p._error(sat, f"KERNEL_HASHES section of 0x{ssize:x} bytes cannot hold the {PADDED_HASH_TABLE_SIZE}-"
                          f"byte hashes table at +0x{offset:x} (QEMU asserts it)")
            ok = False
        elif not sbase <= base < sbase + PAGE_SIZE:
            p._warn(sat, f"the hash table block's base 0x{base:x} is not in the first page of this "
                         f"KERNEL_HASHES section (0x{sbase:x}): QEMU writes the table at +0x{offset:x} "
                         f"of the section, the firmware looks for it at 0x{base:x}")
    if not ok:
        return None
    return offset, hash_table(kernel, initrd, append)


# -- nodes ---------------------------------------------------------------------------------------
def snp_node(p: SnpPrediction) -> Node:
    """The "snp-prediction" node: one "predicted-event" per measured region, then the
    "predicted-register" SNP_LD (absent when the digest could not be computed)."""
    from decoders.measure.model import register_node

    sig = "?" if p.vcpu_sig is None else f"0x{p.vcpu_sig:x}"
    what = f"{p.vcpus} vCPU{'s' if p.vcpus != 1 else ''}"
    what += f" {p.vcpu_type}" if p.vcpu_type and p.vcpu_sig is not None else ""
    node = Node("snp-prediction", f"SEV-SNP launch digest of {p.name} ({what}, signature {sig})",
                p.space, 0, p.space.size)
    node.add("Vcpus", p.vcpus)
    node.add("VcpuSignature", p.vcpu_sig, display=sig)
    if p.vcpu_type:
        node.add("VcpuType", p.vcpu_type)
    node.add("GuestFeatures", p.guest_features, display=f"0x{p.guest_features:x}")
    if p.ap_eip is not None:
        node.add("ApResetAddress", p.ap_eip, display=f"0x{p.ap_eip:x}")
    node.problems.extend(p.problems)
    for n, s in enumerate(p.steps):
        ev = Node("predicted-event", f"#{n} SNP_LD {s.region}: {s.pages} {s.page_type_name} "
                                     f"page{'s' if s.pages != 1 else ''} at 0x{s.gpa:x}",
                  p.space if s.at is not None else None, s.at or 0, s.size)
        ev.add("Register", "SNP_LD")
        ev.add("Region", s.region)
        ev.add("Gpa", s.gpa, display=f"0x{s.gpa:x}")
        ev.add("Pages", s.pages)
        ev.add("PageType", s.page_type, display=f"{s.page_type_name} ({s.page_type})")
        ev.add("Source", s.source)
        ev.add("Digests", {"sha384": s.digest.hex()}, display=f"sha384:{s.digest.hex()}")
        node.append(ev)
    if p.digest is not None:
        node.append(register_node("SNP_LD", "sha384", p.digest))
        node.title += f" = {p.digest.hex()}"
    return node
