"""Memory-map summary of a decoded HOB list: resource descriptors merged into ranges, with the
memory allocation HOBs inside each range and totals per resource type.

DXE core builds its GCD memory map from the same HOBs (MdeModulePkg/Core/Dxe/Gcd/Gcd.c,
CoreInitializeMemoryServices / CoreInitializeGcdServicesOnHob); this is the read-only view of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from decoders import budget
from decoders.hob.decode import (MEMORY_ALLOCATION, RESOURCE_DESCRIPTOR, attribute_names, memory_type_name,
                                 range_text, resource_type_name)
from decoders.hob.guid_payloads import size_text
from decoders.model import Node, Problem, Severity

IO_TYPES = (2, 6)  # EFI_RESOURCE_IO, EFI_RESOURCE_IO_RESERVED: I/O port space, not memory
# Overlaps and overruns noted one by one; a real list has none, a hostile one one per descriptor.
MAX_MAP_NOTES = 100


@dataclass
class Allocation:
    start: int
    length: int
    memory_type: int
    name: str  # generic / STACK / BSP_STORE / MODULE / a GUID
    hob: Node

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass
class MemoryRange:
    """Contiguous resource descriptors of one ResourceType and ResourceAttribute; `end` exclusive."""

    start: int
    end: int
    resource_type: int
    attributes: int
    hobs: list[Node] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def type_name(self) -> str:
        return resource_type_name(self.resource_type)


@dataclass
class MemoryMap:
    ranges: list[MemoryRange]
    totals: dict[str, int]  # resource type name -> bytes described by its descriptors
    unplaced: list[Allocation]  # allocations inside no resource descriptor
    problems: list[Problem]

    @property
    def system_memory(self) -> int:
        return self.totals.get("SYSTEM_MEMORY", 0)

    @property
    def unaccepted_memory(self) -> int:
        return self.totals.get("MEMORY_UNACCEPTED", 0)


def memory_map(hob_list: Node) -> MemoryMap:
    resources, allocations = [], []
    for hob in hob_list.children:
        # A HOB the walk stopped at has only its header decoded, hence no PhysicalStart / base below.
        htype = hob.get("HobType")
        if htype == RESOURCE_DESCRIPTOR and hob.field("PhysicalStart") is not None:
            resources.append(hob)
        elif htype == MEMORY_ALLOCATION and hob.field("MemoryBaseAddress") is not None:
            name = hob.field("Name")
            label = name.display.split(" ")[0] if name and name.display else "?"
            allocations.append(Allocation(hob.get("MemoryBaseAddress"), hob.get("MemoryLength"),
                                          hob.get("MemoryType"), label, hob))

    problems: list[Problem] = []
    b = budget.current()
    dropped = [0]

    def note(offset: int, severity: Severity, message: str) -> None:
        # Overlaps and overruns are noted one by one up to MAX_MAP_NOTES (a hostile list can make
        # every descriptor overlap every other), then counted into one closing line.
        if len(problems) < MAX_MAP_NOTES and b.take_problem():
            problems.append(Problem(offset, severity, message))
        else:
            dropped[0] += 1

    totals: dict[str, int] = {}
    # I/O port resources (IO, IO_RESERVED) describe a separate address space: they are merged and
    # checked for overlaps among themselves, never against memory.
    resources.sort(key=lambda h: (h.get("ResourceType") in IO_TYPES, h.get("PhysicalStart"),
                                  h.get("ResourceLength")))
    ranges: list[MemoryRange] = []
    furthest: Node | None = None
    for hob in resources:
        start, length = hob.get("PhysicalStart"), hob.get("ResourceLength")
        rtype, attrs = hob.get("ResourceType"), hob.get("ResourceAttribute")
        end = start + length
        totals[resource_type_name(rtype)] = totals.get(resource_type_name(rtype), 0) + length
        if furthest is not None and (furthest.get("ResourceType") in IO_TYPES) != (rtype in IO_TYPES):
            furthest = None  # crossed from memory into I/O space
        if furthest is not None and start < _end(furthest) and length:
            note(hob.offset, Severity.ERROR, f"resource descriptor {hob.title} overlaps {furthest.title}")
        if furthest is None or end > _end(furthest):
            furthest = hob
        last = ranges[-1] if ranges else None
        if last and last.end == start and last.resource_type == rtype and last.attributes == attrs:
            last.end = end
            last.hobs.append(hob)
        else:
            ranges.append(MemoryRange(start, end, rtype, attrs, [hob]))

    memory_ranges = [r for r in ranges if r.resource_type not in IO_TYPES]
    allocations.sort(key=lambda a: (a.start, a.length))
    # Ranges may overlap (reported above); an allocation goes to the latest-starting range that
    # holds its start. One sweep: `open_` holds the ranges started so far, latest on top; a range
    # that ends at or before an allocation's start ends before every later one too, so it is popped
    # for good (each range is pushed and popped once: linear, not ranges x allocations).
    unplaced = []
    open_: list[MemoryRange] = []
    following = iter(memory_ranges)
    upcoming = next(following, None)
    for alloc in allocations:
        while upcoming is not None and upcoming.start <= alloc.start:
            open_.append(upcoming)
            upcoming = next(following, None)
        while open_ and open_[-1].end <= alloc.start:
            open_.pop()
        if not open_:
            unplaced.append(alloc)
            continue
        r = open_[-1]
        r.allocations.append(alloc)
        if alloc.end > r.end:
            note(alloc.hob.offset, Severity.WARNING,
                 f"allocation {range_text(alloc.start, alloc.length)} runs past the end of its resource range "
                 f"{range_text(r.start, r.length)}")
    if dropped[0]:
        problems.append(Problem(None, Severity.ERROR, f"{dropped[0]:,} more overlaps and overruns not listed; the "
                                                      f"budget is {MAX_MAP_NOTES:,} notes on the memory map"))
    return MemoryMap(ranges, totals, unplaced, problems)


def _end(hob: Node) -> int:
    return hob.get("PhysicalStart") + hob.get("ResourceLength")


def memory_map_node(mm: MemoryMap) -> Node:
    """The memory map as Nodes: "memory-map" with "memory-range" children (each pointing at its
    first resource descriptor's bytes) holding "memory-allocation" children."""
    total_text = ", ".join(f"{k} {size_text(v)}" for k, v in sorted(mm.totals.items()))
    root = Node("memory-map", f"memory map: {len(mm.ranges)} ranges" + (f" ({total_text})" if total_text else ""))
    for name, total in sorted(mm.totals.items()):
        root.add(f"Total{name}", total, None, None, size_text(total))
    root.problems.extend(mm.problems)
    b = budget.current()
    for n, r in enumerate(mm.ranges):
        if b.take_nodes(1 + len(r.allocations)) != 1 + len(r.allocations):
            b.left_out(root, None, len(mm.ranges) - n, "memory ranges", "nodes")
            return root
        first = r.hobs[0]
        node = Node("memory-range", f"{r.type_name} {range_text(r.start, r.length)}", first.space, first.offset,
                    first.size)
        node.add("PhysicalStart", r.start)
        node.add("PhysicalEnd", r.end, None, None, f"0x{r.end:x}")
        node.add("ResourceLength", r.length, None, None, size_text(r.length))
        node.add("ResourceType", r.resource_type, None, None, r.type_name)
        node.add("ResourceAttribute", r.attributes, None, None, "|".join(attribute_names(r.attributes)) or "0")
        node.add("HobCount", len(r.hobs))
        for a in r.allocations:
            node.append(_allocation_node(a))
        root.append(node)
    if mm.unplaced and b.take_nodes(1 + len(mm.unplaced)) == 1 + len(mm.unplaced):
        other = Node("memory-range", f"outside every resource descriptor: {len(mm.unplaced)} allocations")
        for a in mm.unplaced:
            other.append(_allocation_node(a))
        root.append(other)
    elif mm.unplaced:
        b.left_out(root, None, len(mm.unplaced), "allocations outside every resource descriptor", "nodes")
    return root


def _allocation_node(a: Allocation) -> Node:
    node = Node("memory-allocation", f"{memory_type_name(a.memory_type)} {range_text(a.start, a.length)}"
                + ("" if a.name == "generic" else f" {a.name}"), a.hob.space, a.hob.offset, a.hob.size)
    node.add("MemoryBaseAddress", a.start)
    node.add("MemoryLength", a.length, None, None, size_text(a.length))
    node.add("MemoryType", a.memory_type, None, None, memory_type_name(a.memory_type))
    node.add("Name", a.name)
    return node
