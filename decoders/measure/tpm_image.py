"""What an OVMF image decides about PCR0: the S-CRTM version string and the two firmware volumes
Tcg2Pei measures, with where each one's bytes are in the decoded image.

Rules (edk2 2025.02):

- `SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.c` PeimEntryMP: with PcdTpm2ScrtmPolicy 1 (the SecurityPkg.dec
  default; OVMF leaves it) MeasureCRTMVersion logs EV_S_CRTM_VERSION in PCR0 over
  `StrSize(PcdFirmwareVersionString)` bytes: the UTF-16 string with its NUL terminator, so an
  empty string is the two bytes 00 00. Then MeasureMainBios measures the boot firmware volume,
  which for OVMF is PEIFV as SEC decompressed it to PcdOvmfPeiMemFvBase
  (`OvmfPkg/Sec/SecMain.c` DecompressMemFvs), for its header's FvLength.
- `OvmfPkg/PlatformPei/Fv.c` PeiFvInitialization installs an FV-info PPI for DXEFV at
  PcdOvmfDxeMemFvBase, PcdOvmfDxeMemFvSize with no parent, so Tcg2Pei's
  FirmwareVolumeInfoPpiNotifyCallback measures it too (MeasureFvImage). SecMain asserts that the
  decompressed DXEFV section is PcdOvmfDxeMemFvSize bytes, so its FvLength is that size.
- MeasureFvImage logs EV_EFI_PLATFORM_FIRMWARE_BLOB {BlobBase u64, BlobLength u64} while
  PcdTcgPfpMeasurementRevision < 105 (MdeModulePkg.dec default 0; OVMF does not set it), else
  EV_EFI_PLATFORM_FIRMWARE_BLOB2 with a description. The digest is of the FV bytes in RAM. OVMF
  installs no measurement-excluded or pre-hashed FV PPI, and no migrated-FV HOB (PeiCore builds
  one only with PcdMigrateTemporaryRamFirmwareVolumes, which OVMF leaves FALSE).

Where the volumes are in RAM (no address is assumed):

- PEIFV: its PEIMs run in place and are rebased at build time to the FV's place in [FD.MEMFD]
  (`OvmfPkg/OvmfPkgX64.fdf`), so `ImageBase - (offset of the image in the FV)` is the FV's base.
- DXEFV: its modules are not rebased (ImageBase 0), so the image does not say where DXEFV goes;
  [FD.MEMFD] places the DXEFV region directly after the PEIFV region (2025.02: PEIFV
  0x020000|0x0E0000, DXEFV 0x100000|…; MEMFD_BASE_ADDRESS 0x800000), so its base is the PEIFV
  base + the PEIFV's FvLength.

The version string is a FixedAtBuild PCD (MdeModulePkg.dec `PcdFirmwareVersionString|L""`), so
each module using it carries its own copy: Tcg2Pei (the one measured) and SmbiosPlatformDxe
(SMBIOS type 0 BIOS version, `OvmfPkg/SmbiosPlatformDxe/SmbiosPlatformDxe.c`). Debian's
trixie build passes it with `--pcd PcdFirmwareVersionString=L"$(DEB_VERSION)"` (debian/rules).
"""
from __future__ import annotations

import re
import uuid

from decoders.model import Node, Space

PEIFV_NAME = uuid.UUID("6938079b-b503-4e3d-9d24-b28337a25806")   # OvmfPkgX64.fdf [FV.PEIFV] FvNameGuid
DXEFV_NAME = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")   # OvmfPkgX64.fdf [FV.DXEFV] FvNameGuid
TCG2PEI = uuid.UUID("a0c98b77-cba5-4bb8-993b-4af6ce33ece4")      # SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.inf
TCG2DXE = uuid.UUID("fdff263d-5f68-4591-87ba-b768f445a9af")      # SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.inf
SMBIOS_PLATFORM_DXE = uuid.UUID("4110465d-5ff3-4f4b-b580-24ed0d06747a")  # OvmfPkg/SmbiosPlatformDxe
# SECURE_BOOT_ENABLE builds (OvmfPkgX64.dsc/.fdf) link AuthVariableLib into the variable driver and
# add these two modules; without it the variable driver uses AuthVariableLibNull, which never
# creates the volatile SecureBoot variable.
SECURE_BOOT_CONFIG_DXE = uuid.UUID("f0e6a44f-7195-41c3-ac64-54f202cd0a21")  # SecureBootConfigDxe.inf
ENROLL_DEFAULT_KEYS = uuid.UUID("a0baa8a3-041d-48a8-bc87-c36d121b5e3d")     # EnrollDefaultKeys.inf

FFS_PEI_CORE, FFS_DXE_CORE = 0x04, 0x05    # PI vol 3, EFI_FV_FILETYPE_*
# A version string is at least 3 characters: SmbiosPlatformDxe replaces shorter ones by "unknown",
# and 1-2 UTF-16 characters followed by a NUL are everywhere in machine code.
MIN_VERSION_CHARS = 3
MAX_VERSION_CHARS = 256
_UTF16 = re.compile(rb"(?:[\x20-\x7e]\x00){%d,%d}\x00\x00" % (MIN_VERSION_CHARS, MAX_VERSION_CHARS))


# Plain classes, not dataclasses: `diff` and `measure` start without the dataclasses module.
class Volume:
    """One measured firmware volume: its node in the decoded image and its RAM base."""

    def __init__(self, name: str, node: Node, length: int, base: int | None, base_rule: str):
        self.name, self.node, self.length, self.base, self.base_rule = name, node, length, base, base_rule


class Version:
    """The S-CRTM version string and where it came from ("found in the image at …" / "given" /
    "not found: empty string assumed")."""

    def __init__(self, text: str, source: str, space: Space | None = None, offset: int = 0, size: int = 0):
        self.text, self.source, self.space, self.offset, self.size = text, source, space, offset, size


class ImageFacts:
    def __init__(self):
        self.peifv: Volume | None = None
        self.dxefv: Volume | None = None
        self.version: Version | None = None
        self.tcg2pei = False
        self.tcg2dxe = False
        self.secure_boot: bool | None = False   # None: unknown (no DXEFV to look in)
        self.secure_boot_rule = ""
        self.nv_store: Node | None = None       # the image's own variable store (a unified OVMF.fd)
        self.problems: list[tuple[str, str]] = []   # (severity, message)


def _fv_name(fv: Node):
    return fv.get("FvName")


def _files(fv: Node):
    """The FFS files directly in a volume (not in nested volumes)."""
    stack = list(reversed(fv.children))
    while stack:
        n = stack.pop()
        if n.kind == "ffs":
            yield n
        elif n.kind != "fv":
            stack.extend(reversed(n.children))


def _pe(ffs: Node) -> Node | None:
    return next(ffs.find("pe"), None)


def _data_len(space: Space | None) -> int:
    return len(space.data) if space is not None and space.data is not None else 0


def scan_image(root: Node) -> ImageFacts:
    """Walk the decoded image once: the PEIFV, the DXEFV, the modules that decide what is measured
    and the image's own variable store."""
    facts = ImageFacts()
    peifv = dxefv = None
    files: dict[uuid.UUID, Node] = {}
    for fv in root.find("fv"):
        name = _fv_name(fv)
        if fv.get("FileSystemGuid") == uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50"):
            # gEfiSystemNvDataFvGuid: the varstore of a unified image (OvmfPkg VarStore.fdf.inc)
            if facts.nv_store is None:
                facts.nv_store = next(fv.find("variable-store"), None)
            continue
        kinds = set()
        for f in _files(fv):
            files.setdefault(f.get("Name"), f)
            kinds.add(f.get("Type"))
        if peifv is None and (name == PEIFV_NAME or (name is None and FFS_PEI_CORE in kinds)):
            peifv = fv
        elif dxefv is None and (name == DXEFV_NAME or (name is None and FFS_DXE_CORE in kinds)):
            dxefv = fv
    facts.tcg2pei = TCG2PEI in files
    facts.tcg2dxe = TCG2DXE in files
    sb = [g for g in (SECURE_BOOT_CONFIG_DXE, ENROLL_DEFAULT_KEYS) if g in files]
    facts.secure_boot = bool(sb) if dxefv is not None else None
    facts.secure_boot_rule = (
        f"the image has {' and '.join(files[g].get('UI') or str(g).upper() for g in sb)} (a "
        "SECURE_BOOT_ENABLE build: AuthVariableLib creates the volatile SecureBoot variable)" if sb else
        "the image has neither SecureBootConfigDxe nor EnrollDefaultKeys (built without "
        "SECURE_BOOT_ENABLE: AuthVariableLibNull creates no SecureBoot variable)")
    if peifv is None or dxefv is None:
        _missing_volumes(root, facts, peifv is None, dxefv is None)
    if peifv is not None:
        facts.peifv = _peifv(peifv, facts)
    if dxefv is not None:
        facts.dxefv = _dxefv(dxefv, facts)
    facts.version = find_version(files.get(TCG2PEI), files.get(SMBIOS_PLATFORM_DXE), facts) if peifv is not None \
        else Version("", "not found: the image's PEIFV is missing; empty string assumed")
    if facts.secure_boot is None:
        facts.secure_boot_rule = "the image's DXEFV is missing, so whether it supports Secure Boot is unknown"
    if not facts.tcg2pei and peifv is not None:
        facts.problems.append(("warning", "the image has no Tcg2Pei PEIM (A0C98B77-CBA5-4BB8-993B-4AF6CE33ECE4): "
                                          "built without TPM2_ENABLE it measures nothing into PCR0; the PCR0 "
                                          "events are what a TPM-enabled build of it would log"))
    if not facts.tcg2dxe and dxefv is not None:
        facts.problems.append(("warning", "the image has no Tcg2Dxe driver (FDFF263D-5F68-4591-87BA-B768F445A9AF): "
                                          "it logs no PCR7 events; they are what a TPM-enabled build would log"))
    return facts


def _missing_volumes(root: Node, facts: ImageFacts, pei: bool, dxe: bool) -> None:
    what = " and ".join(n for n, m in (("PEIFV (6938079B-B503-4E3D-9D24-B28337A25806)", pei),
                                       ("DXEFV (7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)", dxe)) if m)
    why = []
    for sec in root.find("section"):
        if sec.get("SectionDefinitionGuid") is None or not (sec.problems or not sec.children):
            continue
        where = f"{sec.title} at 0x{sec.offset:x} of {sec.space.name if sec.space else '?'}: "
        if sec.problems:
            why.append(where + "; ".join(p.message for p in sec.problems[:2]))
        else:   # e.g. an LZMA header whose uncompressed size was zeroed: nothing came out
            why.append(where + f"it decompressed to nothing (DecompressedSize {sec.get('DecompressedSize')})")
    reason = (" — a compressed section could not be decompressed: " + " | ".join(why[:3])) if why else \
        " — no such volume in the image (not an OVMF image with a PEI phase, or a PEI-less TDVF)"
    facts.problems.append(("error", f"no {what}{reason}; PCR0 cannot be predicted"))


def _peifv(fv: Node, facts: ImageFacts) -> Volume:
    length = fv.get("FvLength") or fv.size
    bases: dict[int, str] = {}
    for f in _files(fv):
        pe = _pe(f)
        if pe is None or pe.space is not fv.space:
            continue
        image_base = pe.get("ImageBase") or 0
        if not image_base:
            continue
        base = image_base - (pe.offset - fv.offset)
        bases.setdefault(base, f"{f.get('UI') or str(f.get('Name')).upper()}'s ImageBase 0x{image_base:x} - "
                               f"its offset 0x{pe.offset - fv.offset:x} in the FV")
        if f.get("Type") == FFS_PEI_CORE:   # the PEI core's answer first
            bases = {base: bases[base], **bases}
    if not bases:
        facts.problems.append(("warning", "PEIFV's RAM base is unknown: no rebased PE32 PEIM in it (ImageBase 0); "
                                          "the event data's BlobBase is given as 0, the digest does not depend on it"))
        return Volume("PEIFV", fv, length, None, "unknown")
    base, rule = next(iter(bases.items()))
    if len(bases) > 1:
        facts.problems.append(("warning", "PEIFV's PEIMs disagree on the FV's RAM base: "
                               + ", ".join(f"0x{b:x}" for b in bases) + f"; 0x{base:x} is used"))
    return Volume("PEIFV", fv, length, base,
                  f"PEIFV's PEIMs run in place, rebased at build time ({rule})")


def _dxefv(fv: Node, facts: ImageFacts) -> Volume:
    length = fv.get("FvLength") or fv.size
    pei = facts.peifv
    if pei is None or pei.base is None:
        facts.problems.append(("warning", "DXEFV's RAM base is unknown (it follows PEIFV in [FD.MEMFD], whose base "
                                          "is unknown); the event data's BlobBase is given as 0"))
        return Volume("DXEFV", fv, length, None, "unknown")
    base = pei.base + pei.length
    return Volume("DXEFV", fv, length, base,
                  f"[FD.MEMFD] puts DXEFV right after PEIFV: 0x{pei.base:x} + 0x{pei.length:x}")


def _strings(pe: Node) -> list[tuple[str, int]]:
    """UTF-16 NUL-terminated printable strings at even offsets of a PE image: (text, offset)."""
    data = pe.space.data if pe.space is not None else None
    if data is None:
        return []
    raw = bytes(data[pe.offset:pe.offset + pe.size])
    out = []
    for m in _UTF16.finditer(raw):
        start = m.start()
        if start % 2:
            start += 1    # the match began on an odd byte: realign to the UTF-16 grid
            if not _UTF16.fullmatch(raw, start, m.end()):
                continue
        if start >= 2 and 0x20 <= raw[start - 2] <= 0x7e and raw[start - 1] == 0:
            continue      # the tail of a longer string
        out.append((raw[start:m.end() - 2].decode("utf-16-le"), pe.offset + start))
    return out


def find_version(tcg2pei: Node | None, smbios: Node | None, facts: ImageFacts) -> Version:
    """PcdFirmwareVersionString as built into Tcg2Pei (cross-checked with SmbiosPlatformDxe's copy)."""
    empty = Version("", "not found: empty string assumed (MdeModulePkg.dec default L\"\")")
    pe = _pe(tcg2pei) if tcg2pei is not None else None
    if pe is None:
        return empty
    found = _strings(pe)
    seen = {t for t, _ in _strings(_pe(smbios))} if smbios is not None and _pe(smbios) is not None else set()
    chosen = None
    if len(found) == 1:
        chosen = found[0]
    elif found:
        common = [c for c in found if c[0] in seen]
        if len(common) == 1:
            chosen = common[0]
        else:
            facts.problems.append(("warning", f"Tcg2Pei holds {len(found)} UTF-16 strings that could be "
                                              "PcdFirmwareVersionString (" + ", ".join(repr(t) for t, _ in found[:4])
                                   + "); the empty string is assumed: give the version"))
    if chosen is None:
        return empty
    text, off = chosen
    also = " (also SmbiosPlatformDxe's SMBIOS type 0 BIOS version)" if text in seen else ""
    return Version(text, f"found in the image at Tcg2Pei's PE32 image +0x{off - pe.offset:x} "
                         f"({pe.space.name} 0x{off:x}), its FixedAtBuild PcdFirmwareVersionString{also}",
                   pe.space, off, 2 * len(text) + 2)
