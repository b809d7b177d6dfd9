"""`fwinspect diff A B`: what changed between two firmware images, matched by identity.

Two decoded images (inspector.image) in, one Node tree out. Nothing is matched by offset:

- volumes by FvName (the EFI_FIRMWARE_VOLUME_EXT_HEADER GUID, PI 1.8 vol 3, 3.2.1.2), else by
  FileSystemGuid and their order among the volumes without a name; a volume nested in a compressed
  section is compared by its decompressed content, as a volume of its own;
- files by their GUID (EFI_FFS_FILE_HEADER.Name) within their volume, pad files left out;
- sections by type and their order among the sections of that type within their file; a
  GUID-defined or compression section by what it decompresses to, so a different compression of
  the same content is `compression`, not a change of the module;
- variables by name and vendor GUID (the live copy, as VariableParsing.c FindVariableEx picks it);
  Secure Boot certificates by their bytes, shown by subject;
- the OVMF reset-vector table's entries by GUID, TDX and SEV metadata sections by index and type.

The tree (kinds and fields are a stable interface; the app's diff screen and the measurement diff,
inspector/diff_measure.py, consume it). Every diff node has field `Change`: `added`, `removed`,
`changed` or `unchanged`. A node with bytes points at B's bytes (space/offset/size; a removed one
at A's, its only bytes) and carries the A side in fields `OffsetA`, `SpaceA`, `SizeA`.

- `diff` (root): `Change`, `ImageA`, `ImageB`, `SizeA`, `SizeB`; its problems are the images'.
- `diff-summary`: counts of files `FilesAdded`, `FilesRemoved`, `FilesChanged`, `FilesUnchanged`
  (per volume), of modules by GUID over the whole image `ModulesNew`, `ModulesDropped`,
  `FilesMoved`, and `VariablesAdded/Removed/Changed`, `MetadataChanged`; sizes `SizeA/B` (image), `ModulesA/B` (bytes
  of files outside pad files in every volume, decompressed ones included), `CompressedA/B` and
  `DecompressedA/B` (compressed sections of the flash itself, before and after decompression).
- `diff-volume`: `Change`, `Name` (FvName GUID, else FileSystemGuid; lowercase), `Label`
  (FVMAIN_COMPACT...), `Container` (the Name of the volume whose compressed section holds it, or
  None), `SizeA/B` (FvLength), `UsedA/B` (bytes of non-pad files), `FreeA/B` (free space),
  `CompressedA/B`/`DecompressedA/B` (its compressed sections), `FilesAdded/Removed/Changed`.
  Children: `diff-file`, and `diff-variable` for a volume holding a variable store.
- `diff-file`: `Change`, `Name` (file GUID, lowercase), `UiName`, `Volume` (Name of its volume),
  `Type`, `SizeA`, `SizeB`, and for `changed` `Changes`: a list of `code`, `data`, `reloc`,
  `headers` (PE/TE), `debug-only` (only the time stamp, checksum or debug directory),
  `compression` (same decompressed content, other compressed bytes or algorithm), `depex` (with
  `DepexA`, `DepexB`: both expressions), `ui`, `version`, `raw`, `volume` (a volume inside
  changed: see its own diff-volume), `sections` (sections added or removed), `type`, `attributes`,
  `header` (FFS header bytes only), `image` (an image that did not decode), `content`. A file
  `removed` from one volume and `added` to another (TDVF Config-B moves DXE drivers to NCCFV) has
  `MovedTo`/`MovedFrom` (the other volume's Name) and `MovedChanges` (its Changes, [] if none);
  `GuidName` when edk2 names the GUID (gPeiAprioriFileNameGuid). Children: `diff-section`.
- `diff-section`: `Change`, `Name` (section type, or PE section name), `Kind` (`section`,
  `pe-section`, `pe-headers`), `Index`, `SizeA/B`, `Class`, `FirstDifference`.
- `diff-variable`: `Change`, `Name`, `VendorGuid`, `AttributesA/B`, `SizeA/B`, `Changes`
  (`data`, `attributes`, `certificates`); children `diff-signature` (`Change`, `Type`, `Subject`
  or `Hash`, `Owner`) for PK/KEK/db/dbx.
- `diff-metadata`: `Change`, `Table` (`reset-vector`, `ovmf-table`, `tdx`, `sev`), `Index`,
  `Type`, `Fields` (names that differ) and each as `<name>A`/`<name>B`.
- `diff-measurements` (the command appends it last): what the change does to the MRTD pages and
  the PCR0 firmware blobs; its kinds and fields are in inspector/diff_measure.py.

Every node keeps its A-side location in `OffsetA`/`SpaceA` where it has one; a diff node's own
`space` is the Space object of the decoded image B (or A), so the bytes stay readable while the
two LoadedImage objects live.

Exit status of the command: 0 equal, 1 different (or an image had problems), 2 usage.
"""
from __future__ import annotations

import contextvars
import gc
import os
import threading

from decoders.model import Node, Severity

# inspector.diff_nv and inspector.diff_pe (and the decoders) are imported once both images' LZMA
# streams are inflating: importing is a third of a whole-process diff, and overlaps with liblzma.
# inspector.diff_ffs and inspector.diff_pe import nothing but decoders.model.
from inspector.diff_ffs import compare_files, file_node, title_file  # noqa: E402
from inspector.diff_pe import forget_spaces, same_bytes  # noqa: E402

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"
# PI 1.8 vol 3, 2.1.4.1 EFI_FV_FILETYPE_FFS_PAD: padding, no identity of its own.
FFS_PAD = 0xF0
# Problems of one image copied onto the diff root; the rest are counted.
MAX_PROBLEMS_SHOWN = 20


# ---- loading -----------------------------------------------------------------------------------

class NotAnImage(Exception):
    """One of the two files is another kind of input (an event log, a HOB list...)."""


def load_pair(path_a, path_b):
    """Both images decoded, in parallel: each image's LZMA sections start inflating on their own
    thread (inspector.imagefile.EarlyLzma) before the decoders are imported, A is decoded on a
    thread and B here (liblzma and the waits for it release the GIL). Returns (img_a, img_b), the
    objects inspector.image.load_image returns. Raises inspector.imagefile.ImageError for a file
    that cannot be read and NotAnImage for one that is not a firmware image."""
    from inspector.imagefile import read_image

    data_a, data_b = read_image(path_a), read_image(path_b)
    for path, data in ((path_a, data_a), (path_b, data_b)):
        _check_kind(path, data)
    shared = _SharedLzma(data_a, data_b)
    early_a, early_b = shared.side("a"), shared.side("b")
    from decoders import budget
    from inspector.image import load_image

    # Each image decodes under its own budget (a fresh context: decoders.budget is a context
    # variable), holding at most half the decompressed bytes one decode may: the two together stay
    # within the one-command memory budget. A real OVMF holds ~16 MiB, far below either half.
    limits = budget.Limits(held_bytes=budget.DEFAULT.held_bytes // 2)

    def load(path, data, early):
        with budget.scope(limits):
            return load_image(path, data, early, summary=False)

    out: dict[str, object] = {}

    def work():
        try:
            out["a"] = contextvars.Context().run(load, path_a, data_a, early_a)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, raised there
            out["error"] = e

    t = threading.Thread(target=work, name="diff-load-a", daemon=True)
    t.start()
    try:
        img_b = contextvars.Context().run(load, path_b, data_b, early_b)
    finally:
        t.join()
    if "error" in out:
        raise out["error"]
    return out["a"], img_b


class _SharedLzma:
    """The LZMA sections of both images, inflating early (inspector.imagefile.EarlyLzma), each
    compressed stream once: a section of B whose compressed bytes are those of a section of A (the
    same FVMAIN_COMPACT: an image against itself, or against a copy whose VARS or SECFV changed) is
    handed A's stream, and B starts no inflating of its own unless it has a section A has not.
    Both decoders only read a stream's bytes (decoders.fd.sections: the x86 BCJ pass writes a new
    buffer), so one stream can serve both."""

    def __init__(self, data_a: bytes, data_b: bytes):
        from inspector.imagefile import EarlyLzma, lzma_sections

        self.data_a, self.data_b = data_a, data_b
        in_a = lzma_sections(data_a)
        in_b = lzma_sections(data_b)
        self.same: dict[int, int] = {}      # payload offset in B -> the one in A with the same bytes
        for pb, eb, sb in in_b:
            for pa, ea, sa in in_a:
                if ea - pa == eb - pb and sa == sb and data_a[pa:ea] == data_b[pb:eb]:
                    self.same[pb] = pa
                    break
        self.early_a = EarlyLzma(data_a)
        self.early_b = EarlyLzma(data_b) if len(self.same) < len(in_b) else None
        self.taken: dict[int, object] = {}
        self.lock = threading.Lock()

    def side(self, which: str) -> "_Side":
        return _Side(self, which)

    def _from_a(self, offset: int):
        with self.lock:
            if offset not in self.taken:
                self.taken[offset] = self.early_a.get.stream(self.data_a, offset)
            return self.taken[offset]

    def stream(self, which: str, buffer, offset: int):
        if which == "a":
            return self._from_a(offset) if buffer is self.data_a else None
        if buffer is self.data_b and offset in self.same:
            return self._from_a(self.same[offset])
        return self.early_b.get.stream(buffer, offset) if self.early_b is not None else None


class _Side:
    """What inspector.image.load_image takes as `early`: `.get(buffer, offset)` (the whole inflated
    bytes or None) and `.get.stream(buffer, offset)` (the stream, to decode as it lands)."""

    def __init__(self, shared: _SharedLzma, which: str):
        self.get = self
        self._shared, self._which = shared, which

    def __call__(self, buffer, offset: int):
        stream = self.stream(buffer, offset)
        if stream is None or not stream.need(len(stream.data)):
            return None
        return stream.data

    def stream(self, buffer, offset: int):
        return self._shared.stream(self._which, buffer, offset)


# PI 1.8 vol 3, 3.2.1.1 EFI_FIRMWARE_VOLUME_HEADER: Signature "_FVH" at offset 0x28. Every edk2 flash
# device (OVMF.fd, *_CODE.fd, *_VARS.fd) starts with a volume; such a file is an image without asking
# inspector.sources.sniff (whose ACPI check imports the ACPI decoders: ~0.1 s).
FV_SIGNATURE_OFFSET = 0x28


def _check_kind(path, data: bytes) -> None:
    if data[FV_SIGNATURE_OFFSET:FV_SIGNATURE_OFFSET + 4] == b"_FVH":
        return
    from inspector.sources import sniff

    from pathlib import Path

    kind = sniff(data, Path(path))
    if kind != "image":
        what = {"eventlog": "a TCG/CC event log", "hob": "a HOB list", "acpi": "ACPI tables", "dump": "a memory dump",
                "tdx-quote": "a TDX quote"}.get(kind, kind)
        raise NotAnImage(f"{path}: {what}, not a firmware image (diff compares two images)")


# ---- the tree of each image ----------------------------------------------------------------------

class Volume:
    """One fv node and what identifies it."""

    def __init__(self, node: Node, container: "Volume | None", root_space):
        self.node = node
        self.container = container
        self.files: dict[tuple[str, int], Node] = {}
        fv_name = node.get("FvName")
        self.fv_name = fv_name
        fs = node.get("FileSystemGuid")
        self.name = str(fv_name if fv_name is not None else fs).lower()
        f = node.field("FvName") or node.field("FileSystemGuid")
        label = (f.display or "") if f is not None else ""
        self.label = label.split(" (")[0] if label else self.name
        self.nested = node.space is not root_space
        self.key: tuple = ()


def _volumes(root: Node) -> list[Volume]:
    """Every volume of the tree, outermost first, each with its files by (GUID, nth)."""
    out: list[Volume] = []
    stack: list[tuple[Node, Volume | None]] = [(root, None)]
    root_space = root.space
    while stack:
        node, vol = stack.pop()
        if node.kind == "fv":
            vol = Volume(node, vol, root_space)
            out.append(vol)
            seen: dict[str, int] = {}
            for f in node.children:
                if f.kind != "ffs" or f.get("Type") == FFS_PAD or f.get("Name") is None:
                    continue
                name = str(f.get("Name")).lower()
                n = seen.get(name, 0)
                seen[name] = n + 1
                vol.files[(name, n)] = f
        stack.extend((c, vol) for c in reversed(node.children))
    # Keys: FvName, else FileSystemGuid and the order among the unnamed volumes of that file system.
    unnamed: dict[str, int] = {}
    for v in out:
        if v.fv_name is not None:
            n = unnamed.get("name:" + v.name, 0)
            unnamed["name:" + v.name] = n + 1
            v.key = ("name", v.name, n)
        else:
            n = unnamed.get(v.name, 0)
            unnamed[v.name] = n + 1
            v.key = ("fs", v.name, n)
    return out


def _packed(vol_node: Node) -> tuple[int, int]:
    """(compressed, decompressed) bytes of the outermost compressed sections in a volume's files."""
    packed = unpacked = 0
    for f in vol_node.children:
        if f.kind != "ffs":
            continue
        stack = list(f.children)
        while stack:
            s = stack.pop()
            if s.kind != "section":
                continue
            size = s.get("DecompressedSize")
            if size is not None:
                packed += s.size
                unpacked += size
            else:
                stack.extend(s.children)
    return packed, unpacked


def _used(vol: Volume) -> int:
    return sum(f.size for f in vol.files.values())


def _free(vol_node: Node) -> int:
    return sum(c.size for c in vol_node.children if c.kind == "free-space")


# ---- the diff ------------------------------------------------------------------------------------

def diff_images(a_root: Node, b_root: Node, *, all_files: bool = False) -> Node:
    """The `diff` tree of two decoded images (the roots load_image gives). Unchanged files are
    listed only with all_files."""
    from inspector import diff_nv

    root = Node("diff", "", b_root.space, b_root.offset, b_root.size)
    va, vb = _volumes(a_root), _volumes(b_root)
    by_a = {v.key: v for v in va}
    by_b = {v.key: v for v in vb}
    counts = dict.fromkeys((ADDED, REMOVED, CHANGED, UNCHANGED), 0)
    vol_nodes: list[Node] = []
    var_counts = dict.fromkeys((ADDED, REMOVED, CHANGED), 0)
    origins: dict[int, Node] = {}     # id(diff-file added or removed) -> its ffs node
    for key in list(by_a) + [k for k in by_b if k not in by_a]:
        a, b = by_a.get(key), by_b.get(key)
        node = _volume_diff(a, b, counts, all_files, origins)
        vol_nodes.append(node)
        # Variables: under the diff-volume of the volume that holds the store.
        stores_a = [s for s in a.node.children if s.kind == "variable-store"] if a else []
        stores_b = [s for s in b.node.children if s.kind == "variable-store"] if b else []
        if stores_a or stores_b:
            vars_ = diff_nv.variables_diff(stores_a, stores_b, all_files)
            for v in vars_:
                if v.get("Change") in var_counts:
                    var_counts[v.get("Change")] += 1
            node.children.extend(vars_)
    moved = _mark_moves(vol_nodes, origins)
    meta = diff_nv.metadata_diff(a_root, b_root)
    summary = _summary(a_root, b_root, va, vb, counts, var_counts, len(meta), moved)
    root.children = [summary] + [n for n in vol_nodes if all_files or n.get("Change") != UNCHANGED
                                 or n.children] + meta
    differ = bool(counts[ADDED] or counts[REMOVED] or counts[CHANGED] or any(var_counts.values()) or meta
                  or any(n.get("Change") != UNCHANGED for n in vol_nodes)
                  or not same_bytes(a_root, b_root))
    name_a, name_b = a_root.space.name if a_root.space else "A", b_root.space.name if b_root.space else "B"
    root.add("Change", CHANGED if differ else UNCHANGED)
    root.add("ImageA", name_a)
    root.add("ImageB", name_b)
    root.add("SizeA", a_root.size)
    root.add("SizeB", b_root.size)
    if differ:
        moves = f", {moved['moved']} moved" if moved["moved"] else ""
        root.title = (f"{name_a} -> {name_b}: {moved['new']} modules added, {moved['dropped']} removed{moves}, "
                      f"{counts[CHANGED]} changed; {sum(var_counts.values())} variables, {len(meta)} metadata "
                      f"entries differ")
    else:
        root.title = f"{name_a} -> {name_b}: identical"
    _copy_problems(root, a_root, "A")
    _copy_problems(root, b_root, "B")
    forget_spaces()
    return root


def _mark_moves(vol_nodes: list[Node], origins: dict[int, Node]) -> dict[str, int]:
    """A file removed from one volume and added to another (TDVF Config-B moves DXE drivers from
    DXEFV to NCCFV): both entries keep their Change and say where the other one is (`MovedFrom`,
    `MovedTo`). Returns the image-wide counts by GUID: `new` (in B only), `dropped` (in A only),
    `moved`."""
    added: dict[str, list[tuple[Node, Node]]] = {}
    removed: dict[str, list[tuple[Node, Node]]] = {}
    for vol in vol_nodes:
        for f in vol.children:
            if f.kind != "diff-file":
                continue
            where = {ADDED: added, REMOVED: removed}.get(f.get("Change"))
            if where is not None:
                where.setdefault(f.get("Name"), []).append((f, vol))
    moved = 0
    for guid, gone in removed.items():
        for (fa, va), (fb, vb) in zip(gone, added.get(guid, [])):
            fa.add("MovedTo", vb.get("Name"))
            fb.add("MovedFrom", va.get("Name"))
            # The two copies compared as if they were in one volume: `MovedChanges` ([] when the
            # module moved unchanged), with the sections that differ under B's entry.
            ffs_a, ffs_b = origins.get(id(fa)), origins.get(id(fb))
            changes: list[str] = []
            if ffs_a is not None and ffs_b is not None:
                same = compare_files(ffs_a, ffs_b, vb.get("Name"))
                if same is not None:
                    changes = same.get("Changes")
                    fb.children = same.children
            fa.add("MovedChanges", changes)
            fb.add("MovedChanges", changes)
            how = f", {', '.join(changes)}" if changes else ", unchanged"
            fa.title += f" (moved to {vb.get('Label')}{how})"
            fb.title += f" (moved from {va.get('Label')}{how})"
            moved += 1
    return {"new": sum(1 for g in added if g not in removed), "dropped": sum(1 for g in removed if g not in added),
            "moved": moved}


def _volume_diff(a: Volume | None, b: Volume | None, counts: dict, all_files: bool,
                 origins: dict[int, Node]) -> Node:
    v = b if b is not None else a
    node = Node("diff-volume", "", v.node.space, v.node.offset, v.node.size)
    files: list[Node] = []
    local = dict.fromkeys((ADDED, REMOVED, CHANGED, UNCHANGED), 0)
    fa = a.files if a else {}
    fb = b.files if b else {}
    for key in list(fa) + [k for k in fb if k not in fa]:
        xa, xb = fa.get(key), fb.get(key)
        if xa is None or xb is None:
            f = file_node(ADDED if xa is None else REMOVED, xa, xb, v.name)
            origins[id(f)] = xa if xa is not None else xb
            local[f.get("Change")] += 1
        else:
            f = compare_files(xa, xb, v.name)
            if f is None:
                local[UNCHANGED] += 1
                if not all_files:
                    continue
                f = file_node(UNCHANGED, xa, xb, v.name)
            else:
                local[CHANGED] += 1
        title_file(f)
        files.append(f)
    for k, n in local.items():
        counts[k] += n
    if a is None or b is None:
        change = ADDED if a is None else REMOVED
    elif local[ADDED] or local[REMOVED] or local[CHANGED] or not same_bytes(a.node, b.node):
        change = CHANGED
    else:
        change = UNCHANGED
    node.add("Change", change)
    node.add("Name", v.name)
    node.add("Label", v.label)
    node.add("Container", v.container.name if v.container is not None else None)
    node.add("Nested", v.nested)
    node.add("SizeA", a.node.size if a else None)
    node.add("SizeB", b.node.size if b else None)
    node.add("UsedA", _used(a) if a else None)
    node.add("UsedB", _used(b) if b else None)
    node.add("FreeA", _free(a.node) if a else None)
    node.add("FreeB", _free(b.node) if b else None)
    pa, ua = _packed(a.node) if a else (None, None)
    pb, ub = _packed(b.node) if b else (None, None)
    if pa or pb:
        node.add("CompressedA", pa)
        node.add("CompressedB", pb)
        node.add("DecompressedA", ua)
        node.add("DecompressedB", ub)
    node.add("FilesAdded", local[ADDED])
    node.add("FilesRemoved", local[REMOVED])
    node.add("FilesChanged", local[CHANGED])
    if a is not None:
        node.add("OffsetA", a.node.offset)
        node.add("SpaceA", a.node.space.name if a.node.space else None)
    where = f" in {v.container.label}, decompressed" if v.container is not None and v.nested else ""
    sizes = ""
    if a and b:
        sizes = f"; used 0x{_used(a):x} -> 0x{_used(b):x} ({_used(b) - _used(a):+d})"
        if pa or pb:
            sizes += f"; compressed 0x{pa or 0:x} -> 0x{pb or 0:x} ({(pb or 0) - (pa or 0):+d})"
    node.title = (f"Volume {v.label}{where}: {change}; files +{local[ADDED]} -{local[REMOVED]} "
                  f"~{local[CHANGED]}{sizes}")
    node.children = files
    return node


def _summary(a_root: Node, b_root: Node, va: list[Volume], vb: list[Volume], counts: dict, var_counts: dict,
             meta: int, moved: dict) -> Node:
    node = Node("diff-summary", "Summary")
    node.add("Change", CHANGED if any(counts[k] for k in (ADDED, REMOVED, CHANGED)) else UNCHANGED)
    node.add("FilesAdded", counts[ADDED])
    node.add("FilesRemoved", counts[REMOVED])
    node.add("FilesChanged", counts[CHANGED])
    node.add("FilesUnchanged", counts[UNCHANGED])
    # By GUID over the whole image: a file that moved between volumes is neither new nor dropped.
    node.add("ModulesNew", moved["new"])
    node.add("ModulesDropped", moved["dropped"])
    node.add("FilesMoved", moved["moved"])
    node.add("VariablesAdded", var_counts[ADDED])
    node.add("VariablesRemoved", var_counts[REMOVED])
    node.add("VariablesChanged", var_counts[CHANGED])
    node.add("MetadataChanged", meta)
    node.add("SizeA", a_root.size)
    node.add("SizeB", b_root.size)
    ma, mb = sum(_used(v) for v in va), sum(_used(v) for v in vb)
    node.add("ModulesA", ma, display=f"0x{ma:x}")
    node.add("ModulesB", mb, display=f"0x{mb:x} ({mb - ma:+d})")
    pa = [_packed(v.node) for v in va if not v.nested]
    pb = [_packed(v.node) for v in vb if not v.nested]
    ca, cb = sum(p[0] for p in pa), sum(p[0] for p in pb)
    da, db = sum(p[1] for p in pa), sum(p[1] for p in pb)
    node.add("CompressedA", ca, display=f"0x{ca:x}")
    node.add("CompressedB", cb, display=f"0x{cb:x} ({cb - ca:+d})")
    node.add("DecompressedA", da, display=f"0x{da:x}")
    node.add("DecompressedB", db, display=f"0x{db:x} ({db - da:+d})")
    node.title = (f"Summary: files +{counts[ADDED]} -{counts[REMOVED]} ~{counts[CHANGED]} "
                  f"(={counts[UNCHANGED]}); modules new {moved['new']}, dropped {moved['dropped']}, moved "
                  f"{moved['moved']}; module bytes 0x{ma:x} -> 0x{mb:x} ({mb - ma:+d}); compressed "
                  f"0x{ca:x} -> 0x{cb:x} ({cb - ca:+d}), decompressed 0x{da:x} -> 0x{db:x} ({db - da:+d})")
    return node


def _copy_problems(root: Node, image: Node, side: str) -> None:
    """The image's warnings and errors on the diff root, each naming its side and node."""
    shown = left = 0
    for n, p in image.all_problems():
        if p.severity is Severity.INFO:
            continue
        if shown >= MAX_PROBLEMS_SHOWN:
            left += 1
            continue
        where = f" at 0x{p.offset:x}" if p.offset is not None else ""
        root.problem(None, f"{side} ({image.space.name if image.space else '?'}): {n.title}{where}: {p.message}",
                     p.severity)
        shown += 1
    if left:
        root.warn(None, f"{side}: {left} more problems (fwinspect fd shows them all)")


# ---- the command ---------------------------------------------------------------------------------

def add_diff_arguments(p) -> None:
    p.add_argument("a", metavar="A", help="the first (old) firmware image")
    p.add_argument("b", metavar="B", help="the second (new) firmware image")
    p.add_argument("--all", action="store_true", help="list unchanged files too")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args) -> int:
    # One command, then exit: the two decoded trees (~100,000 objects) live to the end and
    # reference counting frees the rest, so the cyclic collector's default passes (every 700
    # allocations) only walk live objects, ~20 ms of a 0.5 s diff. It still runs every 100,000;
    # the caller's thresholds come back after (the tests run commands in process).
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 20, 20)
    try:
        return _diff_command(args)
    finally:
        gc.set_threshold(*thresholds)


def _diff_command(args) -> int:
    from inspector.cli import EXIT_OK, EXIT_PROBLEMS, UsageError
    from inspector.imagefile import ImageError
    from inspector.render import has_problems, print_tree, write_json

    from inspector.diff_measure import measurement_diff_started

    try:
        img_a, img_b = load_pair(args.a, args.b)
    except (ImageError, NotAnImage) as e:
        raise UsageError(str(e)) from None
    # What the change does to the measurements (the MRTD pages and the PCR0 firmware blobs,
    # inspector/diff_measure.py), hashed while the trees are compared. A measured byte outside every
    # file (the TDVF descriptor, free space in a measured volume) changes them without changing a
    # module: the images differ then too.
    measured = measurement_diff_started(img_a, img_b, os.path.basename(args.a), os.path.basename(args.b))
    root = diff_images(img_a.root, img_b.root, all_files=args.all)
    # The paths as given: two builds' files often share a name (OVMF.fd -> OVMF.fd).
    root.field("ImageA").value, root.field("ImageB").value = str(args.a), str(args.b)
    if os.path.basename(args.a) == os.path.basename(args.b) and args.a != args.b:
        root.title = \
            f"{args.a} -> {args.b}:" + root.title.split(":", 1)[1]
    measures = root.append(measured())
    if measures.get("Change") != UNCHANGED:
        root.field("Change").value = "changed"
    if args.json:
        complete = write_json(root)
    else:
        complete = print_tree(root)
    if root.get("Change") != UNCHANGED or has_problems(root) or not complete:
        return EXIT_PROBLEMS
    return EXIT_OK
