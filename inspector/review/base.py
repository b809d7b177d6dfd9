"""What every review rule reads and builds: the facts of one decoded image (one walk over its Node
tree), and `finding` Nodes whose `evidence` children point at the nodes they rest on.

A finding has the space, offset and size of its first evidence, so selecting it shows those bytes;
each evidence node repeats the space/offset/size of the node it names (an FFS file, a DEPEX, a
variable, a metadata table) with fields saying what it is.
"""
from __future__ import annotations

import uuid

from decoders.model import Node, Severity

SEVERITIES = ("info", "warning", "risk")
# A finding lists at most this many evidence nodes (a store with thousands of deleted variables,
# a hostile image with thousands of copies of one GUID); the rest are counted in a field.
MAX_EVIDENCE = 64
# FFS file types (PI vol 3, EFI_FV_FILETYPE_*) the rules tell apart.
FILE_TYPES = {0x01: "RAW", 0x02: "FREEFORM", 0x03: "SECURITY_CORE", 0x04: "PEI_CORE", 0x05: "DXE_CORE",
              0x06: "PEIM", 0x07: "DRIVER", 0x08: "COMBINED_PEIM_DRIVER", 0x09: "APPLICATION", 0x0A: "MM",
              0x0B: "FIRMWARE_VOLUME_IMAGE", 0x0C: "COMBINED_MM_DXE", 0x0D: "MM_CORE", 0x0E: "MM_STANDALONE",
              0x0F: "MM_CORE_STANDALONE"}
UI_SECTION = 0x15        # EFI_SECTION_USER_INTERFACE
VAR_ADDED = 0x3F         # MdeModulePkg/Include/Guid/VariableFormat.h
VAR_IN_DELETED_TRANSITION = 0xFE
VAR_DELETED = 0xFD


class FoundFile:
    """One FFS file of the image, with what the rules ask of it."""

    __slots__ = ("node", "guid", "ui", "type", "depex", "extra_bytes", "volume")

    def __init__(self, node: Node, volume: Node | None):
        self.node = node
        g = node.get("Name")
        self.guid = g if isinstance(g, uuid.UUID) else None
        t = node.get("Type")
        self.type = t if isinstance(t, int) else None
        self.ui: str | None = None
        self.depex: Node | None = None
        self.extra_bytes = 0      # decompressed minus compressed, for files with their own compression
        self.volume = volume

    @property
    def label(self) -> str:
        guid = str(self.guid).upper() if self.guid else "no GUID"
        return f"{self.ui} ({guid})" if self.ui else guid

    @property
    def bytes(self) -> int:
        """Bytes the file adds once every volume and section is decompressed."""
        return self.node.size + self.extra_bytes


class Context:
    """The facts of one image (and VARS) the rules read, from one walk over each tree."""

    def __init__(self, image_root: Node, vars_root: Node | None, profile: str):
        self.image = image_root
        self.vars = vars_root
        self.profile = profile
        self.files: list[FoundFile] = []
        self.by_guid: dict[uuid.UUID, list[FoundFile]] = {}
        self.info: Node | None = None
        self.fvs: list[Node] = []
        self.tdx_metadata: Node | None = None
        self.sev_metadata: Node | None = None
        self.guid_entries: list[Node] = []
        self.guid_table: Node | None = None
        self.image_problems: list[tuple[Node, object]] = []   # error-severity problems of the image tree
        self.image_stores = _Stores()
        self.vars_stores = _Stores()
        self.outcomes: dict[str, str] = {}
        self._walk_image(image_root)
        if vars_root is not None:
            self._walk_stores(vars_root, self.vars_stores)

    # -- the walks ------------------------------------------------------------------------------
    def _walk_image(self, root: Node) -> None:
        # (node, nearest FFS file above it, nearest volume above it); iterative: hostile trees are deep
        stack: list[tuple[Node, FoundFile | None, Node | None]] = [(root, None, None)]
        while stack:
            node, ffs, fv = stack.pop()
            kind = node.kind
            if kind in ("review", "finding", "evidence"):
                continue            # a review already attached to this tree is not reviewed again
            for p in node.problems:
                if p.severity == Severity.ERROR:
                    self.image_problems.append((node, p))
            if kind == "ffs":
                ffs = FoundFile(node, fv)
                self.files.append(ffs)
                if ffs.guid is not None:
                    self.by_guid.setdefault(ffs.guid, []).append(ffs)
            elif kind == "fv":
                fv = node
                self.fvs.append(node)
            elif kind == "section" and ffs is not None:
                if node.get("Type") == UI_SECTION and ffs.ui is None and isinstance(node.get("String"), str):
                    ffs.ui = node.get("String")
                dsize = node.get("DecompressedSize")
                if isinstance(dsize, int) and ffs.type != 0x0B:     # not a volume-image file's FV
                    ffs.extra_bytes += max(0, dsize - node.size)
            elif kind == "depex" and ffs is not None and ffs.depex is None:
                ffs.depex = node
            elif kind == "image-info" and self.info is None:
                self.info = node
            elif kind == "tdx-metadata" and self.tdx_metadata is None:
                self.tdx_metadata = node
            elif kind == "sev-metadata" and self.sev_metadata is None:
                self.sev_metadata = node
            elif kind == "ovmf-guid-entry":
                self.guid_entries.append(node)
            elif kind == "ovmf-guid-table" and self.guid_table is None:
                self.guid_table = node
            elif kind in _STORE_KINDS:
                self.image_stores.add(node)
            stack.extend((c, ffs, fv) for c in reversed(node.children))

    def _walk_stores(self, root: Node, stores: "_Stores") -> None:
        for node in root.walk():
            if node.kind in _STORE_KINDS:
                stores.add(node)

    # -- questions ------------------------------------------------------------------------------
    def find(self, modules) -> list[FoundFile]:
        """The files of the image that are one of `modules` (catalogue.Module), in tree order."""
        wanted = {m.guid for m in modules}
        return [f for f in self.files if f.guid in wanted]

    def has_dxe_core(self) -> bool:
        return any(f.type == 0x05 for f in self.files)

    def module_list_gap(self) -> str | None:
        """Why the module list may be incomplete (None: it is complete as far as can be told)."""
        if not self.files:
            return "the image holds no firmware files (a VARS file, or no volume could be decoded)"
        if not self.has_dxe_core():
            return "no DXE core file was found (the DXE volume is missing or could not be decoded)"
        broken = [n for n, p in self.image_problems if n.kind in ("fv", "section", "ffs")]
        if broken:
            return (f"{len(broken)} volume(s), file(s) or section(s) could not be decoded cleanly "
                    f"(first: {broken[0].title})")
        return None

    def stores(self) -> "_Stores":
        """The variable stores to read: the VARS file's when one was given, else the image's own."""
        return self.vars_stores if self.vars is not None else self.image_stores

    def stores_label(self) -> str:
        if self.vars is not None:
            return f"the VARS file {self.vars.space.name if self.vars.space else self.vars.title}"
        return "the image's own variable store"


_STORE_KINDS = ("variable-store", "variable", "ftw-working-block", "free-space")


class _Stores:
    def __init__(self):
        self.stores: list[Node] = []
        self.variables: list[Node] = []
        self.ftw: list[Node] = []
        self.free: list[Node] = []

    def add(self, node: Node) -> None:
        if node.kind == "variable-store":
            self.stores.append(node)
        elif node.kind == "variable":
            self.variables.append(node)
        elif node.kind == "ftw-working-block":
            self.ftw.append(node)
        elif node.kind == "free-space":
            self.free.append(node)

    def live(self, name: str, vendor: uuid.UUID | None = None) -> list[Node]:
        return [v for v in self.variables if v.get("Name") == name and is_live(v)
                and (vendor is None or v.get("VendorGuid") == vendor)]


def is_live(var: Node) -> bool:
    """VariableParsing.c FindVariableEx: VAR_ADDED, or VAR_ADDED & VAR_IN_DELETED_TRANSITION."""
    return var.get("State") in (VAR_ADDED, VAR_ADDED & VAR_IN_DELETED_TRANSITION)


def is_deleted(var: Node) -> bool:
    """A record whose State has VAR_DELETED's bit cleared (VariableFormat.h: states clear bits)."""
    state = var.get("State")
    return isinstance(state, int) and state != 0xFF and not state & ~VAR_DELETED & 0xFF


# -- building findings ------------------------------------------------------------------------------

def evidence(target: Node, what: str, **fields) -> Node:
    """An evidence node: the space/offset/size of `target`, with fields naming what it is."""
    ev = Node("evidence", f"{what}: {target.title}", target.space, target.offset, target.size)
    ev.add("What", what)
    ev.add("Kind", target.kind)
    ev.add("Title", target.title)
    for name, value in fields.items():
        if value is not None:
            ev.add(name, value, display=f"{value:,} bytes" if name == "Bytes" else None)
    return ev


def file_evidence(f: FoundFile, what: str, with_depex: bool = False) -> list[Node]:
    """Evidence for a module: its FFS file (GUID, UI name, type, decompressed bytes), and its DEPEX."""
    out = [evidence(f.node, what, FileGuid=f.guid, UiName=f.ui,
                    Type=FILE_TYPES.get(f.type, f.type), Bytes=f.bytes,
                    Volume=f.volume.title if f.volume is not None else None)]
    if with_depex:
        if f.depex is not None:
            out.append(evidence(f.depex, f"DEPEX of {f.ui or f.guid}", FileGuid=f.guid,
                                Expression=f.depex.get("Expression")))
    return out


def finding(rule: str, severity: str, summary: str, evidence_nodes: list[Node] | None = None,
            **fields) -> Node:
    assert severity in SEVERITIES, severity
    nodes = list(evidence_nodes or [])
    first = nodes[0] if nodes else None
    node = Node("finding", f"{severity.upper()} {rule}: {summary}",
                first.space if first else None, first.offset if first else 0, first.size if first else 0)
    node.add("Rule", rule)
    node.add("Severity", severity)
    node.add("Summary", summary)
    for name, value in fields.items():
        if value is not None:
            node.add(name, value)
    if len(nodes) > MAX_EVIDENCE:
        node.add("EvidenceNotListed", len(nodes) - MAX_EVIDENCE,
                 display=f"{len(nodes) - MAX_EVIDENCE} more evidence nodes not listed")
        nodes = nodes[:MAX_EVIDENCE]
    node.children = nodes
    return node


def undecided(rule: str, why: str, evidence_nodes: list[Node] | None = None) -> Node:
    """The rule could not decide: an `info` finding saying why, never a guess."""
    return finding(rule, "info", f"cannot decide: {why}", evidence_nodes, Decided=False)


MAX_NAMES = 24     # module names spelled out in one summary; the evidence lists them all


def names(files: list[FoundFile]) -> str:
    text = ", ".join(f.ui or str(f.guid).upper() for f in files[:MAX_NAMES])
    return text + (f" and {len(files) - MAX_NAMES} more" if len(files) > MAX_NAMES else "")
