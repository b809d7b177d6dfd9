"""Wire structures of TCG PC Client and CC event logs (construct declarations only).

Sources: TCG PC Client Platform Firmware Profile (PFP) spec 1.05 §10 ("Event Logging");
edk2 MdePkg/Include/IndustryStandard/UefiTcgPlatform.h, Tpm20.h; MdePkg/Include/Protocol/CcMeasurement.h;
tpm2-tools lib/efi_event.h. Names are the spec's so they can be grepped against the documents.
"""
from __future__ import annotations

from construct import Array, Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from decoders.guids import EFI_GUID

# -- algorithm ids (edk2 MdePkg/Include/IndustryStandard/Tpm20.h, TPM_ALG_*) ---------------------
TPM_ALG_SHA1 = 0x0004
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SHA384 = 0x000C
TPM_ALG_SHA512 = 0x000D
TPM_ALG_SM3_256 = 0x0012

# id -> (name as tpm2-tools prints it, digest size)
ALGORITHMS: dict[int, tuple[str, int]] = {
    TPM_ALG_SHA1: ("sha1", 20),
    TPM_ALG_SHA256: ("sha256", 32),
    TPM_ALG_SHA384: ("sha384", 48),
    TPM_ALG_SHA512: ("sha512", 64),
    TPM_ALG_SM3_256: ("sm3_256", 32),
}


def alg_name(alg_id: int) -> str:
    return ALGORITHMS[alg_id][0] if alg_id in ALGORITHMS else f"0x{alg_id:04x}"


def alg_id_from_name(name: str) -> int | None:
    for k, (n, _size) in ALGORITHMS.items():
        if n == name:
            return k
    if name.startswith("0x"):
        try:
            return int(name, 16)
        except ValueError:
            return None
    return None


# -- event types (PFP §10.4.1 table 9; edk2 UefiTcgPlatform.h) ----------------------------------
EV_PREBOOT_CERT = 0x0
EV_POST_CODE = 0x1
EV_UNUSED = 0x2
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_ACTION = 0x5
EV_EVENT_TAG = 0x6
EV_S_CRTM_CONTENTS = 0x7
EV_S_CRTM_VERSION = 0x8
EV_CPU_MICROCODE = 0x9
EV_PLATFORM_CONFIG_FLAGS = 0xA
EV_TABLE_OF_DEVICES = 0xB
EV_COMPACT_HASH = 0xC
EV_IPL = 0xD
EV_IPL_PARTITION_DATA = 0xE
EV_NONHOST_CODE = 0xF
EV_NONHOST_CONFIG = 0x10
EV_NONHOST_INFO = 0x11
EV_OMIT_BOOT_DEVICE_EVENTS = 0x12
EV_EFI_EVENT_BASE = 0x80000000
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_VARIABLE_BOOT = 0x80000002
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
EV_EFI_GPT_EVENT = 0x80000006
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
EV_EFI_HANDOFF_TABLES = 0x80000009
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EFI_HANDOFF_TABLES2 = 0x8000000B
EV_EFI_VARIABLE_BOOT2 = 0x8000000C
EV_EFI_HCRTM_EVENT = 0x80000010
EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2
EV_EFI_SPDM_DEVICE_POLICY = 0x800000E3
EV_EFI_SPDM_DEVICE_AUTHORITY = 0x800000E4

EVENT_TYPE_NAMES: dict[int, str] = {
    v: k for k, v in dict(globals()).items()
    if k.startswith("EV_") and isinstance(v, int) and k != "EV_EFI_EVENT_BASE"
}


def event_type_name(value: int) -> str | None:
    return EVENT_TYPE_NAMES.get(value)


# -- TCG_PCR_EVENT: the SHA-1 (TPM 1.2) event, also the first event of every crypto-agile log ---
TCG_PCR_EVENT_HDR = Struct(
    "PCRIndex" / Int32ul,
    "EventType" / Int32ul,
    "Digest" / Bytes(20),
    "EventSize" / Int32ul,
)

# TCG_EfiSpecIDEventStruct (PFP §10.4.5.1 "Specification ID Version Event"), fixed part
TCG_EfiSpecIdEventStruct = Struct(
    "signature" / Bytes(16),
    "platformClass" / Int32ul,
    "specVersionMinor" / Int8ul,
    "specVersionMajor" / Int8ul,
    "specErrata" / Int8ul,
    "uintnSize" / Int8ul,
    "numberOfAlgorithms" / Int32ul,
)
TCG_EfiSpecIdEventAlgorithmSize = Struct(
    "algorithmId" / Int16ul,
    "digestSize" / Int16ul,
)

# TCG_PCR_EVENT2 / CC_EVENT header up to the digest list (PFP §10.2.2; CcMeasurement.h)
TCG_PCR_EVENT2_HDR = Struct(
    "PCRIndex" / Int32ul,
    "EventType" / Int32ul,
    "count" / Int32ul,  # TPML_DIGEST_VALUES.count
)
TPMT_HA_HDR = Struct("hashAlg" / Int16ul)
EVENT_SIZE = Struct("EventSize" / Int32ul)

# -- event data structures (PFP §10.2 / UefiTcgPlatform.h) --------------------------------------
UEFI_VARIABLE_DATA_HDR = Struct(
    "VariableName" / EFI_GUID,
    "UnicodeNameLength" / Int64ul,   # in CHAR16, no NUL
    "VariableDataLength" / Int64ul,
)
UEFI_IMAGE_LOAD_EVENT_HDR = Struct(
    "ImageLocationInMemory" / Int64ul,
    "ImageLengthInMemory" / Int64ul,
    "ImageLinkTimeAddress" / Int64ul,
    "LengthOfDevicePath" / Int64ul,
)
UEFI_PLATFORM_FIRMWARE_BLOB = Struct(
    "BlobBase" / Int64ul,
    "BlobLength" / Int64ul,
)
UEFI_HANDOFF_TABLE_POINTERS_HDR = Struct("NumberOfTables" / Int64ul)
EFI_CONFIGURATION_TABLE = Struct(
    "VendorGuid" / EFI_GUID,
    "VendorTable" / Int64ul,
)
# TCG_PCClientTaggedEvent (PFP §10.4.2.1)
TCG_PCClientTaggedEvent_HDR = Struct(
    "taggedEventID" / Int32ul,
    "taggedEventDataSize" / Int32ul,
)
# UEFI_PARTITION_TABLE_HEADER (UEFI spec §5.3.2) as carried in UEFI_GPT_DATA
UEFI_PARTITION_TABLE_HEADER = Struct(
    "Signature" / Bytes(8),
    "Revision" / Int32ul,
    "HeaderSize" / Int32ul,
    "HeaderCRC32" / Int32ul,
    "Reserved" / Int32ul,
    "MyLBA" / Int64ul,
    "AlternateLBA" / Int64ul,
    "FirstUsableLBA" / Int64ul,
    "LastUsableLBA" / Int64ul,
    "DiskGUID" / EFI_GUID,
    "PartitionEntryLBA" / Int64ul,
    "NumberOfPartitionEntries" / Int32ul,
    "SizeOfPartitionEntry" / Int32ul,
    "PartitionEntryArrayCRC32" / Int32ul,
)
UEFI_PARTITION_ENTRY = Struct(
    "PartitionTypeGUID" / EFI_GUID,
    "UniquePartitionGUID" / EFI_GUID,
    "StartingLBA" / Int64ul,
    "EndingLBA" / Int64ul,
    "Attributes" / Int64ul,
    "PartitionName" / Bytes(72),
)
# SP800-155 Event (PFP §10.4.5.3 TCG_Sp800_155_PlatformId_Event), fixed head
TCG_Sp800_155_PlatformId_Event_HDR = Struct(
    "Signature" / Bytes(16),
    "VendorId" / Int32ul,
    "ReferenceManifestGuid" / EFI_GUID,
)

# TDX quote v4 (Intel TDX DCAP Quoting Library API, "Quote Format" / sgx_quote4_header_t) ---------
TDX_QUOTE_HEADER_V4 = Struct(
    "Version" / Int16ul,
    "AttestationKeyType" / Int16ul,
    "TeeType" / Int32ul,
    "QeSvn" / Int16ul,     # reserved in v4
    "PceSvn" / Int16ul,    # reserved in v4
    "QeVendorId" / Bytes(16),
    "UserData" / Bytes(20),
)
# TD report body (Intel TDX DCAP Quoting Library API, "TD Quote Body"; sgx_quote_4.h sgx_report2_body_t)
TD_QUOTE_BODY_V4 = Struct(
    "TEE_TCB_SVN" / Bytes(16),
    "MRSEAM" / Bytes(48),
    "MRSIGNERSEAM" / Bytes(48),
    "SEAMATTRIBUTES" / Bytes(8),
    "TDATTRIBUTES" / Bytes(8),
    "XFAM" / Bytes(8),
    "MRTD" / Bytes(48),
    "MRCONFIGID" / Bytes(48),
    "MROWNER" / Bytes(48),
    "MROWNERCONFIG" / Bytes(48),
    "RTMR" / Array(4, Bytes(48)),
    "REPORTDATA" / Bytes(64),
)
QUOTE_SIGNATURE_DATA_LEN = Struct("SignatureDataLength" / Int32ul)

