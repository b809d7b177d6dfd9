"""Memory-map summary of a decoded HOB list: resource descriptors merged into ranges, with the
memory allocation HOBs inside each range and totals per resource type (FACTS B.1).

DXE core builds its GCD memory map from the same HOBs (MdeModulePkg/Core/Dxe/Gcd/Gcd.c,
CoreInitializeMemoryServices / CoreInitializeGcdServicesOnHob); this is the read-only view of it.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from decoders.hob.decode import (MEMORY_ALLOCATION, RESOURCE_DESCRIPTOR, attribute_names, memory_type_name,
                                 range_text, resource_type_name)
from decoders.hob.guid_payloads import size_text
from decoders.model import Node, Problem, Severity

IO_TYPES = (2, 6)  # EFI_RESOURCE_IO, EFI_RESOURCE_IO_RESERVED: I/O port space, not memory


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
            problems.append(Problem(hob.offset, Severity.ERROR,
                                    f"resource descriptor {hob.title} overlaps {furthest.title}"))
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
    starts = [r.start for r in memory_ranges]
    unplaced = []
    for alloc in allocations:
        i = bisect.bisect_right(starts, alloc.start) - 1
        # Ranges may overlap (reported above); take the latest-starting range holding the start.
        while i >= 0 and not (memory_ranges[i].start <= alloc.start < memory_ranges[i].end):
            i -= 1
        if i < 0:
            unplaced.append(alloc)
            continue
        r = memory_ranges[i]
        r.allocations.append(alloc)
        if alloc.end > r.end:
            problems.append(Problem(alloc.hob.offset, Severity.WARNING,
                                    f"allocation {range_text(alloc.start, alloc.length)} runs past the end of "
                                    f"its resource range {range_text(r.start, r.length)}"))
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
    for r in mm.ranges:
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
    if mm.unplaced:
        other = Node("memory-range", f"outside every resource descriptor: {len(mm.unplaced)} allocations")
        for a in mm.unplaced:
            other.append(_allocation_node(a))
        root.append(other)
    return root


def _allocation_node(a: Allocation) -> Node:
    node = Node("memory-allocation", f"{memory_type_name(a.memory_type)} {range_text(a.start, a.length)}"
                + ("" if a.name == "generic" else f" {a.name}"), a.hob.space, a.hob.offset, a.hob.size)
    node.add("MemoryBaseAddress", a.start)
    node.add("MemoryLength", a.length, None, None, size_text(a.length))
    node.add("MemoryType", a.memory_type, None, None, memory_type_name(a.memory_type))
    node.add("Name", a.name)
    return node
