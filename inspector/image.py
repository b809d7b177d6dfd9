"""The image source: a flash device file decoded into one Node tree.

Puts together the flash layout (decoders.fd), the OVMF reset-vector table with its TDX/SEV
metadata (decoders.ovmf) and a summary of what kind of image it is (inspector.classify), with the
boot's handoffs the image has (inspector.bootphases: its "Boot phases" child).
"""
from __future__ import annotations

import os

from decoders import budget
from decoders.fd import decode_image
from decoders.model import Node
from decoders.ovmf.resetvector import decode_reset_vector_table
from inspector.bootphases import boot_phases_node, scan
from inspector.classify import classify
from inspector.imagefile import EarlyLzma, ImageError, read_image  # noqa: F401 (ImageError: callers catch it here)


class LoadedImage:
    """A decoded image file. A plain class: the dataclasses module (with the inspect module it
    imports) is ~10 ms of every process that loads an image; `path` a pathlib.Path made when asked
    for (pathlib with the urllib.parse it imports is ~5 ms more)."""

    def __init__(self, path: str | os.PathLike, data: bytes, root: Node, table: Node | None, info: Node | None):
        self._path = path
        self.data = data
        self.root = root        # kind "image": volumes, the OVMF table, the summary
        self.table = table      # kind "ovmf-guid-table", when the image has one
        self.info = info        # kind "image-info"; None when loaded with summary=False (the diff)
        self._mrtds: list | None = None

    @property
    def path(self):
        from pathlib import Path

        return Path(self._path)

    def __repr__(self) -> str:
        return f"LoadedImage({self.path!r}, {len(self.data)} bytes)"

    def tdx_metadata(self) -> Node | None:
        return next(self.root.find("tdx-metadata"), None)

    def mrtds(self) -> list:
        """The MRTD in both page orders (decoders.mrtd MrtdResult: per-page, two-pass), computed once
        per image: the app's tree and the tour's two MRTD chapters all show it. [] without TDX
        metadata."""
        if self._mrtds is None:
            from decoders.mrtd import ORDERS, compute_mrtds
            from decoders.ovmf.metadata import tdx_sections
            from inspector.hashing import side_by_side

            meta = self.tdx_metadata()
            self._mrtds = (compute_mrtds(self.data, tdx_sections(meta), ORDERS, side_by_side(ORDERS))
                           if meta is not None else [])
        return self._mrtds


def load_image(path: str | os.PathLike, data: bytes | None = None, early: EarlyLzma | None = None, *,
               summary: bool = True) -> LoadedImage:
    """Decode the image at `path` (or `data`, read from it already; `early` inflating its LZMA
    sections on a thread since: see inspector.imagefile). `summary`: add the "Image summary" node
    (inspector.classify, the boot phases) first in the tree; the diff, which compares volumes, files
    and metadata, does without it (LoadedImage.info is then None)."""
    if data is None:
        data = read_image(path)
    with budget.scope():    # one budget for the flash layout, the reset-vector table and the summary
        root = decode_image(data, name=os.path.basename(os.fspath(path)), predecoded=early.get if early else None)
        table = decode_reset_vector_table(root.space)
        if table is not None:
            root.append(table)
        if not summary:
            return LoadedImage(path, data, root, table, None)
        info = classify(root, len(data))
        # From the tree just decoded (one walk, nothing decoded again): which handoffs this image
        # has and where each entry is known; PEI-less images (TDVF Config-B) say so here.
        info.append(boot_phases_node(scan(root, len(data))))
    root.children.insert(0, info)
    return LoadedImage(path, data, root, table, info)
