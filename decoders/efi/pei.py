"""What SEC hands the PEI core (PI 1.8 vol. 1 §6.3; edk2 MdePkg/Include/Pi/PiPeiCis.h), decoded
through a Memory: EFI_SEC_PEI_HAND_OFF (PeiCore's SecCoreData) and the EFI_PEI_PPI_DESCRIPTOR list
(its PpiList). OVMF fills both in OvmfPkg/Sec/SecMain.c SecCoreStartupWithStack.
"""
from __future__ import annotations

from decoders import guids
from decoders.efi.structs import EFI_PEI_PPI_DESCRIPTOR, EFI_SEC_PEI_HAND_OFF
from decoders.fields import read_fields
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space

# EFI_PEI_PPI_DESCRIPTOR.Flags (MdePkg/Include/Pi/PiPeiCis.h).
EFI_PEI_PPI_DESCRIPTOR_PPI = 0x10
EFI_PEI_PPI_DESCRIPTOR_NOTIFY_CALLBACK = 0x20
EFI_PEI_PPI_DESCRIPTOR_NOTIFY_DISPATCH = 0x40
EFI_PEI_PPI_DESCRIPTOR_TERMINATE_LIST = 0x80000000
# SEC hands PEI a handful of PPIs (OvmfPkg/Sec/SecMain.c mPrivateDispatchTable: 1-3); a list that
# does not terminate within this many is garbage.
MAX_PPIS = 64
FLAG_NAMES = ((EFI_PEI_PPI_DESCRIPTOR_PPI, "PPI"), (EFI_PEI_PPI_DESCRIPTOR_NOTIFY_CALLBACK, "NOTIFY_CALLBACK"),
              (EFI_PEI_PPI_DESCRIPTOR_NOTIFY_DISPATCH, "NOTIFY_DISPATCH"),
              (EFI_PEI_PPI_DESCRIPTOR_TERMINATE_LIST, "TERMINATE_LIST"))
# (base, size, what) pairs of EFI_SEC_PEI_HAND_OFF, each a range that must fit the address space.
RANGES = (("BootFirmwareVolumeBase", "BootFirmwareVolumeSize", "boot firmware volume"),
          ("TemporaryRamBase", "TemporaryRamSize", "temporary RAM"),
          ("PeiTemporaryRamBase", "PeiTemporaryRamSize", "PEI temporary RAM"),
          ("StackBase", "StackSize", "stack"))


def _hex(v: int) -> str:
    return f"0x{v:x}"


def decode_sec_pei_handoff(mem: Memory, address: int, width: int) -> Node:
    """EFI_SEC_PEI_HAND_OFF at `address` (kind "sec-pei-handoff"); `width` is the PEI core's
    pointer size (4 for IA32 PEI, 8 for X64)."""
    st = EFI_SEC_PEI_HAND_OFF(width)
    node = Node("sec-pei-handoff", f"EFI_SEC_PEI_HAND_OFF at 0x{address:x}")
    hex_fields = [name for pair in RANGES for name in pair[:2]]
    p = read_fields(node, mem, address, st, "EFI_SEC_PEI_HAND_OFF", displays=dict.fromkeys(hex_fields, _hex))
    if p is None:
        return node
    if p.DataSize != st.sizeof():
        node.warn(0, f"DataSize {p.DataSize}, sizeof(EFI_SEC_PEI_HAND_OFF) is {st.sizeof()} with "
                     f"{width * 8}-bit pointers")
    for base, size, what in RANGES[1:]:
        if getattr(p, base) + getattr(p, size) > 1 << (width * 8):
            node.problem(0, f"{what} {base} + {size} wraps past the address space")
    node.title = (f"EFI_SEC_PEI_HAND_OFF: BFV 0x{p.BootFirmwareVolumeBase:x} +0x{p.BootFirmwareVolumeSize:x}, "
                  f"temp RAM 0x{p.TemporaryRamBase:x} +0x{p.TemporaryRamSize:x}, "
                  f"stack 0x{p.StackBase:x} +0x{p.StackSize:x}")
    return node


def decode_ppi_list(mem: Memory, address: int, width: int, max_ppis: int = MAX_PPIS) -> Node:
    """EFI_PEI_PPI_DESCRIPTOR array at `address` up to the one with TERMINATE_LIST (kind "ppi-list",
    children "ppi-descriptor" with the GUID read and named)."""
    st = EFI_PEI_PPI_DESCRIPTOR(width)
    size = st.sizeof()
    root = Node("ppi-list", f"PPI list at 0x{address:x}")
    for i in range(max_ppis):
        at = address + i * size
        d = Node("ppi-descriptor", f"EFI_PEI_PPI_DESCRIPTOR at 0x{at:x}")
        try:
            raw = mem.read(at, size)
        except Unreadable as e:
            root.problem(None, f"descriptor {i} at 0x{at:x} not readable: {e}")
            break
        d.space, d.size = Space(f"EFI_PEI_PPI_DESCRIPTOR@0x{at:x}", raw, at), size
        p = st.parse(raw, 0)
        flags = [n for bit, n in FLAG_NAMES if p.Flags & bit]
        st.add_fields(d, p, 0,
                      displays={"Flags": f"0x{p.Flags:x} ({'|'.join(flags) or 'none'})", "Guid": _hex, "Ppi": _hex})
        try:
            guid = guids.from_bytes(mem.read(p.Guid, 16))
            d.add("GuidValue", guid, None, None, guids.describe(guid))
            d.title = f"{guids.name(guid) or str(guid).upper()} -> 0x{p.Ppi:x}"
        except Unreadable as e:
            d.problem(width, f"Guid pointer 0x{p.Guid:x} not readable: {e}")
        if not p.Flags & (EFI_PEI_PPI_DESCRIPTOR_PPI | EFI_PEI_PPI_DESCRIPTOR_NOTIFY_CALLBACK
                          | EFI_PEI_PPI_DESCRIPTOR_NOTIFY_DISPATCH):
            d.warn(0, f"Flags 0x{p.Flags:x} name neither a PPI nor a notification")
        root.append(d)
        if p.Flags & EFI_PEI_PPI_DESCRIPTOR_TERMINATE_LIST:
            break
    else:
        root.problem(None, f"no TERMINATE_LIST flag within {max_ppis} descriptors")
    root.add("Count", len(root.children))
    root.title = f"PPI list at 0x{address:x}: {len(root.children)} descriptors"
    return root
