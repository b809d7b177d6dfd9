"""DSDT/SSDT disassembly through iasl (acpica-tools), when it is installed.

Decoders stay pure, so running a tool lives here. iasl gets the table in a private temporary
folder, with a timeout; its output is attached to the table node as a child."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from decoders.model import Node

IASL_TIMEOUT_S = 30


def disassemble(table: bytes) -> tuple[str | None, str]:
    """(ASL text, message). Text is None when iasl is missing or fails; the message says why."""
    iasl = shutil.which("iasl")
    if iasl is None:
        return None, "iasl not installed (Debian package acpica-tools): AML shown raw"
    with tempfile.TemporaryDirectory(prefix="fwinspect-aml-") as tmp:
        src = Path(tmp) / "table.aml"
        src.write_bytes(table)
        try:
            r = subprocess.run([iasl, "-d", str(src)], cwd=tmp, capture_output=True, timeout=IASL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None, f"iasl did not finish in {IASL_TIMEOUT_S} s"
        out = Path(tmp) / "table.dsl"
        if r.returncode != 0 or not out.exists():
            return None, f"iasl -d failed ({r.returncode}): {r.stderr.decode(errors='replace')[-200:]}"
        return out.read_text(errors="replace"), "disassembled by iasl"


def attach_disassembly(root: Node) -> None:
    for node in list(root.walk()):
        if node.kind == "acpi-table" and node.get("Signature") in ("DSDT", "SSDT") and node.size > 36:
            text, why = disassemble(node.bytes)
            child = node.append(Node("aml-disassembly", f"ASL ({why})", node.space, node.offset, node.size))
            if text is None:
                child.note(node.offset, why)
            else:
                child.add("Disassembly", text, display=f"{text.count(chr(10))} lines of ASL")
