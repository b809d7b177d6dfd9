"""The MRTD half of inspector.diff_measure (its docstring has the rules and the node kinds): the
pages, by GPA, whose PAGE.ADD/MR.EXTEND input differs between two images, and the files in them."""
from __future__ import annotations

from bisect import bisect_right

from decoders.model import Node
from inspector.diff_measure import (
    PAGE, MAX_PAGE_NODES, MAX_NAMES_PER_PAGE, MAX_SCAN_PER_PAGE, CHANGE, _node, _desc_same_space,
    _fv_label, _inner_volumes, _file_label,
)


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
            from inspector.hashing import side_by_side

            self.results = compute_mrtds(self.data, self.sections, ORDERS, side_by_side(ORDERS))
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
