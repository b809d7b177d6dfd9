"""What changing an image does to its measurements: the TDX MRTD and the TPM PCR0 firmware blobs of
two images A and B, and, where they differ, which measured pages and which files moved them.

MRTD (decoders.mrtd; Intel TDX Module ABI TDH.MEM.PAGE.ADD / TDH.MR.EXTEND, record layouts as in
td-shim `doc/tdshim_spec.md`): per TDVF_SECTION (edk2 OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm)
every 4 KiB page of MemoryDataSize is PAGE.ADDed (its GPA alone is hashed) unless PAGE.AUG, and with
MR.EXTEND its bytes are hashed too: RawDataSize bytes from the image at DataOffset, zero-padded to
MemoryDataSize. So a byte at file offset X moves the MRTD iff X lies in an MR.EXTEND section's
[DataOffset, DataOffset + RawDataSize); its page is (X - DataOffset) // 4096, at GPA MemoryAddress +
page * 4096. The two images' layouts may differ, so pages are compared by GPA: for each GPA, what
each image's sections feed SHA-384 for it (nothing, a PAGE.ADD, the page's bytes) is compared, and
a differing page names the files of A and of B whose bytes lie in it (in the image file, so a
module inside a compressed volume shows as the compressed file that carries it).

TPM (decoders.measure.tpm): PCR0's EV_EFI_PLATFORM_FIRMWARE_BLOB events of PEIFV and DXEFV as
decompressed (edk2 SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.c MeasureFvImage). When a blob's digest differs,
the volume's FFS files are matched by file name GUID (PI spec vol 3, EFI_FFS_FILE_HEADER.Name) and
the changed, moved, added and removed ones named.

The tree (kinds and fields are an interface, as inspector.diff's; every node has `Change`: added,
removed, changed or unchanged; GUIDs are lowercase text):

- `diff-measurements`: `ImageA`, `ImageB`; children `diff-mrtd`, `diff-tpm`.
- `diff-mrtd`: `MRTD.<order>.A/B` (hex or None) and `Equal.<order>` for the orders per-page and
  two-pass; when both are computed `Sections.A/B`, `PagesBytesDiffer`, `PagesExtendedOnOneSide`,
  `PagesAddedOnOneSide`, `DifferingPages` (their sum) and, when differing pages hold compressed
  volumes that are PCR0 blobs that differ, `CompressedChanges` {volume: ["changed DxeCore", ...]}.
  Children: `diff-tdx-sections` (children `diff-tdx-section`: `Index`, `A`, `B`) when the section
  tables differ; one `diff-mrtd-page` per page with bytes that differs (at most MAX_PAGE_NODES):
  `Section`, `Gpa`, `Differs` (bytes, only A, only B, kind), `FileOffsetA/B`, `FilesA/B` (what
  lies in the page), `ChangedFilesA/B` (what lies in its differing span), `CompressedVolumesA/B`
  (FvNames carried compressed by those files), `FirstDifference`/`LastDifference` (in the page);
  `diff-mrtd-more` (`Count`) for the rest; one `diff-mrtd-range` per run of pages only PAGE.ADDed
  (`Section`, `Gpa`, `GpaEnd`, `Pages`, `Differs`).
- `diff-tpm`: children `diff-tpm-blob` per volume (PEIFV, DXEFV): `Volume`, `FvName`,
  `BlobBaseA/B`, `BlobLengthA/B`, `DigestA/B` (sha256 hex), `Equal`, and when the digests differ
  `Changed`, `Added`, `Removed`, `Moved`, `FilesDiffer`, children `diff-tpm-blob-file` (`Status`:
  changed, added, removed, moved (same bytes, other offset); `Name`, `UI`, `OffsetA/B` in the
  volume, `SizeA/B`), `diff-tpm-blob-more`, or `diff-tpm-blob-page` (`Offset`) when no file
  differs; `diff-tpm-crtm-version` (`VersionA/B`, `DigestA/B`, `SourceA/B`, `Equal`);
  `diff-tpm-register` (`Register` PCR0, `Bank` sha256, `ValueA/B` or None, `Equal`).
"""
from __future__ import annotations

import uuid

from decoders.model import Node

# The MRTD half is inspector/diff_mrtd.py, the TPM half inspector/diff_tpm.py; the helpers both use
# (the node maker, file labels, bounds) are here.

PAGE = 0x1000
# Output bounds: a diff of two unrelated images differs in every measured page (Debian 12 vs 13
# OVMF.fd: ~900), and a reviewer reads the first few hundred; the rest is a count.
MAX_PAGE_NODES = 256
MAX_FILE_NODES = 256
# Names listed per page: a 4 KiB page holds at most ~170 FFS headers (24 bytes each); a sane one a
# handful. Hostile overlapping files are cut here.
MAX_NAMES_PER_PAGE = 16
MAX_SCAN_PER_PAGE = 256
# Files per volume matched by GUID: edk2's DXEFV holds ~150; 1 << 16 covers any real volume and
# keeps a hostile one (millions of empty files) bounded.
MAX_FILES_PER_VOLUME = 1 << 16
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008    # TCG PC Client PFP 1.05, 10.4.1 event types
EV_S_CRTM_VERSION = 0x8
FFS_PAD = 0xF0                      # PI vol 3, EFI_FV_FILETYPE_FFS_PAD


CHANGE = {"only A": "removed", "only B": "added", "kind": "changed", "bytes": "changed"}


def _node(kind: str, title: str, change: str) -> Node:
    """A diff node with the `Change` field every node of inspector.diff's tree has (added,
    removed, changed, unchanged)."""
    node = Node(kind, title)
    node.add("Change", change)
    return node


def measurement_diff(img_a, img_b, name_a: str = "A", name_b: str = "B") -> Node:
    """A `diff-measurements` node for two loaded images (inspector.image.LoadedImage: `.root`,
    `.data`): a `diff-mrtd` child and a `diff-tpm` child. Never raises on bad input: what could not
    be compared is a problem on the node concerned."""
    root = _node("diff-measurements", f"Measurements: {name_a} vs {name_b}", "unchanged")
    root.add("ImageA", name_a)
    root.add("ImageB", name_b)
    import contextvars
    import threading

    from inspector.diff_mrtd import mrtd_diff
    from inspector.diff_tpm import predictions, tpm_diff

    # The TPM blobs' digests are hashed on a thread while the MRTDs are computed here: both are
    # mostly SHA work, during which hashlib releases the GIL. The thread runs in a copy of this
    # context, so under the same budget.
    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["preds"] = predictions(img_a, img_b)
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = e

    t = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="diff-tpm", daemon=True)
    t.start()
    try:
        mrtd = root.append(mrtd_diff(img_a, img_b, name_a, name_b))
    finally:
        t.join()
    if "error" in out:
        raise out["error"]
    tpm = root.append(tpm_diff(img_a, img_b, name_a, name_b, out["preds"]))
    _link_compressed(mrtd, tpm)
    if any(c.get("Change") != "unchanged" for c in root.children):
        root.field("Change").value = "changed"
        root.title += ": " + "; ".join(c.title for c in root.children if c.get("Change") != "unchanged")
    else:
        root.title += ": MRTD and PCR0 blobs unchanged"
    return root


def measurement_diff_started(img_a, img_b, name_a: str = "A", name_b: str = "B"):
    """measurement_diff started now on a thread (in a copy of this context: under the same budget),
    so its hashing runs while the caller diffs the trees (both only read the images' trees). Returns
    the function that waits for it and gives its node, raising what it raised."""
    import contextvars
    import threading

    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["node"] = measurement_diff(img_a, img_b, name_a, name_b)
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = e

    t = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="diff-measure", daemon=True)
    t.start()

    def result() -> Node:
        t.join()
        if "error" in out:
            raise out["error"]
        return out["node"]

    return result


def _link_compressed(mrtd: Node, tpm: Node) -> None:
    """Differing MRTD pages that hold a compressed file (FVMAIN_COMPACT's LZMA section) say no more
    than "these compressed bytes changed"; when the volumes it carries are PCR0 blobs that differ,
    the TPM part knows which of their files did: named here, on the MRTD node."""
    carried = set()
    for page in mrtd.children:
        if page.kind == "diff-mrtd-page":
            carried.update(page.get("CompressedVolumesA") or ())
            carried.update(page.get("CompressedVolumesB") or ())
    if not carried:
        return
    out = {}
    for blob in tpm.children:
        if blob.kind != "diff-tpm-blob" or blob.get("Change") == "unchanged" or blob.get("FvName") not in carried:
            continue
        files = [c for c in blob.children if c.kind == "diff-tpm-blob-file"]
        names = [f"{c.get('Status')} {c.get('UI') or c.field('Name').display}" for c in files[:16]]
        total = blob.get("FilesDiffer") or len(files)
        out[blob.get("Volume")] = (names + ([f"… {total - len(names)} more"] if total > len(names) else [])
                                   if names else [blob.title])
    if out:
        mrtd.add("CompressedChanges", out, display="; ".join(f"{v}: {', '.join(n[:4])}" + (" …" if len(n) > 4 else "")
                                                             for v, n in out.items()))
        mrtd.note(None, "the differing pages hold compressed volumes (" + ", ".join(out) + ") whose decompressed "
                        "files differ as the TPM part lists: " + mrtd.field("CompressedChanges").display)


# == labels of files and volumes (both halves) ===================================================
def _desc_same_space(n: Node, space):
    stack = list(n.children)
    while stack:
        c = stack.pop()
        if c.space is space:
            yield c
            stack.extend(c.children)


def _fv_label(fv: Node) -> str:
    t = fv.title
    return t[len("Volume "):] if t.startswith("Volume ") else t


def _inner_volumes(ffs: Node, space) -> list[Node]:
    """The volumes a file carries in another space (decompressed from one of its sections)."""
    inner = []
    stack = list(reversed(ffs.children))
    while stack and len(inner) < 8:
        c = stack.pop()
        if c.kind == "fv" and c.space is not space:
            inner.append(c)
            continue
        stack.extend(reversed(c.children))
    return inner


def _file_label(ffs: Node, space=None, inner: list[Node] | None = None) -> str:
    """UI name, else the name GUID; a file carrying compressed volumes says which."""
    if ffs.get("Type") == FFS_PAD:
        return "Pad file"
    label = ffs.get("UI") or _guid_text(ffs.get("Name"))
    if space is not None:
        if inner is None:
            inner = _inner_volumes(ffs, space)
        if inner:
            label += f" (compressed: {', '.join(_fv_label(v).split(' (')[0] for v in inner)})"
        elif any(c.kind == "section" and c.problems and c.get("SectionDefinitionGuid") is not None
                 for c in _desc_same_space(ffs, space)):
            label += " (a compressed section that did not decode)"
    return label


def _guid_text(g) -> str:
    return str(g).upper() if isinstance(g, uuid.UUID) else (str(g) if g is not None else "?")
