"""What a TDVF image measures into the TDX MRTD and RTMR0 before the OS runs, with the TD HOB QEMU
builds for it.

MRTD: decoders.mrtd (the VMM's PAGE.ADD/MR.EXTEND records), in both page orders.

RTMR0 (CC MR index 1; UEFI 2.10 §38.4.1: MR index 1 = RTMR0, where TPM PCR1 and PCR7 map, edk2
OvmfPkg/IntelTdx/TdxMeasurementLib/TdxMeasurementCommon.c TdxMeasurementMapPcrToMrIndex), each
event SHA-384 only, R = SHA-384(R || digest) from 48 zero bytes (TDG.MR.RTMR.EXTEND):

1. the TD HOB. SEC (OvmfPkg/Sec/SecMain.c for Config-A, OvmfPkg/IntelTdx/Sec/SecMain.c for
   Config-B) calls TdxHelperMeasureTdHob (OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c): the HOB
   list at PcdOvmfSecGhcbBase (the TD_HOB section's MemoryAddress, ResetVector.nasmb) from its start
   up to, not including, the END HOB. Logged (TdxMeasurementHob.c, by PeilessStartup or PlatformPei)
   as EV_EFI_HANDOFF_TABLES2 with TDX_HANDOFF_TABLE_POINTERS2 {9, "TdxTable\\0", 1,
   {gUefiOvmfPkgTokenSpaceGuid, the HOB's address}} (42 bytes, packed);
2. the CFV. TdxHelperMeasureCfvImage hashes PcdCfvRawDataSize bytes at
   PcdOvmfFlashNvStorageVariableBase: the CFV section's RawDataSize bytes, which the VMM copied
   from the image to its MemoryAddress (OvmfPkgDefines.fdf.inc: PcdCfvBase = FW_BASE_ADDRESS =
   PcdOvmfFlashNvStorageVariableBase, PcdCfvRawDataSize = VARS_SIZE). Logged as
   EV_EFI_PLATFORM_FIRMWARE_BLOB2 {41, "Fv(<FvName>)" or "Fv(XXXXXXXX-...)" when the volume has no
   extension header, base, length} (58 bytes);
3. the Secure Boot policy (OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c MeasureSecureBootPolicy, when the
   variable write protocol appears, PCR7 -> RTMR0): EV_EFI_VARIABLE_DRIVER_CONFIG for SecureBoot, PK,
   KEK, db, dbx (each logged even when absent, with no data), dbt only when present, each hashed over
   its whole UEFI_VARIABLE_DATA; then EV_SEPARATOR (4 zero bytes).

Where the variables come from: a build with PcdSecureBootSupported (SECURE_BOOT_ENABLE=TRUE) copies
the CFV's variable store into the emulated store (OvmfPkg/Library/PlatformInitLib/Platform.c
PlatformInitEmuVariableNvStore, after PlatformValidateNvVarStore) and links SecurityPkg's
AuthVariableLib, which sets SecureBoot = 1 when PK exists and SecureBootEnable is absent or 1, else 0
(AuthVariableLib.c). A build without it starts from an empty store and has no SecureBoot variable:
all five are logged empty. Which build an image is cannot be read without decompressing its DXE
volume (SECURE_BOOT_ENABLE also puts SecureBootConfigDxe there), so it is a parameter
(`secure_boot_build`); unknown, the Secure Boot events are left to `depends`. GCE's and Intel's TDVF
event logs come from such builds (SecureBoot logged with one byte of data); an IntelTdxX64.dsc or
OvmfPkgX64.dsc build without -D SECURE_BOOT_ENABLE=TRUE (their default) is not, and neither is
Debian 13's OVMF.fd.

Later RTMR0 events depend on the VM, not the image, and are named in `TdxPrediction.depends`.

A TDVF whose SEC carries no SHA-384 code (edk2 before stable202302, which added steps 1 and 2 to
OvmfPkg/Sec/SecMain.c; Debian 12's OVMF, whose DXE volume has no TdTcg2Dxe either) measures nothing
into RTMR0: no events are predicted for it, with a warning (`sec_measures`).
"""
from __future__ import annotations

import hashlib
import struct
import uuid

from decoders.model import Node, Problem, Severity, Space
from decoders.measure.tdhob_build import build_td_hob
from decoders.ovmf.metadata import CFV, TD_HOB, TdxSection

RTMR0 = 1                                   # CC MR index of RTMR0 (UEFI 2.10 §38.4.1)
BANK = "sha384"
# MdePkg/Include/IndustryStandard/UefiTcgPlatform.h
EV_SEPARATOR = 0x00000004
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EFI_HANDOFF_TABLES2 = 0x8000000B

# GUIDs (MdePkg.dec, MdeModulePkg.dec, SecurityPkg.dec, OvmfPkg.dec)
gUefiOvmfPkgTokenSpaceGuid = uuid.UUID("93bb96af-b9f2-4eb8-9462-e0ba74564236")
gEfiGlobalVariableGuid = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
gEfiImageSecurityDatabaseGuid = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
gEfiSystemNvDataFvGuid = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
gEfiAuthenticatedVariableGuid = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")

# TdxMeasurementHob.c
HANDOFF_TABLE_DESC = b"TdxTable\0"
FV_HANDOFF_TABLE_DESC = b"Fv(XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)\0"   # 41 bytes with its NUL
# TdTcg2Dxe.c mVariableType, in measurement order, then dbt (EFI_IMAGE_SECURITY_DATABASE2) if present.
SECURE_BOOT_VARIABLES = (("SecureBoot", gEfiGlobalVariableGuid), ("PK", gEfiGlobalVariableGuid),
                         ("KEK", gEfiGlobalVariableGuid), ("db", gEfiImageSecurityDatabaseGuid),
                         ("dbx", gEfiImageSecurityDatabaseGuid))
DBT = ("dbt", gEfiImageSecurityDatabaseGuid)

# PiFirmwareVolume.h: sizeof (EFI_FIRMWARE_VOLUME_HEADER) with its one BlockMap entry; the
# extension header is FvName + ExtHeaderSize.
FV_HEADER_SIZE = 0x40
FV_EXT_HEADER_SIZE = 20
# VariableFormat.h
VARIABLE_STORE_HEADER_SIZE = 28
VAR_ADDED, VAR_DELETED, VAR_IN_DELETED_TRANSITION, VAR_HEADER_VALID_ONLY = 0x3F, 0xFD, 0xFE, 0x7F
VARIABLE_STORE_FORMATTED, VARIABLE_STORE_HEALTHY = 0x5A, 0xFE
# PlatformValidateNvVarStore accepts only these State values.
_VALID_STATES = {VAR_HEADER_VALID_ONLY, VAR_ADDED, VAR_ADDED & VAR_DELETED, VAR_ADDED & VAR_IN_DELETED_TRANSITION,
                 VAR_ADDED & VAR_IN_DELETED_TRANSITION & VAR_DELETED}
# A variable is at least a 60-byte header: a 528 KiB store holds fewer than 9,000. Bounds crafted input.
MAX_VARIABLES = 16384

DEPENDS = [
    "EV_PLATFORM_CONFIG_FLAGS \"ACPI DATA\": QEMU's etc/table-loader, then each ACPI blob it allocates "
    "(OvmfPkg/Library/AcpiPlatformLib/QemuFwCfgAcpi.c, PCR1): the machine type, devices, CPUs and memory",
    "EV_EFI_VARIABLE_BOOT for BootOrder and each Boot#### it names, at ReadyToBoot (TdTcg2Dxe.c "
    "MeasureAllBootVariables, PCR1): the boot options BDS builds from the VM's devices and QEMU's bootorder",
    "EV_EFI_VARIABLE_AUTHORITY for the db entry that verified each image and what the OS loader adds "
    "(shim's SbatLevel, MokListTrusted), PCR7: the OS loader and the keys",
    "EV_TABLE_OF_DEVICES (CPU locations, PCR1) only when PcdTpmPlatformClass is the server class "
    "(not OVMF's default); EV_EFI_ACTION \"UEFI Debug Mode\" first when PcdFirmwareDebuggerInitialized",
    "EV_EFI_VARIABLE_DRIVER_CONFIG again for a Secure Boot variable written during the boot (key enrollment: "
    "MdeModulePkg/Universal/Variable/RuntimeDxe/Measurement.c, PCR7)",
    "TDVFs older than edk2 2025.02 also extend an EV_SEPARATOR into RTMR0 at ReadyToBoot (the real CC "
    "event logs show it after the boot variables); this tree extends that separator into RTMR1 only",
]


class TdxPrediction:
    """The MRTD in each page order, RTMR0 as far as the image, the HOB and the VARS decide it, and
    the TD HOB QEMU builds. A plain class: `measure --tdx` starts without the dataclasses module."""

    def __init__(self, name: str, memory: int, secure_boot_build: bool | None = None):
        self.name = name
        self.memory = memory
        self.mrtd: list = []                        # decoders.mrtd.MrtdResult, one per order
        self.rtmr0 = None                           # decoders.measure.model.Prediction
        self.td_hob: Node | None = None
        self.td_hob_bytes = b""
        self.td_hob_address = 0
        self.problems: list[Problem] = []
        self.depends: list[str] = []
        self.secure_boot_build = secure_boot_build  # None: not known, the Secure Boot events undecided
        self.sec_measures = True                    # False: a SEC without SHA-384 (edk2 before 2023)
        self.metadata: Node | None = None

    def node(self) -> Node:
        """The `tdx-prediction` node: a predicted-register per MRTD order, the RTMR0 events, the
        RTMR0 register as far as predicted, the TD HOB."""
        from decoders.measure.model import register_node

        size = _size_text(self.memory)
        root = Node("tdx-prediction", f"TDX measurements of {self.name} ({size} of RAM, QEMU q35)")
        root.add("Image", self.name)
        root.add("Memory", self.memory, display=f"0x{self.memory:x} ({size})")
        root.add("SecureBootBuild", self.secure_boot_build, display={
            True: "given: AuthVariableLib and PcdSecureBootSupported (SECURE_BOOT_ENABLE=TRUE)",
            False: "given: no Secure Boot support (empty variable store, no SecureBoot variable)",
            None: "not known: the Secure Boot policy events are not predicted (SecureBootConfigDxe in the "
                  "DXE volume marks a build with it)"}[self.secure_boot_build])
        root.add("SecMeasures", self.sec_measures,
                 display=("yes: SHA-384 in SEC, the TD HOB and the CFV are measured" if self.sec_measures
                          else "no: no SHA-384 in SEC (edk2 before 2023.02), nothing measured before DXE"))
        root.problems.extend(self.problems)
        for r in self.mrtd:
            if r.digest is not None:
                reg = register_node("MRTD", BANK, r.digest)
            else:
                reg = Node("predicted-register", f"MRTD ({BANK}) not computed")
                reg.add("Register", "MRTD")
                reg.add("Bank", BANK)
                reg.add("Value", None, display="not computed")
                reg.problems.extend(r.problems)
            reg.title += f" [{r.order}]"
            reg.add("Order", r.order)
            root.append(reg)
        if self.rtmr0 is not None:
            for ev in self.rtmr0.event_nodes():
                root.append(ev)
            root.append(self._rtmr0_node())
        if self.td_hob is not None:
            root.append(self.td_hob)
        return root

    def _rtmr0_node(self) -> Node:
        from decoders.measure.model import register_node

        value = self.rtmr0.registers()[BANK].get(RTMR0, bytes(48))
        node = register_node("RTMR0", BANK, value, len(self.rtmr0.events))
        node.title = (f"RTMR0 ({BANK}) as far as predicted = {value.hex()}, {len(self.rtmr0.events)} events; "
                      f"{len(self.depends)} kinds of later events extend it")
        node.add("Complete", False, display="no: later events extend RTMR0")
        node.add("Later", list(self.depends), display="; ".join(self.depends))
        return node


def _size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


# -- the build: Secure Boot support ------------------------------------------------------------

# SECURE_BOOT_ENABLE gates together (OvmfPkgX64.dsc/.fdf, IntelTdx/IntelTdxX64.dsc/.fdf): SecurityPkg's
# AuthVariableLib, PcdSecureBootSupported and the SecureBootConfigDxe driver in the DXE volume.
SECURE_BOOT_CONFIG_DXE = uuid.UUID("f0e6a44f-7195-41c3-ac64-54f202cd0a21")   # SecureBootConfigDxe.inf FILE_GUID
DXE_CORE = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")                 # DxeMain.inf FILE_GUID


def detect_secure_boot_build(image: bytes, name: str = "image") -> bool | None:
    """Whether the image was built with SECURE_BOOT_ENABLE: its DXE volume holds SecureBootConfigDxe.
    None when no DXE core was found (the DXE volume could not be decoded). This decodes the whole
    flash, LZMA included (a few hundred ms): it is not part of predict_tdx, which reads only the
    metadata and the CFV; a caller that can spend the time passes the answer as secure_boot_build."""
    from decoders.fd import decode_image

    found = set()
    for node in decode_image(image, name=name).walk():
        if node.kind == "ffs":
            found.add(node.get("Name"))
    if DXE_CORE not in found:
        return None
    return SECURE_BOOT_CONFIG_DXE in found


# -- the prediction ------------------------------------------------------------------------------

# SHA-512's first two round constants as a table of UINT64 holds them, little-endian (FIPS 180-4
# §4.2.3; SHA-384 uses the same table). TdxHelperMeasureTdHob hashes in SEC through BaseCryptLib's
# Sha384HashAll, so a SEC that measures carries this table in the uncompressed part of the flash;
# edk2 2022.11's OvmfPkgX64 SEC (Debian 12) has no hash code at all.
_SHA512_K0_K1 = struct.pack("<QQ", 0x428A2F98D728AE22, 0x7137449123EF65CD)


def sec_measures(image: bytes) -> bool:
    """Whether the image's SEC can hash: the SHA-512/384 constants lie in its uncompressed bytes
    (in compressed volumes they would not appear as such)."""
    find = getattr(image, "find", None)            # bytes, bytearray, mmap; a memoryview is copied
    return (find(_SHA512_K0_K1) if find is not None else bytes(image).find(_SHA512_K0_K1)) >= 0


def predict_tdx(image: bytes, name: str, *, memory: int = 2 << 30, vars_data: bytes | None = None,
                orders=("per-page", "two-pass"), secure_boot_build: bool | None = None,
                new_hash=None) -> TdxPrediction:
    """MRTD, RTMR0 and TD HOB of the TDVF image `image` on a q35 QEMU with `memory` bytes of RAM.

    `vars_data` stands for the image's CFV (the unified image rebuilt as that VARS + the image's
    CODE: a TD has no separate flash); it must have the CFV's size. `secure_boot_build` says whether
    the image was built with SECURE_BOOT_ENABLE (detect_secure_boot_build can tell, slowly); None
    leaves the Secure Boot policy events out of the prediction and names them in `depends`. Only the
    GUIDed table, the TDVF descriptor, the CFV and its variable store are read. `new_hash`: as for
    decoders.mrtd.compute_mrtds."""
    from decoders.measure.model import Prediction
    from decoders.mrtd import compute_mrtds, image_tdx_metadata
    from decoders.ovmf.metadata import tdx_sections

    out = TdxPrediction(name=name, memory=memory, secure_boot_build=secure_boot_build)
    out.rtmr0 = Prediction(banks=(BANK,))
    meta = image_tdx_metadata(image, name)
    if meta is None:
        out.problems.append(Problem(None, Severity.ERROR, f"{name} has no TDX metadata (no TDVF descriptor in "
                                                          "its OVMF GUIDed table): it is not a TDVF image"))
        return out
    out.metadata = meta
    out.problems.extend(p for _, p in meta.all_problems() if p.severity == Severity.ERROR)
    sections = tdx_sections(meta)
    for result in compute_mrtds(image, sections, orders, new_hash):
        out.mrtd.append(result)
        out.problems.extend(p for p in result.problems if p not in out.problems)

    hob_bytes, gpa, problems = build_td_hob(sections, memory)
    out.td_hob_bytes, out.td_hob_address = hob_bytes, gpa
    out.td_hob = _td_hob_node(hob_bytes, gpa, sections, memory, problems)
    out.problems.extend(problems)
    out.depends = list(DEPENDS)
    image_space = Space(name, image, (1 << 32) - len(image))

    if not sec_measures(image):
        out.sec_measures = False
        # A fact about a valid image (what it will measure), not a problem with the input: a note.
        out.problems.append(Problem(None, Severity.INFO, (
            "no SHA-384 code in the image's uncompressed volumes: its SEC predates edk2-stable202302, "
            "which added the TD HOB and CFV measurement to SEC (OvmfPkg/Sec/SecMain.c, TdxHelperLib); such a "
            "TDVF extends nothing into RTMR0 before DXE, and RTMR0 gets later events only if its DXE volume "
            "holds TdTcg2Dxe (Debian 12's OVMF has none: `fwinspect fd` lists it when present)")))
        out.depends.insert(0, "whether DXE measures at all (TdTcg2Dxe in the compressed DXE volume); this "
                              "image's SEC measures neither the TD HOB nor the CFV")
        return out
    if not hob_bytes:
        out.depends.insert(0, "the TD HOB (QEMU would not build one: see the problems), then the CFV and "
                              "Secure Boot events")
        return out
    out.rtmr0.events.append(_td_hob_event(hob_bytes, gpa, out.td_hob.space))

    cfv = _cfv(sections, image, image_space, vars_data, out.problems)
    if cfv is None:
        out.depends.insert(0, "the CFV (its bytes are not available: see the problems), then the Secure "
                              "Boot events")
        return out
    section, data, space, offset = cfv
    out.rtmr0.events.append(_cfv_event(section, data, space, offset))
    if secure_boot_build is None:
        out.problems.append(Problem(None, Severity.INFO, (
            "whether the image was built with Secure Boot support (SECURE_BOOT_ENABLE) is not known: the "
            "Secure Boot policy events (SecureBoot, PK, KEK, db, dbx, separator) are not predicted; with it "
            "the CFV's variables are measured, without it all five are logged empty (such a build's DXE "
            "volume holds SecureBootConfigDxe, which `fwinspect fd` lists)")))
        out.depends.insert(0, "the Secure Boot policy (TdTcg2Dxe.c MeasureSecureBootPolicy: SecureBoot, PK, "
                              "KEK, db, dbx, dbt if present, EV_SEPARATOR): its data depend on whether the "
                              "image was built with SECURE_BOOT_ENABLE")
        return out
    out.problems.append(Problem(None, Severity.INFO, (
        "the Secure Boot events are those of a build with Secure Boot support (SECURE_BOOT_ENABLE=TRUE: "
        "AuthVariableLib, the CFV's variables copied into the store)") if secure_boot_build else (
        "the Secure Boot events are those of a build without Secure Boot support: an empty variable store "
        "and no SecureBoot variable")))
    out.rtmr0.events.extend(_secure_boot_events(data, space, offset, secure_boot_build, out.problems))
    return out


def _td_hob_node(hob_bytes: bytes, gpa: int, sections: list[TdxSection], memory: int,
                 problems: list[Problem]) -> Node:
    from decoders.hob import decode_hob_list, lint_td_hob

    size = _size_text(memory)
    if not hob_bytes:
        node = Node("hob-list", f"TD HOB: QEMU builds none for this image with {size} of RAM")
        why = next((p.message for p in problems if p.severity == Severity.ERROR), "see the problems")
        node.problem(None, f"no TD HOB: {why}")
        return node
    space = Space(f"TD HOB (QEMU q35, {size})", hob_bytes, base=gpa)
    node = decode_hob_list(space, gpa)
    hob = next(s for s in sections if s.type == TD_HOB)
    problems.extend(lint_td_hob(node, td_hob_size=hob.memory_data_size))
    node.title = f"TD HOB as QEMU builds it ({size} of RAM): " + node.title
    return node


def _td_hob_event(hob_bytes: bytes, gpa: int, space: Space):
    from decoders.measure.model import PredictedEvent

    measured = len(hob_bytes) - 8        # up to, not including, the 8-byte END HOB (SecTdxHelper.c)
    data = struct.pack("<B9sQ16sQ", len(HANDOFF_TABLE_DESC), HANDOFF_TABLE_DESC, 1,
                       gUefiOvmfPkgTokenSpaceGuid.bytes_le, gpa)
    return PredictedEvent(RTMR0, EV_EFI_HANDOFF_TABLES2, {BANK: hashlib.sha384(hob_bytes[:measured]).digest()},
                          data, f"TD HOB at 0x{gpa:x}, {measured} bytes before the END HOB",
                          "TdxHelperMeasureTdHob: the TD HOB QEMU wrote", space, 0, measured, cc=True)


def _cfv(sections: list[TdxSection], image: bytes, image_space: Space, vars_data: bytes | None,
         problems: list[Problem]):
    """(section, CFV bytes, their space, offset in it) or None."""
    section = next((s for s in sections if s.type == CFV), None)
    if section is None:
        problems.append(Problem(None, Severity.ERROR, "no CFV section: TdxHelperMeasureCfvImage would hash "
                                                      "PcdCfvRawDataSize bytes the metadata does not describe"))
        return None
    if vars_data is not None:
        if len(vars_data) != section.raw_data_size:
            problems.append(Problem(None, Severity.ERROR,
                                    f"the VARS file has {len(vars_data)} bytes, the CFV section "
                                    f"{section.raw_data_size}: it cannot stand for this image's CFV"))
            if section.file_offset is None:
                return None
        else:
            return section, bytes(vars_data), Space("VARS", vars_data), 0
    if section.file_offset is None or section.file_offset + section.raw_data_size > len(image):
        problems.append(Problem(section.at, Severity.ERROR,
                                "the CFV is not in this file (a CODE-only image?): pass the VARS file"))
        return None
    start = section.file_offset
    return section, bytes(image[start:start + section.raw_data_size]), image_space, start


def _fv_name(cfv: bytes) -> uuid.UUID | None:
    """TdxMeasurementHob.c GetFvName: the extension header's FvName, if the header has one."""
    if len(cfv) < FV_HEADER_SIZE:
        return None
    ext = struct.unpack_from("<H", cfv, 0x34)[0]          # EFI_FIRMWARE_VOLUME_HEADER.ExtHeaderOffset
    if ext < FV_HEADER_SIZE or ext + FV_EXT_HEADER_SIZE > len(cfv):
        return None
    return uuid.UUID(bytes_le=bytes(cfv[ext:ext + 16]))


def _cfv_event(section: TdxSection, cfv: bytes, space: Space, offset: int):
    from decoders.measure.model import PredictedEvent

    name = _fv_name(cfv)
    # AsciiSPrint "%g" prints a GUID in upper case (MdePkg/Library/BasePrintLib).
    desc = FV_HANDOFF_TABLE_DESC if name is None else f"Fv({str(name).upper()})".encode("ascii") + b"\0"
    data = struct.pack("<B41sQQ", len(FV_HANDOFF_TABLE_DESC), desc, section.memory_address, section.raw_data_size)
    source = (f"CFV {'(the VARS file) ' if space.name == 'VARS' else ''}at GPA 0x{section.memory_address:x}, "
              f"{section.raw_data_size:#x} bytes")
    return PredictedEvent(RTMR0, EV_EFI_PLATFORM_FIRMWARE_BLOB2, {BANK: hashlib.sha384(cfv).digest()}, data,
                          source, "TdxHelperMeasureCfvImage: the CFV (variable store)", space, offset, len(cfv),
                          cc=True)


def _secure_boot_events(cfv: bytes, space: Space, offset: int, sb_build: bool, problems: list[Problem]):
    """TdTcg2Dxe.c MeasureSecureBootPolicy into MR index 1: the policy variables as the image's
    store starts with them (empty for a build without Secure Boot support), then the separator."""
    from decoders.measure.model import PredictedEvent
    from decoders.measure.tpm_vars import Store, secure_boot_value, variable_data

    store = _cfv_store(cfv, problems, offset) if sb_build else None
    lookup = Store(store, "CFV", None) if store is not None else Store(None, "CFV")
    values: list[tuple[str, uuid.UUID, bytes, int | None, str]] = []
    for vname, guid in SECURE_BOOT_VARIABLES:
        if vname == "SecureBoot":
            if not sb_build:
                values.append((vname, guid, b"", None, "no SecureBoot variable (build without AuthVariableLib)"))
                continue
            found, why = secure_boot_value(lookup, True)
            values.append((vname, guid, found.data or b"", None, f"SecureBoot = {why} (AuthVariableLib)"))
            continue
        found = lookup.lookup(vname, guid)
        if found.data is None:
            values.append((vname, guid, b"", None, f"{vname} absent: logged with no data"))
        else:
            values.append((vname, guid, found.data, _data_offset(found.node), f"{vname}, {len(found.data)} bytes "
                                                                                 "from the variable store"))
    dbt = lookup.lookup(*DBT)
    if dbt.data is not None:
        values.append((DBT[0], DBT[1], dbt.data, _data_offset(dbt.node),
                       f"dbt, {len(dbt.data)} bytes from the variable store"))
    events = []
    for vname, guid, value, at, why in values:
        logged = variable_data(vname, guid, value)
        events.append(PredictedEvent(RTMR0, EV_EFI_VARIABLE_DRIVER_CONFIG, {BANK: hashlib.sha384(logged).digest()},
                                     logged, f"variable {vname}", why, space if at is not None else None,
                                     offset + at if at is not None else 0, len(value) if at is not None else 0,
                                     cc=True))
    events.append(PredictedEvent(RTMR0, EV_SEPARATOR, {BANK: hashlib.sha384(bytes(4)).digest()}, bytes(4),
                                 "separator after the Secure Boot policy (PCR7)", "MeasureSecureBootPolicy", cc=True))
    return events


def _data_offset(node: Node | None) -> int | None:
    f = node.field("Data") if node is not None else None
    return None if f is None else f.offset


# -- the variable store --------------------------------------------------------------------------

def _erased(data: bytes, start: int, end: int) -> bool:
    """PlatformInitLib CheckPaddingData: every byte 0xFF."""
    return data.count(b"\xff", start, end) == max(0, end - start)


def _cfv_store(cfv: bytes, problems: list[Problem], base: int = 0) -> Node | None:
    """The CFV's variable store (a decoders.nvvars `variable-store` node over the CFV's bytes) as
    TDVF's emulated store starts with it, or None when PlatformValidateNvVarStore
    (OvmfPkg/Library/PlatformInitLib/Platform.c) would refuse it: TDVF then starts from an empty
    store (PlatformInitEmuVariableNvStore only logs the error), which is a warning here."""
    from decoders.nvvars import decode_nv_body

    def refuse(at: int, why: str) -> None:
        problems.append(Problem(base + at, Severity.WARNING,
                                f"CFV variable store refused ({why}): TDVF starts with an empty store, so the "
                                "Secure Boot variables are predicted absent"))
        return None

    if len(cfv) < FV_HEADER_SIZE:
        return refuse(0, f"{len(cfv)} bytes, shorter than a firmware volume header")
    zero, fs_guid, fv_length, sig, attrs, hlen, _cks, _ext, _res, rev = struct.unpack_from("<16s16sQ4sIHHHBB", cfv, 0)
    if (any(zero) or uuid.UUID(bytes_le=fs_guid) != gEfiSystemNvDataFvGuid or sig != b"_FVH" or attrs != 0x4FEFF
            or hlen & 1 or rev != 2 or fv_length != len(cfv)):
        return refuse(0, "FV header is not the NV variable FV's (signature, FileSystemGuid, attributes 0x4feff, "
                         "revision 2, FvLength = CFV size)")
    if hlen < FV_HEADER_SIZE or hlen + VARIABLE_STORE_HEADER_SIZE > len(cfv):
        return refuse(0x30, f"HeaderLength 0x{hlen:x} leaves no room for the variable store header")
    if sum(struct.unpack_from(f"<{hlen // 2}H", cfv, 0)) & 0xFFFF:
        return refuse(0x32, "FV header checksum is not 0")
    vsig, vsize, vformat, vstate = struct.unpack_from("<16sIBB", cfv, hlen)
    if (uuid.UUID(bytes_le=vsig) != gEfiAuthenticatedVariableGuid or vformat != VARIABLE_STORE_FORMATTED
            or vstate != VARIABLE_STORE_HEALTHY or vsize > fv_length - hlen or vsize < VARIABLE_STORE_HEADER_SIZE):
        return refuse(hlen, "VARIABLE_STORE_HEADER is not an authenticated, formatted, healthy store inside the FV")
    data = bytes(cfv)
    store = decode_nv_body(Space("CFV", data), hlen, fv_length - hlen, payloads=False)[0]
    for p in store.problems:
        if p.severity == Severity.ERROR:
            return refuse(p.offset or hlen, p.message)
    store_end = hlen + vsize
    pos = hlen + VARIABLE_STORE_HEADER_SIZE
    variables = [v for v in store.children if v.kind == "variable"]
    if len(variables) > MAX_VARIABLES:
        return refuse(pos, f"more than {MAX_VARIABLES} variables")
    for v in variables:
        if not _erased(data, pos, v.offset):
            return refuse(pos, f"padding before the variable at 0x{v.offset:x} is not erased")
        if v.get("State") not in _VALID_STATES:
            return refuse(v.offset + 2, f"variable State 0x{v.get('State'):02x}")
        if v.offset + v.size > store_end:
            return refuse(v.offset + 36, "variable runs past the store")
        pos = v.offset + v.size
    if not _erased(data, pos, store_end):
        # the walk ends at the first StartId that is not 0x55AA; after it all must be erased
        at = _align4(pos)
        return refuse(at, f"bytes after the last variable at 0x{at:x} are not erased")
    return store


def _align4(value: int) -> int:
    return (value + 3) & ~3


def read_variable_store(cfv: bytes, base: int,
                        problems: list[Problem]) -> dict[tuple[str, uuid.UUID], tuple[bytes, int]]:
    """The live variables of the CFV as TDVF's emulated store starts with them: {(name, vendor):
    (data, offset of the data + base)}, the record edk2's lookup finds (decoders.measure.tpm_vars
    Store); {} when the store would be refused (a warning in `problems`)."""
    from decoders.measure.tpm_vars import Store

    store = _cfv_store(cfv, problems, base)
    if store is None:
        return {}
    out = {}
    for key, node in Store(store, "CFV", None).by_key.items():
        out[key] = (bytes(node.get("Data")), base + _data_offset(node))
    return out
