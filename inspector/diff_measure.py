"""What changing an image does to its measurements: the TDX MRTD and the TPM PCR0 firmware blobs of
two images A and B, and, where they differ, which measured pages and which files moved them.

MRTD (decoders.mrtd; Intel TDX Module ABI TDH.MEM.PAGE.ADD / TDH.MR.EXTEND, record layouts as in
td-shim `doc/tdshim_spec.md`): per TDVF_SECTION (edk2 OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm)
every 4 KiB page of MemoryDataSize is PAGE.ADDed (its GPA alone is hashed) unless PAGE.AUG, and with
MR.EXTEND its bytes are hashed too: RawDataSize bytes from the image at DataOffset, zero-padded to
MemoryDataSize. So a byte at file offset X moves the MRTD iff X lies in an MR.EXTEND section's
[DataOffset, DataOffset + RawDataSize); its page is (X - DataOffset) // 4096, at GPA MemoryAddress +
page * 4096. The two images' layouts may differ, so pages are compared by GPA: for each GPA, what
each image's sections feed SHA-384 for it (nothing, a PAGE.ADD, the page's bytes) is compared, and
a differing page names the files of A and of B whose bytes lie in it (in the image file, so a
module inside a compressed volume shows as the compressed file that carries it).

TPM (decoders.measure.tpm): PCR0's EV_EFI_PLATFORM_FIRMWARE_BLOB events of PEIFV and DXEFV as
decompressed (edk2 SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.c MeasureFvImage). When a blob's digest differs,
the volume's FFS files are matched by file name GUID (PI spec vol 3, EFI_FFS_FILE_HEADER.Name) and
the changed, moved, added and removed ones named.

The tree (kinds and fields are an interface, as inspector.diff's; every node has `Change`: added,
removed, changed or unchanged; GUIDs are lowercase text):

- `diff-measurements`: `ImageA`, `ImageB`; children `diff-mrtd`, `diff-tpm`.
- `diff-mrtd`: `MRTD.<order>.A/B` (hex or None) and `Equal.<order>` for the orders per-page and
  two-pass; when both are computed `Sections.A/B`, `PagesBytesDiffer`, `PagesExtendedOnOneSide`,
  `PagesAddedOnOneSide`, `DifferingPages` (their sum) and, when differing pages hold compressed
  volumes that are PCR0 blobs that differ, `CompressedChanges` {volume: ["changed DxeCore", ...]}.
  Children: `diff-tdx-sections` (children `diff-tdx-section`: `Index`, `A`, `B`) when the section
  tables differ; one `diff-mrtd-page` per page with bytes that differs (at most MAX_PAGE_NODES):
  `Section`, `Gpa`, `Differs` (bytes, only A, only B, kind), `FileOffsetA/B`, `FilesA/B` (what
  lies in the page), `ChangedFilesA/B` (what lies in its differing span), `CompressedVolumesA/B`
  (FvNames carried compressed by those files), `FirstDifference`/`LastDifference` (in the page);
  `diff-mrtd-more` (`Count`) for the rest; one `diff-mrtd-range` per run of pages only PAGE.ADDed
  (`Section`, `Gpa`, `GpaEnd`, `Pages`, `Differs`).
- `diff-tpm`: children `diff-tpm-blob` per volume (PEIFV, DXEFV): `Volume`, `FvName`,
  `BlobBaseA/B`, `BlobLengthA/B`, `DigestA/B` (sha256 hex), `Equal`, and when the digests differ
  `Changed`, `Added`, `Removed`, `Moved`, `FilesDiffer`, children `diff-tpm-blob-file` (`Status`:
  changed, added, removed, moved (same bytes, other offset); `Name`, `UI`, `OffsetA/B` in the
  volume, `SizeA/B`), `diff-tpm-blob-more`, or `diff-tpm-blob-page` (`Offset`) when no file
  differs; `diff-tpm-crtm-version` (`VersionA/B`, `DigestA/B`, `SourceA/B`, `Equal`);
  `diff-tpm-register` (`Register` PCR0, `Bank` sha256, `ValueA/B` or None, `Equal`).
"""
from __future__ import annotations

import uuid
from bisect import bisect_right

from decoders.model import Node

PAGE = 0x1000
# Output bounds: a diff of two unrelated images differs in every measured page (Debian 12 vs 13
# OVMF.fd: ~900), and a reviewer reads the first few hundred; the rest is a count.
MAX_PAGE_NODES = 256
MAX_FILE_NODES = 256
# Names listed per page: a 4 KiB page holds at most ~170 FFS headers (24 bytes each); a sane one a
# handful. Hostile overlapping files are cut here.
MAX_NAMES_PER_PAGE = 16
MAX_SCAN_PER_PAGE = 256
# Files per volume matched by GUID: edk2's DXEFV holds ~150; 1 << 16 covers any real volume and
# keeps a hostile one (millions of empty files) bounded.
MAX_FILES_PER_VOLUME = 1 << 16
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008    # TCG PC Client PFP 1.05, 10.4.1 event types
EV_S_CRTM_VERSION = 0x8
FFS_PAD = 0xF0                      # PI vol 3, EFI_FV_FILETYPE_FFS_PAD


CHANGE = {"only A": "removed", "only B": "added", "kind": "changed", "bytes": "changed"}


def _node(kind: str, title: str, change: str) -> Node:
    """A diff node with the `Change` field every node of inspector.diff's tree has (added,
    removed, changed, unchanged)."""
    node = Node(kind, title)
    node.add("Change", change)
    return node


def measurement_diff(img_a, img_b, name_a: str = "A", name_b: str = "B") -> Node:
    """A `diff-measurements` node for two loaded images (inspector.image.LoadedImage: `.root`,
    `.data`): a `diff-mrtd` child and a `diff-tpm` child. Never raises on bad input: what could not
    be compared is a problem on the node concerned."""
    root = _node("diff-measurements", f"Measurements: {name_a} vs {name_b}", "unchanged")
    root.add("ImageA", name_a)
    root.add("ImageB", name_b)
    mrtd = root.append(mrtd_diff(img_a, img_b, name_a, name_b))
    tpm = root.append(tpm_diff(img_a, img_b, name_a, name_b))
    _link_compressed(mrtd, tpm)
    if any(c.get("Change") != "unchanged" for c in root.children):
        root.field("Change").value = "changed"
        root.title += ": " + "; ".join(c.title for c in root.children if c.get("Change") != "unchanged")
    else:
        root.title += ": MRTD and PCR0 blobs unchanged"
    return root


def _link_compressed(mrtd: Node, tpm: Node) -> None:
    """Differing MRTD pages that hold a compressed file (FVMAIN_COMPACT's LZMA section) say no more
    than "these compressed bytes changed"; when the volumes it carries are PCR0 blobs that differ,
    the TPM part knows which of their files did: named here, on the MRTD node."""
    carried = set()
    for page in mrtd.children:
        if page.kind == "diff-mrtd-page":
            carried.update(page.get("CompressedVolumesA") or ())
            carried.update(page.get("CompressedVolumesB") or ())
    if not carried:
        return
    out = {}
    for blob in tpm.children:
        if blob.kind != "diff-tpm-blob" or blob.get("Change") == "unchanged" or blob.get("FvName") not in carried:
            continue
        files = [c for c in blob.children if c.kind == "diff-tpm-blob-file"]
        names = [f"{c.get('Status')} {c.get('UI') or c.field('Name').display}" for c in files[:16]]
        total = blob.get("FilesDiffer") or len(files)
        out[blob.get("Volume")] = (names + ([f"… {total - len(names)} more"] if total > len(names) else [])
                                   if names else [blob.title])
    if out:
        mrtd.add("CompressedChanges", out, display="; ".join(f"{v}: {', '.join(n[:4])}" + (" …" if len(n) > 4 else "")
                                                             for v, n in out.items()))
        mrtd.note(None, "the differing pages hold compressed volumes (" + ", ".join(out) + ") whose decompressed "
                        "files differ as the TPM part lists: " + mrtd.field("CompressedChanges").display)


# == MRTD ===========================================================================================
class _Side:
    """One image's TDX side: its sections, MRTDs and an index of its image-space files."""

    def __init__(self, img, label: str, other: "_Side | None" = None):
        from decoders.mrtd import ORDERS, compute_mrtds
        from decoders.ovmf.metadata import tdx_sections

        self.label = label
        self.data = img.data
        self.root = img.root
        self.meta = _tdx_metadata(img)
        self.sections = tdx_sections(self.meta) if self.meta is not None else []
        if self.meta is None:
            self.results = []
        elif other is not None and other.meta is not None and _same_measured_input(other, self):
            # The MRTD is a function of the section table and the measured bytes alone: the same
            # inputs give the other image's values without hashing again.
            self.results = other.results
        else:
            self.results = compute_mrtds(self.data, self.sections, ORDERS)
        self._files = None

    @property
    def computed(self) -> bool:
        return bool(self.results) and all(r.digest is not None for r in self.results)

    def segments(self) -> list[tuple[int, int, int, object]]:
        """(gpa start, gpa end, section order, section) of every section that feeds the MRTD."""
        out = []
        for s in self.sections:
            if s.page_aug and not s.mr_extend:
                continue            # added later with TDH.MEM.PAGE.AUG: nothing measured
            if s.memory_data_size:
                out.append((s.memory_address, s.memory_address + s.memory_data_size, s.index, s))
        return out

    # -- which files lie in a range of the image file ------------------------------------------
    def files(self):
        if self._files is None:
            self._files = _FileIndex(self.root)
        return self._files


def _same_measured_input(a: "_Side", b: "_Side") -> bool:
    """Whether two images feed the MRTD the same records: the same sections (but where their
    descriptors sit) and, for each MR.EXTEND section, the same bytes (one comparison each)."""
    key = lambda s: (s.type, s.memory_address, s.memory_data_size, s.raw_data_size, s.attributes,  # noqa: E731
                     s.file_offset is None)
    if [key(s) for s in a.sections] != [key(s) for s in b.sections]:
        return False
    for sa, sb in zip(a.sections, b.sections):
        if sa.mr_extend and sa.file_offset is not None and sa.raw_data_size:
            n = min(sa.raw_data_size, sa.memory_data_size)
            ra = memoryview(a.data)[sa.file_offset:sa.file_offset + n]
            rb = memoryview(b.data)[sb.file_offset:sb.file_offset + n]
            if len(ra) != n or ra != rb:
                return False
    return True


def _tdx_metadata(img) -> Node | None:
    """The image's "tdx-metadata" node: under its OVMF GUIDed table (inspector.image.LoadedImage
    .table) when it has one, so the whole decoded tree is not walked for it."""
    table = getattr(img, "table", None)
    where = table if table is not None else img.root
    return next(where.find("tdx-metadata"), None)


def _sec_name(s) -> str:
    return f"{s.index} {s.type_name}"


def _kinds(covering) -> tuple:
    """What each covering section feeds the MRTD for a page: PAGE.ADD, its bytes, or both."""
    return tuple(("add" if not s.page_aug else "") + ("+extend" if s.mr_extend else "") for s in covering)


def _page_bytes(data, s, page: int) -> bytes:
    """The 4 KiB an MR.EXTEND section measures for its page `page` (td-shim tee_info_hash.rs pads
    the section's data with zeros to MemoryDataSize)."""
    have = min(s.raw_data_size, s.memory_data_size) if s.file_offset is not None else 0
    start = page * PAGE
    if start >= have:
        return bytes(PAGE)
    chunk = bytes(data[s.file_offset + start:s.file_offset + min(have, start + PAGE)])
    return chunk if len(chunk) == PAGE else chunk + bytes(PAGE - len(chunk))


def _data_pages(s) -> int:
    """Pages of an MR.EXTEND section that hold image bytes (the rest are zero in both images)."""
    if not s.mr_extend or s.file_offset is None:
        return 0
    return -(-min(s.raw_data_size, s.memory_data_size) // PAGE)


def _span(a: bytes, b: bytes) -> tuple[int, int]:
    """[first, last] offsets where two equal-length, different buffers differ, by bisection over
    slice comparisons (12 steps per end for a page, no per-byte loop)."""
    lo, hi = 0, len(a)          # a[:lo] == b[:lo]; a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    first = lo
    n = len(a)
    lo, hi = 0, n - first       # suffixes of length lo equal, of length hi not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[n - mid:] == b[n - mid:]:
            lo = mid
        else:
            hi = mid
    return first, n - 1 - lo


def mrtd_diff(img_a, img_b, name_a: str = "A", name_b: str = "B") -> Node:
    """The `diff-mrtd` node: both images' MRTDs in both orders and the pages (by GPA) whose
    measured content differs."""
    a = _Side(img_a, name_a)
    b = _Side(img_b, name_b, a)
    node = _node("diff-mrtd", "MRTD", "unchanged")
    if (a.meta is None) != (b.meta is None):
        node.field("Change").value = "added" if a.meta is None else "removed"
    for side in (a, b):
        if side.meta is None and (a.meta is not None or b.meta is not None):
            node.note(None, f"{side.label} has no TDX metadata (no TDVF descriptor): it has no MRTD")
        for r in side.results[:1]:
            for p in r.problems:
                node.warn(None, f"{side.label}: MRTD not computed: {p.message}")
    equal_all = True
    for i, order in enumerate(("per-page", "two-pass")):
        ha = a.results[i].hex if a.results else None
        hb = b.results[i].hex if b.results else None
        node.add(f"MRTD.{order}.A", ha, display=ha or "none")
        node.add(f"MRTD.{order}.B", hb, display=hb or "none")
        eq = ha is not None and ha == hb
        equal_all &= eq
        node.add(f"Equal.{order}", eq)
    if a.meta is None and b.meta is None:
        node.title = "MRTD: neither image has TDX metadata (no TDVF descriptor): nothing to compare"
        node.note(None, f"{name_a} and {name_b} have no TDX metadata: neither is a TDVF image")
        return node
    if not (a.computed and b.computed):
        if a.meta is not None and b.meta is not None and b.results is not a.results:
            node.field("Change").value = "changed"      # (the same refused inputs: unchanged)
        node.title = "MRTD: not comparable: " + "; ".join(
            f"{s.label} has no TDX metadata" if s.meta is None else f"{s.label}'s MRTD was not computed"
            for s in (a, b) if not s.computed)
        return node
    node.add("Sections.A", len(a.sections))
    node.add("Sections.B", len(b.sections))
    table = _section_table_diff(a, b)
    if table is not None:
        node.append(table)
    pages = _differing_pages(a, b, node)
    node.add("DifferingPages", pages, display=f"{pages} page(s) of 4 KiB")
    node.children.sort(key=lambda c: c.kind != "diff-tdx-sections")
    values = ", ".join(_moved(order, node.get(f"MRTD.{order}.A"), node.get(f"MRTD.{order}.B"))
                       for order in ("per-page", "two-pass"))
    if equal_all:
        node.title = f"MRTD equal in both orders ({values})"
    else:
        node.field("Change").value = "changed"
        node.title = f"MRTD {values}: {pages} measured page(s) differ"
        if pages == 0:
            node.note(None, "no measured page differs: the MRTDs differ by the sections' order or attributes "
                            "(the records' order), see the section tables")
    return node


def _section_table_diff(a: _Side, b: _Side) -> Node | None:
    key = lambda s: (s.type, s.memory_address, s.memory_data_size, s.raw_data_size, s.attributes)  # noqa: E731
    ka, kb = [key(s) for s in a.sections], [key(s) for s in b.sections]
    if ka == kb:
        return None
    node = _node("diff-tdx-sections", f"TDVF section tables differ ({len(ka)} vs {len(kb)} sections)", "changed")
    for i in range(max(len(ka), len(kb))):
        sa = a.sections[i] if i < len(ka) else None
        sb = b.sections[i] if i < len(kb) else None
        if sa is not None and sb is not None and key(sa) == key(sb):
            continue
        child = _node("diff-tdx-section", f"section {i}: {_sec_text(sa)} vs {_sec_text(sb)}",
                      "added" if sa is None else "removed" if sb is None else "changed")
        child.add("Index", i)
        child.add("A", _sec_text(sa))
        child.add("B", _sec_text(sb))
        node.append(child)
    return node


def _sec_text(s) -> str:
    if s is None:
        return "(none)"
    from decoders.ovmf.metadata import attributes_text

    return (f"{s.type_name} GPA 0x{s.memory_address:x}+0x{s.memory_data_size:x} raw 0x{s.raw_data_size:x} "
            f"{attributes_text(s.attributes)}")


def _differing_pages(a: _Side, b: _Side, node: Node) -> int:
    """Append the pages (by GPA) whose measurement differs and return how many do.

    The GPA axis is cut at every section boundary of both images; within a piece the sections
    covering a page are the same for all its pages. Pages with bytes on a side (MR.EXTEND) get one
    `diff-mrtd-page` each, those whose bytes differ on both sides first, then those measured on
    one side only, at most MAX_PAGE_NODES in all (listed in GPA order), the rest counted in a
    `diff-mrtd-more`. Pieces only PAGE.ADDed (GPAs, no bytes) on the side(s) covering them get
    one `diff-mrtd-range` each: such a range can be GiBs of TempMem/PermMem and is never
    enumerated. Pages compared one by one are those with image bytes on either side (past
    RawDataSize both sides are zero): the MRTD's hashing budget bounds them."""
    sa, sb = a.segments(), b.segments()
    cuts = sorted({x for seg in sa + sb for x in seg[:2]})
    both: list[tuple] = []          # (gpa, ca, cb, pa, pb), bytes differ on both sides
    one: list[tuple] = []           # (gpa, ca, cb, why), bytes on one side only
    ranges: list[Node] = []
    counts = {"bytes": 0, "one": 0, "range": 0}
    for lo, hi in zip(cuts, cuts[1:]):
        ca = [seg[3] for seg in sa if seg[0] <= lo < seg[1]]
        cb = [seg[3] for seg in sb if seg[0] <= lo < seg[1]]
        if not ca and not cb:
            continue
        pages = -(-(hi - lo) // PAGE)
        ka, kb = _kinds(ca), _kinds(cb)
        ext_a = [s for s in ca if s.mr_extend]
        ext_b = [s for s in cb if s.mr_extend]
        if ka != kb:
            why = "only A" if not cb else "only B" if not ca else "kind"
            if not ext_a and not ext_b:
                counts["range"] += pages
                if len(ranges) < MAX_PAGE_NODES:
                    ranges.append(_range_node(a, b, lo, hi, ca, cb, why))
                continue
            counts["one"] += pages
            for i in range(min(pages, MAX_PAGE_NODES - len(one))):
                one.append((lo + i * PAGE, ca, cb, why))
            continue
        if not ext_a:
            continue                # PAGE.ADD only on both sides: the same GPAs, the same records
        # Pages with data in at least one covering section; past those, both sides are zeros.
        limit = 0
        for s in ext_a + ext_b:
            first = (lo - s.memory_address) // PAGE
            limit = max(limit, min(pages, _data_pages(s) - first))
        if limit > 0 and len(ext_a) == 1 and len(ext_b) == 1 and _same_run(a.data, ext_a[0], b.data, ext_b[0],
                                                                          lo, limit):
            continue                # one slice comparison for the whole run (an unchanged BFV)
        for i in range(max(limit, 0)):
            gpa = lo + i * PAGE
            pa = [_page_bytes(a.data, s, (gpa - s.memory_address) // PAGE) for s in ext_a]
            pb = [_page_bytes(b.data, s, (gpa - s.memory_address) // PAGE) for s in ext_b]
            if pa == pb:
                continue
            counts["bytes"] += 1
            if len(both) < MAX_PAGE_NODES:
                both.append((gpa, ca, cb, pa, pb))
    shown = both + one[:MAX_PAGE_NODES - len(both)]
    shown.sort(key=lambda t: t[0])
    for item in shown:
        if len(item) == 5:
            gpa, ca, cb, pa, pb = item
            node.append(_page_node(a, b, gpa, ca, cb, "bytes", pa, pb))
        else:
            gpa, ca, cb, why = item
            node.append(_page_node(a, b, gpa, ca, cb, why))
    left = counts["bytes"] + counts["one"] - len(shown)
    if left:
        rest = _node("diff-mrtd-more", f"{left} more differing page(s) with measured bytes not listed", "changed")
        rest.add("Count", left, display=str(left))
        rest.add("BytesDiffer", counts["bytes"] - sum(1 for t in shown if len(t) == 5))
        rest.add("MeasuredOnOneSide", counts["one"] - sum(1 for t in shown if len(t) == 4))
        node.append(rest)
    for r in ranges:
        node.append(r)
    node.add("PagesBytesDiffer", counts["bytes"], display=str(counts["bytes"]))
    node.add("PagesExtendedOnOneSide", counts["one"], display=str(counts["one"]))
    node.add("PagesAddedOnOneSide", counts["range"], display=str(counts["range"]))
    return counts["bytes"] + counts["one"] + counts["range"]


def _moved(order: str, a: str | None, b: str | None) -> str:
    short = lambda h: (h[:16] + "…") if h else "none"  # noqa: E731
    return f"{order} {short(a)}" if a == b else f"{order} {short(a)} -> {short(b)}"


def _same_run(da, sa, db, sb, gpa: int, pages: int) -> bool:
    """Whether two MR.EXTEND sections measure the same bytes for `pages` pages from `gpa`."""
    def run(data, s):
        first = (gpa - s.memory_address) // PAGE
        have = min(s.raw_data_size, s.memory_data_size)
        start = min(first * PAGE, have)
        end = min((first + pages) * PAGE, have)
        return memoryview(data)[s.file_offset + start:s.file_offset + end], (first + pages) * PAGE - end
    (ra, pad_a), (rb, pad_b) = run(da, sa), run(db, sb)
    return pad_a == pad_b and ra == rb


def _range_node(a: _Side, b: _Side, lo: int, hi: int, ca, cb, why: str) -> Node:
    sec = (ca or cb)[0]
    what = {"only A": f"PAGE.ADDed in {a.label} only", "only B": f"PAGE.ADDed in {b.label} only",
            "kind": "measured differently (PAGE.ADD / PAGE.AUG)"}[why]
    pages = -(-(hi - lo) // PAGE)
    node = _node("diff-mrtd-range", f"GPA 0x{lo:x}..0x{hi:x} ({_sec_name(sec)}, {pages} page(s)): {what}",
                 CHANGE[why])
    node.add("Section", _sec_name(sec))
    node.add("Gpa", lo)
    node.add("GpaEnd", hi)
    node.add("Pages", pages, display=str(pages))
    node.add("Differs", why, display=what)
    return node


def _page_node(a: _Side, b: _Side, gpa: int, ca, cb, why: str, pa=None, pb=None) -> Node:
    ext_a = next((s for s in ca if s.mr_extend), None)
    ext_b = next((s for s in cb if s.mr_extend), None)
    first, last = 0, PAGE - 1
    if pa is not None and pb is not None:
        # The first covering MR.EXTEND section's bytes locate the change (several overlapping
        # sections only happen in hostile metadata).
        for x, y in zip(pa, pb):
            if x != y:
                first, last = _span(x, y)
                break
    sec = (ca or cb)[0]
    what = {"only A": f"measured in {a.label} only", "only B": f"measured in {b.label} only",
            "kind": "measured differently (PAGE.ADD vs MR.EXTEND)", "bytes": "bytes differ"}[why]
    node = _node("diff-mrtd-page", f"GPA 0x{gpa:x} ({_sec_name(sec)}): {what}", CHANGE[why])
    node.add("Section", _sec_name(sec))
    node.add("Gpa", gpa)
    node.add("Differs", why, display=what)
    for side, ext, tag in ((a, ext_a, "A"), (b, ext_b, "B")):
        page_off = None
        names: list[str] = []
        changed: list[str] = []
        if ext is not None:
            i = (gpa - ext.memory_address) // PAGE
            start = i * PAGE
            have = min(ext.raw_data_size, ext.memory_data_size)
            if ext.file_offset is not None and start < have:
                page_off = ext.file_offset + start
                end = ext.file_offset + min(have, start + PAGE)
                names = side.files().names(page_off, end)
                lo = page_off + first
                hi = min(page_off + last + 1, end)
                if lo >= hi:
                    changed = ["(zero padding past RawDataSize)"]
                else:       # a page that differs throughout (a shifted layout) names the same files
                    changed = names if (lo, hi) == (page_off, end) else side.files().names(lo, hi)
            else:
                changed = ["(zero padding past RawDataSize)"]
        node.add(f"FileOffset{tag}", page_off, display="none" if page_off is None else f"0x{page_off:x}")
        inner = sorted({g for label in changed for g in side.files().inner.get(label, ())}) \
            if ext is not None else []
        node.add(f"CompressedVolumes{tag}", inner, display=", ".join(inner) or "none")
        node.add(f"Files{tag}", names, display=", ".join(names) or "none")
        node.add(f"ChangedFiles{tag}", changed, display=", ".join(changed) or "none")
    if pa is not None:
        node.add("FirstDifference", first, display=f"+0x{first:x}")
        node.add("LastDifference", last, display=f"+0x{last:x}")
    # The title says it all for the tree view: where the page is in each file and what is there.
    where = " | ".join("-" if node.get(f"FileOffset{t}") is None else f"0x{node.get(f'FileOffset{t}'):x}"
                       for t in ("A", "B"))
    span = f" +0x{first:x}..+0x{last:x}" if pa is not None else ""
    held = " | ".join(", ".join(node.get(f"ChangedFiles{t}")[:3]) or "-" for t in ("A", "B"))
    node.title = f"GPA 0x{gpa:x} ({_sec_name(sec)}, file {where}): {what}{span}; {held}"
    return node


class _FileIndex:
    """The innermost FFS files of the image file's own space (not of decompressed volumes), sorted
    by offset, with the volumes around them, to name what lies in a range of file offsets."""

    def __init__(self, root: Node):
        space = root.space
        self.inner: dict[str, list[str]] = {}   # file label -> FvName (lowercase) of its compressed volumes
        files: list[tuple[int, int, str]] = []
        vols: list[tuple[int, int, int, str]] = []
        stack = [root]
        while stack:
            n = stack.pop()
            if n.kind == "fv" and n.space is space:
                vols.append((n.offset, n.offset + n.size, n.offset + (n.get("HeaderLength") or 0), _fv_label(n)))
            if n.kind == "ffs" and n.space is space and not any(
                    c.kind == "ffs" and c.space is space for c in _desc_same_space(n, space)):
                inner = _inner_volumes(n, space)
                label = _file_label(n, space, inner)
                files.append((n.offset, n.offset + n.size, label))
                names = [str(v.get("FvName")) for v in inner if v.get("FvName") is not None]
                if names:
                    self.inner[label] = names
            stack.extend(c for c in n.children if c.space is space)
        files.sort()
        vols.sort()
        self.files = files
        self.starts = [f[0] for f in files]
        self.vols = vols
        self.vol_starts = [v[0] for v in vols]

    def names(self, lo: int, hi: int) -> list[str]:
        """Names of what lies in [lo, hi) of the image file: the files, and for bytes in no file
        the volume header or free space they are in, or "outside any volume"."""
        out: list[str] = []
        gaps: list[tuple[int, int]] = []
        pos = lo
        i = max(0, bisect_right(self.starts, lo) - 1)
        scanned = 0
        while i < len(self.files) and self.files[i][0] < hi and scanned < MAX_SCAN_PER_PAGE:
            start, end, label = self.files[i]
            i += 1
            scanned += 1
            if end <= lo:
                continue
            if len(out) < MAX_NAMES_PER_PAGE:
                if label not in out:
                    out.append(label)
            elif out[-1] != "…":
                out.append("…")
            if start > pos:
                gaps.append((pos, start, True))
            pos = max(pos, min(end, hi))
        if pos < hi:
            gaps.append((pos, hi, False))
        for g0, g1, before_file in gaps[:MAX_NAMES_PER_PAGE]:
            for label in self._gap(g0, g1, before_file):
                if label not in out:
                    out.append(label)
        return out

    def _gap(self, lo: int, hi: int, before_file: bool) -> list[str]:
        """What holds bytes [lo, hi) that are in no file: the innermost volume around them (its
        header, the padding that aligns the next file to 8 bytes (PI vol 3, 2.1.4), or its free
        space after the last file)."""
        j = bisect_right(self.vol_starts, lo) - 1
        for k in range(j, max(j - 64, -1), -1):
            start, end, header_end, name = self.vols[k]
            if start <= lo < end:
                out = []
                if lo < header_end:
                    out.append(f"{name} header")
                if hi > header_end:
                    out.append(f"{name} {'padding' if before_file else 'free space'}")
                return out
        return ["outside any volume"]


def _desc_same_space(n: Node, space):
    stack = list(n.children)
    while stack:
        c = stack.pop()
        if c.space is space:
            yield c
            stack.extend(c.children)


def _fv_label(fv: Node) -> str:
    t = fv.title
    return t[len("Volume "):] if t.startswith("Volume ") else t


def _inner_volumes(ffs: Node, space) -> list[Node]:
    """The volumes a file carries in another space (decompressed from one of its sections)."""
    inner = []
    stack = list(reversed(ffs.children))
    while stack and len(inner) < 8:
        c = stack.pop()
        if c.kind == "fv" and c.space is not space:
            inner.append(c)
            continue
        stack.extend(reversed(c.children))
    return inner


def _file_label(ffs: Node, space=None, inner: list[Node] | None = None) -> str:
    """UI name, else the name GUID; a file carrying compressed volumes says which."""
    if ffs.get("Type") == FFS_PAD:
        return "Pad file"
    label = ffs.get("UI") or _guid_text(ffs.get("Name"))
    if space is not None:
        if inner is None:
            inner = _inner_volumes(ffs, space)
        if inner:
            label += f" (compressed: {', '.join(_fv_label(v).split(' (')[0] for v in inner)})"
        elif any(c.kind == "section" and c.problems and c.get("SectionDefinitionGuid") is not None
                 for c in _desc_same_space(ffs, space)):
            label += " (a compressed section that did not decode)"
    return label


def _guid_text(g) -> str:
    return str(g).upper() if isinstance(g, uuid.UUID) else (str(g) if g is not None else "?")


# == TPM PCR0 =====================================================================================
# predict_tpm's messages that are about PCR7 or the PEIFV RAM caveat (said once here) are not part
# of a PCR0 blob comparison.
def _pcr0_problem(message: str) -> bool:
    return "PCR7" not in message and "VARS" not in message and "varstore" not in message


def tpm_diff(img_a, img_b, name_a: str = "A", name_b: str = "B") -> Node:
    """The `diff-tpm` node: PCR0's firmware-blob events (PEIFV, DXEFV) of A and B, their files
    that differ, and PCR0 (sha256) when predictable."""
    from decoders.measure.tpm import PEIFV_WRITES, predict_tpm

    node = _node("diff-tpm", "TPM PCR0 firmware blobs", "unchanged")
    preds = []
    for img, label in ((img_a, name_a), (img_b, name_b)):
        pred = predict_tpm(img.root, banks=("sha256",))
        preds.append(pred)
        for p in pred.problems:
            if p.message != PEIFV_WRITES and _pcr0_problem(p.message):
                # Not a problem of the diff: what a prediction from this image cannot decide (the
                # image's own decoding problems are inspector.diff's to report).
                node.note(p.offset, f"{label}: {p.message}")
    pa, pb = preds
    blobs_a = _blobs(pa)
    blobs_b = _blobs(pb)
    for vol in ("PEIFV", "DXEFV"):
        ea, eb = blobs_a.get(vol), blobs_b.get(vol)
        if ea is None and eb is None:
            continue
        node.append(_blob_node(vol, ea, eb, img_a.root, img_b.root, name_a, name_b))
    if not blobs_a and not blobs_b:
        node.title = "TPM PCR0 firmware blobs: neither image has a PEIFV or DXEFV (not OVMF images with PEI)"
    else:
        node.append(_crtm_node(pa, pb))
    reg = _node("diff-tpm-register", "PCR0 (sha256)", "unchanged")
    reg.add("Register", "PCR0")
    reg.add("Bank", "sha256")
    values = []
    for pred, tag, label in ((pa, "A", name_a), (pb, "B", name_b)):
        v = pred.registers().get("sha256", {}).get(0)
        values.append(v)
        reg.add(f"Value{tag}", None if v is None else v.hex(),
                display="not predictable (see the problems)" if v is None else v.hex())
    reg.add("Equal", values[0] is not None and values[0] == values[1])
    if values[0] != values[1]:
        reg.field("Change").value = "changed"
    missing = [label for v, label in zip(values, (name_a, name_b)) if v is None]
    reg.title = ("PCR0 (sha256): " + ("equal" if reg.get("Equal") else "differs" if not missing else
                                      f"not predictable for {' and '.join(missing)}"))
    reg.note(None, "PCR0 as predicted from each image: S-CRTM version, PEIFV and DXEFV as decompressed, "
                   "separator (see the PEIFV note)")
    node.append(reg)
    changed = [c.title for c in node.children if c.get("Change") != "unchanged"]
    if changed:
        node.field("Change").value = "changed"
        node.title = "TPM PCR0: " + "; ".join(changed)
    elif blobs_a or blobs_b:
        node.title = "TPM PCR0 firmware blobs: unchanged"
    return node


def _crtm_node(pa, pb) -> Node:
    """PCR0's first event, EV_S_CRTM_VERSION over PcdFirmwareVersionString (Tcg2Pei.c
    MeasureCRTMVersion): a version string that differs moves PCR0 with no byte of a volume."""
    ea, eb = (next((e for e in p.events if e.index == 0 and e.event_type == EV_S_CRTM_VERSION), None)
              for p in (pa, pb))
    texts = []
    for e in (ea, eb):
        texts.append(None if e is None else e.data[:-2].decode("utf-16-le", "replace"))
    same = ea is not None and eb is not None and ea.data == eb.data
    node = _node("diff-tpm-crtm-version", "S-CRTM version: " + (f"{texts[0]!r} in both" if same else
                 f"{texts[0]!r} -> {texts[1]!r}"), "unchanged" if same else "changed")
    for tag, e, text in (("A", ea, texts[0]), ("B", eb, texts[1])):
        node.add(f"Version{tag}", text)
        node.add(f"Digest{tag}", None if e is None else e.digests["sha256"].hex())
        node.add(f"Source{tag}", None if e is None else e.source)
    node.add("Equal", same)
    return node


def _blobs(pred) -> dict:
    out = {}
    for ev in pred.events:
        if ev.index == 0 and ev.event_type == EV_EFI_PLATFORM_FIRMWARE_BLOB:
            name = (ev.description or "").split(" ")[0]
            if name in ("PEIFV", "DXEFV") and name not in out:
                out[name] = ev
    return out


def _blob_fields(ev) -> tuple[int | None, int | None, str | None]:
    import struct

    if ev is None:
        return None, None, None
    base, length = struct.unpack("<QQ", ev.data[:16]) if len(ev.data) >= 16 else (None, None)
    return base, length, ev.digests["sha256"].hex()


def _blob_node(vol: str, ea, eb, root_a: Node, root_b: Node, name_a: str, name_b: str) -> Node:
    (ba, la, da), (bb, lb, db) = _blob_fields(ea), _blob_fields(eb)
    node = _node("diff-tpm-blob", vol, "unchanged")
    node.add("Volume", vol)
    fv_name = next((fv.get("FvName") for fv in (_fv_of(root_a, ea) if ea is not None else None,
                                                 _fv_of(root_b, eb) if eb is not None else None)
                    if fv is not None and fv.get("FvName") is not None), None)
    node.add("FvName", None if fv_name is None else str(fv_name))
    for tag, base, length, dig in (("A", ba, la, da), ("B", bb, lb, db)):
        node.add(f"BlobBase{tag}", base, display="none" if base is None else f"0x{base:x}")
        node.add(f"BlobLength{tag}", length, display="none" if length is None else f"0x{length:x}")
        node.add(f"Digest{tag}", dig, display=f"sha256:{dig}" if dig else "none")
    equal = da is not None and da == db and ba == bb and la == lb
    node.add("Equal", equal)
    if not equal:
        node.field("Change").value = "added" if ea is None else "removed" if eb is None else "changed"
    if vol == "PEIFV":
        node.note(None, "a real boot hashes PEIFV after the PEIMs that run before Tcg2Pei wrote their globals "
                        "into it: these are the digests of the volume as decompressed, not modelled further")
    if ea is None or eb is None:
        node.title = f"{vol}: only in {name_a if eb is None else name_b}"
        return node
    if equal:
        node.title = f"{vol}: equal (0x{ba:x} + 0x{la:x}, sha256 {da[:16]}…)"
        return node
    what = []
    if ba != bb or la != lb:
        what.append(f"event data (0x{ba:x} + 0x{la:x} vs 0x{bb:x} + 0x{lb:x})")
    if da != db:
        what.append("digest")
    fva, fvb = _fv_of(root_a, ea), _fv_of(root_b, eb)     # (found again: a walk each, cheap)
    changed = 0
    if da != db and fva is not None and fvb is not None:
        changed = _file_diffs(node, fva, fvb, ea, eb)
        if changed == 0:
            _outside_files(node, ea, eb)
    node.title = (f"{vol}: {' and '.join(what)} differ{'s' if len(what) == 1 else ''}"
                  + (f"; {changed} file(s) differ" if da != db else ""))
    node.add("FilesDiffer", changed, display=str(changed))
    return node


def _fv_of(root: Node, ev) -> Node | None:
    for fv in root.find("fv"):
        if fv.space is ev.space and fv.offset == ev.offset:
            return fv
    return None


def _vol_files(fv: Node) -> list[Node]:
    """The FFS files directly in a volume (not those of nested volumes), bounded."""
    out = []
    stack = list(reversed(fv.children))
    while stack and len(out) < MAX_FILES_PER_VOLUME:
        n = stack.pop()
        if n.kind == "ffs":
            out.append(n)
        elif n.kind != "fv":
            stack.extend(reversed(n.children))
    return out


def _keyed(fv: Node) -> dict:
    """Files by (name GUID, occurrence): a GUID seen twice is matched in order. Pad files have no
    identity (their size follows the layout) and are left out."""
    out = {}
    count: dict = {}
    for f in _vol_files(fv):
        if f.get("Type") == FFS_PAD:
            continue
        g = f.get("Name")
        k = count.get(g, 0)
        count[g] = k + 1
        out[(g, k)] = f
    return out


def _file_bytes(f: Node) -> bytes:
    sp = f.space
    if sp is None or sp.data is None:
        return b""
    sp.need(f.offset + f.size)
    return bytes(sp.data[f.offset:f.offset + f.size])


def _file_diffs(node: Node, fva: Node, fvb: Node, ea, eb) -> int:
    ka, kb = _keyed(fva), _keyed(fvb)
    rows = []
    for key, f in ka.items():
        g = kb.get(key)
        if g is None:
            rows.append(("removed", f, None))
            continue
        if f.size != g.size or _file_bytes(f) != _file_bytes(g):
            rows.append(("changed", f, g))
        elif f.offset - fva.offset != g.offset - fvb.offset:
            rows.append(("moved", f, g))
    for key, g in kb.items():
        if key not in ka:
            rows.append(("added", None, g))
    order = {"changed": 0, "added": 1, "removed": 2, "moved": 3}
    rows.sort(key=lambda r: order[r[0]])
    counts = {k: 0 for k in order}
    for status, f, g in rows:
        counts[status] += 1
    for status, f, g in rows[:MAX_FILE_NODES]:
        ref = f if f is not None else g
        label = _file_label(ref)
        child = _node("diff-tpm-blob-file", f"{status}: {label}", "changed" if status == "moved" else status)
        child.add("Status", status)
        name = ref.get("Name")
        child.add("Name", str(name) if isinstance(name, uuid.UUID) else name, display=_guid_text(name))
        ui = (f.get("UI") if f is not None else None) or (g.get("UI") if g is not None else None)
        child.add("UI", ui, display=ui or "none")
        for tag, x, fv in (("A", f, fva), ("B", g, fvb)):
            child.add(f"Offset{tag}", None if x is None else x.offset - fv.offset,
                      display="none" if x is None else f"+0x{x.offset - fv.offset:x}")
            child.add(f"Size{tag}", None if x is None else x.size)
        node.append(child)
    if len(rows) > MAX_FILE_NODES:
        rest = _node("diff-tpm-blob-more", f"{len(rows) - MAX_FILE_NODES} more differing file(s) not listed",
                     "changed")
        rest.add("Count", len(rows) - MAX_FILE_NODES)
        node.append(rest)
    for status, n in counts.items():
        node.add(status.capitalize(), n, display=str(n))
    return sum(counts[k] for k in ("changed", "added", "removed", "moved"))


def _outside_files(node: Node, ea, eb) -> None:
    """No file differs but the digests do: the volume header, pad files or free space. Compared
    4 KiB page by page at the same offsets."""
    a, b = ea.space.data, eb.space.data
    n = min(ea.size, eb.size)
    differing = []
    for off in range(0, n, PAGE):
        end = min(off + PAGE, n)
        if a[ea.offset + off:ea.offset + end] != b[eb.offset + off:eb.offset + end]:
            differing.append(off)
    node.add("PagesOutsideFiles", len(differing))
    for off in differing[:MAX_PAGE_NODES]:
        child = _node("diff-tpm-blob-page", f"volume +0x{off:x}: bytes outside any file differ (header, pad or "
                                            "free space)", "changed")
        child.add("Offset", off)
        node.append(child)
    if ea.size != eb.size:
        node.note(None, f"the volumes are 0x{ea.size:x} and 0x{eb.size:x} bytes long")
