"""DEPEX opcode streams as readable expressions.

PI spec vol 2 (DXE) "Dependency Expression Instruction Set", vol 1 (PEI) "PEIM Dependency
Expressions", vol 4 (MM); opcodes from edk2 MdePkg/Include/Pi/PiDependency.h. Evaluation rules
mirrored from MdeModulePkg/Core/Dxe/Dispatcher/Dependency.c and Core/Pei/Dependency/Dependency.c:
BEFORE/AFTER/SOR may only be the first opcode (BEFORE/AFTER followed directly by END), PEI knows
none of the three, MM (PiSmmCore/Dependency.c) knows BEFORE/AFTER but not SOR.
"""
from __future__ import annotations

from decoders import guids
from decoders.model import Node, Space

# PiDependency.h EFI_DEP_*
EFI_DEP_OPCODE = {
    0x00: "BEFORE",
    0x01: "AFTER",
    0x02: "PUSH",
    0x03: "AND",
    0x04: "OR",
    0x05: "NOT",
    0x06: "TRUE",
    0x07: "FALSE",
    0x08: "END",
    0x09: "SOR",
}
GUID_SIZE = 16  # sizeof (EFI_GUID), MdePkg/Include/Uefi/UefiBaseType.h

_GUID_OPS = {0x00, 0x01, 0x02}
_BINARY = {0x03: "AND", 0x04: "OR"}
# Opcodes each dispatcher accepts (PI vol 1 PEIM dependency grammar has no BEFORE/AFTER/SOR;
# PiDependency.h: SOR "is only used by DXE driver").
_ALLOWED = {
    "pei": {0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08},
    "dxe": set(range(0x0A)),
    "mm": set(range(0x09)),
}

# edk2 Core/Pei/Dependency/Dependency.h MAX_GRAMMAR_SIZE: the PEI evaluator's stack is 64 deep.
MAX_STACK = 64
# A DEPEX section holds at most 0xFFFFFF bytes; real ones are under 200. Cap the opcodes we list
# (one field each) so a hostile body cannot make a million fields.
MAX_OPCODES = 1024
# Cap on the readable infix text; deeper text is elided, so hostile nesting stays linear.
MAX_EXPRESSION_CHARS = 2048


def _guid_name(g) -> str:
    return guids.name(g) or str(g).upper()


def _wrap(text: str, op: str | None, parent: str) -> str:
    """Parenthesise an operand unless it is an atom or the same associative operator."""
    if op is None or op == parent or op == "NOT":
        return text
    return f"({text})"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXPRESSION_CHARS else text[:MAX_EXPRESSION_CHARS - 1] + "…"


def decode_depex(space: Space, offset: int, size: int, phase: str) -> Node:
    """`phase` is 'pei', 'dxe' or 'mm' (section types 0x1B, 0x13, 0x1C)."""
    phase = phase.lower()
    node = Node("depex", f"{phase.upper()} dependency expression", space, offset, size)
    allowed = _ALLOWED.get(phase)
    if allowed is None:
        node.warn(offset, f"unknown phase {phase!r}; checking opcodes as for DXE")
        allowed = _ALLOWED["dxe"]
    if space.data is None:
        node.problem(offset, "no bytes to decode: this space is read through a Memory")
        return node
    if offset < 0 or offset > len(space.data):
        node.problem(offset, f"DEPEX offset 0x{offset:x} is outside {space.name} (0x{len(space.data):x} bytes)")
        return node
    if size < 0 or offset + size > len(space.data):
        node.problem(offset, f"DEPEX of 0x{size:x} bytes at 0x{offset:x} runs past the end of {space.name} "
                             f"(0x{len(space.data):x} bytes)")
        size = max(0, len(space.data) - offset)
        node.size = size
    data = bytes(space.data[offset:offset + size])

    stack: list[tuple[str, str | None]] = []  # (text, top-level operator or None for an atom)
    prefix = ""  # "BEFORE x" / "AFTER x" / "SOR " — the first-opcode-only forms
    pos = 0
    ended = False
    count = 0
    opcode_fields = []
    while pos < len(data):
        at = offset + pos
        if count >= MAX_OPCODES:
            node.problem(at, f"more than {MAX_OPCODES} opcodes; stopped reading")
            break
        count += 1
        op = data[pos]
        name = EFI_DEP_OPCODE.get(op)
        if name is None:
            node.problem(at, f"unknown DEPEX opcode 0x{op:02x} (expected 0x00..0x09); cannot read further")
            break
        if op not in allowed:
            node.problem(at, f"{name} is not allowed in a {phase.upper()} dependency expression")
        if op in (0x00, 0x01, 0x09) and pos != 0:
            node.problem(at, f"{name} may only be the first opcode of a dependency expression")
        if op in _GUID_OPS:
            if pos + 1 + GUID_SIZE > len(data):
                node.problem(at, f"{name} needs a 16-byte GUID, only {len(data) - pos - 1} bytes left")
                opcode_fields.append((name, None, at, len(data) - pos, f"{name} (truncated GUID)"))
                pos = len(data)
                break
            g = guids.from_bytes(data[pos + 1:pos + 1 + GUID_SIZE])
            opcode_fields.append((name, g, at, 1 + GUID_SIZE, f"{name} {guids.describe(g)}"))
            pos += 1 + GUID_SIZE
            if op == 0x02:
                if len(stack) >= MAX_STACK:
                    node.problem(at, f"stack overflow: more than {MAX_STACK} values pushed")
                    break
                stack.append((_guid_name(g), None))
            else:
                prefix = f"{name} {_guid_name(g)}"
                if pos < len(data) and data[pos] != 0x08:
                    node.problem(offset + pos, f"{name} must be followed directly by END")
            continue
        opcode_fields.append((name, op, at, 1, name))
        pos += 1
        if op == 0x08:
            ended = True
            break
        if op == 0x09:
            prefix = "SOR"
        elif op in (0x06, 0x07):
            if len(stack) >= MAX_STACK:
                node.problem(at, f"stack overflow: more than {MAX_STACK} values pushed")
                break
            stack.append((name, None))
        elif op == 0x05:
            if not stack:
                node.problem(at, "stack underflow: NOT with an empty stack")
                stack.append(("?", None))
            text, top = stack.pop()
            stack.append((_clip(f"NOT {_wrap(text, top, 'NOT')}"), "NOT"))
        elif op in _BINARY:
            word = _BINARY[op]
            if len(stack) < 2:
                node.problem(at, f"stack underflow: {word} needs two values, the stack has {len(stack)}")
                while len(stack) < 2:
                    stack.insert(0, ("?", None))
            right, rop = stack.pop()
            left, lop = stack.pop()
            stack.append((_clip(f"{_wrap(left, lop, word)} {word} {_wrap(right, rop, word)}"), word))

    if not ended:
        node.problem(offset + pos, "missing END opcode (0x08)")
    elif pos < len(data):
        node.warn(offset + pos, f"{len(data) - pos} bytes after END")
    if ended and not prefix.startswith(("BEFORE", "AFTER")) and len(stack) != 1:
        node.problem(offset + pos - 1, f"END with {len(stack)} values on the stack, expected exactly 1")

    if prefix.startswith(("BEFORE", "AFTER")):
        expression = prefix
    else:
        body = stack[-1][0] if stack else ""
        expression = f"SOR {body}".strip() if prefix == "SOR" else body
    node.add("Expression", expression, offset, size)
    for name, value, at, length, display in opcode_fields:
        node.add(name, value, at, length, display)
    if expression:
        node.title = f"{phase.upper()} DEPEX: {expression}"
    return node
