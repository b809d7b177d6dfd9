"""PE32 / PE32+ / TE wire structures.

Sources: Microsoft PE/COFF specification ("PE Format"), and edk2
MdePkg/Include/IndustryStandard/PeImage.h (edk2-stable202211), whose struct and field names are
used verbatim. Declarations only; decode.py reads them and builds Nodes.
"""
from __future__ import annotations

from construct import Array, Bytes, Const, Enum, FlagsEnum, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from decoders.guids import EFI_GUID

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
EFI_IMAGE_DOS_HEADER = Struct(
    "e_magic" / Int16ul,
    "e_cblp" / Int16ul,
    "e_cp" / Int16ul,
    "e_crlc" / Int16ul,
    "e_cparhdr" / Int16ul,
    "e_minalloc" / Int16ul,
    "e_maxalloc" / Int16ul,
    "e_ss" / Int16ul,
    "e_sp" / Int16ul,
    "e_csum" / Int16ul,
    "e_ip" / Int16ul,
    "e_cs" / Int16ul,
    "e_lfarlc" / Int16ul,
    "e_ovno" / Int16ul,
    "e_res" / Array(4, Int16ul),
    "e_oemid" / Int16ul,
    "e_oeminfo" / Int16ul,
    "e_res2" / Array(10, Int16ul),
    "e_lfanew" / Int32ul,
)

EFI_IMAGE_FILE_HEADER = Struct(
    "Machine" / Int16ul,
    "NumberOfSections" / Int16ul,
    "TimeDateStamp" / Int32ul,
    "PointerToSymbolTable" / Int32ul,
    "NumberOfSymbols" / Int32ul,
    "SizeOfOptionalHeader" / Int16ul,
    "Characteristics" / Int16ul,
)

EFI_IMAGE_DATA_DIRECTORY = Struct(
    "VirtualAddress" / Int32ul,
    "Size" / Int32ul,
)

# The optional headers without their DataDirectory array: it holds NumberOfRvaAndSizes entries,
# which may be fewer than 16 (PE/COFF spec, "Optional Header Data Directories"), so decode.py reads
# them one by one within SizeOfOptionalHeader.
EFI_IMAGE_OPTIONAL_HEADER32 = Struct(
    "Magic" / Int16ul,
    "MajorLinkerVersion" / Int8ul,
    "MinorLinkerVersion" / Int8ul,
    "SizeOfCode" / Int32ul,
    "SizeOfInitializedData" / Int32ul,
    "SizeOfUninitializedData" / Int32ul,
    "AddressOfEntryPoint" / Int32ul,
    "BaseOfCode" / Int32ul,
    "BaseOfData" / Int32ul,  # PE32 only; absent in PE32+
    "ImageBase" / Int32ul,
    "SectionAlignment" / Int32ul,
    "FileAlignment" / Int32ul,
    "MajorOperatingSystemVersion" / Int16ul,
    "MinorOperatingSystemVersion" / Int16ul,
    "MajorImageVersion" / Int16ul,
    "MinorImageVersion" / Int16ul,
    "MajorSubsystemVersion" / Int16ul,
    "MinorSubsystemVersion" / Int16ul,
    "Win32VersionValue" / Int32ul,
    "SizeOfImage" / Int32ul,
    "SizeOfHeaders" / Int32ul,
    "CheckSum" / Int32ul,
    "Subsystem" / Int16ul,
    "DllCharacteristics" / Int16ul,
    "SizeOfStackReserve" / Int32ul,
    "SizeOfStackCommit" / Int32ul,
    "SizeOfHeapReserve" / Int32ul,
    "SizeOfHeapCommit" / Int32ul,
    "LoaderFlags" / Int32ul,
    "NumberOfRvaAndSizes" / Int32ul,
)

EFI_IMAGE_OPTIONAL_HEADER64 = Struct(
    "Magic" / Int16ul,
    "MajorLinkerVersion" / Int8ul,
    "MinorLinkerVersion" / Int8ul,
    "SizeOfCode" / Int32ul,
    "SizeOfInitializedData" / Int32ul,
    "SizeOfUninitializedData" / Int32ul,
    "AddressOfEntryPoint" / Int32ul,
    "BaseOfCode" / Int32ul,
    "ImageBase" / Int64ul,
    "SectionAlignment" / Int32ul,
    "FileAlignment" / Int32ul,
    "MajorOperatingSystemVersion" / Int16ul,
    "MinorOperatingSystemVersion" / Int16ul,
    "MajorImageVersion" / Int16ul,
    "MinorImageVersion" / Int16ul,
    "MajorSubsystemVersion" / Int16ul,
    "MinorSubsystemVersion" / Int16ul,
    "Win32VersionValue" / Int32ul,
    "SizeOfImage" / Int32ul,
    "SizeOfHeaders" / Int32ul,
    "CheckSum" / Int32ul,
    "Subsystem" / Int16ul,
    "DllCharacteristics" / Int16ul,
    "SizeOfStackReserve" / Int64ul,
    "SizeOfStackCommit" / Int64ul,
    "SizeOfHeapReserve" / Int64ul,
    "SizeOfHeapCommit" / Int64ul,
    "LoaderFlags" / Int32ul,
    "NumberOfRvaAndSizes" / Int32ul,
)

EFI_IMAGE_SECTION_HEADER = Struct(
    "Name" / Bytes(8),
    "VirtualSize" / Int32ul,  # PeImage.h: union Misc { PhysicalAddress; VirtualSize; }
    "VirtualAddress" / Int32ul,
    "SizeOfRawData" / Int32ul,
    "PointerToRawData" / Int32ul,
    "PointerToRelocations" / Int32ul,
    "PointerToLinenumbers" / Int32ul,
    "NumberOfRelocations" / Int16ul,
    "NumberOfLinenumbers" / Int16ul,
    "Characteristics" / Int32ul,
)

# PI spec vol 1 / PeImage.h: the 40-byte TE header that replaces the DOS, PE and optional headers.
EFI_TE_IMAGE_HEADER = Struct(
    "Signature" / Int16ul,
    "Machine" / Int16ul,
    "NumberOfSections" / Int8ul,
    "Subsystem" / Int8ul,
    "StrippedSize" / Int16ul,
    "AddressOfEntryPoint" / Int32ul,
    "BaseOfCode" / Int32ul,
    "ImageBase" / Int64ul,
    "DataDirectory" / Array(2, EFI_IMAGE_DATA_DIRECTORY),  # [0] BASERELOC, [1] DEBUG
)

EFI_IMAGE_DEBUG_DIRECTORY_ENTRY = Struct(
    "Characteristics" / Int32ul,
    "TimeDateStamp" / Int32ul,
    "MajorVersion" / Int16ul,
    "MinorVersion" / Int16ul,
    "Type" / Int32ul,
    "SizeOfData" / Int32ul,
    "RVA" / Int32ul,
    "FileOffset" / Int32ul,
)

# CodeView records (PeImage.h); the NUL-terminated path follows each fixed part.
EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY = Struct(
    "Signature" / Const(CODEVIEW_SIGNATURE_NB10),
    "Unknown" / Int32ul,   # offset (0 for a separate PDB)
    "Unknown2" / Int32ul,  # PDB time stamp
    "Unknown3" / Int32ul,  # PDB age
)
# PeImage.h names the five words after "RSDS" Unknown..Unknown5; in the CodeView 7.0 format they are
# the PDB's GUID (16 bytes) and its age.
EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY = Struct(
    "Signature" / Const(CODEVIEW_SIGNATURE_RSDS),
    "Guid" / EFI_GUID,
    "Age" / Int32ul,
)
EFI_IMAGE_DEBUG_CODEVIEW_MTOC_ENTRY = Struct(
    "Signature" / Const(CODEVIEW_SIGNATURE_MTOC),
    "MachOUuid" / Bytes(16),
)

# -- value tables (display names), as construct Enum/FlagsEnum over the raw fields -------------------
# PeImage.h IMAGE_FILE_MACHINE_*; names as edk2 uses them for architectures.
MACHINE = Enum(
    Int16ul,
    IA32=0x014C,
    IA64=0x0200,
    EBC=0x0EBC,
    X64=0x8664,
    ARM=0x01C2,  # IMAGE_FILE_MACHINE_ARMTHUMB_MIXED
    AARCH64=0xAA64,
    RISCV32=0x5032,
    RISCV64=0x5064,
    RISCV128=0x5128,
    LOONGARCH32=0x6232,
    LOONGARCH64=0x6264,
)

# PeImage.h EFI_IMAGE_SUBSYSTEM_*; 13 is IMAGE_SUBSYSTEM_EFI_ROM in the PE/COFF spec
# (edk2 names it EFI_IMAGE_SUBSYSTEM_SAL_RUNTIME_DRIVER).
SUBSYSTEM = Enum(
    Int16ul,
    UNKNOWN=0,
    NATIVE=1,
    WINDOWS_GUI=2,
    WINDOWS_CUI=3,
    OS2_CUI=5,
    POSIX_CUI=7,
    EFI_APPLICATION=10,
    EFI_BOOT_SERVICE_DRIVER=11,
    EFI_RUNTIME_DRIVER=12,
    EFI_ROM=13,
)

OPTIONAL_MAGIC = Enum(Int16ul, PE32=EFI_IMAGE_NT_OPTIONAL_HDR32_MAGIC, PE32_PLUS=EFI_IMAGE_NT_OPTIONAL_HDR64_MAGIC)

# PeImage.h EFI_IMAGE_FILE_*
FILE_CHARACTERISTICS = FlagsEnum(
    Int16ul,
    RELOCS_STRIPPED=0x0001,
    EXECUTABLE_IMAGE=0x0002,
    LINE_NUMS_STRIPPED=0x0004,
    LOCAL_SYMS_STRIPPED=0x0008,
    LARGE_ADDRESS_AWARE=0x0020,  # PE/COFF spec IMAGE_FILE_LARGE_ADDRESS_AWARE
    BYTES_REVERSED_LO=0x0080,
    MACHINE_32BIT=0x0100,  # EFI_IMAGE_FILE_32BIT_MACHINE
    DEBUG_STRIPPED=0x0200,
    SYSTEM=0x1000,
    DLL=0x2000,
    BYTES_REVERSED_HI=0x8000,
)

# PE/COFF spec "DLL Characteristics" (edk2 2022.11's PeImage.h declares none; newer edk2 adds
# EFI_IMAGE_DLLCHARACTERISTICS_NX_COMPAT, which MdeModulePkg uses for PcdImageProtectionPolicy / NX).
DLL_CHARACTERISTICS = FlagsEnum(
    Int16ul,
    HIGH_ENTROPY_VA=0x0020,
    DYNAMIC_BASE=0x0040,
    FORCE_INTEGRITY=0x0080,
    NX_COMPAT=0x0100,
    NO_ISOLATION=0x0200,
    NO_SEH=0x0400,
    NO_BIND=0x0800,
    APPCONTAINER=0x1000,
    WDM_DRIVER=0x2000,
    GUARD_CF=0x4000,
    TERMINAL_SERVER_AWARE=0x8000,
)

# PeImage.h EFI_IMAGE_SCN_* (alignment is a 4-bit field, decoded separately).
SECTION_CHARACTERISTICS = FlagsEnum(
    Int32ul,
    TYPE_NO_PAD=0x00000008,
    CNT_CODE=0x00000020,
    CNT_INITIALIZED_DATA=0x00000040,
    CNT_UNINITIALIZED_DATA=0x00000080,
    LNK_OTHER=0x00000100,
    LNK_INFO=0x00000200,
    LNK_REMOVE=0x00000800,
    LNK_COMDAT=0x00001000,
    LNK_NRELOC_OVFL=0x01000000,
    MEM_DISCARDABLE=0x02000000,
    MEM_NOT_CACHED=0x04000000,
    MEM_NOT_PAGED=0x08000000,
    MEM_SHARED=0x10000000,
    MEM_EXECUTE=0x20000000,
    MEM_READ=0x40000000,
    MEM_WRITE=0x80000000,
)
SCN_ALIGN_MASK = 0x00F00000  # EFI_IMAGE_SCN_ALIGN_*: (n) << 20 means 2**(n-1) bytes
SCN_ALIGN_SHIFT = 20

# PeImage.h EFI_IMAGE_DIRECTORY_ENTRY_* and the PE/COFF spec's names for the rest.
DIRECTORY_NAMES = (
    "EXPORT", "IMPORT", "RESOURCE", "EXCEPTION", "SECURITY", "BASERELOC", "DEBUG", "ARCHITECTURE",
    "GLOBALPTR", "TLS", "LOAD_CONFIG", "BOUND_IMPORT", "IAT", "DELAY_IMPORT", "CLR_RUNTIME_HEADER",
    "RESERVED",
)

# PE/COFF spec "Debug Type".
DEBUG_TYPE = Enum(
    Int32ul,
    UNKNOWN=0,
    COFF=1,
    CODEVIEW=2,
    FPO=3,
    MISC=4,
    EXCEPTION=5,
    FIXUP=6,
    OMAP_TO_SRC=7,
    OMAP_FROM_SRC=8,
    BORLAND=9,
    RESERVED10=10,
    CLSID=11,
    VC_FEATURE=12,
    POGO=13,
    ILTCG=14,
    MPX=15,
    REPRO=16,
    EX_DLLCHARACTERISTICS=20,
)
