"""TCG numbers the event logs and the measurement predictions share: hash algorithm ids, event
types, and the SHA-1 event header the event log and the TCG event HOBs both hold
(decoders/eventlog/structs.py has the other wire records and re-exports these; the SNP/TDX
predictions and the HOB decoder use them without loading the event-log decoder).

Sources: TCG PC Client Platform Firmware Profile (PFP) spec 1.05 §10.4.1; edk2
MdePkg/Include/IndustryStandard/UefiTcgPlatform.h and Tpm20.h.
"""
from __future__ import annotations

from decoders.layout import Layout

# TCG_PCR_EVENT (UefiTcgPlatform.h TCG_PCR_EVENT_HDR, PFP 1.05 §10.2.1): the SHA-1 (TPM 1.2) event,
# the first event of every crypto-agile log, and the payload of gTcgEventEntryHobGuid HOBs.
TCG_PCR_EVENT_HDR = Layout(
    "TCG_PCR_EVENT_HDR",
    ("PCRIndex", "I"),
    ("EventType", "I"),
    ("Digest", "20s"),
    ("EventSize", "I"),
)

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
