"""Wire structures of TCG PC Client and CC event logs (construct declarations only).

Sources: TCG PC Client Platform Firmware Profile (PFP) spec 1.05 §10 ("Event Logging");
edk2 MdePkg/Include/IndustryStandard/UefiTcgPlatform.h, Tpm20.h; MdePkg/Include/Protocol/CcMeasurement.h;
tpm2-tools lib/efi_event.h. Names are the spec's so they can be grepped against the documents.
"""
from __future__ import annotations

from construct import Array, Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from decoders.guids import EFI_GUID

from decoders.tcg import (  # noqa: F401 - the numbers live there (no construct), re-exported here
    TPM_ALG_SHA1, TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512, TPM_ALG_SM3_256, ALGORITHMS,
    EV_PREBOOT_CERT, EV_POST_CODE, EV_UNUSED, EV_NO_ACTION, EV_SEPARATOR, EV_ACTION, EV_EVENT_TAG,
    EV_S_CRTM_CONTENTS, EV_S_CRTM_VERSION, EV_CPU_MICROCODE, EV_PLATFORM_CONFIG_FLAGS,
    EV_TABLE_OF_DEVICES, EV_COMPACT_HASH, EV_IPL, EV_IPL_PARTITION_DATA, EV_NONHOST_CODE,
    EV_NONHOST_CONFIG, EV_NONHOST_INFO, EV_OMIT_BOOT_DEVICE_EVENTS, EV_EFI_EVENT_BASE,
    EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT, EV_EFI_BOOT_SERVICES_APPLICATION,
    EV_EFI_BOOT_SERVICES_DRIVER, EV_EFI_RUNTIME_SERVICES_DRIVER, EV_EFI_GPT_EVENT, EV_EFI_ACTION,
    EV_EFI_PLATFORM_FIRMWARE_BLOB, EV_EFI_HANDOFF_TABLES, EV_EFI_PLATFORM_FIRMWARE_BLOB2,
    EV_EFI_HANDOFF_TABLES2, EV_EFI_VARIABLE_BOOT2, EV_EFI_HCRTM_EVENT, EV_EFI_VARIABLE_AUTHORITY,
    EV_EFI_SPDM_FIRMWARE_BLOB, EV_EFI_SPDM_FIRMWARE_CONFIG, EV_EFI_SPDM_DEVICE_POLICY,
    EV_EFI_SPDM_DEVICE_AUTHORITY, EVENT_TYPE_NAMES, alg_name, alg_id_from_name, event_type_name,
)

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

