"""Flash images, firmware volumes and FFS files as Node trees.

PI spec 1.8 vol 3 ch. 3 (firmware volume, firmware file system); edk2
MdePkg/Include/Pi/PiFirmwareVolume.h and PiFirmwareFile.h; GenFv's layout of the extended
header inside a leading pad file: BaseTools/Source/C/GenFv/GenFvInternalLib.c.
Sections are decoded by decoders.fd.sections; every decode runs under one budget (decoders.budget).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from decoders import budget, guids
from decoders.display import flags_text
from decoders.fd import structs as S
from decoders.fd.sections import Context, align, decode_sections, ui_name
from decoders.model import Node, Space

# -- limits ----------------------------------------------------------------------------------
# FFS files in one volume: OVMF's DXEFV holds ~150; a volume of 24-byte empty files could
# otherwise make a node per 24 bytes. (Files in the whole image: the budget's `files`.)
MAX_FILES_PER_FV = 4096
# Headers walked (not decoded) to say how many files a budget left out.
MAX_FILES_COUNTED = 1 << 18
# `_FVH` candidates looked at in one image: real flash holds a handful of volumes.
MAX_SCAN_HITS = 256
# Block map entries before the {0,0} terminator: edk2 images use one.
MAX_BLOCK_MAP_ENTRIES = 64
# Entries in one FV extended header: GenFv writes at most a few.
MAX_EXT_ENTRIES = 64

FFS2_GUID = guids.gEfiFirmwareFileSystem2Guid
FFS3_GUID = guids.gEfiFirmwareFileSystem3Guid
NVDATA_GUID = guids.gEfiSystemNvDataFvGuid
VTF_GUID = guids.gEfiFirmwareVolumeTopFileGuid
PAD_NAME = uuid.UUID(bytes=b"\xff" * 16)

# File types whose body is a section stream (PI vol 3 2.1.4.1); RAW, pad, OEM and debug
# types hold bytes with no structure the spec defines.
_SECTIONED_TYPES = frozenset(range(0x02, 0x10))
_NON_ERASE = {0xFF: re.compile(rb"[^\xff]"), 0x00: re.compile(rb"[^\x00]")}


def decode_image(data: bytes | bytearray | memoryview, *, name: str = "image", base: int | None = None,
                 predecoded: Callable[[object, int], bytes | None] | None = None) -> Node:
    """Decode a flash device image: every firmware volume found, and the bytes between them.

    `base` is the address of the first byte; by default the image ends at 4 GiB - 1, where
    an x86 flash device is mapped. `predecoded(buffer, payload_offset)` may hand over the
    LZMA-stage bytes of a section that the caller inflated ahead of time (inspector.imagefile);
    they are used only when they have the size the section's header declares. When it also has
    `stream(buffer, payload_offset)`, a plain LZMA section's bytes are decoded while they inflate
    (blobs.Filling), and kept only when the whole stream turns out good.
    """
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)  # count()/find() with bounds need a real buffer; flash images are small
    if base is None:
        base = (1 << 32) - len(data)
    with budget.scope() as b:
        image = _decode_image(data, name, base, Context(b, predecoded=predecoded))
        b.summarize(image)    # what the budget left out past its first located cut
    return image


def _decode_image(data: bytes | bytearray, name: str, base: int, ctx: Context) -> Node:
    space = Space(name, data, base)
    image = Node("image", f"{name}: flash image, 0x{len(data):x} bytes", space, 0, len(data))
    image.add("Base", base, None, None, f"0x{base:x}")
    pos = 0
    hits = 0
    skipped: list[tuple[int, str]] = []
    search = S.FV_SIGNATURE_OFFSET
    while hits < MAX_SCAN_HITS:
        hit = data.find(S.FV_SIGNATURE, max(search, pos + S.FV_SIGNATURE_OFFSET))
        if hit < 0:
            break
        hits += 1
        cand = hit - S.FV_SIGNATURE_OFFSET
        search = hit + 1
        why = _implausible(data, cand)
        if why:
            skipped.append((cand, why))
            continue
        if cand > pos:
            image.append(_gap(space, pos, cand, [s for s in skipped if pos <= s[0] < cand]))
        if not ctx.take_node(image, cand, len(data) - cand, "bytes of volumes"):
            pos = len(data)
            break
        fv = decode_fv(space, cand, 0, end=_bad_length_end(data, cand), ctx=ctx)
        image.append(fv)
        pos = cand + max(fv.size, S.FV_HEADER_SIZE)
    else:
        image.problem(search, f"more than {MAX_SCAN_HITS} volume signatures; scan stopped here")
    if pos < len(data):
        image.append(_gap(space, pos, len(data), [s for s in skipped if s[0] >= pos]))
    nfv = sum(1 for c in image.children if c.kind == "fv")
    image.title = f"{name}: flash image, 0x{len(data):x} bytes, {nfv} volume{'s' if nfv != 1 else ''}"
    if nfv == 0:
        image.problem(0, "no firmware volume (`_FVH` signature at +0x28) found")
    return image


def _bad_length_end(data, cand: int) -> int | None:
    """Where a volume with an unusable FvLength must stop: at the next plausible volume header,
    so one bad length field does not swallow the volumes after it. None when FvLength is usable
    (a good volume may hold raw nested volumes, which must not cut it short)."""
    fv_len = int.from_bytes(data[cand + 0x20:cand + 0x28], "little")
    if S.FV_HEADER_SIZE <= fv_len <= len(data) - cand:
        return None
    hit = cand + S.FV_SIGNATURE_OFFSET
    for _ in range(MAX_SCAN_HITS):
        hit = data.find(S.FV_SIGNATURE, hit + 1)
        if hit < 0:
            return None
        if not _implausible(data, hit - S.FV_SIGNATURE_OFFSET):
            return hit - S.FV_SIGNATURE_OFFSET
    return None


def _implausible(data, cand: int) -> str | None:
    """Why a `_FVH` hit is not a volume header, or None when it looks like one."""
    if cand < 0 or len(data) - cand < S.FV_HEADER_SIZE:
        return "volume signature too close to the buffer edge for a header"
    zero = data[cand:cand + 16] == b"\0" * 16
    fsg = guids.from_bytes(data[cand + 0x10:cand + 0x20])
    rev = data[cand + 0x37]
    if zero or rev == S.EFI_FVH_REVISION or fsg in (FFS2_GUID, FFS3_GUID, NVDATA_GUID):
        return None
    return "`_FVH` found, but no zero vector, revision 2 or known file system GUID: not a volume"


def _gap(space: Space, start: int, end: int, skipped: list[tuple[int, str]]) -> Node:
    data = space.data
    n = end - start
    for fill in (0xFF, 0x00):
        if data.count(fill, start, end) == n:
            node = Node("padding", f"Padding (0x{fill:02X}), 0x{n:x} bytes", space, start, n)
            break
    else:
        node = Node("unknown", f"Non-volume data, 0x{n:x} bytes", space, start, n)
        node.note(start, f"0x{n:x} bytes outside any firmware volume that are not erased")
    for off, why in skipped:
        node.note(off, why)
    return node


def decode_fv(space: Space, offset: int, depth: int = 0, *, end: int | None = None,
              ctx: Context | None = None) -> Node:
    """Decode the firmware volume at space[offset:], bounded by `end` (default: the buffer's end)."""
    if ctx is None:
        with budget.scope() as b:
            return decode_fv(space, offset, depth, end=end, ctx=Context(b))
    data = space.data
    if data is None:
        node = Node("fv", "Firmware volume", space, max(offset, 0), 0)
        node.problem(offset, f"space {space.name} holds no bytes to decode")
        return node
    limit = len(data) if end is None else min(end, len(data))
    avail = limit - offset
    node = Node("fv", "Firmware volume", space, offset, max(avail, 0))
    if offset < 0:
        node.offset, node.size = 0, 0
        node.problem(None, f"volume offset {offset} is negative")
        return node
    if avail < S.FV_HEADER_SIZE:
        node.problem(offset, f"volume header needs 0x{S.FV_HEADER_SIZE:x} bytes, 0x{max(avail, 0):x} left")
        return node
    key = (id(space), offset)
    if key in ctx.volumes:
        node.problem(offset, "this volume is already being decoded (self-nesting); not decoded again")
        return node
    ctx.volumes.add(key)
    # The header, block map and checksummed span end within HeaderLength (UINT16) of the start.
    space.need(min(limit, offset + 0x10000))
    h = S.EFI_FIRMWARE_VOLUME_HEADER.read(data, offset)
    S.EFI_FIRMWARE_VOLUME_HEADER.add_fields(node, h, offset)
    attrs = h["Attributes"]
    a_log2 = (attrs & S.EFI_FVB2_ALIGNMENT) >> S.EFI_FVB2_ALIGNMENT_SHIFT
    node.field("Attributes").display = flags_text(attrs & ~S.EFI_FVB2_ALIGNMENT, S.EFI_FVB2_ATTRIBUTES) + \
        f", alignment 2^{a_log2} = 0x{1 << a_log2:x}"
    node.field("Signature").display = repr(h["Signature"])[1:]
    erase = 0xFF if attrs & S.EFI_FVB2_ERASE_POLARITY else 0x00
    fs = node.get("FileSystemGuid")

    if h["ZeroVector"] != b"\0" * 16:
        node.note(offset, "ZeroVector is not zero (PI: reserved for the processor reset vector)")
    if h["Signature"] != S.FV_SIGNATURE:
        node.problem(offset + 0x28, f"Signature {h['Signature']!r}, expected b'_FVH'")
    if h["Revision"] != S.EFI_FVH_REVISION:
        node.warn(offset + 0x37, f"Revision {h['Revision']}, expected {S.EFI_FVH_REVISION}")

    fv_length = h["FvLength"]
    blocks_total, map_end = _block_map(node, data, offset, avail, h["HeaderLength"])
    size = _volume_size(node, offset, avail, fv_length, blocks_total)
    node.size = size
    fv_end = offset + size
    if blocks_total is not None and blocks_total != fv_length:
        node.problem(offset + S.FV_HEADER_SIZE,
                     f"block map covers 0x{blocks_total:x} bytes, FvLength says 0x{fv_length:x}")

    hl = h["HeaderLength"]
    if hl < S.FV_HEADER_SIZE + S.BLOCK_MAP_ENTRY_SIZE or hl > size or hl & 1:
        node.problem(offset + 0x30, f"HeaderLength 0x{hl:x} invalid (needs an even value from "
                                    f"0x{S.FV_HEADER_SIZE + S.BLOCK_MAP_ENTRY_SIZE:x} to FvLength); "
                                    f"using the block map's end 0x{map_end - offset:x}")
        hl = map_end - offset
    else:
        total = sum(memoryview(data)[offset:offset + hl].cast("H")) & 0xFFFF
        if total:
            node.problem(offset + 0x32, f"header checksum fails: 16-bit sum over HeaderLength is 0x{total:04x}, "
                                        f"not 0 (Checksum field 0x{h['Checksum']:04x})")
    if h["Reserved"]:
        node.warn(offset + 0x36, f"Reserved is 0x{h['Reserved']:x}, expected 0")

    ext = None
    if h["ExtHeaderOffset"]:
        ext = _ext_header(node, space, offset, h["ExtHeaderOffset"], hl, fv_end)
        if ext is not None:
            node.add("FvName", ext.get("FvName"), ext.offset, 16, guids.describe(ext.get("FvName")))
    shown = ext.get("FvName") if ext is not None else fs
    node.title = f"Volume {guids.describe(shown)}"

    body = offset + hl
    if fs == NVDATA_GUID:
        from decoders import nvvars
        space.need(fv_end)
        try:
            node.children.extend(nvvars.decode_nv_body(space, body, fv_end - body))
        except Exception as e:  # noqa: BLE001 - a bug in the variable decoder must not lose the image
            node.problem(body, f"NV variable store decoder failed: {e.__class__.__name__}: {e}")
    elif fs in (FFS2_GUID, FFS3_GUID):
        _files(node, space, offset, body, fv_end, erase, fs == FFS3_GUID, ext, depth, ctx)
    else:
        node.note(offset + 0x10, f"file system {guids.describe(fs)} is not FFS v2/v3; body not decoded")
        if fv_end > body:
            node.append(Node("data", "Volume body (not decoded)", space, body, fv_end - body))
    if ext is not None and not any(ext in f.children for f in node.children[:2]):
        # GenFv puts it in the first (pad) file; anywhere else it is shown under the volume.
        node.children.insert(0, ext)
    return node


def _block_map(node: Node, data, offset: int, avail: int, hl: int) -> tuple[int | None, int]:
    """Add BlockMap[i] fields; return (bytes covered or None, offset after the terminator)."""
    pos = offset + S.FV_HEADER_SIZE
    limit = offset + min(avail, max(hl, S.FV_HEADER_SIZE + S.BLOCK_MAP_ENTRY_SIZE * (MAX_BLOCK_MAP_ENTRIES + 1)))
    total = 0
    for i in range(MAX_BLOCK_MAP_ENTRIES + 1):
        if pos + S.BLOCK_MAP_ENTRY_SIZE > limit:
            node.problem(pos, "block map has no {0,0} terminator before the end of the header")
            return None, pos
        num = int.from_bytes(data[pos:pos + 4], "little")
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        if num == 0 and length == 0:
            node.add(f"BlockMap[{i}]", (0, 0), pos, 8, "terminator")
            return total, pos + 8
        node.add(f"BlockMap[{i}].NumBlocks", num, pos, 4)
        node.add(f"BlockMap[{i}].Length", length, pos + 4, 4)
        total += num * length
        pos += 8
    node.problem(pos, f"block map longer than {MAX_BLOCK_MAP_ENTRIES} entries")
    return None, pos


def _volume_size(node: Node, offset: int, avail: int, fv_len: int, blocks: int | None) -> int:
    if S.FV_HEADER_SIZE <= fv_len <= avail:
        return fv_len
    if fv_len > avail:
        node.problem(offset + 0x20, f"FvLength 0x{fv_len:x} runs past the end of the buffer "
                                    f"(0x{avail:x} bytes left); decoded up to the end")
        return avail
    if blocks is not None and S.FV_HEADER_SIZE <= blocks <= avail:
        node.problem(offset + 0x20, f"FvLength 0x{fv_len:x} is too small; using the block map's 0x{blocks:x}")
        return blocks
    node.problem(offset + 0x20, f"FvLength 0x{fv_len:x} is too small; decoded up to the end of the buffer")
    return avail


def _ext_header(node: Node, space: Space, offset: int, ext_off: int, hl: int, fv_end: int) -> Node | None:
    data = space.data
    at = offset + ext_off
    if ext_off < hl or at + S.FV_EXT_HEADER_SIZE > fv_end:
        node.problem(offset + 0x34, f"ExtHeaderOffset 0x{ext_off:x} is outside the volume body")
        return None
    space.need(at + S.FV_EXT_HEADER_SIZE)
    eh = S.EFI_FIRMWARE_VOLUME_EXT_HEADER.read(data, at)
    ext = Node("fv-ext-header", "Volume extended header", space, at, S.FV_EXT_HEADER_SIZE)
    S.EFI_FIRMWARE_VOLUME_EXT_HEADER.add_fields(ext, eh, at)
    ext.title = f"Volume extended header, FvName {guids.describe(ext.get('FvName'))}"
    size = eh["ExtHeaderSize"]
    if size < S.FV_EXT_HEADER_SIZE or at + size > fv_end:
        ext.problem(at + 0x10, f"ExtHeaderSize 0x{size:x} invalid (0x{S.FV_EXT_HEADER_SIZE:x} to the volume end)")
        return ext
    ext.size = size
    space.need(at + size)
    pos, end = at + S.FV_EXT_HEADER_SIZE, at + size
    for _ in range(MAX_EXT_ENTRIES):
        if end - pos < S.FV_EXT_ENTRY_SIZE:
            break
        esize = int.from_bytes(data[pos:pos + 2], "little")
        etype = int.from_bytes(data[pos + 2:pos + 4], "little")
        tname = S.EFI_FV_EXT_TYPE.get(etype, f"unknown 0x{etype:x}")
        entry = ext.append(Node("fv-ext-entry", f"{tname} entry", space, pos, max(esize, 0)))
        entry.add("ExtEntrySize", esize, pos, 2)
        entry.add("ExtEntryType", etype, pos + 2, 2, tname)
        if esize < S.FV_EXT_ENTRY_SIZE or pos + esize > end:
            entry.size = min(max(esize, S.FV_EXT_ENTRY_SIZE), end - pos)
            entry.problem(pos, f"ExtEntrySize 0x{esize:x} invalid (0x4 to the end of the extended header)")
            break
        _ext_entry(entry, data, pos, esize, etype)
        pos += esize
    else:
        ext.problem(pos, f"more than {MAX_EXT_ENTRIES} extended header entries; the rest not decoded")
    return ext


def _ext_entry(entry: Node, data, pos: int, esize: int, etype: int) -> None:
    p, end = pos + S.FV_EXT_ENTRY_SIZE, pos + esize
    if etype == 1 and end - p >= 4:
        entry.add("TypeMask", int.from_bytes(data[p:p + 4], "little"), p, 4)
        for i in range(min((end - p - 4) // 16, MAX_EXT_ENTRIES)):
            g = guids.from_bytes(data[p + 4 + 16 * i:p + 20 + 16 * i])
            entry.add(f"Types[{i}]", g, p + 4 + 16 * i, 16, guids.describe(g))
    elif etype == 2 and end - p >= 16:
        g = guids.from_bytes(data[p:p + 16])
        entry.add("FormatType", g, p, 16, guids.describe(g))
        entry.add("Data", bytes(data[p + 16:end]), p + 16, end - p - 16)
    elif etype == 3 and end - p >= 4:
        used = int.from_bytes(data[p:p + 4], "little")
        entry.add("UsedSize", used, p, 4)
        entry.title = f"USED_SIZE_TYPE entry: 0x{used:x} bytes used"
    elif etype in (1, 2, 3):
        entry.problem(pos, f"ExtEntrySize 0x{esize:x} too small for a {entry.get('ExtEntryType')} entry")


# -- FFS files -------------------------------------------------------------------------------

def _files(fv: Node, space: Space, fv_off: int, body: int, fv_end: int, erase: int, ffs3: bool,
           ext: Node | None, depth: int, ctx: Context) -> None:
    data = space.data
    empty_header = bytes([erase]) * S.FFS_HEADER_SIZE
    seen: dict[uuid.UUID, int] = {}
    pos = fv_off + align(body - fv_off, 8)
    b = ctx.budget
    for _ in range(MAX_FILES_PER_FV):
        pos = fv_off + align(pos - fv_off, 8)   # PI vol 3 2.1.4: files are 8-byte aligned in the FV
        if pos >= fv_end:
            return
        space.need(min(fv_end, pos + S.FFS_HEADER2_SIZE))
        if fv_end - pos < S.FFS_HEADER_SIZE or data[pos:pos + S.FFS_HEADER_SIZE] == empty_header:
            fv.append(_free_space(space, pos, fv_end, erase))
            return
        if ctx.files >= b.limits.files:
            space.need(fv_end)
            _left_out_files(fv, data, fv_off, pos, fv_end, empty_header, b, "files")
            return
        if not ctx.take_node(fv, pos, fv_end - pos, "bytes of files"):
            return
        ctx.files += 1
        f, ok = _file(space, data, fv_off, pos, fv_end, erase, ffs3, ext, depth, ctx)
        fv.append(f)
        _charge_problems(f, b)
        if not ok:
            return
        name = f.get("Name")
        if name != PAD_NAME:
            if name in seen:
                f.warn(pos, f"file name {name} duplicates the file at 0x{seen[name]:x} in this volume")
            else:
                seen[name] = pos
        pos += f.size
    fv.problem(pos, f"more than {MAX_FILES_PER_FV} files; the rest not decoded")


def _charge_problems(node: Node, b: budget.Budget) -> None:
    """Keep a file's own problems while the problem budget lasts (a volume of broken files would
    otherwise report each one)."""
    for i in range(len(node.problems)):
        if not b.take_problem():
            del node.problems[i:]
            return


def _left_out_files(fv: Node, data, fv_off: int, pos: int, fv_end: int, empty_header: bytes,
                    b: budget.Budget, limit: str) -> None:
    """Say how many files from `pos` on the budget `limit` leaves out: their headers are walked by
    size (up to MAX_FILES_COUNTED), not decoded."""
    count, at = 0, pos
    while count < MAX_FILES_COUNTED and fv_end - at >= S.FFS_HEADER_SIZE:
        if data[at:at + S.FFS_HEADER_SIZE] == empty_header:
            break
        size = int.from_bytes(data[at + 0x14:at + 0x17], "little")
        if data[at + 0x13] & S.FFS_ATTRIB_LARGE_FILE and fv_end - at >= S.FFS_HEADER2_SIZE:
            size = int.from_bytes(data[at + 0x18:at + 0x20], "little")
        if size < S.FFS_HEADER_SIZE or size > fv_end - at:
            break
        count += 1
        at = fv_off + align(at + size - fv_off, 8)
    more = "" if count < MAX_FILES_COUNTED else " (at least)"
    b.left_out(fv, pos, count, f"files{more}", limit)


def _free_space(space: Space, pos: int, end: int, erase: int) -> Node:
    data = space.data
    n = end - pos
    node = Node("free-space", f"Free space, 0x{n:x} bytes", space, pos, n)
    space.need(end)
    if not _erased(data, erase, pos, end):
        # Only now look for where: a regex search with bounds copies nothing.
        if isinstance(data, memoryview):
            first = _NON_ERASE[erase].search(bytes(data[pos:end]))
            at = pos + (first.start() if first else 0)
        else:
            first = _NON_ERASE[erase].search(data, pos, end)
            at = first.start() if first else pos
        node.problem(at, f"free space holds data: byte 0x{data[at]:02x} at 0x{at:x} is not the erase value "
                         f"0x{erase:02x}")
    return node


# The erased-byte blocks _erased compares with, one per erase value, made on first use.
_ERASED_BLOCK = 1 << 18
_ERASED: dict[int, bytes] = {}


def _erased(data, byte: int, start: int, end: int) -> bool:
    """Whether data[start:end] is all `byte`. Block by block against a block of that byte (a memcmp):
    a volume's free space is megabytes, which bytes.count scans five times slower."""
    block = _ERASED.get(byte)
    if block is None:
        block = _ERASED[byte] = bytes([byte]) * _ERASED_BLOCK
    view = isinstance(data, memoryview)       # memoryview == compares item by item: copy to bytes
    for at in range(start, end, _ERASED_BLOCK):
        stop = min(at + _ERASED_BLOCK, end)
        piece = bytes(data[at:stop]) if view else data[at:stop]
        if piece != (block if stop - at == _ERASED_BLOCK else block[:stop - at]):
            return False
    return True


def _state_text(raw: int, erase: int) -> tuple[int, str]:
    bits = (~raw & 0xFF) if erase else raw   # PI vol 3 2.1.4.1: state bits are inverted when erased = 1
    names = [n for b, n in S.EFI_FFS_FILE_STATE.items() if bits & b]
    return bits, f"0x{raw:02x} -> 0x{bits:02x} ({' | '.join(names) or 'none'})"


def _file(space: Space, data, fv_off: int, pos: int, fv_end: int, erase: int, ffs3: bool,
          ext: Node | None, depth: int, ctx: Context) -> tuple[Node, bool]:
    h = S.EFI_FFS_FILE_HEADER.read(data, pos)
    name = h["Name"]
    ftype, attrs, state = h["Type"], h["Attributes"], h["State"]
    header_check, file_check = h["IntegrityCheck.Header"], h["IntegrityCheck.File"]
    tname = S.EFI_FV_FILETYPE.get(ftype) or _type_range(ftype)
    node = Node("ffs", f"{guids.describe(name)} ({tname})", space, pos, 0)
    node.add("Name", name, pos, 16, guids.describe(name))
    node.add("IntegrityCheck.Header", header_check, pos + 0x10, 1)
    node.add("IntegrityCheck.File", file_check, pos + 0x11, 1)
    node.add("Type", ftype, pos + 0x12, 1, tname)
    align_log2 = (S.FFS_ALIGNMENT2_LOG2 if attrs & S.FFS_ATTRIB_DATA_ALIGNMENT_2 else S.FFS_ALIGNMENT_LOG2)[
        (attrs & S.FFS_ATTRIB_DATA_ALIGNMENT) >> 3]
    shown = flags_text(attrs & ~S.FFS_ATTRIB_DATA_ALIGNMENT, S.EFI_FFS_FILE_ATTRIBUTES)
    node.add("Attributes", attrs, pos + 0x13, 1, f"{shown}, data alignment 0x{1 << align_log2:x}")
    node.add("Size", h["Size"], pos + 0x14, 3)
    bits, stext = _state_text(state, erase)
    node.add("State", state, pos + 0x17, 1, stext)
    hsize, size = S.FFS_HEADER_SIZE, h["Size"]
    if attrs & S.FFS_ATTRIB_LARGE_FILE:
        if fv_end - pos < S.FFS_HEADER2_SIZE:
            node.size = fv_end - pos
            node.problem(pos + 0x13, "LARGE_FILE header needs 0x20 bytes; the volume ends first")
            return node, False
        hsize = S.FFS_HEADER2_SIZE
        size = int.from_bytes(data[pos + 0x18:pos + 0x20], "little")
        node.add("ExtendedSize", size, pos + 0x18, 8)
        if not ffs3:
            node.warn(pos + 0x13, "LARGE_FILE in an FFS v2 volume (PI: only FFS v3 volumes hold large files)")
    if size < hsize or size > fv_end - pos:
        node.size = fv_end - pos
        node.problem(pos + (0x18 if hsize == S.FFS_HEADER2_SIZE else 0x14),
                     f"file size 0x{size:x} is {'smaller than its header' if size < hsize else 'past the volume end'}"
                     f" (0x{fv_end - pos:x} bytes left); the rest of the volume is not decoded")
        return node, False
    node.size = size
    data_off, file_end = pos + hsize, pos + size
    space.need(file_end)

    # PI vol 3 2.2.3: IntegrityCheck.Header makes the header sum to 0 with State and .File as 0.
    hsum = (sum(memoryview(data)[pos:data_off]) - state - file_check) & 0xFF
    if hsum:
        node.problem(pos + 0x10, f"header checksum fails: 8-bit sum is 0x{hsum:02x}, not 0")
    if attrs & S.FFS_ATTRIB_CHECKSUM:
        dsum = (sum(memoryview(data)[data_off:file_end]) + file_check) & 0xFF
        if dsum:
            node.problem(pos + 0x11, f"data checksum fails: 8-bit sum is 0x{dsum:02x}, not 0")
    elif file_check != S.FFS_FIXED_CHECKSUM:
        node.problem(pos + 0x11, f"IntegrityCheck.File is 0x{file_check:02x}; without "
                                 f"FFS_ATTRIB_CHECKSUM it must be 0x{S.FFS_FIXED_CHECKSUM:02X}")
    if bits & (S.EFI_FILE_DELETED | S.EFI_FILE_HEADER_INVALID) or not bits & S.EFI_FILE_DATA_VALID:
        node.warn(pos + 0x17, f"file state {stext}: not a valid, live file")
    if (data_off - fv_off) % (1 << align_log2):
        node.warn(data_off, f"file data at volume offset 0x{data_off - fv_off:x} is not aligned to "
                            f"0x{1 << align_log2:x} as the Attributes ask")

    if ftype == S.EFI_FV_FILETYPE_FFS_PAD:
        node.title = "Pad file"
        if ext is not None and data_off <= ext.offset < file_end:
            node.title = "Pad file (holds the volume extended header)"
            node.append(ext)
        elif not _erased(data, erase, data_off, file_end):
            node.note(data_off, "pad file body is not erased")
    elif name == VTF_GUID:
        node.title = f"Volume Top File ({str(name).upper()}) ({tname})"
        if file_end != fv_end:
            node.warn(pos, "the volume top file does not end at the end of the volume")
    if ftype in _SECTIONED_TYPES:
        node.children.extend(decode_sections(space, data_off, file_end, depth, ctx, node))
        ui = ui_name(node.children)
        if ui:
            node.title = f"{ui} ({tname}, {guids.describe(name)})"
            node.add("UI", ui, None, None)
    elif ftype != S.EFI_FV_FILETYPE_FFS_PAD and file_end > data_off:
        node.append(Node("data", f"{tname} file data", space, data_off, file_end - data_off))
        if ftype == 0x00:
            node.warn(pos + 0x12, "type 0x00 is EFI_FV_FILETYPE_ALL, a search wildcard, not a stored file type")
        elif ftype not in S.EFI_FV_FILETYPE:
            node.note(pos + 0x12, f"file type 0x{ftype:02x} has no section stream the spec defines; shown raw")
    return node, True


def _type_range(t: int) -> str:
    if 0xC0 <= t <= 0xDF:
        return f"OEM 0x{t:02X}"
    if 0xE0 <= t <= 0xEF:
        return f"DEBUG 0x{t:02X}"
    if 0xF1 <= t:
        return f"FFS 0x{t:02X}"
    return f"unknown 0x{t:02X}"
