"""PI HOB lists and the TD HOB: decode, memory map, TD HOB lint and digest.

HOBs as PI 1.8 vol. 3 chapter 5 and edk2 MdePkg/Include/Pi/PiHob.h define them; the TD HOB as
QEMU hw/i386/tdvf-hob.c builds it and edk2 OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c
(ValidateHobList, TdxHelperMeasureTdHob) checks and measures it.
"""
from decoders.hob.decode import MAX_HOB_LIST_BYTES, MAX_HOBS, decode_hob_list  # noqa: F401
from decoders.hob.tdhob import lint_td_hob, td_hob_digest  # noqa: F401

_MEMMAP = ("MemoryMap", "MemoryRange", "memory_map", "memory_map_node")


def __getattr__(name: str):
    """The memory-map names, loaded on first use (PEP 562): decoding and linting a TD HOB
    (`measure --tdx`) needs neither them nor the dataclasses module they are built with."""
    if name in _MEMMAP:
        from decoders.hob import memmap

        return getattr(memmap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
