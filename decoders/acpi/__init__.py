"""ACPI tables: RSDP, RSDT/XSDT, every table's header and checksum, decoded bodies (FACTS B.5)."""
from decoders.acpi.decode import decode_acpi_from_rsdp, decode_rsdp, decode_table, find_rsdp  # noqa: F401
