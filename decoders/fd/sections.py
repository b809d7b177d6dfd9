"""FFS section streams: leaf sections, encapsulation, and decompression into new Spaces.

PI spec 1.8 vol 3 ch. 2.2.5 and 3.2.5; edk2 MdePkg/Include/Pi/PiFirmwareFile.h.
GUIDed-section payload formats: edk2 MdeModulePkg/Library/LzmaCustomDecompressLib,
BrotliCustomDecompressLib, DxeCrc32GuidedSectionExtractLib; MdePkg/Include/Guid/WinCertificate.h.

Also home to the decode context: the one budget (decoders.budget: nodes, files, problems, depth,
decompressed bytes held) and the blob cache every walk in decoders/fd works under.
"""
from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable

from decoders import guids
from decoders.budget import Budget, current
from decoders.display import flags_text
from decoders.errors import DecodeError
from decoders.layout import Layout
from decoders.fd import structs as S
from decoders.fd.blobs import BlobCache, BlobSpace, StreamBroken
from decoders.fd.compression import (X86_WORKING_COPIES, CompressionError, bcj_x86_decode, brotli_decompress,
                                     declared_size, efi_decompress, lzma_decompress, lzma_x86_decompress)
from decoders.model import Node, Space

# -- limits (the rest are the budget's: decoders.budget.Limits) ---------------------------------
# Sections in one section stream: edk2 drivers carry 3-6; a stream of 4-byte empty sections
# could otherwise yield a node per 4 bytes.
MAX_SECTIONS_PER_STREAM = 256
# One decompressed blob: OVMF's biggest (FVMAIN_COMPACT's PEIFV + DXEFV) is 13.5 MiB.
MAX_BLOB_SIZE = 64 << 20
# Bytes produced by decompression while one image is decoded: a bound on time (LZMA inflates
# zeros at 75-250 MiB/s here, and `extract` may decompress a dropped blob once more), not on
# memory, which the budget's held_bytes bounds. Real OVMF images decompress about 14 MiB.
MAX_TOTAL_DECOMPRESSED = 128 << 20
# A UCS-2 name or version string longer than this is garbage, not a module name.
MAX_STRING_CHARS = 1024


class Context:
    """What one decode run (one image, or one decode_fv call) shares: the budget, the cache of
    decompressed blobs, the work done so far and the volumes being decoded. A plain class: the
    dataclasses module (with the inspect module it imports) is ~10 ms of every image decode."""

    def __init__(self, budget: Budget | None = None, cache: BlobCache | None = None,
                 predecoded: Callable[[object, int], bytes | None] | None = None):
        self.budget = current() if budget is None else budget
        self.cache = BlobCache(self.budget.limits.held_bytes) if cache is None else cache
        self.decompressed = 0
        self.files = 0
        self.sections = 0
        self.volumes: set = set()       # (id(space), offset) of volumes decoded so far
        # The caller's LZMA-stage bytes for a section, inflated ahead of time: (buffer, payload
        # offset) -> bytes or None (decode_image's `predecoded`); its `stream(buffer, payload
        # offset)`, when it has one, gives the same bytes while they inflate (blobs.Filling) or None.
        self.predecoded = predecoded

    def take_node(self, owner: Node, offset: int, left: int, noun: str) -> bool:
        """One more node; False (with the located 'not shown' problem) once the budget is spent."""
        if self.budget.take_node():
            return True
        self.budget.left_out(owner, offset, left, noun, "nodes")
        return False


SECTION_NAME = S.EFI_SECTION_TYPE
# Short labels for decompressed spaces' names ("image/lzma@0x20090").
_GUIDED = {
    uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf"): ("lzma", "LZMA", lzma_decompress),
    uuid.UUID("d42ae6bd-1352-4bfb-909a-ca72a6eae889"): ("lzmaf86", "LZMA+x86 BCJ", lzma_x86_decompress),
    uuid.UUID("3d532050-5cda-4fd0-879e-0f7f630d5afb"): ("brotli", "Brotli", brotli_decompress),
}
# What is left to do after the LZMA stage, for the sections a caller may have inflated early.
_LZMA_STAGE = {lzma_decompress: lambda stage: stage, lzma_x86_decompress: bcj_x86_decode}
TIANO_GUID = uuid.UUID("a31280ad-481e-41b6-95e8-127f4c984779")
CRC32_GUID = uuid.UUID("fc1bcdb0-7d31-49aa-936a-a4600d9dd083")
SIGNED_GUID = uuid.UUID("0f9d89e8-9259-4f76-a5af-0c89e34023df")

_DEPEX_PHASE = {0x13: "dxe", 0x1B: "pei", 0x1C: "mm"}
_LEAF_TITLES = {0x03: "Disposable", 0x16: "Compatibility16", 0x19: "Raw"}


def align(value: int, to: int) -> int:
    return (value + to - 1) & ~(to - 1)


def ucs2(data, start: int, end: int) -> str:
    """A NUL-terminated UCS-2 string from data[start:end], bounded by MAX_STRING_CHARS."""
    raw = bytes(data[start:min(end, start + 2 * MAX_STRING_CHARS)])
    raw = raw[:len(raw) & ~1]
    text = raw.decode("utf-16-le", errors="replace")
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


def ui_name(sections: list[Node]) -> str | None:
    """The USER_INTERFACE string of a file, looking inside encapsulation sections only."""
    stack = list(reversed(sections))
    steps = 0
    while stack and steps < MAX_SECTIONS_PER_STREAM * 4:
        steps += 1
        n = stack.pop()
        if n.kind != "section":
            continue
        if n.get("Type") == 0x15:
            return n.get("String")
        stack.extend(reversed(n.children))
    return None


def decode_sections(space: Space, start: int, end: int, depth: int, ctx: Context, owner: Node) -> list[Node]:
    """Decode the section stream space[start:end] (4-byte aligned from `start`).

    A bad size ends the walk with a problem on the bad section; trailing bytes are reported
    on `owner` (the file or encapsulating section).
    """
    data = space.data
    out: list[Node] = []
    pos = start
    for _ in range(MAX_SECTIONS_PER_STREAM):
        pos = start + align(pos - start, 4)
        if pos >= end:
            return out
        if end - pos < S.SECTION_HEADER_SIZE:
            owner.problem(pos, f"{end - pos} trailing bytes after the last section, too few for a section header")
            return out
        if ctx.sections >= ctx.budget.limits.sections:
            space.need(end)
            left = _count_sections(data, pos, end, MAX_SECTIONS_PER_STREAM - len(out))
            ctx.budget.left_out(owner, pos, left, "sections", "sections")
            return out
        if not ctx.take_node(owner, pos, end - pos, "bytes of sections"):
            return out
        ctx.sections += 1
        sec, ok = _decode_section(space, data, pos, end, depth, ctx)
        out.append(sec)
        if not ok:
            return out
        pos += sec.size
    owner.problem(pos, f"more than {MAX_SECTIONS_PER_STREAM} sections; the rest not decoded")
    return out


def _count_sections(data, pos: int, end: int, most: int) -> int:
    """Sections from `pos` to `end` walked by their Size fields, not decoded (for the 'not shown'
    count), at most `most` (what the stream's own cap would still have shown)."""
    count = 0
    while count < most and end - pos >= S.SECTION_HEADER_SIZE:
        size = int.from_bytes(data[pos:pos + 3], "little")
        if size == S.SECTION_SIZE_USE_EXTENDED and end - pos >= S.SECTION_HEADER2_SIZE:
            size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if size < S.SECTION_HEADER_SIZE or size > end - pos:
            break
        count += 1
        pos += align(size, 4)
    return count


def _decode_section(space: Space, data, pos: int, end: int, depth: int, ctx: Context) -> tuple[Node, bool]:
    """One section; the flag is False when its size is unusable and the walk must stop."""
    space.need(min(end, pos + S.SECTION_HEADER2_SIZE))
    h = S.EFI_COMMON_SECTION_HEADER.read(data, pos)
    size, typ = h["Size"], h["Type"]
    tname = SECTION_NAME.get(typ, f"unknown 0x{typ:02x}")
    node = Node("section", f"{tname} section", space, pos, 0)
    node.add("Size", size, pos, 3)
    node.add("Type", typ, pos + 3, 1, tname)
    hdr = S.SECTION_HEADER_SIZE
    if size == S.SECTION_SIZE_USE_EXTENDED:
        # EFI_COMMON_SECTION_HEADER2: the real size follows as UINT32 ExtendedSize.
        if end - pos < S.SECTION_HEADER2_SIZE:
            node.size = end - pos
            node.problem(pos, "section size 0xFFFFFF needs an ExtendedSize, but the stream ends first")
            return node, False
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        node.add("ExtendedSize", size, pos + 4, 4)
        hdr = S.SECTION_HEADER2_SIZE
    if size < hdr:
        node.size = min(hdr, end - pos)
        node.problem(pos, f"section size 0x{size:x} is smaller than its 0x{hdr:x}-byte header")
        return node, False
    if size > end - pos:
        node.size = end - pos
        node.problem(pos, f"section size 0x{size:x} runs past the end of its container "
                          f"(0x{end - pos:x} bytes left)")
        return node, False
    node.size = size
    body, sec_end = pos + hdr, pos + size
    handler = _HANDLERS.get(typ)
    if handler is None:
        node.note(pos + 3, f"unknown section type 0x{typ:02x}; shown raw")
        return node, True
    if handler is not _fv_image:   # a volume waits for its bytes file by file (decode_fv)
        space.need(sec_end)
    handler(node, space, data, pos, body, sec_end, depth, ctx)
    return node, True


# -- handlers: (node, space, data, section offset, body offset, section end, depth, ctx) ------

def _tail(node: Node, tail: Layout, data, body: int, sec_end: int, size: int):
    if sec_end - body < size:
        node.problem(body, f"section too small for its {size}-byte type-specific header")
        return None
    try:
        parsed = tail.read(data, body)
    except DecodeError as e:
        node.problem(e.offset, e.message)
        return None
    tail.add_fields(node, parsed, body)
    return parsed


def _compression(node, space, data, pos, body, sec_end, depth, ctx):
    t = _tail(node, S.EFI_COMPRESSION_SECTION_TAIL, data, body, sec_end, S.COMPRESSION_TAIL_SIZE)
    if t is None:
        return
    ctype = t["CompressionType"]
    node.fields[-1].display = S.EFI_COMPRESSION_TYPE.get(ctype, f"unknown {ctype}")
    payload = body + S.COMPRESSION_TAIL_SIZE
    if ctype == 0:
        node.title = "COMPRESSION section (not compressed)"
        _sub_stream(node, space, payload, sec_end, depth, ctx)
    elif ctype == 1:
        node.title = "COMPRESSION section (EFI standard)"
        _inflate(node, space, data, pos, payload, sec_end, depth, ctx, "efi",
                 lambda p, lim: efi_decompress(p, lim)[0], expected=t["UncompressedLength"])
    else:
        node.problem(body + 4, f"unknown CompressionType {ctype}")


def _guid_defined(node, space, data, pos, body, sec_end, depth, ctx):
    t = _tail(node, S.EFI_GUID_DEFINED_SECTION_TAIL, data, body, sec_end, S.GUID_DEFINED_TAIL_SIZE)
    if t is None:
        return
    guid = t["SectionDefinitionGuid"]
    attrs, data_offset = t["Attributes"], t["DataOffset"]
    node.fields[-1].display = flags_text(attrs, S.EFI_GUIDED_SECTION_ATTRIBUTES)
    min_off = body + S.GUID_DEFINED_TAIL_SIZE - pos
    if data_offset < min_off or data_offset > sec_end - pos:
        node.problem(body + 0x10, f"DataOffset 0x{data_offset:x} outside 0x{min_off:x}..0x{sec_end - pos:x}")
        return
    payload = pos + data_offset
    known = _GUIDED.get(guid)
    if known is not None:
        label, what, fn = known
        node.title = f"GUID_DEFINED section: {what}"
        _inflate(node, space, data, pos, payload, sec_end, depth, ctx, label, fn)
    elif guid == TIANO_GUID:
        node.title = "GUID_DEFINED section: Tiano"
        _inflate(node, space, data, pos, payload, sec_end, depth, ctx, "tiano",
                 lambda p, lim: efi_decompress(p, lim, tiano_first=True)[0])
    elif guid == CRC32_GUID:
        node.title = "GUID_DEFINED section: CRC32"
        crc_at = body + S.GUID_DEFINED_TAIL_SIZE
        if payload - crc_at < 4:
            node.problem(crc_at, "CRC32 section has no room for its CRC32Checksum before DataOffset")
            return
        stored = int.from_bytes(data[crc_at:crc_at + 4], "little")
        node.add("CRC32Checksum", stored, crc_at, 4)
        actual = zlib.crc32(memoryview(data)[payload:sec_end])
        if actual != stored:
            node.problem(crc_at, f"CRC32 mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")
        _sub_stream(node, space, payload, sec_end, depth, ctx)
    elif guid == SIGNED_GUID:
        node.title = "GUID_DEFINED section: FirmwareContentsSigned"
        _signed(node, data, body + S.GUID_DEFINED_TAIL_SIZE, payload, sec_end, space)
    else:
        node.title = f"GUID_DEFINED section: {guids.describe(guid)}"
        if attrs & S.EFI_GUIDED_SECTION_PROCESSING_REQUIRED:
            node.note(body, "unknown GUIDed section format; payload shown raw")
            node.append(Node("data", "GUIDed payload (not decoded)", space, payload, sec_end - payload))
        else:
            # PI vol 3 2.2.5: without PROCESSING_REQUIRED the data are sections usable as they are.
            node.note(body, "unknown GUIDed section format; PROCESSING_REQUIRED clear, so decoded as sections")
            _sub_stream(node, space, payload, sec_end, depth, ctx)


def _signed(node, data, cert_at, payload, sec_end, space):
    if payload - cert_at < S.WIN_CERTIFICATE_SIZE:
        node.problem(cert_at, "FirmwareContentsSigned section has no room for its WIN_CERTIFICATE")
        return
    cert = S.WIN_CERTIFICATE.read(data, cert_at)
    S.WIN_CERTIFICATE.add_fields(node, cert, cert_at, prefix="Certificate.")
    cert_type, length = cert["wCertificateType"], cert["dwLength"]
    node.fields[-1].display = S.WIN_CERT_TYPE.get(cert_type)
    if cert_type == S.WIN_CERT_TYPE_EFI_GUID and payload - cert_at >= S.WIN_CERTIFICATE_SIZE + 16:
        g = guids.from_bytes(data[cert_at + 8:cert_at + 24])
        node.add("Certificate.CertType", g, cert_at + 8, 16, guids.describe(g))
    if length > payload - cert_at:
        node.problem(cert_at, f"WIN_CERTIFICATE dwLength 0x{length:x} runs past DataOffset")
    node.append(Node("data", "signed contents (not decoded)", space, payload, sec_end - payload))


def _inflate(node, space, data, pos, payload, sec_end, depth, ctx, label, fn, expected=None):
    b, cache = ctx.budget, ctx.cache
    packed = memoryview(data)[payload:sec_end]
    copies = X86_WORKING_COPIES if fn is lzma_x86_decompress else 1
    work_left = MAX_TOTAL_DECOMPRESSED - ctx.decompressed
    room = min(MAX_BLOB_SIZE, cache.room() // copies, work_left)
    declared = declared_size(label, packed)
    why = None
    if work_left <= 0 or (declared is not None and MAX_BLOB_SIZE >= declared > work_left):
        why = (f"total decompressed size for this image would pass {MAX_TOTAL_DECOMPRESSED >> 20} MiB "
               f"({ctx.decompressed:,} bytes so far)")
    elif declared is not None and declared > MAX_BLOB_SIZE:
        why = f"it declares 0x{declared:x} bytes, over the 0x{MAX_BLOB_SIZE:x}-byte limit for one blob"
    elif declared is not None and declared * copies > cache.room():
        why = (f"it declares 0x{declared:x} bytes{' (twice that while the x86 pass runs)' if copies > 1 else ''} "
               f"and the blobs it is inside hold {cache.pinned():,}; {b.describe('held_bytes')}")
    if why is not None:
        node.problem(payload, f"{label} payload not decompressed: {why}")
        return
    cache.make_room((declared if declared is not None else room) * copies)
    filling = _filling(ctx, data, payload, fn, declared)
    if filling is not None:
        # Decoded as it inflates; kept only when the whole stream turns out good, else undone and
        # decoded below as if nothing had been inflated early (the caller's inflation is only ever
        # a stand-in for the decoder's own).
        undo = _Undo(ctx, node)
        try:
            _decode_blob(node, space, pos, payload, sec_end, depth, ctx, label, fn, expected, filling.data, filling)
            good = filling.need(declared)
        except StreamBroken:
            good = False
        if good:
            return
        undo.undo()
    try:
        early = ctx.predecoded(data, payload) if ctx.predecoded and fn in _LZMA_STAGE else None
        if early is not None and len(early) == declared:
            blob = _LZMA_STAGE[fn](early)
        else:
            blob = fn(packed, room)
    except CompressionError as e:   # OverLimit included: the stream holds more than it may
        node.problem(payload, f"{label} payload not decompressed: {e}")
        return
    _decode_blob(node, space, pos, payload, sec_end, depth, ctx, label, fn, expected, blob)


def _filling(ctx: Context, data, payload: int, fn, declared: int | None):
    """The caller's stream of this LZMA section's bytes, when it is inflating them (blobs.Filling)."""
    if ctx.predecoded is None or fn is not lzma_decompress or declared is None:
        return None
    stream = getattr(ctx.predecoded, "stream", None)
    filling = stream(data, payload) if stream is not None else None
    return filling if filling is not None and len(filling.data) == declared else None


def _decode_blob(node, space, pos, payload, sec_end, depth, ctx, label, fn, expected, blob, filling=None):
    """The sections of a decompressed blob, in a BlobSpace under `node`; with `filling`, the blob is
    still inflating and is read as it lands (BlobSpace.need)."""
    b, cache = ctx.budget, ctx.cache
    ctx.decompressed += len(blob)
    node.add("DecompressedSize", len(blob), None, None)
    if expected is not None and expected != len(blob):
        node.problem(pos + S.SECTION_HEADER_SIZE,
                     f"UncompressedLength 0x{expected:x} but the payload decompressed to 0x{len(blob):x}")
    blob_space = BlobSpace(f"{space.name}/{label}@0x{pos:x}", node, space, payload, sec_end, fn, len(blob), cache)
    blob_space.filling = filling
    cache.put(blob_space, blob, pin=True)
    del blob   # the cache holds it while it fits; decode_sections below holds it while it works
    try:
        with b.deeper() as ok:
            if not ok:
                node.problem(pos, f"nesting deeper than {b.limits.depth}; decompressed sections not decoded")
                return
            node.children.extend(decode_sections(blob_space, 0, blob_space.size, depth + 1, ctx, node))
    finally:
        cache.unpin(blob_space)
        blob_space.filling = None


class _Undo:
    """What decoding a blob changes outside its own nodes (the run's counts, the budget, the blob
    cache, the section node's fields, problems and children), to put back when the decode is dropped."""

    def __init__(self, ctx: Context, node: Node):
        b = ctx.budget
        self.ctx, self.node = ctx, node
        self.counts = (ctx.decompressed, ctx.files, ctx.sections, set(ctx.volumes))
        self.budget = (b.nodes, b.problems, b.held, dict(b.dropped))
        self.lengths = (len(node.fields), len(node.problems), len(node.children))
        self.held = ctx.cache.held()

    def undo(self) -> None:
        ctx, node, b = self.ctx, self.node, self.ctx.budget
        ctx.decompressed, ctx.files, ctx.sections, volumes = self.counts
        ctx.volumes = set(volumes)
        b.nodes, b.problems, b.held, dropped = self.budget
        b.dropped = dict(dropped)
        nf, np_, nc = self.lengths
        del node.fields[nf:], node.problems[np_:], node.children[nc:]
        ctx.cache.forget(self.held)


def _sub_stream(node, space, start, sec_end, depth, ctx):
    with ctx.budget.deeper() as ok:
        if not ok:
            node.problem(start, f"nesting deeper than {ctx.budget.limits.depth}; encapsulated sections not decoded")
            return
        node.children.extend(decode_sections(space, start, sec_end, depth + 1, ctx, node))


def _callout(node: Node, what: str, fn, *args) -> None:
    """Run another engineer's decoder; its failure becomes a problem here, not a traceback."""
    try:
        result = fn(*args)
    except Exception as e:  # noqa: BLE001 - a bug in a sub-decoder must not lose the whole tree
        node.problem(args[1], f"{what} decoder failed: {e.__class__.__name__}: {e}")
        return
    if isinstance(result, Node):
        node.append(result)
    elif result:
        node.children.extend(result)


def _image(node, space, data, pos, body, sec_end, depth, ctx):
    from decoders import pe  # late: the PE decoder is another module that may import more

    typ = node.get("Type")
    load = space.address_of(body) if space.base is not None else None
    fn = pe.decode_te if typ == 0x12 else pe.decode_pe
    _callout(node, "TE" if typ == 0x12 else "PE32", fn, space, body, sec_end - body, load)


def _depex(node, space, data, pos, body, sec_end, depth, ctx):
    from decoders import depex

    _callout(node, "DEPEX", depex.decode_depex, space, body, sec_end - body, _DEPEX_PHASE[node.get("Type")])


def _version(node, space, data, pos, body, sec_end, depth, ctx):
    if _tail(node, S.EFI_VERSION_SECTION_TAIL, data, body, sec_end, 2) is None:
        return
    text = ucs2(data, body + 2, sec_end)
    node.add("VersionString", text, body + 2, sec_end - body - 2, repr(text))
    node.title = f"VERSION section \"{text}\""


def _user_interface(node, space, data, pos, body, sec_end, depth, ctx):
    text = ucs2(data, body, sec_end)
    node.add("String", text, body, sec_end - body, repr(text))
    node.title = f"USER_INTERFACE section \"{text}\""


def _fv_image(node, space, data, pos, body, sec_end, depth, ctx):
    from decoders.fd.decode import decode_fv  # decode.py imports this module

    with ctx.budget.deeper() as ok:
        if not ok:
            node.problem(body, f"nesting deeper than {ctx.budget.limits.depth}; volume not decoded")
            return
        node.append(decode_fv(space, body, depth + 1, end=sec_end, ctx=ctx))


def _freeform(node, space, data, pos, body, sec_end, depth, ctx):
    if _tail(node, S.EFI_FREEFORM_SUBTYPE_GUID_SECTION_TAIL, data, body, sec_end, 16) is not None:
        node.title = f"FREEFORM_SUBTYPE_GUID section {node.fields[-1].display}"


def _leaf(node, space, data, pos, body, sec_end, depth, ctx):
    node.title = f"{_LEAF_TITLES[node.get('Type')]} section"


_HANDLERS = {
    0x01: _compression,
    0x02: _guid_defined,
    0x03: _leaf,
    0x10: _image,
    0x11: _image,
    0x12: _image,
    0x13: _depex,
    0x14: _version,
    0x15: _user_interface,
    0x16: _leaf,
    0x17: _fv_image,
    0x18: _freeform,
    0x19: _leaf,
    0x1B: _depex,
    0x1C: _depex,
}
