"""ACPI wire layouts (ACPI 6.5; edk2 MdePkg/Include/IndustryStandard/Acpi65.h, Tpm2Acpi.h,
TcpaAcpi.h? (TCG ACPI spec 1.3), DmaRemappingReportingTable.h, SerialPortConsoleRedirectionTable.h;
acpica include/actbl*.h). Names follow Acpi65.h. Bodies are declared as flat Structs of fixed-size
fields so a table shorter than its latest revision decodes field by field up to its Length."""
from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, PaddedString, Struct

RSDP = Struct(
    "Signature" / Bytes(8),
    "Checksum" / Int8ul,
    "OemId" / Bytes(6),
    "Revision" / Int8ul,
    "RsdtAddress" / Int32ul,
    "Length" / Int32ul,          # ACPI 2.0+ only, from here on
    "XsdtAddress" / Int64ul,
    "ExtendedChecksum" / Int8ul,
    "Reserved" / Bytes(3),
)
RSDP_V1_SIZE = 20
RSDP_V2_SIZE = 36

HEADER = Struct(
    "Signature" / Bytes(4),
    "Length" / Int32ul,
    "Revision" / Int8ul,
    "Checksum" / Int8ul,
    "OemId" / Bytes(6),
    "OemTableId" / Bytes(8),
    "OemRevision" / Int32ul,
    "CreatorId" / Bytes(4),
    "CreatorRevision" / Int32ul,
)
HEADER_SIZE = 36

# Generic Address Structure (ACPI 6.5 §5.2.3.2): 12 bytes, shown as one field.
GAS = Struct(
    "AddressSpaceId" / Int8ul,
    "RegisterBitWidth" / Int8ul,
    "RegisterBitOffset" / Int8ul,
    "AccessSize" / Int8ul,
    "Address" / Int64ul,
)

FADT = Struct(
    "FirmwareCtrl" / Int32ul, "Dsdt" / Int32ul, "Reserved0" / Int8ul, "PreferredPmProfile" / Int8ul,
    "SciInt" / Int16ul, "SmiCmd" / Int32ul, "AcpiEnable" / Int8ul, "AcpiDisable" / Int8ul,
    "S4BiosReq" / Int8ul, "PstateCnt" / Int8ul, "Pm1aEvtBlk" / Int32ul, "Pm1bEvtBlk" / Int32ul,
    "Pm1aCntBlk" / Int32ul, "Pm1bCntBlk" / Int32ul, "Pm2CntBlk" / Int32ul, "PmTmrBlk" / Int32ul,
    "Gpe0Blk" / Int32ul, "Gpe1Blk" / Int32ul, "Pm1EvtLen" / Int8ul, "Pm1CntLen" / Int8ul,
    "Pm2CntLen" / Int8ul, "PmTmrLen" / Int8ul, "Gpe0BlkLen" / Int8ul, "Gpe1BlkLen" / Int8ul,
    "Gpe1Base" / Int8ul, "CstCnt" / Int8ul, "PLvl2Lat" / Int16ul, "PLvl3Lat" / Int16ul,
    "FlushSize" / Int16ul, "FlushStride" / Int16ul, "DutyOffset" / Int8ul, "DutyWidth" / Int8ul,
    "DayAlrm" / Int8ul, "MonAlrm" / Int8ul, "Century" / Int8ul, "IaPcBootArch" / Int16ul,
    "Reserved1" / Int8ul, "Flags" / Int32ul, "ResetReg" / GAS, "ResetValue" / Int8ul,
    "ArmBootArch" / Int16ul, "MinorVersion" / Int8ul, "XFirmwareCtrl" / Int64ul, "XDsdt" / Int64ul,
    "XPm1aEvtBlk" / GAS, "XPm1bEvtBlk" / GAS, "XPm1aCntBlk" / GAS, "XPm1bCntBlk" / GAS,
    "XPm2CntBlk" / GAS, "XPmTmrBlk" / GAS, "XGpe0Blk" / GAS, "XGpe1Blk" / GAS,
    "SleepControlReg" / GAS, "SleepStatusReg" / GAS, "HypervisorVendorIdentity" / Int64ul,
)

FACS = Struct(
    "Signature" / Bytes(4), "Length" / Int32ul, "HardwareSignature" / Int32ul,
    "FirmwareWakingVector" / Int32ul, "GlobalLock" / Int32ul, "Flags" / Int32ul,
    "XFirmwareWakingVector" / Int64ul, "Version" / Int8ul, "Reserved0" / Bytes(3),
    "OspmFlags" / Int32ul, "Reserved1" / Bytes(24),
)

MADT = Struct("LocalApicAddress" / Int32ul, "Flags" / Int32ul)
SUBTABLE_HEADER = Struct("Type" / Int8ul, "Length" / Int8ul)

# MADT interrupt controller structures, after {Type, Length} (ACPI 6.5 §5.2.12; 6.6 for MP wakeup v1).
MADT_SUBTABLES = {
    0x00: ("Processor Local APIC", Struct("AcpiProcessorUid" / Int8ul, "ApicId" / Int8ul, "Flags" / Int32ul)),
    0x01: ("I/O APIC", Struct("IoApicId" / Int8ul, "Reserved" / Int8ul, "IoApicAddress" / Int32ul,
                              "GlobalSystemInterruptBase" / Int32ul)),
    0x02: ("Interrupt Source Override", Struct("Bus" / Int8ul, "Source" / Int8ul,
                                               "GlobalSystemInterrupt" / Int32ul, "Flags" / Int16ul)),
    0x03: ("NMI Source", Struct("Flags" / Int16ul, "GlobalSystemInterrupt" / Int32ul)),
    0x04: ("Local APIC NMI", Struct("AcpiProcessorUid" / Int8ul, "Flags" / Int16ul, "LocalApicLint" / Int8ul)),
    0x05: ("Local APIC Address Override", Struct("Reserved" / Int16ul, "LocalApicAddress" / Int64ul)),
    0x06: ("I/O SAPIC", Struct("IoApicId" / Int8ul, "Reserved" / Int8ul, "GlobalSystemInterruptBase" / Int32ul,
                               "IoSapicAddress" / Int64ul)),
    0x07: ("Local SAPIC", Struct("AcpiProcessorId" / Int8ul, "LocalSapicId" / Int8ul, "LocalSapicEid" / Int8ul,
                                 "Reserved" / Bytes(3), "Flags" / Int32ul, "ACPIProcessorUIDValue" / Int32ul)),
    0x08: ("Platform Interrupt Sources", Struct("Flags" / Int16ul, "InterruptType" / Int8ul, "ProcessorId" / Int8ul,
                                                "ProcessorEid" / Int8ul, "IoSapicVector" / Int8ul,
                                                "GlobalSystemInterrupt" / Int32ul,
                                                "PlatformInterruptSourceFlags" / Int32ul)),
    0x09: ("Processor Local x2APIC", Struct("Reserved" / Int16ul, "X2ApicId" / Int32ul, "Flags" / Int32ul,
                                            "AcpiProcessorUid" / Int32ul)),
    0x0A: ("Local x2APIC NMI", Struct("Flags" / Int16ul, "AcpiProcessorUid" / Int32ul,
                                      "LocalX2ApicLint" / Int8ul, "Reserved" / Bytes(3))),
    0x0B: ("GIC CPU Interface (GICC)", Struct(
        "Reserved" / Int16ul, "CPUInterfaceNumber" / Int32ul, "AcpiProcessorUid" / Int32ul, "Flags" / Int32ul,
        "ParkingProtocolVersion" / Int32ul, "PerformanceInterruptGsiv" / Int32ul, "ParkedAddress" / Int64ul,
        "PhysicalBaseAddress" / Int64ul, "GICV" / Int64ul, "GICH" / Int64ul,
        "VGICMaintenanceInterrupt" / Int32ul, "GICRBaseAddress" / Int64ul, "MPIDR" / Int64ul,
        "ProcessorPowerEfficiencyClass" / Int8ul, "Reserved2" / Int8ul, "SpeOverflowInterrupt" / Int16ul,
        "TrbeInterrupt" / Int16ul)),
    0x0C: ("GIC Distributor (GICD)", Struct("Reserved1" / Int16ul, "GicId" / Int32ul, "PhysicalBaseAddress" / Int64ul,
                                            "SystemVectorBase" / Int32ul, "GicVersion" / Int8ul,
                                            "Reserved2" / Bytes(3))),
    0x0D: ("GIC MSI Frame", Struct("Reserved1" / Int16ul, "GicMsiFrameId" / Int32ul,
                                   "PhysicalBaseAddress" / Int64ul, "Flags" / Int32ul, "SPICount" / Int16ul,
                                   "SPIBase" / Int16ul)),
    0x0E: ("GIC Redistributor (GICR)", Struct("Reserved" / Int16ul, "DiscoveryRangeBaseAddress" / Int64ul,
                                              "DiscoveryRangeLength" / Int32ul)),
    0x0F: ("GIC Interrupt Translation Service (ITS)", Struct("Reserved" / Int16ul, "GicItsId" / Int32ul,
                                                             "PhysicalBaseAddress" / Int64ul,
                                                             "Reserved2" / Int32ul)),
    # 16 bytes in ACPI 6.4/6.5 (MailBoxVersion 0), 24 with ResetVector in 6.6 (MailBoxVersion 1):
    # edk2 OvmfPkg/TdxDxe/TdxAcpiTable.c appends the 6.6 form since 406f42cb74.
    0x10: ("Multiprocessor Wakeup", Struct("MailBoxVersion" / Int16ul, "Reserved" / Int32ul,
                                           "MailBoxAddress" / Int64ul, "ResetVector" / Int64ul)),
}
MADT_OTHER_NAMES = {0x11: "Core PIC (LoongArch)", 0x12: "Legacy I/O PIC (LoongArch)",
                    0x13: "HyperTransport PIC (LoongArch)", 0x14: "Extend I/O PIC (LoongArch)",
                    0x15: "MSI PIC (LoongArch)", 0x16: "Bridge I/O PIC (LoongArch)",
                    0x17: "Low Pin Count PIC (LoongArch)"}

MCFG = Struct("Reserved" / Int64ul)
MCFG_ENTRY = Struct("BaseAddress" / Int64ul, "PciSegmentGroupNumber" / Int16ul, "StartBusNumber" / Int8ul,
                    "EndBusNumber" / Int8ul, "Reserved" / Int32ul)

HPET = Struct("EventTimerBlockId" / Int32ul, "BaseAddressLower32Bit" / GAS, "HpetNumber" / Int8ul,
              "MainCounterMinimumClockTickInPeriodicMode" / Int16ul, "PageProtectionAndOemAttribute" / Int8ul)

# TCG ACPI Specification 1.3 §8.3 / edk2 Tpm2Acpi.h: LAML/LASA follow the start-method parameters
# (12 bytes at revision 4, 16 at revision 5) and are optional (edk2 drops them when zero).
# Revision 3 has a u32 Flags where revision 4+ has PlatformClass u16 + Reserved u16.
TPM2_REV3 = Struct("Flags" / Int32ul, "AddressOfControlArea" / Int64ul, "StartMethod" / Int32ul)
TPM2 = Struct("PlatformClass" / Int16ul, "Reserved" / Int16ul, "AddressOfControlArea" / Int64ul,
              "StartMethod" / Int32ul)
# TCG ACPI spec §7.1.2 client TCPA table (TPM 1.2).
TCPA_CLIENT = Struct("PlatformClass" / Int16ul, "Laml" / Int32ul, "Lasa" / Int64ul)
# ACPI 6.5 §5.2.34 CC Event Log ACPI Table; TDEL: acpica actbl2.h ACPI_TABLE_TDEL.
CCEL = Struct("CcType" / Int8ul, "CcSubType" / Int8ul, "Reserved" / Int16ul, "Laml" / Int64ul, "Lasa" / Int64ul)
TDEL = Struct("Reserved" / Int32ul, "Laml" / Int64ul, "Lasa" / Int64ul)
BGRT = Struct("Version" / Int16ul, "Status" / Int8ul, "ImageType" / Int8ul, "ImageAddress" / Int64ul,
              "ImageOffsetX" / Int32ul, "ImageOffsetY" / Int32ul)
WAET = Struct("EmulatedDeviceFlags" / Int32ul)

SRAT = Struct("Reserved1" / Int32ul, "Reserved2" / Int64ul)
SRAT_SUBTABLES = {
    0: ("Processor Local APIC/SAPIC Affinity", Struct(
        "ProximityDomain7To0" / Int8ul, "ApicId" / Int8ul, "Flags" / Int32ul, "LocalSapicEid" / Int8ul,
        "ProximityDomain31To8" / Bytes(3), "ClockDomain" / Int32ul)),
    1: ("Memory Affinity", Struct(
        "ProximityDomain" / Int32ul, "Reserved1" / Int16ul, "AddressBaseLow" / Int32ul,
        "AddressBaseHigh" / Int32ul, "LengthLow" / Int32ul, "LengthHigh" / Int32ul, "Reserved2" / Int32ul,
        "Flags" / Int32ul, "Reserved3" / Int64ul)),
    2: ("Processor Local x2APIC Affinity", Struct(
        "Reserved1" / Int16ul, "ProximityDomain" / Int32ul, "X2ApicId" / Int32ul, "Flags" / Int32ul,
        "ClockDomain" / Int32ul, "Reserved2" / Int32ul)),
    3: ("GICC Affinity", Struct("ProximityDomain" / Int32ul, "AcpiProcessorUid" / Int32ul, "Flags" / Int32ul,
                                "ClockDomain" / Int32ul)),
    4: ("GIC ITS Affinity", Struct("ProximityDomain" / Int32ul, "Reserved" / Int16ul, "ItsId" / Int32ul)),
    5: ("Generic Initiator Affinity", Struct("Reserved1" / Int8ul, "DeviceHandleType" / Int8ul,
                                             "ProximityDomain" / Int32ul, "DeviceHandle" / Bytes(16),
                                             "Flags" / Int32ul, "Reserved2" / Int32ul)),
}

SLIT = Struct("NumberOfSystemLocalities" / Int64ul)

# Intel VT-d spec §8 / edk2 DmaRemappingReportingTable.h.
DMAR = Struct("HostAddressWidth" / Int8ul, "Flags" / Int8ul, "Reserved" / Bytes(10))
DMAR_HEADER = Struct("Type" / Int16ul, "Length" / Int16ul)
DMAR_SUBTABLES = {
    0: ("DRHD", Struct("Flags" / Int8ul, "Size" / Int8ul, "SegmentNumber" / Int16ul,
                       "RegisterBaseAddress" / Int64ul)),
    1: ("RMRR", Struct("Reserved" / Int16ul, "SegmentNumber" / Int16ul,
                       "ReservedMemoryRegionBaseAddress" / Int64ul, "ReservedMemoryRegionLimitAddress" / Int64ul)),
    2: ("ATSR", Struct("Flags" / Int8ul, "Reserved" / Int8ul, "SegmentNumber" / Int16ul)),
    3: ("RHSA", Struct("Reserved" / Int32ul, "RegisterBaseAddress" / Int64ul, "ProximityDomain" / Int32ul)),
    4: ("ANDD", Struct("Reserved" / Bytes(3), "AcpiDeviceNumber" / Int8ul)),
    5: ("SATC", Struct("Flags" / Int8ul, "Reserved" / Int8ul, "SegmentNumber" / Int16ul)),
    6: ("SIDP", Struct("Reserved" / Int16ul, "SegmentNumber" / Int16ul)),
}
DMAR_DEVICE_SCOPE = Struct("Type" / Int8ul, "Length" / Int8ul, "Flags" / Int8ul, "Reserved" / Int8ul,
                           "EnumerationId" / Int8ul, "StartBusNumber" / Int8ul)

# Microsoft SPCR spec rev 4 / edk2 SerialPortConsoleRedirectionTable.h.
SPCR = Struct(
    "InterfaceType" / Int8ul, "Reserved1" / Bytes(3), "BaseAddress" / GAS, "InterruptType" / Int8ul,
    "Irq" / Int8ul, "GlobalSystemInterrupt" / Int32ul, "BaudRate" / Int8ul, "Parity" / Int8ul,
    "StopBits" / Int8ul, "FlowControl" / Int8ul, "TerminalType" / Int8ul, "Language" / Int8ul,
    "PciDeviceId" / Int16ul, "PciVendorId" / Int16ul, "PciBusNumber" / Int8ul, "PciDeviceNumber" / Int8ul,
    "PciFunctionNumber" / Int8ul, "PciFlags" / Int32ul, "PciSegment" / Int8ul,
    "UartClockFrequency" / Int32ul, "PreciseBaudRate" / Int32ul, "NamespaceStringLength" / Int16ul,
    "NamespaceStringOffset" / Int16ul,
)

__all__ = [n for n in dir() if n.isupper()] + ["PaddedString"]
