"""Wire structures of TCG PC Client and CC event logs (declarations only, as decoders.layout records).

Sources: TCG PC Client Platform Firmware Profile (PFP) spec 1.05 §10 ("Event Logging");
edk2 MdePkg/Include/IndustryStandard/UefiTcgPlatform.h, Tpm20.h; MdePkg/Include/Protocol/CcMeasurement.h;
tpm2-tools lib/efi_event.h. Names are the spec's so they can be grepped against the documents.
All little-endian; GUIDs ("G") read as uuid.UUID.
"""
from __future__ import annotations

from decoders.layout import Layout

from decoders.tcg import (  # noqa: F401 - the numbers live there, re-exported here
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
    TCG_PCR_EVENT_HDR,
)

# -- TCG_PCR_EVENT: the SHA-1 (TPM 1.2) event header is decoders.tcg.TCG_PCR_EVENT_HDR (above) ---

# TCG_EfiSpecIDEventStruct (PFP §10.4.5.1 "Specification ID Version Event"), fixed part
TCG_EfiSpecIdEventStruct = Layout(
    "TCG_EfiSpecIdEventStruct",
    ("signature", "16s"),
    ("platformClass", "I"),
    ("specVersionMinor", "B"),
    ("specVersionMajor", "B"),
    ("specErrata", "B"),
    ("uintnSize", "B"),
    ("numberOfAlgorithms", "I"),
)
TCG_EfiSpecIdEventAlgorithmSize = Layout(
    "TCG_EfiSpecIdEventAlgorithmSize",
    ("algorithmId", "H"),
    ("digestSize", "H"),
)

# TCG_PCR_EVENT2 / CC_EVENT header up to the digest list (PFP §10.2.2; CcMeasurement.h)
TCG_PCR_EVENT2_HDR = Layout(
    "TCG_PCR_EVENT2_HDR",
    ("PCRIndex", "I"),
    ("EventType", "I"),
    ("count", "I"),  # TPML_DIGEST_VALUES.count
)

# -- event data structures (PFP §10.2 / UefiTcgPlatform.h) --------------------------------------
UEFI_VARIABLE_DATA_HDR = Layout(
    "UEFI_VARIABLE_DATA_HDR",
    ("VariableName", "G"),
    ("UnicodeNameLength", "Q"),   # in CHAR16, no NUL
    ("VariableDataLength", "Q"),
)
UEFI_IMAGE_LOAD_EVENT_HDR = Layout(
    "UEFI_IMAGE_LOAD_EVENT_HDR",
    ("ImageLocationInMemory", "Q"),
    ("ImageLengthInMemory", "Q"),
    ("ImageLinkTimeAddress", "Q"),
    ("LengthOfDevicePath", "Q"),
)
UEFI_PLATFORM_FIRMWARE_BLOB = Layout(
    "UEFI_PLATFORM_FIRMWARE_BLOB",
    ("BlobBase", "Q"),
    ("BlobLength", "Q"),
)
UEFI_HANDOFF_TABLE_POINTERS_HDR = Layout("UEFI_HANDOFF_TABLE_POINTERS_HDR", ("NumberOfTables", "Q"))
EFI_CONFIGURATION_TABLE = Layout(
    "EFI_CONFIGURATION_TABLE",
    ("VendorGuid", "G"),
    ("VendorTable", "Q"),
)
# TCG_PCClientTaggedEvent (PFP §10.4.2.1)
TCG_PCClientTaggedEvent_HDR = Layout(
    "TCG_PCClientTaggedEvent_HDR",
    ("taggedEventID", "I"),
    ("taggedEventDataSize", "I"),
)
# UEFI_PARTITION_TABLE_HEADER (UEFI spec §5.3.2) as carried in UEFI_GPT_DATA
UEFI_PARTITION_TABLE_HEADER = Layout(
    "UEFI_PARTITION_TABLE_HEADER",
    ("Signature", "8s"),
    ("Revision", "I"),
    ("HeaderSize", "I"),
    ("HeaderCRC32", "I"),
    ("Reserved", "I"),
    ("MyLBA", "Q"),
    ("AlternateLBA", "Q"),
    ("FirstUsableLBA", "Q"),
    ("LastUsableLBA", "Q"),
    ("DiskGUID", "G"),
    ("PartitionEntryLBA", "Q"),
    ("NumberOfPartitionEntries", "I"),
    ("SizeOfPartitionEntry", "I"),
    ("PartitionEntryArrayCRC32", "I"),
)
UEFI_PARTITION_ENTRY = Layout(
    "UEFI_PARTITION_ENTRY",
    ("PartitionTypeGUID", "G"),
    ("UniquePartitionGUID", "G"),
    ("StartingLBA", "Q"),
    ("EndingLBA", "Q"),
    ("Attributes", "Q"),
    ("PartitionName", "72s"),
)

# TDX quote v4 (Intel TDX DCAP Quoting Library API, "Quote Format" / sgx_quote4_header_t) ---------
TDX_QUOTE_HEADER_V4 = Layout(
    "TDX_QUOTE_HEADER_V4",
    ("Version", "H"),
    ("AttestationKeyType", "H"),
    ("TeeType", "I"),
    ("QeSvn", "H"),     # reserved in v4
    ("PceSvn", "H"),    # reserved in v4
    ("QeVendorId", "16s"),
    ("UserData", "20s"),
)
# TD report body (Intel TDX DCAP Quoting Library API, "TD Quote Body"; sgx_quote_4.h sgx_report2_body_t);
# the RTMR[4] array is declared as its four 48-byte registers, the names the decoder shows.
TD_QUOTE_BODY_V4 = Layout(
    "TD_QUOTE_BODY_V4",
    ("TEE_TCB_SVN", "16s"),
    ("MRSEAM", "48s"),
    ("MRSIGNERSEAM", "48s"),
    ("SEAMATTRIBUTES", "8s"),
    ("TDATTRIBUTES", "8s"),
    ("XFAM", "8s"),
    ("MRTD", "48s"),
    ("MRCONFIGID", "48s"),
    ("MROWNER", "48s"),
    ("MROWNERCONFIG", "48s"),
    ("RTMR0", "48s"),
    ("RTMR1", "48s"),
    ("RTMR2", "48s"),
    ("RTMR3", "48s"),
    ("REPORTDATA", "64s"),
)
