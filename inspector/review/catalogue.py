"""Module facts the review rules key on: file GUIDs of well-known edk2 modules.

Every GUID is the FILE_GUID of the .inf named beside it (edk2 edk2-stable202502). Rules match
files by GUID, never by UI name (a UI section is optional and any module can carry any name); the
name here is only for the text.
"""
from __future__ import annotations

import uuid


class Module:
    __slots__ = ("name", "guid", "inf")

    def __init__(self, name: str, guid: str, inf: str):
        self.name = name
        self.guid = uuid.UUID(guid)
        self.inf = inf

    def __repr__(self) -> str:
        return f"Module({self.name!r}, {str(self.guid)!r})"


def _m(name: str, guid: str, inf: str) -> Module:
    return Module(name, guid, inf)


# -- cores ---------------------------------------------------------------------------------------
DXE_CORE = _m("DxeCore", "D6A2CB7F-6A18-4e2f-B43B-9920A733700A", "MdeModulePkg/Core/Dxe/DxeMain.inf")
PEI_CORE = _m("PeiCore", "52C05B14-0B98-496c-BC3B-04B50211D680", "MdeModulePkg/Core/Pei/PeiMain.inf")

# -- SMM / MM: what makes variable writes go through SMM ----------------------------------------
SMM_CORES = (
    _m("PiSmmCore", "E94F54CD-81EB-47ed-AEC3-856F5DC157A9", "MdeModulePkg/Core/PiSmmCore/PiSmmCore.inf"),
    _m("StandaloneMmCore", "6E14B6FD-3600-4DD6-A17A-206B3B6DCE16", "StandaloneMmPkg/Core/StandaloneMmCore.inf"),
)
SMM_VARIABLE_DRIVERS = (
    _m("VariableSmm", "23A089B3-EED5-4ac5-B2AB-43E3298C2343",
       "MdeModulePkg/Universal/Variable/RuntimeDxe/VariableSmm.inf"),
    _m("VariableStandaloneMm", "7ee2c0c1-c21a-4113-a53a-66824a95696f",
       "MdeModulePkg/Universal/Variable/RuntimeDxe/VariableStandaloneMm.inf"),
)
# The variable driver that writes the store itself, outside SMM.
VARIABLE_RUNTIME_DXE = _m("VariableRuntimeDxe", "CBD2E4D5-7068-4FF5-B462-9822B4AD8D60",
                          "MdeModulePkg/Universal/Variable/RuntimeDxe/VariableRuntimeDxe.inf")
SECURE_BOOT_CONFIG_DXE = _m("SecureBootConfigDxe", "F0E6A44F-7195-41c3-AC64-54F202CD0A21",
                            "SecurityPkg/VariableAuthenticated/SecureBootConfigDxe/SecureBootConfigDxe.inf")

# -- where variables live -------------------------------------------------------------------------
EMU_VARIABLE_FVB = _m("EmuVariableFvbRuntimeDxe", "22dc2b60-fe40-42ac-b01f-3ab1fad9aad8",
                      "OvmfPkg/EmuVariableFvbRuntimeDxe/Fvb.inf")
FLASH_FVB = (
    _m("FvbServicesRuntimeDxe", "733cbac2-b23f-4b92-bc8e-fb01ce5907b7",
       "OvmfPkg/QemuFlashFvbServicesRuntimeDxe/FvbServicesRuntimeDxe.inf"),
    _m("FvbServicesSmm", "2E7DB7A7-608E-4041-B45F-00359E0766C6",
       "OvmfPkg/QemuFlashFvbServicesRuntimeDxe/FvbServicesSmm.inf"),
)

# -- measurement ------------------------------------------------------------------------------------
TCG2_DXE = _m("Tcg2Dxe", "FDFF263D-5F68-4591-87BA-B768F445A9AF", "SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.inf")
TD_TCG2_DXE = _m("TdTcg2Dxe", "F062221E-C607-44C2-B0B4-C3886331D351", "OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.inf")
TCG2_PEI = _m("Tcg2Pei", "A0C98B77-CBA5-4BB8-993B-4AF6CE33ECE4", "SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.inf")
TD_TCG2_PEI = _m("TdTcg2Pei", "fcb3a3d6-6274-411c-a548-bd0e717d533a", "OvmfPkg/Tcg/TdTcg2Pei/TdTcg2Pei.inf")
# (TPM driver, CC measurement driver) pairs: each pair measures the same boot into different roots.
MEASUREMENT_PAIRS = ((TCG2_DXE, TD_TCG2_DXE), (TCG2_PEI, TD_TCG2_PEI))

# -- IOMMU protocol producers (.inf [Protocols] gEdkiiIoMmuProtocolGuid ## [SOMETIMES_]PRODUCES) -----
IOMMU_PRODUCERS = (
    _m("IoMmuDxe", "8657015b-ea43-440d-949a-af3be365c0fc", "OvmfPkg/IoMmuDxe/IoMmuDxe.inf"),
    _m("NonCoherentIoMmuDxe", "7ed510aa-9cdc-49d2-a306-6e11e359f9b3",
       "EmbeddedPkg/Drivers/NonCoherentIoMmuDxe/NonCoherentIoMmuDxe.inf"),
)

# -- drivers a confidential guest does not use -----------------------------------------------------
# Categories: (id, what, why, profiles it applies to, modules). The reference CC builds are
# OvmfPkg/IntelTdx/IntelTdxX64.fdf (TDX) and OvmfPkg/AmdSev/AmdSevX64.fdf (SEV); "omitted" below
# means the .fdf of that build has no INF line (or !include) for it, compared with
# OvmfPkg/OvmfPkgX64.fdf.
NETWORK = (
    # NetworkPkg/Network.fdf.inc, !included by OvmfPkgX64.fdf, by neither CC build
    _m("DpcDxe", "A210F973-229D-4f4d-AA37-9895E6C9EABA", "NetworkPkg/DpcDxe/DpcDxe.inf"),
    _m("SnpDxe", "A2f436EA-A127-4EF8-957C-8048606FF670", "NetworkPkg/SnpDxe/SnpDxe.inf"),
    _m("VlanConfigDxe", "E4F61863-FE2C-4b56-A8F4-08519BC439DF", "NetworkPkg/VlanConfigDxe/VlanConfigDxe.inf"),
    _m("MnpDxe", "025BBFC7-E6A9-4b8b-82AD-6815A1AEAF4A", "NetworkPkg/MnpDxe/MnpDxe.inf"),
    _m("ArpDxe", "529D3F93-E8E9-4e73-B1E1-BDF6A9D50113", "NetworkPkg/ArpDxe/ArpDxe.inf"),
    _m("Dhcp4Dxe", "94734718-0BBC-47fb-96A5-EE7A5AE6A2AD", "NetworkPkg/Dhcp4Dxe/Dhcp4Dxe.inf"),
    _m("Ip4Dxe", "9FB1A1F3-3B71-4324-B39A-745CBB015FFF", "NetworkPkg/Ip4Dxe/Ip4Dxe.inf"),
    _m("Udp4Dxe", "6d6963ab-906d-4a65-a7ca-bd40e5d6af2b", "NetworkPkg/Udp4Dxe/Udp4Dxe.inf"),
    _m("Mtftp4Dxe", "DC3641B8-2FA8-4ed3-BC1F-F9962A03454B", "NetworkPkg/Mtftp4Dxe/Mtftp4Dxe.inf"),
    _m("Dhcp6Dxe", "95E3669D-34BE-4775-A651-7EA41B69D89E", "NetworkPkg/Dhcp6Dxe/Dhcp6Dxe.inf"),
    _m("Ip6Dxe", "5BEDB5CC-D830-4eb2-8742-2D4CC9B54F2C", "NetworkPkg/Ip6Dxe/Ip6Dxe.inf"),
    _m("Udp6Dxe", "D912C7BC-F098-4367-92BA-E911083C7B0E", "NetworkPkg/Udp6Dxe/Udp6Dxe.inf"),
    _m("Mtftp6Dxe", "99F03B99-98D8-49dd-A8D3-3219D0FFE41E", "NetworkPkg/Mtftp6Dxe/Mtftp6Dxe.inf"),
    _m("TcpDxe", "1A7E4468-2F55-4a56-903C-01265EB7622B", "NetworkPkg/TcpDxe/TcpDxe.inf"),
    _m("UefiPxeBcDxe", "B95E9FDA-26DE-48d2-8807-1F9107AC5E3A", "NetworkPkg/UefiPxeBcDxe/UefiPxeBcDxe.inf"),
    _m("TlsDxe", "3aceb0c0-3c72-11e4-9a56-74d435052646", "NetworkPkg/TlsDxe/TlsDxe.inf"),
    _m("TlsAuthConfigDxe", "7ca1024f-eb17-11e5-9dba-28d2447c4829", "NetworkPkg/TlsAuthConfigDxe/TlsAuthConfigDxe.inf"),
    _m("DnsDxe", "b219e140-dffc-11e3-b956-0022681e6906", "NetworkPkg/DnsDxe/DnsDxe.inf"),
    _m("HttpDxe", "2366c20f-e15a-11e3-8bf1-e4115b28bc50", "NetworkPkg/HttpDxe/HttpDxe.inf"),
    _m("HttpUtilitiesDxe", "22ea234f-e72a-11e4-91f9-28d2447c4829", "NetworkPkg/HttpUtilitiesDxe/HttpUtilitiesDxe.inf"),
    _m("HttpBootDxe", "ecebcb00-d9c8-11e4-af3d-8cdcd426c973", "NetworkPkg/HttpBootDxe/HttpBootDxe.inf"),
    _m("IScsiDxe", "86CDDF93-4872-4597-8AF9-A35AE4D3725F", "NetworkPkg/IScsiDxe/IScsiDxe.inf"),
    # in OvmfPkgX64.fdf, in neither CC build
    _m("VirtioNetDxe", "A92CDB4B-82F1-4E0B-A516-8A655D371524", "OvmfPkg/VirtioNetDxe/VirtioNet.inf"),
)
USB = (
    _m("UhciDxe", "2FB92EFA-2EE0-4bae-9EB6-7464125E1EF7", "MdeModulePkg/Bus/Pci/UhciDxe/UhciDxe.inf"),
    _m("EhciDxe", "BDFE430E-8F2A-4db0-9991-6F856594777E", "MdeModulePkg/Bus/Pci/EhciDxe/EhciDxe.inf"),
    _m("XhciDxe", "B7F50E91-A759-412c-ADE4-DCD03E7F7C28", "MdeModulePkg/Bus/Pci/XhciDxe/XhciDxe.inf"),
    _m("UsbBusDxe", "240612B7-A063-11d4-9A3A-0090273FC14D", "MdeModulePkg/Bus/Usb/UsbBusDxe/UsbBusDxe.inf"),
    _m("UsbKbDxe", "2D2E62CF-9ECF-43b7-8219-94E7FC713DFE", "MdeModulePkg/Bus/Usb/UsbKbDxe/UsbKbDxe.inf"),
    _m("UsbMassStorageDxe", "9FB4B4A7-42C0-4bcd-8540-9BCC6711F83E",
       "MdeModulePkg/Bus/Usb/UsbMassStorageDxe/UsbMassStorageDxe.inf"),
)
LEGACY_STORAGE_AND_IO = (
    _m("SataController", "820C59BB-274C-43B2-83EA-DAC673035A59",
       "MdeModulePkg/Bus/Pci/SataControllerDxe/SataControllerDxe.inf"),
    _m("AtaAtapiPassThruDxe", "5E523CB4-D397-4986-87BD-A6DD8B22F455",
       "MdeModulePkg/Bus/Ata/AtaAtapiPassThru/AtaAtapiPassThru.inf"),
    _m("AtaBusDxe", "19DF145A-B1D4-453f-8507-38816676D7F6", "MdeModulePkg/Bus/Ata/AtaBusDxe/AtaBusDxe.inf"),
    _m("LsiScsiDxe", "EB4EB21F-5A3D-40BE-8BD2-F1B0E38E5744", "OvmfPkg/LsiScsiDxe/LsiScsiDxe.inf"),
    _m("MptScsiDxe", "2B3DB5DD-B315-4961-8454-0AFF3C811B19", "OvmfPkg/MptScsiDxe/MptScsiDxe.inf"),
    _m("PvScsiDxe", "30346B14-1580-4781-879D-BA0C55AE9BB2", "OvmfPkg/PvScsiDxe/PvScsiDxe.inf"),
    _m("SioBusDxe", "864E1CA8-85EB-4D63-9DCC-6E0FC90FFD55", "OvmfPkg/SioBusDxe/SioBusDxe.inf"),
    _m("Ps2KeyboardDxe", "C4D1F932-821F-4744-BF06-6D30F7730F8D",
       "MdeModulePkg/Bus/Isa/Ps2KeyboardDxe/Ps2KeyboardDxe.inf"),
)
SMM_STACK = SMM_CORES + SMM_VARIABLE_DRIVERS + (
    _m("PiSmmIpl", "2FA2A6DA-11D5-4dc3-999A-749648B03C56", "MdeModulePkg/Core/PiSmmCore/PiSmmIpl.inf"),
    _m("PiSmmCpuDxeSmm", "A3FF0EF5-0C28-42f5-B544-8C7DE1E80014", "UefiCpuPkg/PiSmmCpuDxeSmm/PiSmmCpuDxeSmm.inf"),
    _m("SmmAccessPei", "6C0E75B4-B0B9-44D1-8210-3377D7B4E066", "OvmfPkg/SmmAccess/SmmAccessPei.inf"),
    _m("SmmAccess2Dxe", "AC95AD3D-4366-44BF-9A62-E4B29D7A2206", "OvmfPkg/SmmAccess/SmmAccess2Dxe.inf"),
    _m("SmmControl2Dxe", "1206F7CA-A475-4624-A83E-E6FC9BB38E49", "OvmfPkg/SmmControl2Dxe/SmmControl2Dxe.inf"),
    _m("SmmFaultTolerantWriteDxe", "470CB248-E8AC-473c-BB4F-81069A1FE6FD",
       "MdeModulePkg/Universal/FaultTolerantWriteDxe/FaultTolerantWriteSmm.inf"),
    _m("SmmLockBox", "33FB3535-F15E-4c17-B303-5EB94595ECB6", "MdeModulePkg/Universal/LockBox/SmmLockBox/SmmLockBox.inf"),
    _m("CpuHotplugSmm", "84EEA114-C6BE-4445-8F90-51D97863E363", "OvmfPkg/CpuHotplugSmm/CpuHotplugSmm.inf"),
    _m("CpuIo2Smm", "A47EE2D8-F60E-42fd-8E58-7BD65EE4C29B", "UefiCpuPkg/CpuIo2Smm/CpuIo2Smm.inf"),
    FLASH_FVB[1],
)
TPM = (
    # OvmfPkg/Include/Fdf/OvmfTpmPei.fdf.inc and OvmfTpmDxe.fdf.inc: !included by OvmfPkgX64.fdf and
    # AmdSevX64.fdf, not by IntelTdxX64.fdf
    TCG2_PEI, TCG2_DXE,
    _m("Tcg12ConfigPei", "8AD3148F-945F-46B4-8ACD-71469EA73945", "OvmfPkg/Tcg/Tcg2Config/Tcg12ConfigPei.inf"),
    _m("Tcg2ConfigPei", "BF7F2B0C-9F2F-4889-AB5C-12460022BE87", "OvmfPkg/Tcg/Tcg2Config/Tcg2ConfigPei.inf"),
    _m("Tcg2ConfigDxe", "4D9CBEF0-15A0-4D0C-83DB-5213E710C23F", "SecurityPkg/Tcg/Tcg2Config/Tcg2ConfigDxe.inf"),
    _m("TpmMmioSevDecryptPei", "F12F698A-E506-4A1B-B32E-6920E55DA1C4",
       "OvmfPkg/Tcg/TpmMmioSevDecryptPei/TpmMmioSevDecryptPei.inf"),
)
AMD_SEV_ONLY = (
    _m("AmdSevDxe", "2ec9da37-ee35-4de9-86c5-6d9a81dc38a7", "OvmfPkg/AmdSevDxe/AmdSevDxe.inf"),
    _m("TpmMmioSevDecryptPei", "F12F698A-E506-4A1B-B32E-6920E55DA1C4",
       "OvmfPkg/Tcg/TpmMmioSevDecryptPei/TpmMmioSevDecryptPei.inf"),
)
TDX_ONLY = (
    _m("TdxDxe", "E750224E-7BCE-40AF-B5BB-47E3611EB5C2", "OvmfPkg/TdxDxe/TdxDxe.inf"),
    TD_TCG2_DXE, TD_TCG2_PEI,
)

CC_UNNEEDED = (
    ("network", "network stack",
     "NetworkPkg/Network.fdf.inc and VirtioNetDxe are in OvmfPkgX64.fdf but in neither reference CC build "
     "(IntelTdx/IntelTdxX64.fdf, AmdSev/AmdSevX64.fdf): a confidential guest boots from its own disk "
     "or a measured kernel, not from a network the host controls",
     ("tdx", "sev"), NETWORK),
    ("usb", "USB host controllers and devices",
     "host-emulated USB controllers: a confidential guest's devices are paravirtual (virtio with "
     "shared bounce buffers); every emulated controller driver parses host-supplied data",
     ("tdx", "sev"), USB),
    ("legacy-storage-io", "IDE/AHCI, emulated SCSI HBAs, Super I/O and PS/2",
     "host-emulated legacy devices a confidential guest does not boot from or type on; each driver "
     "parses host-controlled registers and DMA",
     ("tdx", "sev"), LEGACY_STORAGE_AND_IO),
    ("smm", "SMM",
     "a TD has no SMM (SMIs are not delivered to a TD; IntelTdxX64.fdf has no SMM module) and "
     "AmdSevX64.fdf builds none: these modules never run in a confidential guest",
     ("tdx", "sev"), SMM_STACK),
    ("tpm", "TPM measured boot",
     "a TD measures into RTMRs (TdTcg2Dxe, CC event log); IntelTdxX64.fdf !includes neither "
     "OvmfTpmPei.fdf.inc nor OvmfTpmDxe.fdf.inc",
     ("tdx",), TPM),
    ("other-cc", "the other confidential-computing technology",
     "AMD SEV modules do nothing in a TD (IntelTdxX64.fdf has none of them)",
     ("tdx",), AMD_SEV_ONLY),
    ("other-cc", "the other confidential-computing technology",
     "TDX modules do nothing in an SEV guest (AmdSevX64.fdf has none of them)",
     ("sev",), TDX_ONLY),
)
