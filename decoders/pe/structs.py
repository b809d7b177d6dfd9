"""PE32 / PE32+ / TE wire structures.

Sources: Microsoft PE/COFF specification ("PE Format"), and edk2
MdePkg/Include/IndustryStandard/PeImage.h (edk2-stable202211), whose struct and field names are
used verbatim. Declarations only (decoders.layout records and the spec's name tables); decode.py
reads them and builds Nodes.
"""
from __future__ import annotations

from decoders.layout import Layout

# PeImage.h: EFI_IMAGE_DOS_SIGNATURE 'MZ', EFI_IMAGE_NT_SIGNATURE 'PE\0\0', EFI_TE_IMAGE_HEADER_SIGNATURE 'VZ'.
EFI_IMAGE_DOS_SIGNATURE = 0x5A4D
EFI_IMAGE_NT_SIGNATURE = 0x00004550
EFI_TE_IMAGE_HEADER_SIGNATURE = 0x5A56
EFI_IMAGE_NT_OPTIONAL_HDR32_MAGIC = 0x10B
EFI_IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20B
EFI_IMAGE_NUMBER_OF_DIRECTORY_ENTRIES = 16
EFI_IMAGE_SIZEOF_SECTION_HEADER = 40
EFI_IMAGE_DIRECTORY_ENTRY_DEBUG = 6
EFI_TE_IMAGE_DIRECTORY_ENTRY_BASERELOC = 0
EFI_TE_IMAGE_DIRECTORY_ENTRY_DEBUG = 1
EFI_IMAGE_DEBUG_TYPE_CODEVIEW = 2
CODEVIEW_SIGNATURE_NB10 = b"NB10"
CODEVIEW_SIGNATURE_RSDS = b"RSDS"
CODEVIEW_SIGNATURE_MTOC = b"MTOC"

# The DOS header as in PeImage.h (EFI_IMAGE_DOS_HEADER); only e_magic and e_lfanew matter to UEFI.
EFI_IMAGE_DOS_HEADER = Layout(
    "EFI_IMAGE_DOS_HEADER",
    ("e_magic", "H"),
    ("e_cblp", "H"),
    ("e_cp", "H"),
    ("e_crlc", "H"),
    ("e_cparhdr", "H"),
    ("e_minalloc", "H"),
    ("e_maxalloc", "H"),
    ("e_ss", "H"),
    ("e_sp", "H"),
    ("e_csum", "H"),
    ("e_ip", "H"),
    ("e_cs", "H"),
    ("e_lfarlc", "H"),
    ("e_ovno", "H"),
    ("e_res", "4H"),
    ("e_oemid", "H"),
    ("e_oeminfo", "H"),
    ("e_res2", "10H"),
    ("e_lfanew", "I"),
)

EFI_IMAGE_FILE_HEADER = Layout(
    "EFI_IMAGE_FILE_HEADER",
    ("Machine", "H"),
    ("NumberOfSections", "H"),
    ("TimeDateStamp", "I"),
    ("PointerToSymbolTable", "I"),
    ("NumberOfSymbols", "I"),
    ("SizeOfOptionalHeader", "H"),
    ("Characteristics", "H"),
)

EFI_IMAGE_DATA_DIRECTORY = Layout(
    "EFI_IMAGE_DATA_DIRECTORY",
    ("VirtualAddress", "I"),
    ("Size", "I"),
)

# The optional headers without their DataDirectory array: it holds NumberOfRvaAndSizes entries,
# which may be fewer than 16 (PE/COFF spec, "Optional Header Data Directories"), so decode.py reads
# them one by one within SizeOfOptionalHeader.
def _optional_header(name: str, natural: str) -> Layout:
    """EFI_IMAGE_OPTIONAL_HEADER32 (natural "I") and EFI_IMAGE_OPTIONAL_HEADER64 (natural "Q"): the
    same members but BaseOfData (PE32 only) and the width of ImageBase and the stack and heap
    sizes (UINT32 in PE32, UINT64 in PE32+)."""
    return Layout(
        name,
        ("Magic", "H"),
        ("MajorLinkerVersion", "B"),
        ("MinorLinkerVersion", "B"),
        ("SizeOfCode", "I"),
        ("SizeOfInitializedData", "I"),
        ("SizeOfUninitializedData", "I"),
        ("AddressOfEntryPoint", "I"),
        ("BaseOfCode", "I"),
        *([("BaseOfData", "I")] if natural == "I" else []),
        ("ImageBase", natural),
        ("SectionAlignment", "I"),
        ("FileAlignment", "I"),
        ("MajorOperatingSystemVersion", "H"),
        ("MinorOperatingSystemVersion", "H"),
        ("MajorImageVersion", "H"),
        ("MinorImageVersion", "H"),
        ("MajorSubsystemVersion", "H"),
        ("MinorSubsystemVersion", "H"),
        ("Win32VersionValue", "I"),
        ("SizeOfImage", "I"),
        ("SizeOfHeaders", "I"),
        ("CheckSum", "I"),
        ("Subsystem", "H"),
        ("DllCharacteristics", "H"),
        ("SizeOfStackReserve", natural),
        ("SizeOfStackCommit", natural),
        ("SizeOfHeapReserve", natural),
        ("SizeOfHeapCommit", natural),
        ("LoaderFlags", "I"),
        ("NumberOfRvaAndSizes", "I"),
    )


EFI_IMAGE_OPTIONAL_HEADER32 = _optional_header("EFI_IMAGE_OPTIONAL_HEADER32", "I")
EFI_IMAGE_OPTIONAL_HEADER64 = _optional_header("EFI_IMAGE_OPTIONAL_HEADER64", "Q")

EFI_IMAGE_SECTION_HEADER = Layout(
    "EFI_IMAGE_SECTION_HEADER",
    ("Name", "8s"),
    ("VirtualSize", "I"),  # PeImage.h: union Misc { PhysicalAddress; VirtualSize; }
    ("VirtualAddress", "I"),
    ("SizeOfRawData", "I"),
    ("PointerToRawData", "I"),
    ("PointerToRelocations", "I"),
    ("PointerToLinenumbers", "I"),
    ("NumberOfRelocations", "H"),
    ("NumberOfLinenumbers", "H"),
    ("Characteristics", "I"),
)

# PI spec vol 1 / PeImage.h: the 40-byte TE header that replaces the DOS, PE and optional headers.
EFI_TE_IMAGE_HEADER = Layout(
    "EFI_TE_IMAGE_HEADER",
    ("Signature", "H"),
    ("Machine", "H"),
    ("NumberOfSections", "B"),
    ("Subsystem", "B"),
    ("StrippedSize", "H"),
    ("AddressOfEntryPoint", "I"),
    ("BaseOfCode", "I"),
    ("ImageBase", "Q"),
    ("DataDirectory", (2, EFI_IMAGE_DATA_DIRECTORY)),  # [0] BASERELOC, [1] DEBUG
)

EFI_IMAGE_DEBUG_DIRECTORY_ENTRY = Layout(
    "EFI_IMAGE_DEBUG_DIRECTORY_ENTRY",
    ("Characteristics", "I"),
    ("TimeDateStamp", "I"),
    ("MajorVersion", "H"),
    ("MinorVersion", "H"),
    ("Type", "I"),
    ("SizeOfData", "I"),
    ("RVA", "I"),
    ("FileOffset", "I"),
)

# CodeView records (PeImage.h); the NUL-terminated path follows each fixed part.
EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY = Layout(
    "EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY",
    ("Signature", CODEVIEW_SIGNATURE_NB10),
    ("Unknown", "I"),   # offset (0 for a separate PDB)
    ("Unknown2", "I"),  # PDB time stamp
    ("Unknown3", "I"),  # PDB age
)
# PeImage.h names the five words after "RSDS" Unknown..Unknown5; in the CodeView 7.0 format they are
# the PDB's GUID (16 bytes) and its age.
EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY = Layout(
    "EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY",
    ("Signature", CODEVIEW_SIGNATURE_RSDS),
    ("Guid", "G"),
    ("Age", "I"),
)
EFI_IMAGE_DEBUG_CODEVIEW_MTOC_ENTRY = Layout(
    "EFI_IMAGE_DEBUG_CODEVIEW_MTOC_ENTRY",
    ("Signature", CODEVIEW_SIGNATURE_MTOC),
    ("MachOUuid", "16s"),
)

# -- value tables (display names) of the raw fields: value -> name; for flags, bit -> name ----------
# PeImage.h IMAGE_FILE_MACHINE_*; names as edk2 uses them for architectures.
MACHINE = {
    0x014C: "IA32",
    0x0200: "IA64",
    0x0EBC: "EBC",
    0x8664: "X64",
    0x01C2: "ARM",  # IMAGE_FILE_MACHINE_ARMTHUMB_MIXED
    0xAA64: "AARCH64",
    0x5032: "RISCV32",
    0x5064: "RISCV64",
    0x5128: "RISCV128",
    0x6232: "LOONGARCH32",
    0x6264: "LOONGARCH64",
}

# PeImage.h EFI_IMAGE_SUBSYSTEM_*; 13 is IMAGE_SUBSYSTEM_EFI_ROM in the PE/COFF spec
# (edk2 names it EFI_IMAGE_SUBSYSTEM_SAL_RUNTIME_DRIVER).
SUBSYSTEM = {
    0: "UNKNOWN",
    1: "NATIVE",
    2: "WINDOWS_GUI",
    3: "WINDOWS_CUI",
    5: "OS2_CUI",
    7: "POSIX_CUI",
    10: "EFI_APPLICATION",
    11: "EFI_BOOT_SERVICE_DRIVER",
    12: "EFI_RUNTIME_DRIVER",
    13: "EFI_ROM",
}

OPTIONAL_MAGIC = {EFI_IMAGE_NT_OPTIONAL_HDR32_MAGIC: "PE32", EFI_IMAGE_NT_OPTIONAL_HDR64_MAGIC: "PE32_PLUS"}

# PeImage.h EFI_IMAGE_FILE_*
FILE_CHARACTERISTICS = {
    0x0001: "RELOCS_STRIPPED",
    0x0002: "EXECUTABLE_IMAGE",
    0x0004: "LINE_NUMS_STRIPPED",
    0x0008: "LOCAL_SYMS_STRIPPED",
    0x0020: "LARGE_ADDRESS_AWARE",  # PE/COFF spec IMAGE_FILE_LARGE_ADDRESS_AWARE
    0x0080: "BYTES_REVERSED_LO",
    0x0100: "MACHINE_32BIT",  # EFI_IMAGE_FILE_32BIT_MACHINE
    0x0200: "DEBUG_STRIPPED",
    0x1000: "SYSTEM",
    0x2000: "DLL",
    0x8000: "BYTES_REVERSED_HI",
}

# PE/COFF spec "DLL Characteristics" (edk2 2022.11's PeImage.h declares none; newer edk2 adds
# EFI_IMAGE_DLLCHARACTERISTICS_NX_COMPAT, which MdeModulePkg uses for PcdImageProtectionPolicy / NX).
DLL_CHARACTERISTICS = {
    0x0020: "HIGH_ENTROPY_VA",
    0x0040: "DYNAMIC_BASE",
    0x0080: "FORCE_INTEGRITY",
    0x0100: "NX_COMPAT",
    0x0200: "NO_ISOLATION",
    0x0400: "NO_SEH",
    0x0800: "NO_BIND",
    0x1000: "APPCONTAINER",
    0x2000: "WDM_DRIVER",
    0x4000: "GUARD_CF",
    0x8000: "TERMINAL_SERVER_AWARE",
}

# PeImage.h EFI_IMAGE_SCN_* (alignment is a 4-bit field, decoded separately).
SECTION_CHARACTERISTICS = {
    0x00000008: "TYPE_NO_PAD",
    0x00000020: "CNT_CODE",
    0x00000040: "CNT_INITIALIZED_DATA",
    0x00000080: "CNT_UNINITIALIZED_DATA",
    0x00000100: "LNK_OTHER",
    0x00000200: "LNK_INFO",
    0x00000800: "LNK_REMOVE",
    0x00001000: "LNK_COMDAT",
    0x01000000: "LNK_NRELOC_OVFL",
    0x02000000: "MEM_DISCARDABLE",
    0x04000000: "MEM_NOT_CACHED",
    0x08000000: "MEM_NOT_PAGED",
    0x10000000: "MEM_SHARED",
    0x20000000: "MEM_EXECUTE",
    0x40000000: "MEM_READ",
    0x80000000: "MEM_WRITE",
}
SCN_ALIGN_MASK = 0x00F00000  # EFI_IMAGE_SCN_ALIGN_*: (n) << 20 means 2**(n-1) bytes
SCN_ALIGN_SHIFT = 20

# PeImage.h EFI_IMAGE_DIRECTORY_ENTRY_* and the PE/COFF spec's names for the rest.
DIRECTORY_NAMES = (
    "EXPORT", "IMPORT", "RESOURCE", "EXCEPTION", "SECURITY", "BASERELOC", "DEBUG", "ARCHITECTURE",
    "GLOBALPTR", "TLS", "LOAD_CONFIG", "BOUND_IMPORT", "IAT", "DELAY_IMPORT", "CLR_RUNTIME_HEADER",
    "RESERVED",
)

# PE/COFF spec "Debug Type".
DEBUG_TYPE = {
    0: "UNKNOWN",
    1: "COFF",
    2: "CODEVIEW",
    3: "FPO",
    4: "MISC",
    5: "EXCEPTION",
    6: "FIXUP",
    7: "OMAP_TO_SRC",
    8: "OMAP_FROM_SRC",
    9: "BORLAND",
    10: "RESERVED10",
    11: "CLSID",
    12: "VC_FEATURE",
    13: "POGO",
    14: "ILTCG",
    15: "MPX",
    16: "REPRO",
    20: "EX_DLLCHARACTERISTICS",
}
