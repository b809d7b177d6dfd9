"""UEFI system table, configuration tables, debug image info table and loaded images in memory
(UEFI 2.10 §4; edk2 MdePkg/Include/Uefi/UefiSpec.h, Guid/DebugImageInfoTable.h)."""
from decoders.efi.tables import (  # noqa: F401
    config_tables, decode_debug_image_info, decode_loaded_image, decode_system_table,
    decode_system_table_pointer, read_device_path, scan_system_table_pointer,
)
