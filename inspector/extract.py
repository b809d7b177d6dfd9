"""`fwinspect extract IMAGE DIR`: every file, section and decompressed blob written under DIR.

The folders follow the tree: a node with children is a folder `NNN_kind_title/` holding its bytes
(`raw.bin`), its decompressed blob (`decompressed.bin`) and its children; a leaf is
`NNN_kind_title.bin`. DIR/manifest.json lists every file with its node's space, offset and size.

Names come from the image (GUIDs, UI strings), so every path component is sanitised (no separators,
no leading dot, so no '..' and no absolute paths), every directory on the way is checked once to be a
real directory and not a link (a link planted in DIR beforehand is refused), and files are opened
with O_NOFOLLOW: nothing in an image can make us write outside DIR.
"""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from pathlib import Path

from decoders import budget
from decoders.model import Node

# Bounds: an extraction of a hostile image must not fill a disk or take minutes.
MAX_COMPONENT = 40  # keeps the deepest allowed nesting under PATH_MAX
# Files written: the budget's `files` (decoders.budget.Limits); OVMF.fd extracts to 773.
MAX_FILES = budget.DEFAULT.files
# Bytes written. Debian's OVMF.fd and OVMF_CODE_4M.fd extract to 64 MiB each (every nesting level
# writes its bytes again); 256 MiB leaves 4 times that while a section nested 15 times cannot make
# one 64 MiB image write 15 copies of itself (and writing stays within seconds on a busy disk).
MAX_TOTAL_BYTES = 256 << 20

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
EXTRACTED_KINDS = {"fv", "ffs", "section", "variable", "tdx-section", "pe", "te"}


def safe_component(text: str) -> str:
    name = _UNSAFE.sub("_", text).strip("._") or "_"
    return name[:MAX_COMPONENT]


class ExtractError(Exception):
    pass


class _Dirs:
    """Directories under DIR, each made and opened relative to its parent's descriptor with
    O_NOFOLLOW (a link planted in DIR is refused, never followed), a few kept open: a path lookup
    per file costs here about 25 times an openat from an open directory."""

    MAX_OPEN = 64

    def __init__(self, root: Path):
        self.root = root
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        self.open: OrderedDict[Path, int] = OrderedDict()

    def fd(self, path: Path) -> int:
        if path == self.root:
            return self.root_fd
        fd = self.open.get(path)
        if fd is not None:
            self.open.move_to_end(path)
            return fd
        if path.parent == path or not path.is_relative_to(self.root):
            raise ExtractError(f"refusing to write outside {self.root}: {path}")
        parent = self.fd(path.parent)
        try:
            os.mkdir(path.name, dir_fd=parent)
        except FileExistsError:
            pass
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError:   # ELOOP for a link, ENOTDIR for a file
            raise ExtractError(f"refusing to write through {path}: not a directory of ours") from None
        self.open[path] = fd
        if len(self.open) > self.MAX_OPEN:
            os.close(self.open.popitem(last=False)[1])
        return fd

    def write(self, target: Path, data: bytes | bytearray | memoryview) -> None:
        """Write a file in a checked directory. O_NOFOLLOW: a link planted at the target cannot
        redirect the write."""
        fd = os.open(target.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644,
                     dir_fd=self.fd(target.parent))
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def close(self) -> None:
        for fd in self.open.values():
            os.close(fd)
        os.close(self.root_fd)


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

    dirs = _Dirs(root)
    try:
        stack: list[tuple[Node, Path, int]] = [(tree, root, 0)]
        while stack:
            node, parent_dir, index = stack.pop()
            label = node.title.split("  ")[0]
            here = parent_dir / safe_component(f"{index:03d}_{node.kind}_{label}")
            sp = node.space
            if node.kind in EXTRACTED_KINDS and sp is not None and node.size and sp.data is not None \
                    and room(node.size):
                # A node with children gets a folder (its bytes in raw.bin, its children beside); a
                # leaf is one file in its parent's folder (a directory costs several files' time).
                target = here / "raw.bin" if node.children else parent_dir / f"{here.name}.bin"
                dirs.write(target, memoryview(sp.data)[node.offset:node.offset + node.size])
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
                    target = here / "decompressed.bin"
                    dirs.write(target, sp.data)   # a dropped blob is decompressed again here
                    total += sp.size
                    manifest.append({"path": str(target.relative_to(root)), "kind": "decompressed",
                                     "title": sp.name, "space": sp.name, "offset": 0, "size": sp.size})
            for i, child in reversed(list(enumerate(node.children))):
                stack.append((child, here, i))
        dirs.write(root / "manifest.json", json.dumps(manifest, indent=1).encode())
    finally:
        dirs.close()
    if stop is not None:
        raise ExtractError(f"{len(manifest):,} items written, {left_out:,} more not written; {stop}")
    return manifest
