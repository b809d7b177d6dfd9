"""ACPI wire layouts (ACPI 6.5; edk2 MdePkg/Include/IndustryStandard/Acpi65.h, Tpm2Acpi.h,
TcpaAcpi.h? (TCG ACPI spec 1.3), DmaRemappingReportingTable.h, SerialPortConsoleRedirectionTable.h;
acpica include/actbl*.h). Names follow Acpi65.h. Bodies are declared as flat records of fixed-size
fields so a table shorter than its latest revision decodes field by field up to its Length.

Declarations only, as decoders.layout records. A subtable's record is named as the structure is
shown."""
from decoders.layout import Layout

RSDP = Layout("RSDP",
    ("Signature", "8s"),
    ("Checksum", "B"),
    ("OemId", "6s"),
    ("Revision", "B"),
    ("RsdtAddress", "I"),
    ("Length", "I"),          # ACPI 2.0+ only, from here on
    ("XsdtAddress", "Q"),
    ("ExtendedChecksum", "B"),
    ("Reserved", "3s"),
)
RSDP_V1_SIZE = 20
RSDP_V2_SIZE = 36

HEADER = Layout("HEADER",
    ("Signature", "4s"),
    ("Length", "I"),
    ("Revision", "B"),
    ("Checksum", "B"),
    ("OemId", "6s"),
    ("OemTableId", "8s"),
    ("OemRevision", "I"),
    ("CreatorId", "4s"),
    ("CreatorRevision", "I"),
)
HEADER_SIZE = 36

# Generic Address Structure (ACPI 6.5 §5.2.3.2): 12 bytes, shown as one field.
GAS = Layout("GAS",
    ("AddressSpaceId", "B"),
    ("RegisterBitWidth", "B"),
    ("RegisterBitOffset", "B"),
    ("AccessSize", "B"),
    ("Address", "Q"),
)

FADT = Layout("FADT",
    ("FirmwareCtrl", "I"), ("Dsdt", "I"), ("Reserved0", "B"), ("PreferredPmProfile", "B"),
    ("SciInt", "H"), ("SmiCmd", "I"), ("AcpiEnable", "B"), ("AcpiDisable", "B"),
    ("S4BiosReq", "B"), ("PstateCnt", "B"), ("Pm1aEvtBlk", "I"), ("Pm1bEvtBlk", "I"),
    ("Pm1aCntBlk", "I"), ("Pm1bCntBlk", "I"), ("Pm2CntBlk", "I"), ("PmTmrBlk", "I"),
    ("Gpe0Blk", "I"), ("Gpe1Blk", "I"), ("Pm1EvtLen", "B"), ("Pm1CntLen", "B"),
    ("Pm2CntLen", "B"), ("PmTmrLen", "B"), ("Gpe0BlkLen", "B"), ("Gpe1BlkLen", "B"),
    ("Gpe1Base", "B"), ("CstCnt", "B"), ("PLvl2Lat", "H"), ("PLvl3Lat", "H"),
    ("FlushSize", "H"), ("FlushStride", "H"), ("DutyOffset", "B"), ("DutyWidth", "B"),
    ("DayAlrm", "B"), ("MonAlrm", "B"), ("Century", "B"), ("IaPcBootArch", "H"),
    ("Reserved1", "B"), ("Flags", "I"), ("ResetReg", GAS), ("ResetValue", "B"),
    ("ArmBootArch", "H"), ("MinorVersion", "B"), ("XFirmwareCtrl", "Q"), ("XDsdt", "Q"),
    ("XPm1aEvtBlk", GAS), ("XPm1bEvtBlk", GAS), ("XPm1aCntBlk", GAS), ("XPm1bCntBlk", GAS),
    ("XPm2CntBlk", GAS), ("XPmTmrBlk", GAS), ("XGpe0Blk", GAS), ("XGpe1Blk", GAS),
    ("SleepControlReg", GAS), ("SleepStatusReg", GAS), ("HypervisorVendorIdentity", "Q"),
)

FACS = Layout("FACS",
    ("Signature", "4s"), ("Length", "I"), ("HardwareSignature", "I"),
    ("FirmwareWakingVector", "I"), ("GlobalLock", "I"), ("Flags", "I"),
    ("XFirmwareWakingVector", "Q"), ("Version", "B"), ("Reserved0", "3s"),
    ("OspmFlags", "I"), ("Reserved1", "24s"),
)

MADT = Layout("MADT", ("LocalApicAddress", "I"), ("Flags", "I"))
SUBTABLE_HEADER = Layout("SUBTABLE_HEADER", ("Type", "B"), ("Length", "B"))

# MADT interrupt controller structures, after {Type, Length} (ACPI 6.5 §5.2.12; 6.6 for MP wakeup v1).
MADT_SUBTABLES = {
    0x00: Layout("Processor Local APIC", ("AcpiProcessorUid", "B"), ("ApicId", "B"), ("Flags", "I")),
    0x01: Layout("I/O APIC", ("IoApicId", "B"), ("Reserved", "B"), ("IoApicAddress", "I"),
                 ("GlobalSystemInterruptBase", "I")),
    0x02: Layout("Interrupt Source Override", ("Bus", "B"), ("Source", "B"), ("GlobalSystemInterrupt", "I"),
                 ("Flags", "H")),
    0x03: Layout("NMI Source", ("Flags", "H"), ("GlobalSystemInterrupt", "I")),
    0x04: Layout("Local APIC NMI", ("AcpiProcessorUid", "B"), ("Flags", "H"), ("LocalApicLint", "B")),
    0x05: Layout("Local APIC Address Override", ("Reserved", "H"), ("LocalApicAddress", "Q")),
    0x06: Layout("I/O SAPIC", ("IoApicId", "B"), ("Reserved", "B"), ("GlobalSystemInterruptBase", "I"),
                 ("IoSapicAddress", "Q")),
    0x07: Layout("Local SAPIC", ("AcpiProcessorId", "B"), ("LocalSapicId", "B"), ("LocalSapicEid", "B"),
                 ("Reserved", "3s"), ("Flags", "I"), ("ACPIProcessorUIDValue", "I")),
    0x08: Layout("Platform Interrupt Sources", ("Flags", "H"), ("InterruptType", "B"), ("ProcessorId", "B"),
                 ("ProcessorEid", "B"), ("IoSapicVector", "B"), ("GlobalSystemInterrupt", "I"),
                 ("PlatformInterruptSourceFlags", "I")),
    0x09: Layout("Processor Local x2APIC", ("Reserved", "H"), ("X2ApicId", "I"), ("Flags", "I"),
                 ("AcpiProcessorUid", "I")),
    0x0A: Layout("Local x2APIC NMI", ("Flags", "H"), ("AcpiProcessorUid", "I"), ("LocalX2ApicLint", "B"),
                 ("Reserved", "3s")),
    0x0B: Layout(
        "GIC CPU Interface (GICC)",
        ("Reserved", "H"), ("CPUInterfaceNumber", "I"), ("AcpiProcessorUid", "I"), ("Flags", "I"),
        ("ParkingProtocolVersion", "I"), ("PerformanceInterruptGsiv", "I"), ("ParkedAddress", "Q"),
        ("PhysicalBaseAddress", "Q"), ("GICV", "Q"), ("GICH", "Q"),
        ("VGICMaintenanceInterrupt", "I"), ("GICRBaseAddress", "Q"), ("MPIDR", "Q"),
        ("ProcessorPowerEfficiencyClass", "B"), ("Reserved2", "B"), ("SpeOverflowInterrupt", "H"),
        ("TrbeInterrupt", "H")),
    0x0C: Layout("GIC Distributor (GICD)", ("Reserved1", "H"), ("GicId", "I"), ("PhysicalBaseAddress", "Q"),
                 ("SystemVectorBase", "I"), ("GicVersion", "B"), ("Reserved2", "3s")),
    0x0D: Layout("GIC MSI Frame", ("Reserved1", "H"), ("GicMsiFrameId", "I"), ("PhysicalBaseAddress", "Q"),
                 ("Flags", "I"), ("SPICount", "H"), ("SPIBase", "H")),
    0x0E: Layout("GIC Redistributor (GICR)", ("Reserved", "H"), ("DiscoveryRangeBaseAddress", "Q"),
                 ("DiscoveryRangeLength", "I")),
    0x0F: Layout("GIC Interrupt Translation Service (ITS)", ("Reserved", "H"), ("GicItsId", "I"),
                 ("PhysicalBaseAddress", "Q"), ("Reserved2", "I")),
    # 16 bytes in ACPI 6.4/6.5 (MailBoxVersion 0), 24 with ResetVector in 6.6 (MailBoxVersion 1):
    # edk2 OvmfPkg/TdxDxe/TdxAcpiTable.c appends the 6.6 form since 406f42cb74.
    0x10: Layout("Multiprocessor Wakeup", ("MailBoxVersion", "H"), ("Reserved", "I"), ("MailBoxAddress", "Q"),
                 ("ResetVector", "Q")),
}
MADT_OTHER_NAMES = {0x11: "Core PIC (LoongArch)", 0x12: "Legacy I/O PIC (LoongArch)",
                    0x13: "HyperTransport PIC (LoongArch)", 0x14: "Extend I/O PIC (LoongArch)",
                    0x15: "MSI PIC (LoongArch)", 0x16: "Bridge I/O PIC (LoongArch)",
                    0x17: "Low Pin Count PIC (LoongArch)"}

MCFG = Layout("MCFG", ("Reserved", "Q"))
MCFG_ENTRY = Layout("MCFG_ENTRY", ("BaseAddress", "Q"), ("PciSegmentGroupNumber", "H"), ("StartBusNumber", "B"),
                    ("EndBusNumber", "B"), ("Reserved", "I"))

HPET = Layout("HPET", ("EventTimerBlockId", "I"), ("BaseAddressLower32Bit", GAS), ("HpetNumber", "B"),
              ("MainCounterMinimumClockTickInPeriodicMode", "H"), ("PageProtectionAndOemAttribute", "B"))

# TCG ACPI Specification 1.3 §8.3 / edk2 Tpm2Acpi.h: LAML/LASA follow the start-method parameters
# (12 bytes at revision 4, 16 at revision 5) and are optional (edk2 drops them when zero).
# Revision 3 has a u32 Flags where revision 4+ has PlatformClass u16 + Reserved u16.
TPM2_REV3 = Layout("TPM2_REV3", ("Flags", "I"), ("AddressOfControlArea", "Q"), ("StartMethod", "I"))
TPM2 = Layout("TPM2", ("PlatformClass", "H"), ("Reserved", "H"), ("AddressOfControlArea", "Q"),
              ("StartMethod", "I"))
# TCG ACPI spec §7.1.2 client TCPA table (TPM 1.2).
TCPA_CLIENT = Layout("TCPA_CLIENT", ("PlatformClass", "H"), ("Laml", "I"), ("Lasa", "Q"))
# ACPI 6.5 §5.2.34 CC Event Log ACPI Table; TDEL: acpica actbl2.h ACPI_TABLE_TDEL.
CCEL = Layout("CCEL", ("CcType", "B"), ("CcSubType", "B"), ("Reserved", "H"), ("Laml", "Q"), ("Lasa", "Q"))
TDEL = Layout("TDEL", ("Reserved", "I"), ("Laml", "Q"), ("Lasa", "Q"))
BGRT = Layout("BGRT", ("Version", "H"), ("Status", "B"), ("ImageType", "B"), ("ImageAddress", "Q"),
              ("ImageOffsetX", "I"), ("ImageOffsetY", "I"))
WAET = Layout("WAET", ("EmulatedDeviceFlags", "I"))

SRAT = Layout("SRAT", ("Reserved1", "I"), ("Reserved2", "Q"))
SRAT_SUBTABLES = {
    0: Layout("Processor Local APIC/SAPIC Affinity",
              ("ProximityDomain7To0", "B"), ("ApicId", "B"), ("Flags", "I"), ("LocalSapicEid", "B"),
              ("ProximityDomain31To8", "3s"), ("ClockDomain", "I")),
    1: Layout("Memory Affinity",
              ("ProximityDomain", "I"), ("Reserved1", "H"), ("AddressBaseLow", "I"),
              ("AddressBaseHigh", "I"), ("LengthLow", "I"), ("LengthHigh", "I"), ("Reserved2", "I"),
              ("Flags", "I"), ("Reserved3", "Q")),
    2: Layout("Processor Local x2APIC Affinity",
              ("Reserved1", "H"), ("ProximityDomain", "I"), ("X2ApicId", "I"), ("Flags", "I"),
              ("ClockDomain", "I"), ("Reserved2", "I")),
    3: Layout("GICC Affinity", ("ProximityDomain", "I"), ("AcpiProcessorUid", "I"), ("Flags", "I"),
              ("ClockDomain", "I")),
    4: Layout("GIC ITS Affinity", ("ProximityDomain", "I"), ("Reserved", "H"), ("ItsId", "I")),
    5: Layout("Generic Initiator Affinity", ("Reserved1", "B"), ("DeviceHandleType", "B"),
              ("ProximityDomain", "I"), ("DeviceHandle", "16s"), ("Flags", "I"), ("Reserved2", "I")),
}

SLIT = Layout("SLIT", ("NumberOfSystemLocalities", "Q"))

# Intel VT-d spec §8 / edk2 DmaRemappingReportingTable.h.
DMAR = Layout("DMAR", ("HostAddressWidth", "B"), ("Flags", "B"), ("Reserved", "10s"))
DMAR_HEADER = Layout("DMAR_HEADER", ("Type", "H"), ("Length", "H"))
DMAR_SUBTABLES = {
    0: Layout("DRHD", ("Flags", "B"), ("Size", "B"), ("SegmentNumber", "H"), ("RegisterBaseAddress", "Q")),
    1: Layout("RMRR", ("Reserved", "H"), ("SegmentNumber", "H"),
              ("ReservedMemoryRegionBaseAddress", "Q"), ("ReservedMemoryRegionLimitAddress", "Q")),
    2: Layout("ATSR", ("Flags", "B"), ("Reserved", "B"), ("SegmentNumber", "H")),
    3: Layout("RHSA", ("Reserved", "I"), ("RegisterBaseAddress", "Q"), ("ProximityDomain", "I")),
    4: Layout("ANDD", ("Reserved", "3s"), ("AcpiDeviceNumber", "B")),
    5: Layout("SATC", ("Flags", "B"), ("Reserved", "B"), ("SegmentNumber", "H")),
    6: Layout("SIDP", ("Reserved", "H"), ("SegmentNumber", "H")),
}
DMAR_DEVICE_SCOPE = Layout("DMAR_DEVICE_SCOPE", ("Type", "B"), ("Length", "B"), ("Flags", "B"),
                           ("Reserved", "B"), ("EnumerationId", "B"), ("StartBusNumber", "B"))

# Microsoft SPCR spec rev 4 / edk2 SerialPortConsoleRedirectionTable.h.
SPCR = Layout("SPCR",
    ("InterfaceType", "B"), ("Reserved1", "3s"), ("BaseAddress", GAS), ("InterruptType", "B"),
    ("Irq", "B"), ("GlobalSystemInterrupt", "I"), ("BaudRate", "B"), ("Parity", "B"),
    ("StopBits", "B"), ("FlowControl", "B"), ("TerminalType", "B"), ("Language", "B"),
    ("PciDeviceId", "H"), ("PciVendorId", "H"), ("PciBusNumber", "B"), ("PciDeviceNumber", "B"),
    ("PciFunctionNumber", "B"), ("PciFlags", "I"), ("PciSegment", "B"),
    ("UartClockFrequency", "I"), ("PreciseBaudRate", "I"), ("NamespaceStringLength", "H"),
    ("NamespaceStringOffset", "H"),
)

__all__ = [n for n in dir() if n.isupper()]
