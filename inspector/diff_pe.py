"""How two PE32/TE images of one module differ, in the words a reviewer uses (inspector.diff).

PE/COFF spec: the COFF file header's TimeDateStamp, the optional header's CheckSum and the debug
directory (IMAGE_DEBUG_DIRECTORY entries and the CodeView record they point at: the PDB path of the
build tree) change from one build to the next without a byte of code or data changing; masked
out, what is left says whether the module really changed. The section table says which bytes are
code: IMAGE_SCN_CNT_CODE (0x20) or IMAGE_SCN_MEM_EXECUTE (0x20000000) (edk2
MdePkg/Include/IndustryStandard/PeImage.h EFI_IMAGE_SCN_*).
"""
from __future__ import annotations

from decoders.model import Node

SCN_CNT_CODE = 0x00000020
SCN_MEM_EXECUTE = 0x20000000
# Fields that a rebuild changes without changing what runs (PE/COFF spec, "COFF File Header",
# "Optional Header Windows-Specific Fields").
_STAMP_FIELDS = ("TimeDateStamp", "CheckSum")
_MISSING = object()


# Bytes are compared a chunk at a time: two slices of this size at most are copied at once, so
# a hostile 64 MiB section costs no more memory than a real one (memcmp speed either way).
CHUNK = 1 << 20
# Images up to this size are compared with their build-only bytes masked (a copy of each); edk2's
# largest module (the UEFI Shell) is about 1 MiB, so larger ones are hostile and compared as they are.
MAX_MASKED = 16 << 20


def image_bytes(node: Node):
    """The node's bytes (bytes or bytearray: one copy, compared with one memcmp)."""
    return _data(node)[node.offset:node.offset + node.size]


# The last few spaces' bytes: a decompressed space's `data` is a cache lookup (decoders.fd.blobs)
# that a diff would repeat for every node. Few, so a hostile image's many blobs are not all kept.
_RECENT: dict[int, tuple[object, object]] = {}
_RECENT_MAX = 4


def _data(node: Node):
    space = node.space
    if space is None:
        return b""
    hit = _RECENT.get(id(space))
    if hit is not None and hit[0] is space:
        return hit[1]
    data = space.data
    if data is None:
        return b""
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.pop(next(iter(_RECENT)))
    _RECENT[id(space)] = (space, data)
    return data


def forget_spaces() -> None:
    """Drop the bytes kept by _data (the end of a diff)."""
    _RECENT.clear()


def same_bytes(na: Node, nb: Node) -> bool:
    """Whether two nodes hold the same bytes, a chunk at a time."""
    if na.size != nb.size:
        return False
    da, db = _data(na), _data(nb)
    oa, ob, size = na.offset, nb.offset, na.size
    if len(da) < oa + size or len(db) < ob + size:
        return da[oa:oa + size] == db[ob:ob + size]
    for i in range(0, size, CHUNK):
        m = min(CHUNK, size - i)
        if da[oa + i:oa + i + m] != db[ob + i:ob + i + m]:
            return False
    return True


def first_difference_nodes(na: Node, nb: Node) -> int | None:
    """Offset of the first byte where two nodes' bytes differ, a chunk at a time."""
    da, db = _data(na), _data(nb)
    n = min(na.size, nb.size)
    for i in range(0, n, CHUNK):
        m = min(CHUNK, n - i)
        at = first_difference(da[na.offset + i:na.offset + i + m], db[nb.offset + i:nb.offset + i + m])
        if at is not None:
            return i + at
    return None if na.size == nb.size else n


def debug_ranges(pe: Node) -> list[tuple[int, int]]:
    """(start, end) of the build-only bytes of `pe`, relative to its first byte: the time stamp,
    the checksum, the debug directory and the CodeView records."""
    out = []
    for name in _STAMP_FIELDS:
        f = pe.field(name)
        if f is not None and f.offset is not None and f.size:
            out.append((f.offset - pe.offset, f.offset - pe.offset + f.size))
    for n in pe.walk():
        if n.kind in ("pe-debug-directory", "pe-debug-entry", "pe-codeview") and n.space is pe.space:
            out.append((n.offset - pe.offset, n.offset - pe.offset + n.size))
    return [(max(0, s), e) for s, e in out if e > s]


def masked(data: bytes, ranges: list[tuple[int, int]], base: int = 0) -> bytes:
    """`data` (which starts at `base` of the image) with the bytes of `ranges` zeroed."""
    if not ranges:
        return data
    out = bytearray(data)
    touched = False
    for s, e in ranges:
        s, e = max(s - base, 0), min(e - base, len(out))
        if e > s:
            out[s:e] = bytes(e - s)
            touched = True
    return out if touched else data


def first_difference(a: bytes, b: bytes) -> int | None:
    """Offset of the first byte where `a` and `b` differ (a shorter one differs at its end); None
    when equal. Bisection over slice comparisons: memcmp speed without a Python loop per byte."""
    if a == b:
        return None
    n = min(len(a), len(b))
    lo, hi = 0, n
    if a[:n] == b[:n]:
        return n
    while hi - lo > 1:           # invariant: a[:lo] == b[:lo], a[:hi] != b[:hi]
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def is_code(section: Node) -> bool:
    return bool((section.get("Characteristics") or 0) & (SCN_CNT_CODE | SCN_MEM_EXECUTE))


def _sections(pe: Node) -> dict[tuple[str, int], Node]:
    """PE sections by (name, nth of that name): the same section of two builds."""
    out: dict[tuple[str, int], Node] = {}
    seen: dict[str, int] = {}
    for s in pe.children:
        if s.kind != "pe-section":
            continue
        name = s.get("Name") or ""
        n = seen.get(name, 0)
        seen[name] = n + 1
        out[(name, n)] = s
    return out


def _section_change(s: Node) -> str:
    if is_code(s):
        return "code"
    return "reloc" if (s.get("Name") or "") == ".reloc" else "data"


def compare_images(pa: Node, pb: Node) -> tuple[list[str], list[Node]]:
    """(change names, diff-section nodes of the PE sections that differ) for two images of one
    module; ([], []) when their bytes are equal. Change names: `code` (an executable section),
    `data` (another section), `reloc` (.reloc), `headers` (the headers outside the time stamp and
    debug data), `debug-only` (nothing but the time stamp, checksum and debug directory), `image`
    (an image that did not decode on one side)."""
    if same_bytes(pa, pb):
        return [], []
    small = pa.size <= MAX_MASKED and pb.size <= MAX_MASKED
    ra, rb = (debug_ranges(pa), debug_ranges(pb)) if small else ([], [])
    if small and pa.size == pb.size and masked(image_bytes(pa), ra) == masked(image_bytes(pb), rb):
        return ["debug-only"], []
    sa, sb = _sections(pa), _sections(pb)
    if not sa or not sb:
        return ["image"], []
    changes: list[str] = []
    nodes: list[Node] = []
    for key in list(sa) + [k for k in sb if k not in sa]:
        xa, xb = sa.get(key), sb.get(key)
        if xa is not None and xb is not None:
            if xa.size <= MAX_MASKED and xb.size <= MAX_MASKED:
                ba = masked(image_bytes(xa), ra, xa.offset - pa.offset)
                bb = masked(image_bytes(xb), rb, xb.offset - pb.offset)
                if ba == bb:
                    continue
                first = first_difference(ba, bb)
            else:
                if same_bytes(xa, xb):
                    continue
                first = first_difference_nodes(xa, xb)
        else:
            first = None
        what = _section_change(xb if xb is not None else xa)
        if what not in changes:
            changes.append(what)
        nodes.append(_section_node(key[0], xa, xb, first, what))
    # The headers: everything before the first section's raw data, stamps masked.
    ha = masked(_data(pa)[pa.offset:pa.offset + _headers_end(pa)], ra)
    hb = masked(_data(pb)[pb.offset:pb.offset + _headers_end(pb)], rb)
    if ha != hb:
        changes.append("headers")
        values_a = {f.name: f.value for f in pa.fields}
        fields = [f.name for f in pb.fields if f.name not in _STAMP_FIELDS and f.name != "PdbPath"
                  and values_a.get(f.name, _MISSING) != f.value]
        node = Node("diff-section", f"headers: {', '.join(fields[:8]) or 'bytes'} differ", pb.space, pb.offset,
                    len(hb))
        node.add("Change", "changed")
        node.add("Name", "headers")
        node.add("Kind", "pe-headers")
        node.add("Fields", fields)
        node.add("OffsetA", pa.offset)
        node.add("SpaceA", pa.space.name if pa.space else None)
        nodes.append(node)
    if not changes:   # differences only in bytes no section or header covers (alignment padding)
        changes.append("data")
    return changes, nodes


def _headers_end(pe: Node) -> int:
    starts = [s.offset - pe.offset for s in pe.children if s.kind == "pe-section" and s.size]
    return max(0, min(min(starts) if starts else 0x400, pe.size, 0x10000))


def _section_node(name: str, xa: Node | None, xb: Node | None, first: int | None, what: str) -> Node:
    change = "changed" if xa is not None and xb is not None else ("added" if xa is None else "removed")
    at = xb if xb is not None else xa
    size_a = xa.size if xa is not None else None
    size_b = xb.size if xb is not None else None
    if change == "changed":
        title = f"{name or '(no name)'}: {what}, {_size_text(size_a, size_b)}, first difference at +0x{first or 0:x}"
    else:
        title = f"{name or '(no name)'}: section {change}, {_size_text(size_a, size_b)}"
    node = Node("diff-section", title, at.space, at.offset, at.size)
    node.add("Change", change)
    node.add("Name", name)
    node.add("Kind", "pe-section")
    node.add("Class", what)
    node.add("SizeA", size_a)
    node.add("SizeB", size_b)
    if first is not None:
        node.add("FirstDifference", first, display=f"+0x{first:x}")
    if xa is not None:
        node.add("OffsetA", xa.offset)
        node.add("SpaceA", xa.space.name if xa.space else None)
    return node


def _size_text(a: int | None, b: int | None) -> str:
    if a is None:
        return f"0x{b:x} bytes"
    if b is None:
        return f"0x{a:x} bytes"
    if a == b:
        return f"0x{a:x} bytes"
    return f"0x{a:x} -> 0x{b:x} bytes ({b - a:+d})"
