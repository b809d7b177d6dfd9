"""The image source: a flash device file decoded into one Node tree.

Puts together the flash layout (decoders.fd), the OVMF reset-vector table with its TDX/SEV
metadata (decoders.ovmf) and a summary of what kind of image it is (inspector.classify).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from decoders import budget
from decoders.fd import decode_image
from decoders.model import Node
from decoders.ovmf.resetvector import decode_reset_vector_table
from inspector.classify import classify

# Larger files are not flash images; refusing them keeps a mistaken argument from mapping gigabytes
# into a decoder that expects a few MiB (the largest edk2 FDs are 64 MiB).
MAX_IMAGE_SIZE = 256 << 20


class ImageError(Exception):
    pass


@dataclass
class LoadedImage:
    path: Path
    data: bytes
    root: Node          # kind "image": volumes, the OVMF table, the summary
    table: Node | None  # kind "ovmf-guid-table", when the image has one
    info: Node          # kind "image-info"

    def tdx_metadata(self) -> Node | None:
        return next(self.root.find("tdx-metadata"), None)


def read_image(path: str | Path) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ImageError(f"{p}: {e.strerror}") from None
    if not p.is_file():
        raise ImageError(f"{p}: not a regular file")
    if size == 0:
        raise ImageError(f"{p}: empty file")
    if size > MAX_IMAGE_SIZE:
        raise ImageError(f"{p}: {size} bytes is larger than any flash image ({MAX_IMAGE_SIZE} max)")
    # read(), not a copy out of an mmap: the mapped pages would count in the process's RSS too.
    with p.open("rb") as f:
        return f.read(MAX_IMAGE_SIZE + 1)


def load_image(path: str | Path) -> LoadedImage:
    p = Path(path)
    data = read_image(p)
    with budget.scope():    # one budget for the flash layout, the reset-vector table and the summary
        root = decode_image(data, name=p.name)
        table = decode_reset_vector_table(root.space)
        if table is not None:
            root.append(table)
        info = classify(root, len(data))
    root.children.insert(0, info)
    return LoadedImage(p, data, root, table, info)
