"""ACPI tables: RSDP, RSDT/XSDT, every table's header and checksum, decoded bodies
(ACPI 6.5 chapter 5; edk2 MdePkg/Include/IndustryStandard/Acpi65.h)."""
from decoders.acpi.decode import decode_acpi_from_rsdp, decode_rsdp, decode_table, find_rsdp  # noqa: F401
