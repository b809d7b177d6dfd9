"""Page-table walks as Nodes (decoders/paging.py walks): each leaf or merged range, the walk's
summary, each leaf's JSON text for streaming, and the drill-down into the tables themselves
(Intel SDM vol. 3A ch. 4 entry layouts)."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from decoders import budget
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space
from decoders.paging import (A, D, G, LEAF_SIZES, LEVEL_NAMES, NX, P, PAGE, PAT_LARGE, PCD, PKEY_SHIFT, PS, PWT,
                             RW, US, Mapping, Mappings, PagingConfig, Range, WalkResult, canonical, leaf_mask,
                             u64, walk)


# -- presentation ------------------------------------------------------------------------------
def _perm(writable: bool, user: bool, nx: bool) -> str:
    return ("u" if user else "-") + "r" + ("w" if writable else "-") + ("-" if nx else "x")


def mapping_node(m: Mapping) -> Node:
    unit = {3: "1 GiB", 2: "2 MiB", 1: "4 KiB"}[m.level]
    n = Node("mapping", f"0x{m.va:016x} -> 0x{m.pa:x} {unit} {_perm(m.writable, m.user, m.nx)}",
             None, m.entry_address, 8)
    n.add("VirtualAddress", m.va)
    n.add("PhysicalAddress", m.pa)
    n.add("Size", m.size, display=unit)
    n.add("Level", m.level, display=LEVEL_NAMES[m.level])
    n.add("Entry", m.entry, display=f"0x{m.entry:016x}")
    n.add("EntryAddress", m.entry_address)
    for name, value in m.flags().items():
        n.add(name, value)
    return n


def range_node(r: Range) -> Node:
    state = ""
    if r.shared is not None:
        state = " shared" if r.shared else " private"
    if r.encrypted is not None:
        state += " encrypted" if r.encrypted else " unencrypted"
    n = Node("page-range", f"0x{r.va:016x}-0x{r.end - 1:016x} {_perm(r.writable, r.user, r.nx)}{state} "
                           f"({_size(r.size)}, {r.pages} leaves)")
    n.add("VirtualAddress", r.va)
    n.add("Size", r.size, display=_size(r.size))
    n.add("PhysicalAddress", r.pa, display=f"0x{r.pa:x} (first leaf)")
    n.add("Writable", r.writable)
    n.add("User", r.user)
    n.add("NX", r.nx)
    _add_known(n, ("Shared", r.shared), ("Encrypted", r.encrypted))
    n.add("Leaves", r.pages)
    return n


def _add_known(node: Node, *fields: tuple[str, object]) -> None:
    """The fields only a TDX or SEV walk has (shared bit, C-bit and their per-range state): added
    when known, left out (not shown as None) otherwise."""
    for name, value in fields:
        if value is not None:
            node.add(name, value)


def _size(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"0x{n:x} bytes"


def page_tables_node(result: WalkResult, *, leaves: bool = False) -> Node:
    """The walk's summary with every merged range (or leaf) as a child, as many as the node budget
    allows; a command that prints them streams them instead (leaves(), merged())."""
    root = summary_node(result)
    with budget.scope() as b:
        items = (mapping_node(m) for chunk in result.leaves() for m in chunk) if leaves else \
            (range_node(r) for r in result.merged())
        for node in items:
            if not b.take_node():
                b.left_out(root, None, 1, "leaves" if leaves else "ranges", "nodes")
                break
            root.children.append(node)
    return root


# Control-register bits that select the paging mode (Intel SDM vol. 3A 2.5 and 2.2.1; table 4-1).
CR0_PG = 1 << 31
CR4_PAE, CR4_LA57, CR4_PKE = 1 << 5, 1 << 12, 1 << 22
EFER_LMA, EFER_NXE = 1 << 10, 1 << 11


def cpu_paging_config(cr0: int, cr4: int, efer: int, **options) -> PagingConfig | None:
    """The paging a CPU uses, from its registers, or None when it is not IA-32e paging: that needs
    CR0.PG, CR4.PAE and EFER.LMA set (SDM vol. 3A 4.1.1, table 4-1), and then CR4.LA57 chooses
    5-level over 4-level (SDM 4.5), EFER.NXE makes bit 63 XD (4.6) and CR4.PKE bits 62:59 a key."""
    if not (cr0 & CR0_PG and cr4 & CR4_PAE and efer & EFER_LMA):
        return None
    return PagingConfig(la57=bool(cr4 & CR4_LA57), nxe=bool(efer & EFER_NXE), pke=bool(cr4 & CR4_PKE), **options)


def cpu_page_tables_node(mem: Memory, cr0: int, cr3: int, cr4: int, efer: int) -> Node | None:
    """The page tables a stopped CPU translates through: the walk of CR3 in the mode its registers
    select (5-level with CR4.LA57) as a summary with its merged ranges; None before long mode (the
    reset vector's real and 32-bit flat code run without IA-32e paging)."""
    cfg = cpu_paging_config(cr0, cr4, efer)
    if cfg is None:
        return None
    return page_tables_node(walk(mem, cr3, cfg))


def summary_node(result: WalkResult, *, listed: str | None = None, limit: int | None = None) -> Node:
    """The walk without its leaves: configuration, counts and problems; with `listed` ("leaves" or
    "ranges") and `limit` (after scan()), the located problem saying where a listing of at most
    `limit` of them stops."""
    cfg, counts, total = result.config, result.leaf_counts, result.leaf_count
    root = Node("page-tables", f"Page tables at CR3 0x{result.cr3:x} ({cfg.levels}-level, "
                               f"{total} leaves, {result.tables_read} tables)")
    root.add("CR3", result.cr3)
    root.add("Levels", cfg.levels, display="5 (CR4.LA57)" if cfg.la57 else "4")
    root.add("MaxPhyAddr", cfg.maxphyaddr)
    _add_known(root, ("TdxSharedBit", cfg.shared_bit), ("SevCBit", cfg.c_bit))
    root.add("TablesRead", result.tables_read)
    root.add("Leaves", total, display=f"{total} ({counts[3]} x 1 GiB, {counts[2]} x 2 MiB, {counts[1]} x 4 KiB)")
    mapped = result.mapped_bytes
    root.add("MappedBytes", mapped, display=_size(mapped) if mapped else "0")
    root.problems.extend(result.problems)
    if (listed, limit) in result.unlisted:
        va, entry, left = result.unlisted[listed, limit]
        root.warn(entry, f"{left:,} more {listed} from VA 0x{va:x} (entry at 0x{entry:x}) not listed; the budget "
                         f"is {limit:,} {listed} listed one by one")
    return root


def iter_mapping_dicts(result: WalkResult) -> Iterator[dict]:
    """JSON of every leaf without building 260k Nodes first (the `pages --json` stream)."""
    for chunk in result.leaves():
        for m in chunk:
            yield mapping_node(m).to_json()


def mapping_titles(chunk: Mappings) -> Iterator[str]:
    """Each leaf's mapping_node() title, without the node."""
    units = {3: "1 GiB", 2: "2 MiB", 1: "4 KiB"}
    for va, pa, level, w, u, x in zip(chunk.va.tolist(), chunk.pa.tolist(), chunk.level.tolist(),
                                      chunk.writable.tolist(), chunk.user.tolist(), chunk.nx.tolist()):
        yield f"0x{va:016x} -> 0x{pa:x} {units[level]} {_perm(w, u, x)}"


def mapping_json_texts(chunk: Mappings) -> Iterator[str]:
    """Each leaf as the compact JSON text of mapping_node(m).to_json(), formatted directly from one
    template: a Node and json.dumps per leaf cost about 50 us, which 262,144 leaves cannot afford."""
    extra = [("Shared", chunk.shared), ("Encrypted", chunk.encrypted)]
    extra = [(name, col.tolist()) for name, col in extra if col is not None]
    template = _json_template(tuple(name for name, _ in extra))
    tf = ("false", "true")
    cols = [getattr(chunk, c).tolist() for c in ("va", "pa", "size", "level", "entry", "entry_address",
                                                 "writable", "user", "nx")]
    for i, (va, pa, size, level, e, ea, w, u, x) in enumerate(zip(*cols)):
        large = level > 1
        yield template % (
            va, pa, _UNITS[size], _perm(w, u, x), ea, va, pa, size, _UNITS[size], level, LEVEL_NAMES[level], e, e,
            ea, tf[bool(w)], tf[bool(u)], tf[bool(e & PWT)], tf[bool(e & PCD)], tf[bool(e & A)], tf[bool(e & D)],
            tf[large], tf[bool(e & G)], tf[bool(e & (PAT_LARGE if large else PS))], tf[bool(x)], e >> PKEY_SHIFT & 0xF,
            *(tf[bool(col[i])] for _, col in extra))


_UNITS = {1 << 30: "1 GiB", 1 << 21: "2 MiB", 1 << 12: "4 KiB"}
_TEMPLATES: dict[tuple[str, ...], str] = {}


def _json_template(extra: tuple[str, ...]) -> str:
    """The %-template of one mapping node's JSON (the field order of mapping_node and Mapping.flags;
    PWT is entry bit 3, PCD bit 4, A 5, D 6, G 8: SDM vol. 3A 4.5, tables 4-19 and 4-20)."""
    if extra not in _TEMPLATES:
        def f(name: str, value: str, display: bool = False) -> str:
            return f'{{"name":"{name}","value":{value},"offset":null,"size":null' + \
                (',"display":"%s"}' if display else "}")
        fields = [f("VirtualAddress", "%d"), f("PhysicalAddress", "%d"), f("Size", "%d", True),
                  f("Level", "%d", True), f("Entry", "%d", True).replace('"%s"', '"0x%016x"'), f("EntryAddress", "%d"),
                  f("Present", "true")]
        fields += [f(n, "%s") for n in ("Writable", "User", "WriteThrough", "CacheDisable", "Accessed", "Dirty",
                                        "PageSize", "Global", "PAT", "NX")]
        fields += [f("ProtectionKey", "%d")] + [f(n, "%s") for n in extra]
        _TEMPLATES[extra] = ('{"kind":"mapping","title":"0x%016x -> 0x%x %s %s","space":null,"offset":%d,"size":8,'
                             '"fields":[' + ",".join(fields) + '],"problems":[],"children":[]}')
    return _TEMPLATES[extra]


# -- drill-down: the tables themselves ---------------------------------------------------------------
# Entries shown as fields per table: every pointer to a table below, but only the first few of a
# table of leaves (OVMF's identity map has 1,024 PD tables of 512 leaves each); the table's bytes,
# in its own space, show all of them in the hex view.
MAX_LEAF_FIELDS = 8
# Tables in the tree: each node holds its 4 KiB (16 MiB in all); OVMF's identity map has 1,027.
MAX_TREE_TABLES = 4096


def _entry_text(entry: int, level: int, leaf: bool, cfg: PagingConfig) -> str:
    perms = ("w" if entry & RW else "-") + ("u" if entry & US else "-") + ("x" if not (cfg.nxe and entry & NX) else "-")
    if leaf:
        size = {3: "1 GiB", 2: "2 MiB", 1: "4 KiB"}[level]
        return f"{size} page 0x{entry & cfg.address_mask & ~((LEAF_SIZES[level]) - 1):x} {perms}"
    return f"-> {LEVEL_NAMES[level - 1]} table 0x{entry & cfg.address_mask:x} {perms}"


def table_tree_node(mem: Memory, cr3: int, cfg: PagingConfig | None = None) -> Node:
    """The page tables as a tree of tables, from CR3 down: each table a node whose space holds its
    4 KiB (so a view shows the raw entries), its present entries as fields, and the tables it
    points to as children. A table reached again (shared, or a loop) is shown once: the later
    entries say where. At most MAX_TREE_TABLES tables, within the node budget."""
    cfg = cfg or PagingConfig()
    root_addr = cr3 & ((1 << cfg.maxphyaddr) - 1) & ~(PAGE - 1)
    top = Node("page-table-tree", f"Tables from CR3 0x{cr3:x} ({cfg.levels}-level)")
    shown: set[int] = set()
    # (table address, level, VA prefix, parent node, ancestors)
    stack = [(root_addr, cfg.levels, 0, top, (root_addr,))]
    with budget.scope() as b:
        while stack:
            addr, level, va_base, parent, path = stack.pop()
            if len(shown) >= MAX_TREE_TABLES or not b.take_node():
                limit = "tables" if len(shown) >= MAX_TREE_TABLES else "nodes"
                if limit == "tables" and not b.dropped.get("tables"):
                    top.problem(addr, f"{len(stack) + 1:,} more tables not shown; the budget is "
                                      f"{MAX_TREE_TABLES:,} tables in the tree")
                    b.dropped["tables"] = len(stack) + 1
                elif limit == "nodes":
                    b.left_out(top, addr, len(stack) + 1, "tables", "nodes")
                break
            shown.add(addr)
            node = _table_node(mem, addr, level, va_base, parent, cfg)
            if node is None:
                continue
            shift = 12 + 9 * (level - 1)
            children = []
            for f in node.fields:
                i = f.offset // 8
                e = f.value
                if level == 1 or (level in (2, 3) and e & PS):
                    continue
                nxt = e & cfg.address_mask
                if nxt in path:
                    node.problem(f.offset, f"entry {i} points back to the table at 0x{nxt:x} above it: a loop")
                elif nxt in shown or any(c[0] == nxt for c in children):
                    node.note(f.offset, f"entry {i} points at the table at 0x{nxt:x} shown once, elsewhere in "
                                        "this tree")
                else:
                    children.append((nxt, level - 1, va_base | i << shift, node, path + (nxt,)))
            stack.extend(reversed(children))
    return top


def _table_node(mem: Memory, addr: int, level: int, va_base: int, parent: Node, cfg: PagingConfig) -> Node | None:
    try:
        raw = mem.read(addr, PAGE)
    except Unreadable as e:
        parent.problem(addr, f"{LEVEL_NAMES[level]} table at 0x{addr:x} is not readable ({e})")
        return None
    entries = np.frombuffer(raw, dtype="<u8")
    present = np.flatnonzero(entries & u64(P))
    shift = 12 + 9 * (level - 1)
    node = parent.append(Node("page-table", "", Space(f"{LEVEL_NAMES[level]} table@0x{addr:x}", raw, addr), 0, PAGE))
    is_leaf = leaf_mask(entries[present], level)
    leaf_idx, table_idx = present[is_leaf], present[~is_leaf]
    leaves, tables = len(leaf_idx), len(table_idx)
    shown = min(leaves, MAX_LEAF_FIELDS)
    # Fields in entry order: the table pointers and the first few leaves.
    for i in sorted(table_idx.tolist() + leaf_idx[:shown].tolist()):
        e = int(entries[i])
        leaf = level == 1 or (level in (2, 3) and bool(e & PS))
        va = canonical(va_base | i << shift, cfg.la57)
        node.add(f"{LEVEL_NAMES[level]}[{i}]", e, i * 8, 8, f"VA 0x{va:x}: {_entry_text(e, level, leaf, cfg)}")
    if leaves > shown:
        node.note(None, f"{leaves - shown} more leaf entries: in the bytes of this table")
    node.title = (f"{LEVEL_NAMES[level]} table at 0x{addr:x} (VA 0x{canonical(va_base, cfg.la57):x}): "
                  f"{len(present)} present" + (f", {tables} tables" if tables else "")
                  + (f", {leaves} leaves" if leaves else ""))
    return node
