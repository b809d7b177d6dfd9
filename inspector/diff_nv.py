"""The NV variable store and the reset-vector metadata of two images, compared (inspector.diff).

Variables: edk2 MdeModulePkg/Include/Guid/VariableFormat.h and
MdeModulePkg/Universal/Variable/RuntimeDxe/VariableParsing.c (FindVariableEx): a variable is one
(Name, VendorGuid); of its copies in the store, the one in State VAR_ADDED is the value, else one
VAR_ADDED & VAR_IN_DELETED_TRANSITION (an update cut short); deleted copies are history. Secure Boot
databases (PK, KEK, db, dbx: UEFI 2.10 32.4.1, EFI_SIGNATURE_LIST) are compared signature by
signature (decoders.efisig decodes them), a certificate shown by its subject.

Metadata: the OVMF reset-vector GUIDed table (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm), the
TDX metadata (TDVF design guide, "TDVF_DESCRIPTOR"/"TDVF_SECTION"; OvmfPkg/ResetVector/X64/
IntelTdxMetadata.asm) and the SEV metadata (OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm): sections
by their index and type.
"""
from __future__ import annotations

from decoders.model import Node
from decoders.nvvars.structs import VAR_ADDED, VAR_IN_DELETED_TRANSITION  # decoded already: no import cost

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"
_LIVE = (VAR_ADDED, VAR_ADDED & VAR_IN_DELETED_TRANSITION)


# ---- variables ---------------------------------------------------------------------------------

def _live(stores: list[Node]) -> dict[tuple[str, str], Node]:
    out: dict[tuple[str, str], Node] = {}
    for store in stores:
        for v in store.children:
            if v.kind != "variable" or v.get("State") not in _LIVE:
                continue
            key = (str(v.get("Name")), str(v.get("VendorGuid")).lower())
            # VariableParsing.c FindVariableEx: a VAR_ADDED copy wins over one in transition.
            if key not in out or (out[key].get("State") != VAR_ADDED and v.get("State") == VAR_ADDED):
                out[key] = v
    return out


def _data(v: Node) -> bytes:
    d = v.get("Data")
    return bytes(d) if isinstance(d, (bytes, bytearray, memoryview)) else b""


def _signatures(v: Node) -> dict[tuple, Node]:
    out: dict[tuple, Node] = {}
    for sl in v.children:
        if sl.kind != "signature-list":
            continue
        for s in sl.children:
            if s.kind != "signature":
                continue
            data = s.get("SignatureData")
            key = (str(sl.get("SignatureType")).lower(), bytes(data) if isinstance(data, (bytes, bytearray)) else
                   s.title)
            out.setdefault(key, s)
    return out


def _signature_node(change: str, s: Node, sig_type: str) -> Node:
    subject = s.get("Subject")
    node = Node("diff-signature", "", s.space, s.offset, s.size)
    node.add("Change", change)
    node.add("Type", sig_type)
    if subject is not None:
        node.add("Subject", subject)
        node.add("Issuer", s.get("Issuer"))
        what = f"certificate {subject}"
    else:
        data = s.get("SignatureData")
        h = bytes(data).hex() if isinstance(data, (bytes, bytearray)) else None
        node.add("Hash", h)
        what = f"{s.title}: {h}" if h else s.title
    sha = s.get("SHA256")
    if isinstance(sha, (bytes, bytearray)):
        node.add("SHA256", bytes(sha).hex())
    owner = s.get("SignatureOwner")
    node.add("Owner", str(owner).lower() if owner is not None else None)
    node.title = f"{'+' if change == ADDED else '-'} {what}"
    return node


def _var_node(change: str, va: Node | None, vb: Node | None) -> Node:
    at = vb if vb is not None else va
    node = Node("diff-variable", "", at.space, at.offset, at.size)
    node.add("Change", change)
    node.add("Name", str(at.get("Name")))
    node.add("VendorGuid", str(at.get("VendorGuid")).lower())
    node.add("AttributesA", va.get("Attributes") if va is not None else None)
    node.add("AttributesB", vb.get("Attributes") if vb is not None else None)
    node.add("SizeA", len(_data(va)) if va is not None else None)
    node.add("SizeB", len(_data(vb)) if vb is not None else None)
    if va is not None:
        node.add("OffsetA", va.offset)
        node.add("SpaceA", va.space.name if va.space else None)
    return node


def variables_diff(stores_a: list[Node], stores_b: list[Node], all_vars: bool = False) -> list[Node]:
    """diff-variable nodes for the live variables of two stores (unchanged ones with all_vars)."""
    la, lb = _live(stores_a), _live(stores_b)
    out: list[Node] = []
    for key in list(la) + [k for k in lb if k not in la]:
        va, vb = la.get(key), lb.get(key)
        vendor = key[1]
        if va is None or vb is None:
            node = _var_node(ADDED if va is None else REMOVED, va, vb)
            sigs = _signatures(vb if vb is not None else va)
            node.children = [_signature_node(node.get("Change"), s, k[0]) for k, s in sigs.items()]
            size = node.get("SizeB") if va is None else node.get("SizeA")
            node.title = f"{'+' if va is None else '-'} variable {key[0]} ({vendor}): {node.get('Change')}, " \
                         f"{size} bytes" + (f", {len(sigs)} signatures" if sigs else "")
            out.append(node)
            continue
        changes = []
        if va.get("Attributes") != vb.get("Attributes"):
            changes.append("attributes")
        if _data(va) != _data(vb):
            changes.append("data")
        if not changes:
            if all_vars:
                node = _var_node(UNCHANGED, va, vb)
                node.title = f"= variable {key[0]} ({vendor})"
                out.append(node)
            continue
        node = _var_node(CHANGED, va, vb)
        sa, sb = _signatures(va), _signatures(vb)
        if sa or sb:
            added = [_signature_node(ADDED, s, k[0]) for k, s in sb.items() if k not in sa]
            removed = [_signature_node(REMOVED, s, k[0]) for k, s in sa.items() if k not in sb]
            if added or removed:
                changes.append("certificates")
            node.children = removed + added
        node.add("Changes", changes)
        a, b = node.get("SizeA"), node.get("SizeB")
        extra = ""
        if node.children:
            extra = f"; signatures +{sum(c.get('Change') == ADDED for c in node.children)} " \
                    f"-{sum(c.get('Change') == REMOVED for c in node.children)}"
        node.title = f"~ variable {key[0]} ({vendor}): {', '.join(changes)}; {a} -> {b} bytes{extra}"
        out.append(node)
    return out


# ---- metadata ------------------------------------------------------------------------------------

# Fields that say where a structure sits, not what it says: never compared.
_WHERE = {"FileRange"}


def _values(n: Node) -> dict[str, object]:
    return {f.name: f.value for f in n.fields if f.name not in _WHERE}


def _meta_node(table: str, index, typ, na: Node | None, nb: Node | None, title: str) -> Node | None:
    """A diff-metadata node for one entry; None when both sides say the same."""
    if na is not None and nb is not None:
        a, b = _values(na), _values(nb)
        names = [k for k in list(a) + [k for k in b if k not in a] if a.get(k) != b.get(k)]
        if not names:
            return None
        change = CHANGED
    else:
        names = []
        change = ADDED if na is None else REMOVED
    at = nb if nb is not None else na
    node = Node("diff-metadata", "", at.space, at.offset, at.size)
    node.add("Change", change)
    node.add("Table", table)
    node.add("Index", index)
    node.add("Type", typ)
    node.add("Fields", names)
    for k in names:
        fa, fb = na.field(k), nb.field(k)
        node.add(f"{k}A", fa.value if fa else None, display=(fa.display if fa else None))
        node.add(f"{k}B", fb.value if fb else None, display=(fb.display if fb else None))
    if na is not None:
        node.add("OffsetA", na.offset)
    shown = "; ".join(f"{k}: {_text(na.field(k))} -> {_text(nb.field(k))}" for k in names[:4])
    node.title = f"{ {ADDED: '+', REMOVED: '-', CHANGED: '~'}[change]} {title}: {change}" + (f"; {shown}" if shown else "")
    return node


def _text(f) -> str:
    return "absent" if f is None else f.text[:80]


def _indexed(parent: Node | None, kind: str) -> dict[tuple, Node]:
    if parent is None:
        return {}
    return {(i, c.get("Type")): c for i, c in enumerate(x for x in parent.children if x.kind == kind)}


def _table_entries(table: Node | None) -> dict[tuple, Node]:
    out: dict[tuple, Node] = {}
    if table is None:
        return out
    seen: dict[str, int] = {}
    for e in table.children:
        if e.kind != "ovmf-guid-entry":
            continue
        g = str(e.get("Guid")).lower()
        n = seen.get(g, 0)
        seen[g] = n + 1
        out[(g, n)] = e
    return out


def _first(root: Node, kind: str) -> Node | None:
    """The first `kind` node in the reset-vector table (inspector.image appends the table, with the
    TDX and SEV metadata under its entries, to the image root): not a walk of the whole image."""
    table = next((c for c in root.children if c.kind == "ovmf-guid-table"), None)
    if table is None:
        return None
    return table if kind == "ovmf-guid-table" else next(table.find(kind), None)


def metadata_diff(a_root: Node, b_root: Node) -> list[Node]:
    """diff-metadata nodes: the reset-vector table, its entries, the TDX and SEV metadata."""
    out: list[Node] = []
    ta, tb = _first(a_root, "ovmf-guid-table"), _first(b_root, "ovmf-guid-table")
    if ta is not None or tb is not None:
        n = _meta_node("reset-vector", None, None, ta, tb, "OVMF reset-vector table")
        if n is not None:
            # A table present on both sides: its own fields (the reset vector's code, the AP entry).
            out.append(n)
    ea, eb = _table_entries(ta), _table_entries(tb)
    for key in list(ea) + [k for k in eb if k not in ea]:
        x = eb.get(key) or ea.get(key)
        n = _meta_node("ovmf-table", key[1], key[0], ea.get(key), eb.get(key), f"table entry {x.title}")
        if n is not None:
            out.append(n)
    for kind, sub, table in (("tdx-metadata", "tdx-section", "tdx"), ("sev-metadata", "sev-section", "sev")):
        ma, mb = _first(a_root, kind), _first(b_root, kind)
        if ma is None and mb is None:
            continue
        if ma is None or mb is None:
            n = _meta_node(table, None, None, ma, mb, f"{table.upper()} metadata")
            out.append(n)
        else:
            head_a = {k: v for k, v in _values(ma).items()}
            head_b = {k: v for k, v in _values(mb).items()}
            if head_a != head_b:
                out.append(_meta_node(table, None, None, ma, mb, f"{table.upper()} metadata header"))
        sa, sb = _indexed(ma, sub), _indexed(mb, sub)
        for key in list(sa) + [k for k in sb if k not in sa]:
            x = sb.get(key) or sa.get(key)
            f = x.field("Type")
            typ = f.display if f is not None and f.display else key[1]
            n = _meta_node(table, key[0], typ, sa.get(key), sb.get(key), f"{table.upper()} section {key[0]} ({x.title})")
            if n is not None:
                out.append(n)
    return out
