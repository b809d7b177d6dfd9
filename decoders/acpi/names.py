"""Display names for ACPI values (ACPI 6.5 tables cited per dict). Kept apart from the parsers."""

SIGNATURES = {
    "APIC": "Multiple APIC Description Table (MADT)", "FACP": "Fixed ACPI Description Table (FADT)",
    "FACS": "Firmware ACPI Control Structure", "DSDT": "Differentiated System Description Table",
    "SSDT": "Secondary System Description Table", "RSDT": "Root System Description Table",
    "XSDT": "Extended System Description Table", "MCFG": "PCI Express Memory-mapped Configuration",
    "HPET": "High Precision Event Timer", "TPM2": "Trusted Platform Module 2.0",
    "TCPA": "Trusted Computing Platform Alliance (TPM 1.2)", "CCEL": "Confidential Computing Event Log",
    "TDEL": "TD Event Log (pre-CCEL TDX)", "BGRT": "Boot Graphics Resource Table",
    "WAET": "Windows ACPI Emulated Devices", "SRAT": "System Resource Affinity Table",
    "SLIT": "System Locality Information Table", "DMAR": "DMA Remapping (VT-d)",
    "SPCR": "Serial Port Console Redirection", "BOOT": "Simple Boot Flag", "SLIC": "Software Licensing",
    "TMOR": "TCG Memory Overwrite Request", "HMAT": "Heterogeneous Memory Attribute",
    "IVRS": "I/O Virtualization Reporting (AMD)", "VIOT": "Virtual I/O Translation",
}

# ACPI 6.5 Table 5.6 (Preferred_PM_Profile).
PM_PROFILES = {0: "Unspecified", 1: "Desktop", 2: "Mobile", 3: "Workstation", 4: "Enterprise Server",
               5: "SOHO Server", 6: "Appliance PC", 7: "Performance Server", 8: "Tablet"}

# ACPI 6.5 Table 5.1 (Generic Address Structure, Address Space ID).
ADDRESS_SPACES = {0: "SystemMemory", 1: "SystemIO", 2: "PCIConfig", 3: "EmbeddedController", 4: "SMBus",
                  5: "SystemCMOS", 6: "PciBarTarget", 7: "IPMI", 8: "GeneralPurposeIO",
                  9: "GenericSerialBus", 0x0A: "PlatformCommunicationChannel", 0x0B: "PlatformRuntimeMechanism",
                  0x7F: "FunctionalFixedHW"}
ACCESS_SIZES = {0: "Undefined/Legacy", 1: "Byte", 2: "Word", 3: "DWord", 4: "QWord"}

# ACPI 6.5 Table 5.10 (FADT Flags).
FADT_FLAGS = ["WBINVD", "WBINVD_FLUSH", "PROC_C1", "P_LVL2_UP", "PWR_BUTTON", "SLP_BUTTON", "FIX_RTC",
              "RTC_S4", "TMR_VAL_EXT", "DCK_CAP", "RESET_REG_SUP", "SEALED_CASE", "HEADLESS", "CPU_SW_SLP",
              "PCI_EXP_WAK", "USE_PLATFORM_CLOCK", "S4_RTC_STS_VALID", "REMOTE_POWER_ON_CAPABLE",
              "FORCE_APIC_CLUSTER_MODEL", "FORCE_APIC_PHYSICAL_DESTINATION_MODE", "HW_REDUCED_ACPI",
              "LOW_POWER_S0_IDLE_CAPABLE", "PERSISTENT_CPU_CACHES"]
# ACPI 6.5 Table 5.11 (IA-PC boot architecture flags).
IAPC_BOOT_ARCH = ["LEGACY_DEVICES", "8042", "VGA_NOT_PRESENT", "MSI_NOT_SUPPORTED", "PCIE_ASPM_CONTROLS",
                  "CMOS_RTC_NOT_PRESENT"]
# ACPI 6.5 Table 5.14 (FACS flags).
FACS_FLAGS = ["S4BIOS_F", "64BIT_WAKE_SUPPORTED_F"]
MADT_FLAGS = ["PCAT_COMPAT"]
LOCAL_APIC_FLAGS = ["Enabled", "OnlineCapable"]

# TCG ACPI Specification 1.3, Table 8 (Start Method).
TPM2_START_METHODS = {0: "Not allowed", 1: "Legacy use", 2: "ACPI", 3: "Legacy use", 4: "Legacy use",
                      5: "Legacy use", 6: "Memory-mapped I/O (TIS)", 7: "Command Response Buffer (CRB)",
                      8: "CRB with ACPI start", 9: "Legacy use", 10: "Legacy use",
                      11: "CRB with Arm SMC", 12: "FIFO over I2C", 13: "AMD Mailbox", 15: "CRB with Arm FF-A"}
# ACPI 6.5 Table 5.160 (CC Type); edk2 Acpi65.h.
CC_TYPES = {0: "none", 1: "AMD SEV", 2: "Intel TDX", 3: "RISC-V AP-TEE (CoVE)", 4: "Arm CCA"}
# Microsoft SPCR spec Table 3 (Interface Type, from the DBG2 port subtypes).
SPCR_INTERFACES = {0: "16550", 1: "16450", 3: "ARM PL011", 0x0D: "ARM SBSA Generic UART (2.x)",
                   0x0E: "ARM SBSA Generic UART", 0x10: "BCM2835", 0x12: "16550-compatible (GAS)"}
SRAT_MEMORY_FLAGS = ["Enabled", "HotPluggable", "NonVolatile"]
BGRT_IMAGE_TYPES = {0: "Bitmap"}
WAET_FLAGS = ["RTC_GOOD", "ACPI_PM_TIMER_GOOD"]
DMAR_FLAGS = ["INTR_REMAP", "X2APIC_OPT_OUT", "DMA_CTRL_PLATFORM_OPT_IN"]
DMAR_SCOPE_TYPES = {1: "PCI Endpoint", 2: "PCI Sub-hierarchy", 3: "IOAPIC", 4: "MSI Capable HPET",
                    5: "ACPI Namespace Device"}
