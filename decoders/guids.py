"""Registry of well-known edk2 / UEFI / PI GUID names.

On the wire an EFI_GUID is { UINT32 Data1; UINT16 Data2; UINT16 Data3; UINT8 Data4[8]; } (UEFI 2.10
Appendix A, "EFI GUID Format"; edk2 MdePkg/Include/Uefi/UefiBaseType.h), every field little-endian
on x86: the first three fields are byte-swapped against the string form, which is
`uuid.UUID(bytes_le=...)`: `from_bytes` below, and the "G" member of decoders.layout records.
Names come from the edk2 package declarations ([Guids], [Protocols], [Ppis] of MdePkg.dec,
MdeModulePkg.dec, UefiCpuPkg.dec, OvmfPkg.dec, SecurityPkg.dec, ...), kept verbatim in the data
file `guid_names.txt` beside this module (generated from the .dec text of edk2 2022.11 and
edk2-stable202502), plus the few names below that no .dec declares (FDF volume names).
The table is read once, on the first look-up, so importing this module costs nothing.
Other modules may add names with `register()`; the first name registered for a GUID wins.
The GUIDs decoders dispatch on are the named constants at the end, each written once.
"""
from __future__ import annotations

import os
import threading
import uuid

_NAMES: dict[uuid.UUID, str] = {}
_PENDING: dict[uuid.UUID, str] = {}  # register() calls made before the table was read
_LOADED = False
_LOCK = threading.Lock()

# Names that no .dec declares: the FV names of OvmfPkg's FDF files (OvmfPkg/OvmfPkgX64.fdf
# FvNameGuid), C-file GUIDs of edk2 modules and GPT partition types (UEFI 2.10 §5.3.3 table 5-7;
# the Linux ones from the Discoverable Partitions Specification). Undeclared GUIDs that decoders
# dispatch on are named by their constants at the end.
_TABLE = """
763bed0d-de9f-48f5-81f1-3e90e1b1a015 SECFV
48db5e17-707c-472d-91cd-1613e7ef51b0 FVMAIN_COMPACT
6938079b-b503-4e3d-9d24-b28337a25806 PEIFV
7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1 DXEFV
58eb6a19-3699-4c68-a836-dacd8edcad4a CPU_INIT_MP_LIB_HOB_GUID
84681c08-6873-46f3-8bb7-ab661895a1b3 HASH_LIB_PEI_ROUTER_GUID
a291ce0e-dc09-11ee-9edb-7349d792af51 gOvmfFwCfgInfoHobGuid
0fc63daf-8483-4772-8e79-3d69d8477de4 Linux filesystem data
21686148-6449-6e6f-744e-656564454649 BIOS boot partition
"""


def _parse(text: str) -> None:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        g, n = line.split(None, 1)
        _NAMES.setdefault(uuid.UUID(g), n.strip())


def _names() -> dict[uuid.UUID, str]:
    global _LOADED
    if not _LOADED:
        with _LOCK:  # decoders run in worker threads; read the table exactly once
            if not _LOADED:
                # Beside this file (importlib.resources would cost more to import than the read).
                with open(os.path.join(os.path.dirname(__file__), "guid_names.txt"), encoding="ascii") as f:
                    _parse(f.read())
                _parse(_TABLE)
                for g, n in _PENDING.items():
                    _NAMES.setdefault(g, n)
                _PENDING.clear()
                _LOADED = True
    return _NAMES


def from_bytes(raw: bytes) -> uuid.UUID:
    """A GUID from its 16 wire bytes (EFI byte order)."""
    return uuid.UUID(bytes_le=bytes(raw))


def register(guid: str | uuid.UUID, name: str) -> uuid.UUID:
    """Name `guid` unless it already has a name (the edk2 table's names come first)."""
    g = guid if isinstance(guid, uuid.UUID) else uuid.UUID(guid)
    with _LOCK:
        (_NAMES if _LOADED else _PENDING).setdefault(g, name)
    return g


def name(guid: uuid.UUID) -> str | None:
    return _names().get(guid)


def describe(guid: uuid.UUID) -> str:
    """`NAME (guid)` when known, else the canonical upper-case GUID (as UEFITool prints it)."""
    n = _names().get(guid)
    text = str(guid).upper()
    return f"{n} ({text})" if n else text


def lookup(text: str) -> uuid.UUID | None:
    """A GUID by its registered name (case-insensitive) or its string form."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    low = text.lower()
    for g, n in _names().items():
        if n.lower() == low:
            return g
    return None


# -- GUIDs that decoders dispatch on, by their edk2 names (the names above give their text) -------
# MdePkg.dec, MdeModulePkg.dec: volumes and the variable store
gEfiFirmwareFileSystem2Guid = uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
gEfiFirmwareFileSystem3Guid = uuid.UUID("5473c07a-3dcb-4dca-bd6f-1e9689e7349a")
gEfiSystemNvDataFvGuid = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
gEfiAuthenticatedVariableGuid = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
gEfiVariableGuid = uuid.UUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
gEdkiiWorkingBlockSignatureGuid = uuid.UUID("9e58292b-7c68-497d-a0ce-6500fd9f1b95")
# variable vendor GUIDs (UEFI 2.10 §3.3, §32.6.1; SecurityPkg.dec; MdeModulePkg.dec; shim lib/guid.c)
gEfiGlobalVariableGuid = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
gEfiImageSecurityDatabaseGuid = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
gEfiSecureBootEnableDisableGuid = uuid.UUID("f0a30bc7-af08-4556-99c4-001009c93a44")
gEfiCustomModeEnableGuid = uuid.UUID("c076ec0c-7028-4399-a072-71ee5c448b9f")
gEfiVendorKeysNvGuid = uuid.UUID("9073e4e0-60ec-4b6e-9903-4c223c260f3c")
gMtcVendorGuid = uuid.UUID("eb704011-1402-11d3-8e77-00a0c969723b")
gEfiMemoryTypeInformationGuid = uuid.UUID("4c19049f-4137-4dd3-9c10-8b97a83ffdfa")
SHIM_LOCK_GUID = uuid.UUID("605dab50-e046-4300-abb6-3dd810dd8b23")
# configuration tables (UEFI 2.10 §4.6; MdePkg.dec)
gEfiHobListGuid = uuid.UUID("7739f24c-93d7-11d4-9a3a-0090273fc14d")
gEfiAcpi20TableGuid = uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881")
gEfiAcpi10TableGuid = uuid.UUID("eb9d2d30-2d88-11d3-9a16-0090273fc14d")
gEfiDebugImageInfoTableGuid = uuid.UUID("49152e77-1ada-4764-b7a2-7afefed95e8b")
gEfiTcg2FinalEventsTableGuid = uuid.UUID("1e2ed096-30e2-4254-bd89-863bbef82325")
gEfiCcFinalEventsTableGuid = uuid.UUID("dd4a4648-2de7-4665-964d-21d9ef5fb446")
# HOBs (MdePkg/Include/Guid/MemoryAllocationHob.h; the GUID HOBs OVMF and TDVF build; td-shim's E820)
gEfiHobMemoryAllocStackGuid = uuid.UUID("4ed4bf27-4092-42e9-807d-527b1d00c9bd")
gEfiHobMemoryAllocBspStoreGuid = uuid.UUID("564b33cd-c92a-4593-90bf-2473e43c6322")
gEfiHobMemoryAllocModuleGuid = uuid.UUID("f8e21975-0899-4f58-a4be-5525a9c6d77a")
gUefiOvmfPkgPlatformInfoGuid = uuid.UUID("dec9b486-1f16-47c7-8f68-df1a41888ba5")
gTcgEventEntryHobGuid = uuid.UUID("2b9ffb52-1b13-416f-a87b-bc930def92a8")
gTcgEvent2EntryHobGuid = uuid.UUID("d26c221e-2430-4c8a-9170-3fcb4500413f")
gCcEventEntryHobGuid = uuid.UUID("20f8fd36-6d00-40fb-b704-d12c153c62eb")
gEdkiiMigratedFvInfoGuid = uuid.UUID("c1ab12f7-74aa-408d-a2f4-c6cefd179871")
gUefiOvmfPkgTdxAcpiHobGuid = uuid.UUID("6a0c5870-d4ed-44f4-a135-dd238b6f0c8d")
gEfiSecPlatformInformation2PpiGuid = uuid.UUID("9e9f374b-8f16-4230-9824-5846ee766a97")
gPcdDataBaseHobGuid = uuid.UUID("ea296d92-0b69-423c-8c28-33b4e0a91268")
TD_E820_TABLE_HOB_GUID = uuid.UUID("8f8072ea-3486-4b47-86a7-2353b88a8773")
# signature types (MdePkg/Include/Guid/ImageAuthentication.h; UEFI 2.10 §32.4.1)
gEfiCertSha256Guid = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328")
gEfiCertRsa2048Guid = uuid.UUID("3c5766e8-269c-4e34-aa14-ed776e85b3b6")
gEfiCertRsa2048Sha256Guid = uuid.UUID("e2b36190-879b-4a3d-ad8d-f2e7bba32784")
gEfiCertSha1Guid = uuid.UUID("826ca512-cf10-4ac9-b187-be01496631bd")
gEfiCertRsa2048Sha1Guid = uuid.UUID("67f8444f-8743-48f1-a328-1eaab8736080")
gEfiCertX509Guid = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
gEfiCertSha224Guid = uuid.UUID("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd")
gEfiCertSha384Guid = uuid.UUID("ff3e5307-9fd0-48c9-85f1-8ad56c701e01")
gEfiCertSha512Guid = uuid.UUID("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a")
gEfiCertX509Sha256Guid = uuid.UUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")
gEfiCertX509Sha384Guid = uuid.UUID("7076876e-80c2-4ee6-aad2-28b349a6865b")
gEfiCertX509Sha512Guid = uuid.UUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d")
gEfiCertPkcs7Guid = uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
# firmware volumes and GUIDed sections (MdePkg.dec, MdeModulePkg.dec)
gEfiFirmwareVolumeTopFileGuid = uuid.UUID("1ba0062e-c779-4582-8566-336ae8f78f09")
# device path vendor nodes with their own text (MdePkg/Include/Guid/PcAnsi.h; DevicePathToText.c)
gEfiPcAnsiGuid = uuid.UUID("e0c14753-f9be-11d2-9a0c-0090273fc14d")
gEfiVT100Guid = uuid.UUID("dfa66065-b419-11d3-9a2d-0090273fc14d")
gEfiVT100PlusGuid = uuid.UUID("7baec70b-57e0-4c76-8e87-2f9e28088343")
gEfiVTUTF8Guid = uuid.UUID("ad15a0d6-8bec-4acf-a073-d01de77e2d88")
gEfiUartDevicePathGuid = uuid.UUID("37499a9d-542f-4c89-a026-35da142094e4")
gEfiSasDevicePathGuid = uuid.UUID("d487ddb4-008b-11d9-afdc-001083ffca4d")
# the reset-vector GUIDed table (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm, OvmfPkg/Include/WorkArea.h)
# and the TDX metadata descriptor
OvmfTableFooterGuid = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
SevEsResetBlockGuid = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
SevSecretBlockGuid = uuid.UUID("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
SevFwHashBlockGuid = uuid.UUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
OvmfSevMetadataOffsetGuid = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc")
TdxMetadataOffsetGuid = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
IgvmMetadataOffsetGuid = uuid.UUID("784fa70e-3176-4677-8a20-04b68699e374")
SvsmInfoGuid = uuid.UUID("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd")
TdxMetadataGuid = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")

# The constants above that no .dec declares name themselves (register() does not read the table).
for _name in ("SHIM_LOCK_GUID", "TD_E820_TABLE_HOB_GUID", "OvmfTableFooterGuid", "SevEsResetBlockGuid",
              "SevSecretBlockGuid", "SevFwHashBlockGuid", "OvmfSevMetadataOffsetGuid", "TdxMetadataOffsetGuid",
              "IgvmMetadataOffsetGuid", "SvsmInfoGuid", "TdxMetadataGuid"):
    register(globals()[_name], _name)
