"""A tiny but valid PE32+ image (PE/COFF spec; `MdePkg/Include/IndustryStandard/PeImage.h`).

DOS header with e_lfanew, "PE\\0\\0", COFF file header, PE32+ optional header with 16 data
directories, .text and .data, and a debug directory whose CodeView entry is an RSDS record
with a PDB path, as edk2's GenFw leaves in every driver (the path is how debuggers find symbols).
"""
from __future__ import annotations

import struct
import uuid

IMAGE_FILE_MACHINE_X64 = 0x8664
IMAGE_FILE_MACHINE_I386 = 0x014C
SUBSYSTEM_EFI_APPLICATION = 10
SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER = 11
IMAGE_DEBUG_TYPE_CODEVIEW = 2
IMAGE_DIRECTORY_ENTRY_DEBUG = 6
ALIGNMENT = 0x20  # edk2 GCC builds: section and file alignment 0x20 (GenFw output)
E_LFANEW = 0x80
SECTION_CHARACTERISTICS_TEXT = 0x60000020  # CODE | EXECUTE | READ
SECTION_CHARACTERISTICS_DATA = 0xC0000040  # INITIALIZED_DATA | READ | WRITE


def _align(n: int, a: int = ALIGNMENT) -> int:
    return (n + a - 1) // a * a


def pe32plus(code: bytes, data: bytes, *, image_base: int, pdb_path: str, pdb_guid: uuid.UUID,
             subsystem: int = SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER, entry_offset: int = 0) -> bytes:
    """Build the image. The entry point is `entry_offset` into .text."""
    num_sections = 2
    opt_size = 0xF0  # PE32+ optional header with 16 data directories
    headers_end = E_LFANEW + 4 + 20 + opt_size + 40 * num_sections
    size_of_headers = _align(headers_end)
    text_rva = size_of_headers
    text_raw = _align(len(code))
    data_rva = text_rva + text_raw
    # .data = caller's data, then the debug directory (28 B), then the RSDS CodeView record.
    debug_dir_off = _align(len(data), 4)
    cv_off = debug_dir_off + 28
    cv = b"RSDS" + pdb_guid.bytes_le + struct.pack("<I", 1) + pdb_path.encode() + b"\0"
    data_full = bytearray(data) + b"\0" * (debug_dir_off - len(data))
    # IMAGE_DEBUG_DIRECTORY: Characteristics, TimeDateStamp, Major/MinorVersion, Type, SizeOfData,
    # AddressOfRawData, PointerToRawData
    data_full += struct.pack("<IIHHIIII", 0, 0, 0, 0, IMAGE_DEBUG_TYPE_CODEVIEW, len(cv),
                             data_rva + cv_off, data_rva + cv_off)  # file offset == RVA here
    data_full += cv
    data_raw = _align(len(data_full))
    size_of_image = data_rva + data_raw

    dos = bytearray(E_LFANEW)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, E_LFANEW)
    coff = struct.pack("<HHIIIHH", IMAGE_FILE_MACHINE_X64, num_sections, 0, 0, 0, opt_size,
                       0x0022)  # EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
    dirs = [(0, 0)] * 16
    dirs[IMAGE_DIRECTORY_ENTRY_DEBUG] = (data_rva + debug_dir_off, 28)
    opt = struct.pack(
        "<HBBIIIII" "QIIHHHHHHIIIIHH" "QQQQII",
        0x20B, 0, 0, text_raw, data_raw, 0, text_rva + entry_offset, text_rva,
        image_base, ALIGNMENT, ALIGNMENT, 0, 0, 0, 0, 0, 0, 0, size_of_image, size_of_headers, 0,
        subsystem, 0,
        0, 0, 0, 0, 0, 16,
    ) + b"".join(struct.pack("<II", a, s) for a, s in dirs)
    assert len(opt) == opt_size
    secs = (struct.pack("<8sIIIIIIHHI", b".text", len(code), text_rva, text_raw, text_rva, 0, 0, 0, 0,
                        SECTION_CHARACTERISTICS_TEXT)
            + struct.pack("<8sIIIIIIHHI", b".data", len(data_full), data_rva, data_raw, data_rva, 0, 0, 0, 0,
                          SECTION_CHARACTERISTICS_DATA))
    head = bytes(dos) + b"PE\0\0" + coff + opt + secs
    head += b"\0" * (size_of_headers - len(head))
    return head + code.ljust(text_raw, b"\0") + bytes(data_full).ljust(data_raw, b"\0")


# x86-64 bodies: enough to disassemble sensibly.
CODE_RETURN_SUCCESS = bytes.fromhex("31c0c3")  # xor eax,eax ; ret
CODE_HALT_LOOP = bytes.fromhex("faf4ebfd")  # cli ; hlt ; jmp $-1
