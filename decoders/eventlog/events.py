"""Event data decoders by event type (TCG PC Client PFP 1.05 §10.4; edk2 UefiTcgPlatform.h).

`decode_event_data(event_type, pcr_index, space, offset, size)` returns one Node for the Event
bytes of a TCG_PCR_EVENT(2)/CC_EVENT. Malformed data becomes a problem on that node; the caller's
walk of the log goes on regardless.
"""
from __future__ import annotations

import re
import struct

from decoders import guids
from decoders.devicepath import decode_device_path
from decoders.errors import DecodeError
from decoders.eventlog import structs as S
from decoders.model import Node, Space
from decoders.uefivar import decode_variable_data

# A GPT event lists the disk's partitions (128 entries at most on a standard disk); a handoff
# table event a few configuration tables; the caps bound hostile counts.
MAX_GPT_PARTITIONS = 1024
MAX_HANDOFF_TABLES = 1024
MAX_TAGGED_EVENTS = 64


def _type_name(t: int) -> str:
    return S.event_type_name(t) or f"0x{t:08x}"


def decode_event_data(event_type: int, pcr_index: int, space: Space, offset: int, size: int,
                      log_format: str = "tcg") -> Node:
    """Decode the `size` Event bytes at `offset` of an event of type `event_type`."""
    raw = bytes(space.data[offset:offset + size])
    node = Node("event-data", _type_name(event_type), space, offset, size)
    fn = _DECODERS.get(event_type)
    if fn is None or size == 0:
        node.kind = "event-data-raw"
        if size and event_type not in _DECODERS:
            text = _printable(raw)
            if text is not None:
                node.add("String", text, offset, size)
        return node
    try:
        fn(node, raw, offset, pcr_index, event_type)
    except DecodeError as e:
        node.problem(e.offset, f"{_type_name(event_type)} data: {e.message}")
    except _Bad as e:
        node.problem(e.offset, f"{_type_name(event_type)} data: {e.message}")
    return node


class _Bad(Exception):
    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset, self.message = offset, message


_TEXT = re.compile(rb"[\x20-\x7e\t\r\n]+")
_UTEXT = re.compile(r"[\x20-\x7e\t\r\n]+")


def _printable(raw: bytes) -> str | None:
    """ASCII text (NUL-terminated or not) or UTF-16LE text, else None."""
    body = raw[:-1] if raw.endswith(b"\0") else raw
    if _TEXT.fullmatch(body):
        return body.decode("ascii")
    if len(raw) >= 2 and len(raw) % 2 == 0 and not raw[1::2].strip(b"\0"):
        text = raw.decode("utf-16-le").rstrip("\0")
        if _UTEXT.fullmatch(text):
            return text
    return None


def _string(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    """EV_IPL, EV_ACTION, EV_EFI_ACTION, EV_EFI_HCRTM_EVENT: a string, ASCII or (sd-boot) UTF-16."""
    text = _printable(raw)
    if text is None:
        try:
            text = raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            text = raw.rstrip(b"\0").decode("utf-8", errors="replace")
            node.note(off, "event data is not ASCII, UTF-16 or UTF-8 text; shown with replacements")
    node.add("String", text, off, len(raw))
    node.title = text if len(text) <= 80 else text[:77] + "..."


def _separator(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    if len(raw) != 4:
        node.warn(off, f"EV_SEPARATOR data is {len(raw)} bytes, PFP §10.4.1 says 4")
        node.add("Value", raw, off, len(raw))
        return
    (v,) = struct.unpack("<I", raw)
    meaning = {0: "normal", 1: "error", 0xFFFFFFFF: "error (TPM 1.2)"}.get(v, "unexpected value")
    node.add("Value", v, off, 4, f"0x{v:08x} ({meaning})")
    node.title = f"separator ({meaning})"


def _crtm_version(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    text = _printable(raw)
    if text is not None and len(raw) % 2 == 0 and (len(raw) < 2 or raw[1] == 0):
        node.add("Version", text, off, len(raw))
        node.title = text
    elif len(raw) == 16:
        g = guids.from_bytes(raw)
        node.add("Version", g, off, 16, guids.describe(g))
        node.title = str(g).upper()
    else:
        node.add("Version", raw, off, len(raw))


def _hex(value: int) -> str:
    return f"0x{value:x}"


_BLOB_HEX = {"BlobBase": _hex, "BlobLength": _hex}


def _fw_blob(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    if len(raw) != 16 and etype == S.EV_S_CRTM_CONTENTS and _printable(raw) is not None:
        # Some firmware (Intel Boot Guard) logs a description string here instead of a blob
        _string(node, raw, off, pcr, etype)
        return
    b = S.UEFI_PLATFORM_FIRMWARE_BLOB.parse(raw, 0, "UEFI_PLATFORM_FIRMWARE_BLOB")
    S.UEFI_PLATFORM_FIRMWARE_BLOB.add_fields(node, b, off, displays=_BLOB_HEX)
    node.title = f"blob 0x{b.BlobBase:x} + 0x{b.BlobLength:x}"
    if len(raw) != 16:
        node.warn(off + 16, f"{len(raw) - 16} bytes follow UEFI_PLATFORM_FIRMWARE_BLOB")


def _fw_blob2(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    if not raw:
        raise _Bad(off, "empty")
    n = raw[0]
    if 1 + n + 16 > len(raw):
        raise _Bad(off, f"BlobDescriptionSize {n} leaves no room for BlobBase/BlobLength in {len(raw)} bytes")
    desc = raw[1:1 + n]
    node.add("BlobDescriptionSize", n, off, 1)
    node.add("BlobDescription", desc.rstrip(b"\0").decode("ascii", errors="replace"), off + 1, n)
    b = S.UEFI_PLATFORM_FIRMWARE_BLOB.parse(raw, 1 + n)
    S.UEFI_PLATFORM_FIRMWARE_BLOB.add_fields(node, b, off + 1 + n, displays=_BLOB_HEX)
    node.title = f"{node.get('BlobDescription')}: 0x{b.BlobBase:x} + 0x{b.BlobLength:x}"


def _post_code(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    # PFP §10.4.1: EV_POST_CODE carries UEFI_PLATFORM_FIRMWARE_BLOB or an ASCII tag ("ACPI DATA")
    if len(raw) == 16:
        _fw_blob(node, raw, off, pcr, etype)
    else:
        _string(node, raw, off, pcr, etype)


def _handoff(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0, desc: bool = False) -> None:
    p = 0
    if desc:
        if not raw:
            raise _Bad(off, "empty")
        n = raw[0]
        node.add("TableDescriptionSize", n, off, 1)
        node.add("TableDescription", raw[1:1 + n].rstrip(b"\0").decode("ascii", errors="replace"), off + 1, n)
        p = 1 + n
    hdr = S.UEFI_HANDOFF_TABLE_POINTERS_HDR.parse(raw, p, "UEFI_HANDOFF_TABLE_POINTERS")
    node.add("NumberOfTables", hdr.NumberOfTables, off + p, 8)
    p += 8
    count = hdr.NumberOfTables
    if count > MAX_HANDOFF_TABLES or p + 24 * count > len(raw):
        node.problem(off + p - 8, f"NumberOfTables {count} needs {24 * count} bytes, {len(raw) - p} left")
        count = min(count, (len(raw) - p) // 24, MAX_HANDOFF_TABLES)
    for i in range(count):
        t = S.EFI_CONFIGURATION_TABLE.parse(raw, p)
        g = t.VendorGuid
        node.add(f"TableEntry[{i}].VendorGuid", g, off + p, 16, guids.describe(g))
        node.add(f"TableEntry[{i}].VendorTable", t.VendorTable, off + p + 16, 8, f"0x{t.VendorTable:x}")
        p += 24
    node.title = f"{count} configuration table(s)"


def _handoff2(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    _handoff(node, raw, off, pcr, etype, desc=True)


def _image_load(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    h = S.UEFI_IMAGE_LOAD_EVENT_HDR.parse(raw, 0, "UEFI_IMAGE_LOAD_EVENT")
    S.UEFI_IMAGE_LOAD_EVENT_HDR.add_fields(node, h, off,
                                           displays={"ImageLocationInMemory": _hex, "ImageLinkTimeAddress": _hex})
    avail = len(raw) - 32
    n = h.LengthOfDevicePath
    if n > avail:
        node.problem(off + 24, f"LengthOfDevicePath {n} exceeds the {avail} bytes left in the event")
        n = avail
    elif n < avail:
        node.note(off + 32 + n, f"{avail - n} bytes follow the device path")
    dp = decode_device_path(node.space, off + 32, n)
    node.add("DevicePath", dp.get("DevicePath"), off + 32, n)
    node.append(dp)
    node.title = dp.get("DevicePath") or "(no device path)"


def _gpt(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    h = S.UEFI_PARTITION_TABLE_HEADER.parse(raw, 0, "UEFI_PARTITION_TABLE_HEADER")
    hs = S.UEFI_PARTITION_TABLE_HEADER.size
    hdr = Node("gpt-header", "UEFI_PARTITION_TABLE_HEADER", node.space, off, hs)
    S.UEFI_PARTITION_TABLE_HEADER.add_fields(hdr, h, off)
    if h.Signature != b"EFI PART":
        hdr.warn(off, f"Signature {h.Signature!r}, expected b'EFI PART'")
    node.append(hdr)
    # UEFI_GPT_DATA: the header takes HeaderSize bytes (92 in practice; PFP §10.2.7 packs the struct)
    p = hs
    if p + 8 > len(raw):
        raise _Bad(off + p, "NumberOfPartitions missing")
    (count,) = struct.unpack_from("<Q", raw, p)
    node.add("NumberOfPartitions", count, off + p, 8)
    p += 8
    esize = h.SizeOfPartitionEntry if h.SizeOfPartitionEntry >= 128 else 128
    if count > MAX_GPT_PARTITIONS or p + count * esize > len(raw):
        node.problem(off + p - 8, f"NumberOfPartitions {count} x {esize} bytes exceeds the "
                                  f"{len(raw) - p} bytes left")
        count = min(count, MAX_GPT_PARTITIONS, (len(raw) - p) // esize)
    for i in range(count):
        e = S.UEFI_PARTITION_ENTRY.parse(raw, p)
        name = e.PartitionName.decode("utf-16-le", errors="replace").split("\0")[0]
        part = Node("gpt-partition", f"partition {i}: {name}", node.space, off + p, esize)
        S.UEFI_PARTITION_ENTRY.add_fields(part, e, off + p, displays={"PartitionName": name})
        part.field("PartitionName").value = name
        node.append(part)
        p += esize
    if p != len(raw):
        node.warn(off + p, f"{len(raw) - p} bytes follow the partition entries")
    node.title = f"GPT {h.DiskGUID}: {count} partition(s)"


def _tagged(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    text = _printable(raw)
    if text is not None and (len(raw) < 8 or int.from_bytes(raw[4:8], "little") > len(raw) - 8):
        # Linux's EFI stub (efi_measure_tagged_event, CC logs) has logged the bare description
        # ("LOADED_IMAGE::LoadOptions") instead of a TCG_PCClientTaggedEvent
        node.add("String", text, off, len(raw))
        node.note(off, "EV_EVENT_TAG data is a bare string, not a TCG_PCClientTaggedEvent")
        node.title = text
        return
    p, i = 0, 0
    while p < len(raw) and i < MAX_TAGGED_EVENTS:
        if p + 8 > len(raw):
            raise _Bad(off + p, f"TCG_PCClientTaggedEvent header needs 8 bytes, {len(raw) - p} left")
        t = S.TCG_PCClientTaggedEvent_HDR.parse(raw, p)
        if p + 8 + t.taggedEventDataSize > len(raw):
            raise _Bad(off + p + 4, f"taggedEventDataSize {t.taggedEventDataSize} runs past the event")
        data = raw[p + 8:p + 8 + t.taggedEventDataSize]
        suffix = "" if i == 0 else f"[{i}]"
        node.add("taggedEventID" + suffix, t.taggedEventID, off + p, 4, f"0x{t.taggedEventID:08x}")
        node.add("taggedEventDataSize" + suffix, t.taggedEventDataSize, off + p + 4, 4)
        text = _printable(data)
        node.add("taggedEventData" + suffix, text if text is not None else data, off + p + 8, len(data))
        p += 8 + t.taggedEventDataSize
        i += 1
    if p < len(raw):
        node.warn(off + p, f"more than {MAX_TAGGED_EVENTS} tagged events; rest not decoded")
    node.title = f"tag 0x{node.get('taggedEventID'):08x}"


def _no_action(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    sig = raw[:16]
    node.add("Signature", sig, off, min(16, len(raw)), sig.rstrip(b"\0").decode("ascii", "replace"))
    if sig == b"StartupLocality\0":
        # PFP §10.4.5.3: TCG_EfiStartupLocalityEvent; sets PCR0's initial value
        if len(raw) < 17:
            raise _Bad(off + 16, "StartupLocality event has no locality byte")
        node.add("StartupLocality", raw[16], off + 16, 1)
        node.kind = "startup-locality"
        node.title = f"StartupLocality {raw[16]}"
    elif sig.startswith(b"SP800-155 Event"):
        _sp800_155(node, raw, off)
    elif sig == b"Spec ID Event03\0":
        node.warn(off, "a second Spec ID event")
        node.title = "Spec ID Event03"
    else:
        node.title = node.field("Signature").display or "EV_NO_ACTION"


def _sp800_155(node: Node, raw: bytes, off: int) -> None:
    """PFP §10.4.5.2 TCG_Sp800_155_PlatformId_Event / Event2 / Event3 (reference manifest ids)."""
    node.kind = "sp800-155-event"
    version = raw[:16].rstrip(b"\0").decode("ascii", "replace")
    p = 16

    def u32(name: str) -> int:
        nonlocal p
        if p + 4 > len(raw):
            raise _Bad(off + p, f"{name} runs past the event")
        (v,) = struct.unpack_from("<I", raw, p)
        node.add(name, v, off + p, 4)
        p += 4
        return v

    def guid(name: str) -> None:
        nonlocal p
        if p + 16 > len(raw):
            raise _Bad(off + p, f"{name} runs past the event")
        g = guids.from_bytes(raw[p:p + 16])
        node.add(name, g, off + p, 16, guids.describe(g))
        p += 16

    def string(name: str, size_bytes: int = 1) -> None:
        nonlocal p
        fmt = "<B" if size_bytes == 1 else "<I"
        if p + size_bytes > len(raw):
            raise _Bad(off + p, f"{name}Size runs past the event")
        (n,) = struct.unpack_from(fmt, raw, p)
        node.add(name + "Size", n, off + p, size_bytes)
        p += size_bytes
        if p + n > len(raw):
            raise _Bad(off + p, f"{name} ({n} bytes) runs past the event")
        s = raw[p:p + n]
        text = _printable(s)
        node.add(name, text if text is not None else s, off + p, n)
        p += n

    u32("PlatformManufacturerId" if version != "SP800-155 Event" else "VendorId")
    guid("ReferenceManifestGuid")
    string("PlatformManufacturerStr")
    string("PlatformModel")
    string("PlatformVersion")
    string("FirmwareManufacturerStr")
    u32("FirmwareManufacturerId")
    string("FirmwareVersion")
    if version in ("SP800-155 Event2", "SP800-155 Event3"):
        u32("RimLocatorType")
        string("RimLocator", 4)
        u32("PlatformCertLocatorType")
        string("PlatformCertLocator", 4)
    if p != len(raw):
        # PFP 1.06's Event3 may carry more fields than Event2's; they are left undecoded
        (node.note if version == "SP800-155 Event3" else node.warn)(
            off + p, f"{len(raw) - p} bytes follow the {version} fields")
    node.title = version


def _variable(node: Node, raw: bytes, off: int, pcr: int, etype: int = 0) -> None:
    h = S.UEFI_VARIABLE_DATA_HDR.parse(raw, 0, "UEFI_VARIABLE_DATA")
    g = h.VariableName
    node.kind = "uefi-variable-data"
    S.UEFI_VARIABLE_DATA_HDR.add_fields(node, h, off)
    p = 32
    nlen = h.UnicodeNameLength * 2
    if p + nlen > len(raw):
        raise _Bad(off + 16, f"UnicodeNameLength {h.UnicodeNameLength} runs past the {len(raw)}-byte event")
    name = raw[p:p + nlen].decode("utf-16-le", errors="replace")
    node.add("UnicodeName", name, off + p, nlen)
    p += nlen
    dlen = h.VariableDataLength
    if p + dlen > len(raw):
        node.problem(off + 24, f"VariableDataLength {dlen} exceeds the {len(raw) - p} bytes left in the event")
        dlen = len(raw) - p
    elif p + dlen < len(raw):
        node.warn(off + p + dlen, f"{len(raw) - p - dlen} bytes follow VariableData")
    vdata = raw[p:p + dlen]
    node.add("VariableData", vdata, off + p, dlen)
    node.title = f"{name} ({guids.name(g) or g})"
    _variable_payload(node, name, g, vdata, off + p, etype)


def _variable_payload(node: Node, name: str, vendor, vdata: bytes, off: int, etype: int) -> None:
    if not vdata:
        return
    if etype == S.EV_EFI_VARIABLE_AUTHORITY and name not in ("MokListTrusted", "SbatLevel"):
        # PFP §10.4.4: EV_EFI_VARIABLE_AUTHORITY carries the one EFI_SIGNATURE_DATA that
        # authorised an image (SignatureOwner GUID + data), not a whole list
        if len(vdata) >= 16:
            g = guids.from_bytes(vdata[:16])
            node.add("SignatureOwner", g, off, 16, guids.describe(g))
            node.add("SignatureData", vdata[16:], off + 16, len(vdata) - 16)
        return
    decode_variable_data(node, name, vendor, off, len(vdata))


_DECODERS = {
    S.EV_NO_ACTION: _no_action,
    S.EV_SEPARATOR: _separator,
    S.EV_ACTION: _string,
    S.EV_EFI_ACTION: _string,
    S.EV_IPL: _string,
    S.EV_EFI_HCRTM_EVENT: _string,
    S.EV_S_CRTM_VERSION: _crtm_version,
    S.EV_S_CRTM_CONTENTS: _fw_blob,
    S.EV_EFI_PLATFORM_FIRMWARE_BLOB: _fw_blob,
    S.EV_EFI_PLATFORM_FIRMWARE_BLOB2: _fw_blob2,
    S.EV_POST_CODE: _post_code,
    S.EV_EFI_HANDOFF_TABLES: _handoff,
    S.EV_EFI_HANDOFF_TABLES2: _handoff2,
    S.EV_EFI_BOOT_SERVICES_APPLICATION: _image_load,
    S.EV_EFI_BOOT_SERVICES_DRIVER: _image_load,
    S.EV_EFI_RUNTIME_SERVICES_DRIVER: _image_load,
    S.EV_EFI_GPT_EVENT: _gpt,
    S.EV_EVENT_TAG: _tagged,
    S.EV_EFI_VARIABLE_DRIVER_CONFIG: _variable,
    S.EV_EFI_VARIABLE_BOOT: _variable,
    S.EV_EFI_VARIABLE_BOOT2: _variable,
    S.EV_EFI_VARIABLE_AUTHORITY: _variable,
    S.EV_EFI_SPDM_DEVICE_POLICY: _variable,
}
