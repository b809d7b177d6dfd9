"""Rules about what the dispatchers will run side by side: `measurement-driver-arbitration` and
`multiple-iommu-producers`.

A DEPEX is a boolean expression over installed protocols/PPIs (PI spec vol 2 "Dependency
Expression Instruction Set"; evaluated by MdeModulePkg/Core/Dxe/Dispatcher/Dependency.c and
Core/Pei/Dependency/Dependency.c). Two drivers are kept apart by their DEPEXes only when no set of
installed GUIDs satisfies both: with AND/OR/PUSH alone (no NOT, no FALSE) both always dispatch once
every GUID they name is installed, and any exclusion is left to their entry points.
"""
from __future__ import annotations

import itertools
import uuid

from decoders import guids
from inspector.review import catalogue
from inspector.review.base import Context, FoundFile, file_evidence, finding, names, undecided

# Exclusivity is decided by trying every assignment of the GUIDs both DEPEXes name: 2^n cases of a
# walk over every expression. Real DEPEXes name under 10 GUIDs (Tcg2Dxe + TdTcg2Dxe: 8) in under 20
# opcodes; past these bounds (hostile DEPEXes reach 1024 opcodes, decoders.depex.MAX_OPCODES) the
# rule says it cannot decide rather than spend seconds or recurse past Python's limit.
MAX_GUIDS = 16
MAX_WORK = 1 << 18          # assignments x expression nodes
MAX_DEPTH = 128             # nesting of one expression (a chain of NOTs nests one level each)
# Drivers compared at once (a hostile image may hold thousands of copies of one producer).
MAX_DRIVERS = 8


class Undecidable(Exception):
    pass


def expression_tree(depex) -> tuple:
    """The DEPEX node's opcodes (decoders.depex fields, in stream order) as a tree:
    ("guid", g) | ("const", bool) | ("and"|"or", a, b) | ("not", a). BEFORE/AFTER only order a
    driver (Dependency.c: they are satisfied when the named driver is dispatched), so they count as
    TRUE here; SOR defers the driver until requested, then its body decides."""
    if depex is None:
        # Dependency.c: no DEPEX section: a DXE driver waits for all architectural protocols, a PEIM
        # is dispatched at once. Neither keeps two drivers apart.
        return ("const", True)
    if any(p.severity.value == "error" for p in depex.problems):
        raise Undecidable(f"its DEPEX at 0x{depex.offset:x} is malformed ({depex.problems[0].message})")
    stack: list[tuple] = []
    depth: list[int] = []
    for f in depex.fields:
        op = f.name
        if op == "PUSH":
            if not isinstance(f.value, uuid.UUID):
                raise Undecidable("a PUSH has no GUID")
            stack.append(("guid", f.value))
            depth.append(1)
        elif op in ("TRUE", "FALSE"):
            stack.append(("const", op == "TRUE"))
            depth.append(1)
        elif op in ("AND", "OR"):
            if len(stack) < 2:
                raise Undecidable(f"{op} with fewer than two operands")
            b, a = stack.pop(), stack.pop()
            stack.append((op.lower(), a, b))
            depth.append(max(depth.pop(), depth.pop()) + 1)
        elif op == "NOT":
            if not stack:
                raise Undecidable("NOT with no operand")
            stack.append(("not", stack.pop()))
            depth.append(depth.pop() + 1)
        else:
            continue
        if depth[-1] > MAX_DEPTH:
            raise Undecidable(f"its DEPEX nests deeper than {MAX_DEPTH} levels")
        elif op in ("BEFORE", "AFTER"):
            return ("const", True)
        elif op == "END":
            break
    if len(stack) != 1:
        raise Undecidable(f"the DEPEX leaves {len(stack)} values on the stack")
    return stack[0]


def _guids(tree: tuple, out: set) -> int:
    """Add the GUIDs of `tree` to `out`; return its number of nodes."""
    stack, count = [tree], 0
    while stack:
        t = stack.pop()
        count += 1
        if t[0] == "guid":
            out.add(t[1])
        elif t[0] != "const":
            stack.extend(t[1:])
    return count


def _eval(tree: tuple, true: frozenset | set) -> bool:
    kind = tree[0]
    if kind == "guid":
        return tree[1] in true
    if kind == "const":
        return tree[1]
    if kind == "not":
        return not _eval(tree[1], true)
    if kind == "and":
        return _eval(tree[1], true) and _eval(tree[2], true)
    return _eval(tree[1], true) or _eval(tree[2], true)


def joint_witness(trees: list[tuple]) -> set | None:
    """A set of installed GUIDs under which every expression is TRUE (all dispatch), or None when
    no such set exists (the DEPEXes exclude each other). Undecidable past MAX_GUIDS GUIDs."""
    universe: set = set()
    size = sum(_guids(t, universe) for t in trees)
    if all(_eval(t, universe) for t in trees):        # monotone DEPEXes: everything installed
        return universe
    ordered = sorted(universe, key=str)
    if len(ordered) > MAX_GUIDS or (size << len(ordered)) > MAX_WORK:
        raise Undecidable(f"the DEPEXes name {len(ordered)} GUIDs in {size} nodes: too many assignments to try")
    for bits in itertools.product((False, True), repeat=len(ordered)):
        true = {g for g, b in zip(ordered, bits) if b}
        if all(_eval(t, true) for t in trees):
            return true
    return None


def _guid_list(gs) -> str:
    return ", ".join(sorted(guids.name(g) or str(g).upper() for g in gs)) or "nothing"


def _depex_text(f: FoundFile) -> str:
    if f.depex is None:
        return f"{f.ui or f.guid}: no DEPEX section"
    return f"{f.ui or f.guid}: {f.depex.get('Expression')}"


def _arbitration(rule: str, files: list[FoundFile], severity_when_overlap: str, what: str) -> tuple[list, str]:
    """(findings, outcome) for a set of drivers that should not all run."""
    ev = [e for f in files for e in file_evidence(f, what, with_depex=True)]
    depexes = "; ".join(_depex_text(f) for f in files)
    every = "both" if len(files) == 2 else "all"
    try:
        trees = [expression_tree(f.depex) for f in files]
        witness = joint_witness(trees)
    except Undecidable as e:
        return [undecided(rule, f"{names(files)} are {every} present but {e}", ev)], "undecided"
    if witness is None:
        return [finding(rule, "info", f"{names(files)} are {every} present; their DEPEXes exclude each other "
                        f"(no set of installed GUIDs satisfies them all): {depexes}", ev,
                        Exclusive=True, Depexes=depexes)], "exclusive by DEPEX"
    return [finding(rule, severity_when_overlap,
                    f"{names(files)} are {every} present and their DEPEXes do not make them exclusive: "
                    f"{every} are dispatched once {_guid_list(witness)} are installed ({depexes})", ev,
                    Exclusive=False, Depexes=depexes, DispatchedTogetherWhen=_guid_list(witness))], \
        "not exclusive by DEPEX"


def measurement_driver_arbitration(ctx: Context) -> list:
    """Tcg2Dxe (TPM, PCRs) with TdTcg2Dxe (TDX RTMRs), or Tcg2Pei with TdTcg2Pei, in one image."""
    rule = "measurement-driver-arbitration"
    out = []
    notes = []
    for tpm, cc in catalogue.MEASUREMENT_PAIRS:
        a, b = ctx.find([tpm]), ctx.find([cc])
        if not a or not b:
            notes.append(f"{tpm.name}+{cc.name}: not both present")
            continue
        # A warning where it matters, for a confidential guest (which driver measures into what is
        # then the attestation's question); elsewhere the entry-point checks below decide: info.
        severity = "warning" if ctx.profile in ("tdx", "sev") else "info"
        found, note = _arbitration(rule, [a[0], b[0]], severity, "measurement driver")
        for f in found:
            # SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c DriverEntry and Tcg2Pei.c PeimEntryMA return
            # EFI_UNSUPPORTED when PcdTpmInstanceGuid is none/TPM 1.2; OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c
            # and TdTcg2Pei.c when !TdIsEnabled(): run-time checks the image's bytes do not show.
            f.add("RunTimeArbitration", f"{tpm.name}: PcdTpmInstanceGuid is a TPM 2.0 device; "
                  f"{cc.name}: TdIsEnabled() (entry-point checks, not visible in the DEPEX)")
        out.extend(found)
        notes.append(f"{tpm.name}+{cc.name}: {note}")
    gap = ctx.module_list_gap()
    if not out and gap:
        return [undecided(rule, f"no pair of measurement drivers found, but {gap}")]
    ctx.outcomes[rule] = "; ".join(notes)
    return out


def multiple_iommu_producers(ctx: Context) -> list:
    rule = "multiple-iommu-producers"
    found = ctx.find(catalogue.IOMMU_PRODUCERS)
    if len(found) > 1:
        out = _arbitration(rule, found[:MAX_DRIVERS], "warning", "IOMMU protocol producer")[0]
        for f in out:
            f.add("Producers", len(found), display=f"{len(found)} producer files"
                  + (f" (the first {MAX_DRIVERS} compared)" if len(found) > MAX_DRIVERS else ""))
        return out
    gap = ctx.module_list_gap()
    if gap:
        return [undecided(rule, f"{len(found)} IOMMU producer(s) found, but {gap}")]
    ctx.outcomes[rule] = (f"one producer: {found[0].label}" if found else
                          "no module of the catalogue produces gEdkiiIoMmuProtocolGuid")
    return []
