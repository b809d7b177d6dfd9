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

from decoders.model import Node

# Bounds: an extraction of a hostile image must not fill a disk.
MAX_COMPONENT = 40  # keeps the deepest allowed nesting under PATH_MAX
MAX_FILES = 100_000
MAX_TOTAL_BYTES = 2 << 30

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
    manifest it also writes to DIR/manifest.json."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    manifest: list[dict] = []
    total = 0
    written_spaces: set[int] = set()

    stack: list[tuple[Node, Path, int]] = [(tree, root, 0)]
    while stack:
        node, parent_dir, index = stack.pop()
        label = node.title.split("  ")[0]
        name = safe_component(f"{index:03d}_{node.kind}_{label}")
        here = parent_dir / name
        if not _inside(root, here):
            raise ExtractError(f"refusing to write outside {root}: {here}")
        if node.kind in EXTRACTED_KINDS and node.space is not None and node.space.data is not None and node.size:
            if len(manifest) >= MAX_FILES or total + node.size > MAX_TOTAL_BYTES:
                raise ExtractError(f"extraction stopped: more than {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes")
            here.mkdir(parents=True, exist_ok=True)
            target = here / "raw.bin"
            _write(root, target, node.bytes)
            total += node.size
            manifest.append({"path": str(target.relative_to(root)), "kind": node.kind, "title": node.title,
                             "space": node.space.name, "offset": node.offset, "size": node.size})
        # A decompressed blob is a space whose parent is this section: write it once, whole.
        for child in node.children:
            sp = child.space
            if sp is not None and sp.parent is node and id(sp) not in written_spaces and sp.data is not None:
                written_spaces.add(id(sp))
                here.mkdir(parents=True, exist_ok=True)
                target = here / "decompressed.bin"
                if total + len(sp.data) > MAX_TOTAL_BYTES:
                    raise ExtractError(f"extraction stopped: more than {MAX_TOTAL_BYTES} bytes")
                _write(root, target, bytes(sp.data))
                total += len(sp.data)
                manifest.append({"path": str(target.relative_to(root)), "kind": "decompressed",
                                 "title": sp.name, "space": sp.name, "offset": 0, "size": len(sp.data)})
        for i, child in reversed(list(enumerate(node.children))):
            stack.append((child, here, i))
    _write(root, root / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest


def _write(root: Path, target: Path, data: bytes) -> None:
    if not _inside(root, target):
        raise ExtractError(f"refusing to write outside {root}: {target}")
    # O_NOFOLLOW: a link planted at the target cannot redirect the write.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
