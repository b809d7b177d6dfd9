"""FFS files and their sections of two images, compared (inspector.diff; the kinds and fields
are documented there).

PI 1.8 vol 3: a file is one EFI_FFS_FILE_HEADER.Name within its volume (2.1.4.1); its sections
(3.2.5) are matched by type and their order among the sections of that type; an encapsulation
(EFI_SECTION_COMPRESSION, EFI_SECTION_GUID_DEFINED) by what it decompresses to, so other compressed
bytes of the same content are `compression`; PE32/TE images by their PE sections (inspector.diff_pe);
DEPEX sections (PI 1.8 vol 2, 10.7) by their expressions.
"""
from __future__ import annotations

from decoders.model import Node
from inspector.diff_pe import first_difference_nodes, same_bytes

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"
# PI 1.8 vol 3, 3.2.5 section types.
SEC_COMPRESSION, SEC_GUID_DEFINED, SEC_PE32, SEC_TE = 0x01, 0x02, 0x10, 0x12
SEC_DXE_DEPEX, SEC_VERSION, SEC_UI, SEC_FV_IMAGE = 0x13, 0x14, 0x15, 0x17
SEC_FREEFORM, SEC_RAW, SEC_PEI_DEPEX, SEC_MM_DEPEX = 0x18, 0x19, 0x1B, 0x1C
_DEPEX = (SEC_DXE_DEPEX, SEC_PEI_DEPEX, SEC_MM_DEPEX)
_SECTION_CHANGE = {SEC_PE32: "code", SEC_TE: "code", SEC_VERSION: "version", SEC_UI: "ui", SEC_FV_IMAGE: "volume",
                   SEC_RAW: "raw", SEC_FREEFORM: "raw", **{t: "depex" for t in _DEPEX}}
# The order Changes are listed in: what runs first.
ORDER = ("code", "data", "reloc", "headers", "depex", "volume", "compression", "debug-only", "image", "raw",
         "ui", "version", "sections", "type", "attributes", "header", "content")


# ---- sections ----------------------------------------------------------------------------------

def numbered(items, key) -> dict:
    """{(key(item), n): item} for the n-th item with that key, in order: sections by type and
    position within their file, files by GUID and copy within their volume."""
    out: dict = {}
    seen: dict = {}
    for item in items:
        k = key(item)
        n = seen.get(k, 0)
        seen[k] = n + 1
        out[(k, n)] = item
    return out


def _keyed_sections(children: list[Node]) -> dict[tuple[int, int], Node]:
    return numbered((s for s in children if s.kind == "section"), lambda s: s.get("Type"))


def add_sides(node: Node, xa: Node | None, xb: Node | None) -> None:
    """The sizes of both sides and where A's node is (B's is the diff node's own place)."""
    node.add("SizeA", xa.size if xa is not None else None)
    node.add("SizeB", xb.size if xb is not None else None)
    if xa is not None:
        node.add("OffsetA", xa.offset)
        node.add("SpaceA", xa.space.name if xa.space else None)


def _blob(section: Node):
    """The decompressed bytes of a compression or GUID-defined section, when they were decoded."""
    if section.get("DecompressedSize") is None:
        return None
    for c in section.children:
        if c.space is not None and c.space is not section.space:
            return c.space.data
    return None


def _type_name(section: Node) -> str:
    f = section.field("Type")
    return (f.display if f is not None and f.display else str(section.get("Type")))


def _sections_diff(ca: list[Node], cb: list[Node], changes: set[str], out: list[Node], depex: dict) -> None:
    """Compare two lists of sections (a file's, or an encapsulation's) by type and position."""
    sa, sb = _keyed_sections(ca), _keyed_sections(cb)
    for key in list(sa) + [k for k in sb if k not in sa]:
        xa, xb = sa.get(key), sb.get(key)
        if xa is None or xb is None:
            changes.add("sections")
            x = xb if xb is not None else xa
            what = _SECTION_CHANGE.get(key[0])
            if what is not None:
                changes.add(what)
            if key[0] in _DEPEX:
                depex["A" if xa is not None else "B"] = _depex_text(x)
            out.append(_section_node(key, xa, xb, "section " + (ADDED if xa is None else REMOVED)))
            continue
        if same_bytes(xa, xb):
            continue
        _section_pair(key, xa, xb, changes, out, depex)


def _section_pair(key, xa: Node, xb: Node, changes: set[str], out: list[Node], depex: dict) -> None:
    t = key[0]
    if t in (SEC_COMPRESSION, SEC_GUID_DEFINED):
        ba, bb = _blob(xa), _blob(xb)
        if ba is not None and bb is not None:
            if ba == bb:
                changes.add("compression")
                out.append(_section_node(key, xa, xb, "compression: the same decompressed content"))
                return
            if xa.get("SectionDefinitionGuid") != xb.get("SectionDefinitionGuid") or \
                    xa.get("CompressionType") != xb.get("CompressionType"):
                changes.add("compression")
        # Same content or not: what is inside (the encapsulated sections) says what changed.
        inner: list[Node] = []
        _sections_diff(xa.children, xb.children, changes, inner, depex)
        if (ba is None or bb is None) and not inner:
            changes.add("content")
        node = _section_node(key, xa, xb, "encapsulated sections differ")
        node.children = inner
        out.append(node)
        return
    if t in (SEC_PE32, SEC_TE):
        pa = next((c for c in xa.children if c.kind in ("pe", "te")), None)
        pb = next((c for c in xb.children if c.kind in ("pe", "te")), None)
        if pa is None or pb is None:
            changes.add("image")
            out.append(_section_node(key, xa, xb, "image not decoded"))
            return
        from inspector.diff_pe import compare_images

        names, nodes = compare_images(pa, pb)
        changes.update(names)
        node = _section_node(key, xa, xb, ", ".join(names) + (": " + ", ".join(
            (n.get("Name") or "") for n in nodes) if nodes else ""))
        node.children = nodes
        out.append(node)
        return
    if t in _DEPEX:
        changes.add("depex")
        depex["A"], depex["B"] = _depex_text(xa), _depex_text(xb)
        node = _section_node(key, xa, xb, f"{depex['A']}  ->  {depex['B']}")
        node.add("DepexA", depex["A"])
        node.add("DepexB", depex["B"])
        out.append(node)
        return
    if t == SEC_UI:
        changes.add("ui")
        out.append(_section_node(key, xa, xb, f"{xa.get('String')!r} -> {xb.get('String')!r}"))
        return
    if t == SEC_VERSION:
        changes.add("version")
        out.append(_section_node(key, xa, xb, f"{xa.get('VersionString')!r} -> {xb.get('VersionString')!r}"))
        return
    if t == SEC_FV_IMAGE:
        changes.add("volume")
        out.append(_section_node(key, xa, xb, "the volume inside differs (see its own entry)"))
        return
    changes.add(_SECTION_CHANGE.get(t, "content"))
    first = first_difference_nodes(xa, xb)
    out.append(_section_node(key, xa, xb, f"bytes differ from +0x{first or 0:x}"))


def _depex_text(section: Node) -> str | None:
    d = next((c for c in section.children if c.kind == "depex"), None)
    return None if d is None else d.get("Expression")


def _section_node(key, xa: Node | None, xb: Node | None, what: str) -> Node:
    at = xb if xb is not None else xa
    change = CHANGED if xa is not None and xb is not None else (ADDED if xa is None else REMOVED)
    name = _type_name(at)
    title = f"{name} section #{key[1]}: {what}" if key[1] else f"{name} section: {what}"
    node = Node("diff-section", title, at.space, at.offset, at.size)
    node.add("Change", change)
    node.add("Name", name)
    node.add("Kind", "section")
    node.add("Index", key[1])
    add_sides(node, xa, xb)
    return node


# ---- files ---------------------------------------------------------------------------------------

def _ui(f: Node) -> str | None:
    return f.get("UI")


def _file_type(f: Node) -> str:
    t = f.field("Type")
    return (t.display or str(t.value)) if t is not None else "?"


def file_node(change: str, fa: Node | None, fb: Node | None, volume: str) -> Node:
    at = fb if fb is not None else fa
    guid = str(at.get("Name")).lower()
    ui = _ui(fb) if fb is not None and _ui(fb) else (_ui(fa) if fa is not None else None)
    node = Node("diff-file", "", at.space, at.offset, at.size)
    node.add("Change", change)
    node.add("Name", guid)
    node.add("UiName", ui)
    node.add("Volume", volume)
    node.add("Type", _file_type(at))
    named = at.field("Name")
    if named is not None and named.display and " (" in named.display:   # a GUID edk2 names (gPeiAprioriFileNameGuid)
        node.add("GuidName", named.display.split(" (")[0])
    add_sides(node, fa, fb)
    return node


def title_file(node: Node) -> None:
    ui, guid, typ = node.get("UiName") or node.get("GuidName"), node.get("Name"), node.get("Type")
    who = f"{ui} ({typ}, {guid})" if ui else f"{guid} ({typ})"
    a, b, change = node.get("SizeA"), node.get("SizeB"), node.get("Change")
    mark = {ADDED: "+", REMOVED: "-", CHANGED: "~", UNCHANGED: "="}[change]
    if change == CHANGED:
        what = ", ".join(node.get("Changes"))
        pe = [c.get("Name") for s in node.walk() if s.kind == "diff-section" for c in s.children
              if c.kind == "diff-section" and c.get("Kind") == "pe-section"]
        if pe:
            what += f" [{', '.join(dict.fromkeys(pe))}]"
        size = f"0x{a:x} -> 0x{b:x} ({b - a:+d})" if a != b else f"0x{a:x}"
        node.title = f"{mark} {who}: {what}; {size} bytes"
    else:
        node.title = f"{mark} {who}: {change}, 0x{(b if b is not None else a):x} bytes"


def compare_files(fa: Node, fb: Node, volume: str) -> Node | None:
    """The diff-file of two files with one GUID; None when their bytes are equal."""
    if same_bytes(fa, fb):
        return None
    changes: set[str] = set()
    sections: list[Node] = []
    depex: dict = {}
    if fa.get("Type") != fb.get("Type"):
        changes.add("type")
    if fa.get("Attributes") != fb.get("Attributes"):
        changes.add("attributes")
    _sections_diff(fa.children, fb.children, changes, sections, depex)
    if not changes:
        changes.add("header")   # IntegrityCheck/State bytes, or bytes no section covers
    if "debug-only" in changes and changes & {"code", "data", "reloc", "headers", "image"}:
        changes.discard("debug-only")
    node = file_node(CHANGED, fa, fb, volume)
    node.add("Changes", sorted(changes, key=lambda c: ORDER.index(c) if c in ORDER else len(ORDER)))
    if "depex" in changes:
        node.add("DepexA", depex.get("A"))
        node.add("DepexB", depex.get("B"))
    node.children = sections
    return node
