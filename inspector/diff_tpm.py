"""The TPM half of inspector.diff_measure (its docstring has the rules and the node kinds): PCR0's
firmware-blob events of two images and, where a blob differs, its files matched by GUID."""
from __future__ import annotations

import uuid

from decoders.model import Node
from inspector.diff_measure import (
    PAGE, MAX_PAGE_NODES, MAX_FILE_NODES, MAX_FILES_PER_VOLUME, EV_EFI_PLATFORM_FIRMWARE_BLOB,
    EV_S_CRTM_VERSION, FFS_PAD, _node, _file_label, _guid_text,
)


# == TPM PCR0 =====================================================================================
# predict_tpm's messages that are about PCR7 or the PEIFV RAM caveat (said once here) are not part
# of a PCR0 blob comparison.
def _pcr0_problem(message: str) -> bool:
    return "PCR7" not in message and "VARS" not in message and "varstore" not in message


def predictions(img_a, img_b) -> list:
    """The sha256 PCR0/PCR7 predictions of A and B that tpm_diff compares."""
    from decoders.measure.tpm import predict_tpm

    return [predict_tpm(img.root, banks=("sha256",)) for img in (img_a, img_b)]


def tpm_diff(img_a, img_b, name_a: str = "A", name_b: str = "B", preds: list | None = None) -> Node:
    """The `diff-tpm` node: PCR0's firmware-blob events (PEIFV, DXEFV) of A and B, their files
    that differ, and PCR0 (sha256) when predictable. `preds`: predictions(img_a, img_b), when the
    caller made them already."""
    from decoders.measure.tpm import PEIFV_WRITES

    node = _node("diff-tpm", "TPM PCR0 firmware blobs", "unchanged")
    if preds is None:
        preds = predictions(img_a, img_b)
    for pred, label in zip(preds, (name_a, name_b)):
        for p in pred.problems:
            if p.message != PEIFV_WRITES and _pcr0_problem(p.message):
                # Not a problem of the diff: what a prediction from this image cannot decide (the
                # image's own decoding problems are inspector.diff's to report).
                node.note(p.offset, f"{label}: {p.message}")
    pa, pb = preds
    blobs_a = _blobs(pa)
    blobs_b = _blobs(pb)
    for vol in ("PEIFV", "DXEFV"):
        ea, eb = blobs_a.get(vol), blobs_b.get(vol)
        if ea is None and eb is None:
            continue
        node.append(_blob_node(vol, ea, eb, img_a.root, img_b.root, name_a, name_b))
    if not blobs_a and not blobs_b:
        node.title = "TPM PCR0 firmware blobs: neither image has a PEIFV or DXEFV (not OVMF images with PEI)"
    else:
        node.append(_crtm_node(pa, pb))
    reg = _node("diff-tpm-register", "PCR0 (sha256)", "unchanged")
    reg.add("Register", "PCR0")
    reg.add("Bank", "sha256")
    values = []
    for pred, tag, label in ((pa, "A", name_a), (pb, "B", name_b)):
        v = pred.registers().get("sha256", {}).get(0)
        values.append(v)
        reg.add(f"Value{tag}", None if v is None else v.hex(),
                display="not predictable (see the problems)" if v is None else v.hex())
    reg.add("Equal", values[0] is not None and values[0] == values[1])
    if values[0] != values[1]:
        reg.field("Change").value = "changed"
    missing = [label for v, label in zip(values, (name_a, name_b)) if v is None]
    reg.title = ("PCR0 (sha256): " + ("equal" if reg.get("Equal") else "differs" if not missing else
                                      f"not predictable for {' and '.join(missing)}"))
    reg.note(None, "PCR0 as predicted from each image: S-CRTM version, PEIFV and DXEFV as decompressed, "
                   "separator (see the PEIFV note)")
    node.append(reg)
    changed = [c.title for c in node.children if c.get("Change") != "unchanged"]
    if changed:
        node.field("Change").value = "changed"
        node.title = "TPM PCR0: " + "; ".join(changed)
    elif blobs_a or blobs_b:
        node.title = "TPM PCR0 firmware blobs: unchanged"
    return node


def _crtm_node(pa, pb) -> Node:
    """PCR0's first event, EV_S_CRTM_VERSION over PcdFirmwareVersionString (Tcg2Pei.c
    MeasureCRTMVersion): a version string that differs moves PCR0 with no byte of a volume."""
    ea, eb = (next((e for e in p.events if e.index == 0 and e.event_type == EV_S_CRTM_VERSION), None)
              for p in (pa, pb))
    texts = []
    for e in (ea, eb):
        texts.append(None if e is None else e.data[:-2].decode("utf-16-le", "replace"))
    same = ea is not None and eb is not None and ea.data == eb.data
    node = _node("diff-tpm-crtm-version", "S-CRTM version: " + (f"{texts[0]!r} in both" if same else
                 f"{texts[0]!r} -> {texts[1]!r}"), "unchanged" if same else "changed")
    for tag, e, text in (("A", ea, texts[0]), ("B", eb, texts[1])):
        node.add(f"Version{tag}", text)
        node.add(f"Digest{tag}", None if e is None else e.digests["sha256"].hex())
        node.add(f"Source{tag}", None if e is None else e.source)
    node.add("Equal", same)
    return node


def _blobs(pred) -> dict:
    out = {}
    for ev in pred.events:
        if ev.index == 0 and ev.event_type == EV_EFI_PLATFORM_FIRMWARE_BLOB:
            name = (ev.description or "").split(" ")[0]
            if name in ("PEIFV", "DXEFV") and name not in out:
                out[name] = ev
    return out


def _blob_fields(ev) -> tuple[int | None, int | None, str | None]:
    import struct

    if ev is None:
        return None, None, None
    base, length = struct.unpack("<QQ", ev.data[:16]) if len(ev.data) >= 16 else (None, None)
    return base, length, ev.digests["sha256"].hex()


def _blob_node(vol: str, ea, eb, root_a: Node, root_b: Node, name_a: str, name_b: str) -> Node:
    (ba, la, da), (bb, lb, db) = _blob_fields(ea), _blob_fields(eb)
    node = _node("diff-tpm-blob", vol, "unchanged")
    node.add("Volume", vol)
    fv_name = next((fv.get("FvName") for fv in (_fv_of(root_a, ea) if ea is not None else None,
                                                 _fv_of(root_b, eb) if eb is not None else None)
                    if fv is not None and fv.get("FvName") is not None), None)
    node.add("FvName", None if fv_name is None else str(fv_name))
    for tag, base, length, dig in (("A", ba, la, da), ("B", bb, lb, db)):
        node.add(f"BlobBase{tag}", base, display="none" if base is None else f"0x{base:x}")
        node.add(f"BlobLength{tag}", length, display="none" if length is None else f"0x{length:x}")
        node.add(f"Digest{tag}", dig, display=f"sha256:{dig}" if dig else "none")
    equal = da is not None and da == db and ba == bb and la == lb
    node.add("Equal", equal)
    if not equal:
        node.field("Change").value = "added" if ea is None else "removed" if eb is None else "changed"
    if vol == "PEIFV":
        node.note(None, "a real boot hashes PEIFV after the PEIMs that run before Tcg2Pei wrote their globals "
                        "into it: these are the digests of the volume as decompressed, not modelled further")
    if ea is None or eb is None:
        node.title = f"{vol}: only in {name_a if eb is None else name_b}"
        return node
    if equal:
        node.title = f"{vol}: equal (0x{ba:x} + 0x{la:x}, sha256 {da[:16]}…)"
        return node
    what = []
    if ba != bb or la != lb:
        what.append(f"event data (0x{ba:x} + 0x{la:x} vs 0x{bb:x} + 0x{lb:x})")
    if da != db:
        what.append("digest")
    fva, fvb = _fv_of(root_a, ea), _fv_of(root_b, eb)     # (found again: a walk each, cheap)
    changed = 0
    if da != db and fva is not None and fvb is not None:
        changed = _file_diffs(node, fva, fvb, ea, eb)
        if changed == 0:
            _outside_files(node, ea, eb)
    node.title = (f"{vol}: {' and '.join(what)} differ{'s' if len(what) == 1 else ''}"
                  + (f"; {changed} file(s) differ" if da != db else ""))
    node.add("FilesDiffer", changed, display=str(changed))
    return node


def _fv_of(root: Node, ev) -> Node | None:
    for fv in root.find("fv"):
        if fv.space is ev.space and fv.offset == ev.offset:
            return fv
    return None


def _vol_files(fv: Node) -> list[Node]:
    """The FFS files directly in a volume (not those of nested volumes), bounded."""
    out = []
    stack = list(reversed(fv.children))
    while stack and len(out) < MAX_FILES_PER_VOLUME:
        n = stack.pop()
        if n.kind == "ffs":
            out.append(n)
        elif n.kind != "fv":
            stack.extend(reversed(n.children))
    return out


def _keyed(fv: Node) -> dict:
    """Files by (name GUID, occurrence): a GUID seen twice is matched in order. Pad files have no
    identity (their size follows the layout) and are left out."""
    from inspector.diff_ffs import numbered

    return numbered((f for f in _vol_files(fv) if f.get("Type") != FFS_PAD), lambda f: f.get("Name"))


def _file_bytes(f: Node) -> bytes:
    sp = f.space
    if sp is None or sp.data is None:
        return b""
    sp.need(f.offset + f.size)
    return bytes(sp.data[f.offset:f.offset + f.size])


def _file_diffs(node: Node, fva: Node, fvb: Node, ea, eb) -> int:
    ka, kb = _keyed(fva), _keyed(fvb)
    rows = []
    for key, f in ka.items():
        g = kb.get(key)
        if g is None:
            rows.append(("removed", f, None))
            continue
        if f.size != g.size or _file_bytes(f) != _file_bytes(g):
            rows.append(("changed", f, g))
        elif f.offset - fva.offset != g.offset - fvb.offset:
            rows.append(("moved", f, g))
    for key, g in kb.items():
        if key not in ka:
            rows.append(("added", None, g))
    order = {"changed": 0, "added": 1, "removed": 2, "moved": 3}
    rows.sort(key=lambda r: order[r[0]])
    counts = {k: 0 for k in order}
    for status, f, g in rows:
        counts[status] += 1
    for status, f, g in rows[:MAX_FILE_NODES]:
        ref = f if f is not None else g
        label = _file_label(ref)
        child = _node("diff-tpm-blob-file", f"{status}: {label}", "changed" if status == "moved" else status)
        child.add("Status", status)
        name = ref.get("Name")
        child.add("Name", str(name) if isinstance(name, uuid.UUID) else name, display=_guid_text(name))
        ui = (f.get("UI") if f is not None else None) or (g.get("UI") if g is not None else None)
        child.add("UI", ui, display=ui or "none")
        for tag, x, fv in (("A", f, fva), ("B", g, fvb)):
            child.add(f"Offset{tag}", None if x is None else x.offset - fv.offset,
                      display="none" if x is None else f"+0x{x.offset - fv.offset:x}")
            child.add(f"Size{tag}", None if x is None else x.size)
        node.append(child)
    if len(rows) > MAX_FILE_NODES:
        rest = _node("diff-tpm-blob-more", f"{len(rows) - MAX_FILE_NODES} more differing file(s) not listed",
                     "changed")
        rest.add("Count", len(rows) - MAX_FILE_NODES)
        node.append(rest)
    for status, n in counts.items():
        node.add(status.capitalize(), n, display=str(n))
    return sum(counts[k] for k in ("changed", "added", "removed", "moved"))


def _outside_files(node: Node, ea, eb) -> None:
    """No file differs but the digests do: the volume header, pad files or free space. Compared
    4 KiB page by page at the same offsets."""
    a, b = ea.space.data, eb.space.data
    n = min(ea.size, eb.size)
    differing = []
    for off in range(0, n, PAGE):
        end = min(off + PAGE, n)
        if a[ea.offset + off:ea.offset + end] != b[eb.offset + off:eb.offset + end]:
            differing.append(off)
    node.add("PagesOutsideFiles", len(differing))
    for off in differing[:MAX_PAGE_NODES]:
        child = _node("diff-tpm-blob-page", f"volume +0x{off:x}: bytes outside any file differ (header, pad or "
                                            "free space)", "changed")
        child.add("Offset", off)
        node.append(child)
    if ea.size != eb.size:
        node.note(None, f"the volumes are 0x{ea.size:x} and 0x{eb.size:x} bytes long")
