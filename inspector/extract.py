"""`fwinspect extract IMAGE DIR`: every file, section and decompressed blob written under DIR.

Names come from the image (GUIDs, UI strings), so every path component is sanitised and every
final path is checked to lie inside DIR before anything is written: nothing in an image can make
us write elsewhere (no '..', no absolute paths, no links followed out of DIR).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from decoders import budget
from decoders.model import Node

# Bounds: an extraction of a hostile image must not fill a disk or take minutes.
MAX_COMPONENT = 40  # keeps the deepest allowed nesting under PATH_MAX
# Files written: the budget's `files` (decoders.budget.Limits); OVMF.fd extracts to 773.
MAX_FILES = budget.DEFAULT.files
# Bytes written. OVMF.fd's 2 MiB extract to about 60 MiB (each nesting level writes its bytes
# again); 1 GiB leaves room for the largest real images while a section nested 15 times cannot
# make one 64 MiB image write 15 copies of itself.
MAX_TOTAL_BYTES = 1 << 30

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
EXTRACTED_KINDS = {"fv", "ffs", "section", "variable", "tdx-section", "pe", "te"}


def safe_component(text: str) -> str:
    name = _UNSAFE.sub("_", text).strip("._") or "_"
    return name[:MAX_COMPONENT]


class ExtractError(Exception):
    pass


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def extract(tree: Node, out_dir: str | Path) -> list[dict]:
    """Write each node of EXTRACTED_KINDS (its raw bytes) and each decompressed space; returns the
    manifest it also writes to DIR/manifest.json. When the file or byte budget is reached, what was
    written stays, the manifest is written, and ExtractError says what was left out."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    max_files = min(MAX_FILES, budget.current().limits.files)
    manifest: list[dict] = []
    total = 0
    written_spaces: set[int] = set()
    left_out = 0          # items not written once a budget was reached
    stop: str | None = None

    def room(nbytes: int) -> bool:
        nonlocal stop, left_out
        if stop is None and len(manifest) >= max_files:
            stop = f"the budget is {max_files:,} files"
        elif stop is None and total + nbytes > MAX_TOTAL_BYTES:
            stop = f"the budget is {MAX_TOTAL_BYTES:,} bytes written"
        if stop is not None:
            left_out += 1
            return False
        return True

    stack: list[tuple[Node, Path, int]] = [(tree, root, 0)]
    while stack:
        node, parent_dir, index = stack.pop()
        label = node.title.split("  ")[0]
        name = safe_component(f"{index:03d}_{node.kind}_{label}")
        here = parent_dir / name
        if not _inside(root, here):
            raise ExtractError(f"refusing to write outside {root}: {here}")
        sp = node.space
        if node.kind in EXTRACTED_KINDS and sp is not None and node.size and sp.data is not None \
                and room(node.size):
            here.mkdir(parents=True, exist_ok=True)
            target = here / "raw.bin"
            _write(root, target, memoryview(sp.data)[node.offset:node.offset + node.size])
            total += node.size
            manifest.append({"path": str(target.relative_to(root)), "kind": node.kind, "title": node.title,
                             "space": sp.name, "offset": node.offset, "size": node.size})
        # A decompressed blob is a space whose parent is this section: write it once, whole.
        for child in node.children:
            sp = child.space
            if sp is not None and sp.parent is node and id(sp) not in written_spaces and sp.size:
                written_spaces.add(id(sp))
                if not room(sp.size):
                    continue
                here.mkdir(parents=True, exist_ok=True)
                target = here / "decompressed.bin"
                _write(root, target, sp.data)   # a dropped blob is decompressed again here
                total += sp.size
                manifest.append({"path": str(target.relative_to(root)), "kind": "decompressed",
                                 "title": sp.name, "space": sp.name, "offset": 0, "size": sp.size})
        for i, child in reversed(list(enumerate(node.children))):
            stack.append((child, here, i))
    _write(root, root / "manifest.json", json.dumps(manifest, indent=1).encode())
    if stop is not None:
        raise ExtractError(f"{len(manifest):,} items written, {left_out:,} more not written; {stop}")
    return manifest


def _write(root: Path, target: Path, data: bytes | bytearray | memoryview) -> None:
    if not _inside(root, target):
        raise ExtractError(f"refusing to write outside {root}: {target}")
    # O_NOFOLLOW: a link planted at the target cannot redirect the write.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
