"""What a file given to `fwinspect FILE` is, and its Node tree for the app.

Recognised by content, not by name: a firmware image (a `_FVH` volume or an OVMF reset-vector
table), a TCG or CC event log (Spec ID event), a HOB list (PHIT first), ACPI tables (a table
header whose Length fits, an RSDP, or acpidump text), a TDX quote. Anything else is opened as an
image, whose decoder reports what it could not find.
"""
from __future__ import annotations

from pathlib import Path

from decoders.model import Node

# A file opened in the app is read whole: bound it (dumps go through inspector.dump, mmapped).
MAX_SOURCE_SIZE = 256 << 20


def sniff(data: bytes, path: Path) -> str:
    if data[:4] == b"\x7fELF":
        return "dump"
    if len(data) >= 48 and data[4:8] == b"\x03\x00\x00\x00" and data[32:47] in (b"Spec ID Event03", b"Spec ID Event02"):
        return "eventlog"
    if len(data) >= 56 and data[:2] == b"\x01\x00" and data[2:4] == b"\x38\x00" and data[4:8] == b"\0\0\0\0":
        return "hob"
    if data[:8] == b"RSD PTR ":
        return "acpi"
    if len(data) >= 36 and data[:4].isalnum() and data[:4].isupper() and \
            int.from_bytes(data[4:8], "little") == len(data) and b"_FVH" not in data[:0x100]:
        return "acpi"
    if len(data) >= 48 and data[:2] == b"\x04\x00" and data[4:8] == b"\x81\x00\x00\x00":
        return "tdx-quote"
    if data[0x28:0x2C] == b"_FVH":
        return "image"          # a volume at the start (PI vol 3, EFI_FIRMWARE_VOLUME_HEADER.Signature)
    try:
        from inspector.acpisource import is_acpidump
        if is_acpidump(path):
            return "acpi"
    except OSError:
        pass
    return "image"


def eventlog_tree(data: bytes, name: str) -> Node:
    from decoders.eventlog import decode_event_log
    from decoders.eventlog.replay import check_digests, replay

    root = decode_event_log(data, space_name=name)
    rp = replay(root)
    sizes = {ev.offset: ev.size for ev in root.children if ev.kind == "event"}
    root.append(rp.to_node(root.space, sizes))  # the replay table, each extension pointing at its event
    check_digests(root)
    return root


def hob_tree(data: bytes, name: str, base: int | None, td_profile: str | None = None) -> Node:
    """A HOB list file: the list, its memory map and, for a TD HOB, the TDVF lint and RTMR0 digest."""
    from decoders.errors import DecodeError
    from decoders.hob import decode_hob_list, lint_td_hob, memory_map, memory_map_node, td_hob_digest
    from decoders.model import Space

    space = Space(name, data, base)
    root = decode_hob_list(space, base or 0)
    root.append(memory_map_node(memory_map(root)))
    if td_profile:
        lint_td_hob(root, profile=td_profile)
        try:
            digest = td_hob_digest(data, 0)
            root.add("TdHobDigest", digest, display=f"SHA-384 {digest.hex()} (extended into RTMR0 by TDVF)")
        except DecodeError as e:
            root.problem(e.offset, f"no TD HOB digest: {e.message}")
    return root


def image_tree(path: Path) -> Node:
    """An image for the app: its tree, plus the MRTD in both page orders under its TDX metadata
    (what a TDX VMM measures; the CLI computes it only when asked, with `fwinspect mrtd`)."""
    from decoders.mrtd import mrtd_node
    from inspector.image import load_image

    img = load_image(path)
    from inspector.review import review

    img.root.children.insert(0, review(img.root))   # the "Review" node, first under the image
    meta = img.tdx_metadata()
    if meta is not None:
        meta.children.extend(mrtd_node(r) for r in img.mrtds())
    return img.root


def dump_tree(path: Path) -> Node:
    """A memory dump for the app: what was found in it, and for each distinct CR3 of its CPUs (the
    ones with paging on, inspector.dump.distinct_cr3s) the page tables as merged ranges and the
    virtual memory they map, titled with the CPUs that use them."""
    from inspector.dump import open_dump
    from inspector.locate import dump_overview

    from decoders.memory import MemoryBytes
    from decoders.model import Space

    dump = open_dump(path)  # stays open: the physical-memory space below reads through it
    root = dump_overview(dump)
    _dump_address_spaces(dump, root)
    top = max((s.paddr + s.memsz for s in dump.segments), default=0)
    if top:
        space = Space("physical memory", MemoryBytes(dump.memory, 0, top, owner=dump), 0)
        phys = root.append(Node("memory", f"Physical memory 0x0-0x{top - 1:x} (g goes to an address)",
                                space, 0, top))
        phys.add("Segments", len(dump.segments))
        phys.note(None, "holes between the dump's segments show blank")
    return root


def _dump_address_spaces(dump, root: Node) -> None:
    """Per distinct CR3: its page tables (merged ranges, the table tree first) and its virtual memory,
    within the budget of inspector.dump.cr3_walks (the dump node walks the same): at most MAX_CR3_WALKS CR3s,
    and about one walk's tables and leaves for all of them together."""
    from decoders.paging import page_tables_node, table_tree_node
    from decoders.paging_translate import virtual_memory_node
    from inspector.dump import cr3_walks

    last: Node | None = None
    # Streamed walks (scan()): the leaves are not held, the merged ranges are (or streamed again
    # when too many).
    for cpus, result in cr3_walks(dump):
        if cpus is None:
            last.warn(None, result.format("shown") + " (fwinspect pages DUMP --cpu N walks any CPU's)")
            break
        who = f"CPU{'s' if len(cpus) > 1 else ''} {', '.join(str(c.index) for c in cpus)}"
        pages = root.append(page_tables_node(result))
        pages.title = f"{who}: {pages.title}"
        pages.add("Cpus", [c.index for c in cpus], display=who)
        # Drill down: PML5/PML4 -> PDPT -> PD -> PT, each table with its bytes and entries.
        pages.children.insert(0, table_tree_node(dump.memory, result.cr3, result.config))
        # Both canonical halves through CR3 (0..2^47 and 0xFFFF800000000000.., or 0..2^56 and
        # 0xFF00000000000000.. with LA57), read row by row; `g` goes to any canonical address.
        virt = root.append(virtual_memory_node(dump.memory, result.cr3, result.config, owner=dump))
        virt.title = f"{who}: {virt.title}"
        virt.add("Cpus", [c.index for c in cpus], display=who)
        last = pages


def load_source(path: str | Path) -> tuple[str, Node]:
    p = Path(path)
    if p.is_dir():
        from inspector.acpisource import decode_acpi_paths
        return "acpi", decode_acpi_paths([str(p)])
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(4096)
    kind = sniff(head if size > 4096 else p.read_bytes(), p)
    if kind == "dump":
        return kind, dump_tree(p)  # memory-mapped, never read whole
    if kind == "image" or size > MAX_SOURCE_SIZE:
        return "image", image_tree(p)
    data = p.read_bytes()
    if kind == "eventlog":
        return kind, eventlog_tree(data, p.name)
    if kind == "hob":
        return kind, hob_tree(data, p.name, None)
    if kind == "acpi":
        from inspector.acpisource import decode_acpi_paths
        return kind, decode_acpi_paths([str(p)])
    if kind == "tdx-quote":
        from decoders.eventlog.quote import decode_tdx_quote
        return kind, decode_tdx_quote(data, p.name)
    return "image", image_tree(p)
