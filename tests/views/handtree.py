"""A small Node tree built by hand over the real bytes of Debian's OVMF.fd, for the view tests.

The views must not depend on the FD decoder being finished, so this reads the FV headers
(edk2 MdePkg/Include/Pi/PiFirmwareVolume.h) and the FFS file headers of uncompressed volumes
(MdePkg/Include/Pi/PiFirmwareFile.h) with `struct`, straight from the image; test_app.py checks the result against
UEFIExtract's report of the same file.
"""
from __future__ import annotations

import struct

from decoders import guids
from decoders.model import Node, Space

FFS_PAD = 0xF0
# SECFV holds a handful of files; the cap only keeps a corrupted header from looping long.
MAX_FILES_PER_FV = 256


def fv_header_checksum(data: bytes, off: int, header_length: int) -> int:
    # PiFirmwareVolume.h: the UINT16 sum over HeaderLength bytes is 0 for a valid header.
    words = struct.unpack_from(f"<{header_length // 2}H", data, off)
    return sum(words) & 0xFFFF


def fv_node(space: Space, off: int) -> Node:
    data = space.data
    fv_length, = struct.unpack_from("<Q", data, off + 0x20)
    sig, attrs, hlen, csum, ext, _res, rev = struct.unpack_from("<4sIHHHBB", data, off + 0x28)
    fs_guid = guids.from_bytes(data[off + 0x10:off + 0x20])
    fv_name = guids.from_bytes(data[off + ext:off + ext + 16]) if ext else None
    title = f"FV {guids.describe(fv_name)}" if fv_name else f"FV at 0x{off:x}"
    node = Node("fv", title, space, off, fv_length)
    node.add("ZeroVector", bytes(data[off:off + 16]), off, 16)
    node.add("FileSystemGuid", fs_guid, off + 0x10, 16, guids.describe(fs_guid))
    node.add("FvLength", fv_length, off + 0x20, 8)
    node.add("Signature", sig.decode("ascii", "replace"), off + 0x28, 4)
    node.add("Attributes", attrs, off + 0x2C, 4)
    node.add("HeaderLength", hlen, off + 0x30, 2)
    node.add("Checksum", csum, off + 0x32, 2)
    node.add("ExtHeaderOffset", ext, off + 0x34, 2)
    node.add("Revision", rev, off + 0x37, 1)
    if fv_name is not None:
        node.add("FvName", fv_name, off + ext, 16, guids.describe(fv_name))
    if fv_header_checksum(data, off, hlen):
        node.problem(off + 0x32, "FV header checksum: the UINT16 sum of the header is not 0")
    return node


def add_files(fv: Node) -> None:
    """FFS files of an uncompressed FV, 8-byte aligned after the header (PI vol 3, 2.1.4)."""
    data = fv.space.data
    pos = fv.offset + fv.get("HeaderLength")
    end = fv.offset + fv.size
    for _ in range(MAX_FILES_PER_FV):
        pos = (pos + 7) & ~7
        if pos + 24 > end or data[pos:pos + 24] == b"\xff" * 24:
            break
        name = guids.from_bytes(data[pos:pos + 16])
        ftype = data[pos + 0x12]
        size = int.from_bytes(data[pos + 0x14:pos + 0x17], "little")
        if size < 24:
            break
        title = "Pad file" if ftype == FFS_PAD else f"File {guids.describe(name)}"
        f = fv.append(Node("ffs", title, fv.space, pos, size))
        f.add("Name", name, pos, 16, guids.describe(name))
        f.add("Type", ftype, pos + 0x12, 1)
        f.add("Size", size, pos + 0x14, 3)
        pos += size


def hand_tree(data: bytes, name: str = "OVMF.fd") -> Node:
    """image → the FVs found at their `_FVH` signatures (at +0x28 in EFI_FIRMWARE_VOLUME_HEADER) → files of uncompressed FVs."""
    # The image's last byte sits at 4 GiB - 1: flash is mapped to end at the top of 32-bit space.
    space = Space(name, data, base=(1 << 32) - len(data))
    root = Node("image", name, space, 0, len(data))
    root.add("Size", len(data), 0, None)
    off = 0
    while off + 0x40 <= len(data):
        if data[off + 0x28:off + 0x2C] == b"_FVH":
            fv = root.append(fv_node(space, off))
            if fv.get("FileSystemGuid") == guids.lookup("gEfiFirmwareFileSystem2Guid"):
                add_files(fv)
            off += max(fv.size, 0x1000)
        else:
            # FVs in edk2 FDs start on 4 KiB boundaries (OvmfPkgDefines.fdf.inc region offsets).
            off += 0x1000
    return root


def big_tree(data: bytes, count: int) -> Node:
    """`count` nodes over the same bytes: 30 FVs of files (for the first-frame timing)."""
    space = Space("OVMF.fd", data, base=(1 << 32) - len(data))
    root = Node("image", "synthetic", space, 0, len(data))
    per_fv = max(1, count // 30 - 1)
    made = 1
    for i in range(30):
        fv = root.append(Node("fv", f"FV {i}", space, i * 0x10000, 0x10000))
        fv.add("FvLength", 0x10000, i * 0x10000 + 0x20, 8)
        made += 1
        for j in range(per_fv):
            off = i * 0x10000 + 0x48 + j * 0x20
            f = fv.append(Node("ffs", f"file {i}.{j}", space, off, 0x20))
            f.add("Name", guids.from_bytes(data[off:off + 16]), off, 16)
            made += 1
            if made >= count:
                return root
    return root
