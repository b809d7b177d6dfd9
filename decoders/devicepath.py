"""UEFI device paths to text (UEFI spec 2.10 §10.3 node layouts, §10.6 text forms).

Layouts: edk2 MdePkg/Include/Protocol/DevicePath.h. The text follows edk2's
MdePkg/Library/UefiDevicePathLib/DevicePathToText.c (what the UEFI shell and OVMF print), style
"uefi". Style "efivar" follows libefivar's efidp_format_device_path, which tpm2-tools uses when it
is built with libefivar (FvVol(...), File(...), decimal Sata/SCSI/USB, lower-case GUIDs), so our
text can be compared with upstream tpm2-tools' expected YAML.

Each node is Type u8, SubType u8, Length u16 (Length counts the 4-byte header). A Length below 4 or
past the end stops the walk with a located problem; the number of nodes is capped.
"""
from __future__ import annotations

import ipaddress
import re
import struct

from decoders import guids
from decoders.model import Node, Problem, Severity, Space

# A real device path has a handful of nodes; Boot#### options and image-load events stay far
# below this. The cap bounds work on hostile input (every node can be 4 bytes long).
MAX_DEVICE_PATH_NODES = 256

HW, ACPI, MSG, MEDIA, BBS, END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x7F
END_ENTIRE, END_INSTANCE = 0xFF, 0x01

# Vendor-defined messaging GUIDs with their own text form (DevicePathToText.c DevPathToTextVendor)
_VENDOR_MSG_TEXT = {
    guids.gEfiPcAnsiGuid: "VenPcAnsi()",
    guids.gEfiVT100Guid: "VenVt100()",
    guids.gEfiVT100PlusGuid: "VenVt100Plus()",
    guids.gEfiVTUTF8Guid: "VenUtf8()",
}
_UART_FLOW_CONTROL = guids.gEfiUartDevicePathGuid
_SAS = guids.gEfiSasDevicePathGuid


def _guid_text(raw: bytes, style: str) -> str:
    g = guids.from_bytes(raw)
    return str(g) if style == "efivar" else str(g).upper()


def _ucs2(raw: bytes) -> str:
    text = raw.decode("utf-16-le", errors="replace")
    end = text.find("\0")
    return text if end < 0 else text[:end]


def _ascii(raw: bytes) -> str:
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("ascii", errors="replace")


def _eisa_text(hid: int) -> str:
    """Compressed EISA id (ACPI spec §6.1.5): three 5-bit letters then a 16-bit product number."""
    lo = hid & 0xFFFF
    swapped = ((lo & 0xFF) << 8) | (lo >> 8)
    letters = "".join(chr(((swapped >> s) & 0x1F) + 0x40) for s in (10, 5, 0))
    product = hid >> 16
    product = ((product & 0xFF) << 8) | (product >> 8)
    return f"{letters}{product:04X}"


class _Short(Exception):
    """A node's payload is shorter than its subtype needs."""


def _u(fmt: str, data: bytes, off: int = 0):
    size = struct.calcsize(fmt)
    if off + size > len(data):
        raise _Short(f"needs {off + size} bytes of node data, has {len(data)}")
    return struct.unpack_from(fmt, data, off)


def _hw(sub: int, d: bytes, style: str) -> str | None:
    if sub == 1:
        func, dev = _u("<BB", d)
        return f"Pci(0x{dev:x},0x{func:x})"
    if sub == 2:
        (fn,) = _u("<B", d)
        return f"PcCard(0x{fn:x})"
    if sub == 3:
        mtype, start, end = _u("<IQQ", d)
        return f"MemoryMapped(0x{mtype:x},0x{start:x},0x{end:x})"
    if sub == 4:
        return _vendor("VenHw", d, style)
    if sub == 5:
        (ctrl,) = _u("<I", d)
        return f"Ctrl(0x{ctrl:x})"
    if sub == 6:
        itype, base = _u("<BQ", d)
        return f"BMC(0x{itype:x},0x{base:x})"
    return None


def _vendor(prefix: str, d: bytes, style: str) -> str:
    if len(d) < 16:
        raise _Short(f"vendor node needs a 16-byte GUID, has {len(d)} bytes")
    g = guids.from_bytes(d[:16])
    extra = d[16:]
    if prefix == "VenMsg":
        if g in _VENDOR_MSG_TEXT:
            return _VENDOR_MSG_TEXT[g]
        if g == _UART_FLOW_CONTROL and len(extra) >= 4:
            (flow,) = struct.unpack_from("<I", extra)
            return "UartFlowCtrl(" + {0: "None", 1: "Hardware", 2: "XonXoff"}.get(flow & 3, str(flow)) + ")"
    text = f"{prefix}({_guid_text(d[:16], style)}"
    if extra:
        text += "," + extra.hex().upper() if style == "uefi" else "," + extra.hex()
    return text + ")"


def _acpi(sub: int, d: bytes, style: str) -> str | None:
    if sub == 1:
        hid, uid = _u("<II", d)
        if hid & 0xFFFF == 0x41D0:  # PNP_EISA_ID_CONST: a PNPxxxx id
            known = {0x0A03: "PciRoot", 0x0A08: "PcieRoot", 0x0604: "Floppy", 0x0301: "Keyboard",
                     0x0501: "Serial", 0x0401: "ParallelPort"}.get(hid >> 16)
            if known:
                return f"{known}(0x{uid:x})"
            return f"Acpi(PNP{hid >> 16:04X},0x{uid:x})"
        return f"Acpi(0x{hid:08x},0x{uid:x})"
    if sub == 2:
        hid, uid, cid = _u("<III", d)
        strings = d[12:].split(b"\0")
        hstr, ustr, cstr = (strings + [b"", b"", b""])[:3]
        hid_t = _eisa_text(hid) if hid & 0xFFFF == 0x41D0 else f"0x{hid:08x}"
        cid_t = _eisa_text(cid) if cid & 0xFFFF == 0x41D0 else f"0x{cid:08x}"
        return (f"AcpiEx({hid_t},{cid_t},0x{uid:x},{hstr.decode('ascii', 'replace')},"
                f"{cstr.decode('ascii', 'replace')},{ustr.decode('ascii', 'replace')})")
    if sub == 3:
        n = len(d) // 4
        return "AcpiAdr(" + ",".join(f"0x{v:x}" for v in _u(f"<{n}I", d)) + ")"
    return None


def _ip_proto(p: int) -> str:
    return {6: "TCP", 17: "UDP"}.get(p, f"0x{p:x}")


def _msg(sub: int, d: bytes, style: str) -> str | None:
    dec = style == "efivar"
    if sub == 1:
        ps, sm, lun = _u("<BBH", d)
        return (f"Ata({'Secondary' if ps else 'Primary'},{'Slave' if sm else 'Master'},0x{lun:x})")
    if sub == 2:
        pun, lun = _u("<HH", d)
        return f"SCSI({pun},{lun})" if dec else f"Scsi(0x{pun:x},0x{lun:x})"
    if sub == 3:
        _r, wwn, lun = _u("<IQQ", d)
        return f"Fibre(0x{wwn:x},0x{lun:x})"
    if sub == 5:
        port, intf = _u("<BB", d)
        return f"USB({port},{intf})" if dec else f"USB(0x{port:x},0x{intf:x})"
    if sub == 6:
        (tid,) = _u("<I", d)
        return f"I2O(0x{tid:x})"
    if sub == 10:
        return _vendor("VenMsg", d, style)
    if sub == 11:
        if len(d) < 33:
            raise _Short(f"MAC node needs 33 bytes of data, has {len(d)}")
        if_type = d[32]
        n = 6 if if_type in (0, 1) else 32
        return f"MAC({d[:n].hex()},{if_type})" if dec else f"MAC({d[:n].hex().upper()},0x{if_type:x})"
    if sub == 12:
        local, remote = d[0:4], d[4:8]
        lport, rport, proto, static = _u("<HHHB", d, 8)
        text = (f"IPv4({ipaddress.IPv4Address(bytes(remote))},{_ip_proto(proto)},"
                f"{'Static' if static else 'DHCP'},{ipaddress.IPv4Address(bytes(local))}")
        if len(d) >= 23:
            text += f",{ipaddress.IPv4Address(d[15:19])},{ipaddress.IPv4Address(d[19:23])}"
        return text + ")"
    if sub == 13:
        if len(d) < 36:
            raise _Short(f"IPv6 node needs at least 36 bytes of data, has {len(d)}")
        local, remote = d[0:16], d[16:32]
        lport, rport, proto = _u("<HHH", d, 32)
        text = f"IPv6({ipaddress.IPv6Address(remote)},{_ip_proto(proto)}"
        if len(d) >= 40:
            origin, prefix = d[38], d[39]
            text += "," + {0: "Static", 1: "StatelessAutoConfigure"}.get(origin, "StatefulAutoConfigure")
            text += f",{ipaddress.IPv6Address(local)}"
            if len(d) >= 56:
                text += f",0x{prefix:x},{ipaddress.IPv6Address(d[40:56])}"
        return text + ")"
    if sub == 14:
        _r, baud, bits, parity, stop = _u("<IQBBB", d)
        par = {0: "D", 1: "N", 2: "E", 3: "O", 4: "M", 5: "S"}.get(parity, f"0x{parity:x}")
        stp = {0: "D", 1: "1", 2: "1.5", 3: "2"}.get(stop, f"0x{stop:x}")
        return f"Uart({baud},{bits},{par},{stp})"
    if sub == 15:
        vid, pid, cls, subcls, proto = _u("<HHBBB", d)
        return f"UsbClass(0x{vid:x},0x{pid:x},0x{cls:x},0x{subcls:x},0x{proto:x})"
    if sub == 17:
        (lun,) = _u("<B", d)
        return f"Unit(0x{lun:x})"
    if sub == 18:
        hba, pm, lun = _u("<HHH", d)
        return f"Sata({hba},{pm},{lun})" if dec else f"Sata(0x{hba:x},0x{pm:x},0x{lun:x})"
    if sub == 20:
        (vlan,) = _u("<H", d)
        return f"Vlan({vlan})"
    if sub == 23:
        (nsid,) = _u("<I", d)
        eui = d[4:12]
        if len(eui) < 8:
            raise _Short("NVMe node needs a 64-bit EUI")
        return f"NVMe(0x{nsid:x}," + "-".join(f"{b:02X}" for b in reversed(eui)) + ")"
    if sub == 24:
        return f"Uri({d.decode('ascii', errors='replace')})"
    if sub == 26:
        (slot,) = _u("<B", d)
        return f"SD(0x{slot:x})"
    if sub == 29:
        (slot,) = _u("<B", d)
        return f"eMMC(0x{slot:x})"
    return None


def _media(sub: int, d: bytes, style: str) -> str | None:
    if sub == 1:
        part, start, size = _u("<IQQ", d)
        if len(d) < 38:
            raise _Short(f"HD node needs 38 bytes of data, has {len(d)}")
        sig, sig_type = d[20:36], d[37]  # d[36] is MBRType (1 MBR, 2 GPT), implied by sig_type
        if sig_type == 1:
            sig_text = f"MBR,0x{struct.unpack_from('<I', sig)[0]:08x}"
        elif sig_type == 2:
            sig_text = f"GPT,{_guid_text(sig, style)}"
        else:
            sig_text = f"{sig_type},0"
        return f"HD({part},{sig_text},0x{start:x},0x{size:x})"
    if sub == 2:
        entry, start, size = _u("<IQQ", d)
        return f"CDROM(0x{entry:x},0x{start:x},0x{size:x})"
    if sub == 3:
        return _vendor("VenMedia", d, style)
    if sub == 4:
        path = _ucs2(d)
        return f"File({path})" if style == "efivar" else path
    if sub == 5:
        return f"Media({_guid_text(_need(d, 16), style)})"
    if sub == 6:
        return f"FvFile({_guid_text(_need(d, 16), style)})"
    if sub == 7:
        return f"{'FvVol' if style == 'efivar' else 'Fv'}({_guid_text(_need(d, 16), style)})"
    if sub == 8:
        _r, start, end = _u("<IQQ", d)
        return f"Offset(0x{start:x},0x{end:x})"
    if sub == 9:
        start, end = _u("<QQ", d)
        if len(d) < 34:
            raise _Short(f"RamDisk node needs 34 bytes of data, has {len(d)}")
        (inst,) = _u("<H", d, 32)
        return f"RamDisk(0x{start:x},0x{end:x},{inst},{_guid_text(d[16:32], style)})"
    return None


def _need(d: bytes, n: int) -> bytes:
    if len(d) < n:
        raise _Short(f"needs {n} bytes of node data, has {len(d)}")
    return d[:n]


def _bbs(sub: int, d: bytes, style: str) -> str | None:
    if sub == 1:
        dtype, status = _u("<HH", d)
        name = {1: "Floppy", 2: "HD", 3: "CDROM", 4: "PCMCIA", 5: "USB", 6: "Network"}.get(dtype, f"0x{dtype:x}")
        return f"BBS({name},{_ascii(d[4:])},0x{status:x})"
    return None


_BY_TYPE = {HW: _hw, ACPI: _acpi, MSG: _msg, MEDIA: _media, BBS: _bbs}


_HEX = re.compile(r"0x([0-9a-f]+)")


def _node_text(dtype: int, sub: int, data: bytes, style: str) -> str:
    fn = _BY_TYPE.get(dtype)
    text = fn(sub, data, style) if fn else None
    if text is None:
        # DevicePathToText.c DevPathToTextNodeGeneric: Path(type,subtype,hex data)
        text = f"Path({dtype},{sub}" + (f",{data.hex().upper()}" if data else "") + ")"
    elif style == "uefi" and not (dtype == MEDIA and sub == 4) and not (dtype == MSG and sub == 24) \
            and dtype != BBS:
        # edk2's PrintLib prints %x digits in upper case ("Pci(0x1F,0x2)", "Sata(0x1,0xFFFF,0x0)");
        # file paths, URIs and BBS descriptions are text and stay as they are
        text = _HEX.sub(lambda m: "0x" + m.group(1).upper(), text)
    return text


def walk(raw: bytes, base_offset: int = 0, style: str = "uefi"):
    """Yield (offset, Type, SubType, Length, text or None) per node, then problems.

    Returns (nodes, problems); offsets are `base_offset` + position in `raw`.
    """
    raw = bytes(raw)
    nodes: list[tuple[int, int, int, int, str]] = []
    problems: list[Problem] = []
    pos = 0
    ended = False
    while pos < len(raw):
        if len(nodes) >= MAX_DEVICE_PATH_NODES:
            problems.append(Problem(base_offset + pos, Severity.ERROR,
                                    f"more than {MAX_DEVICE_PATH_NODES} device path nodes; stopped"))
            break
        if pos + 4 > len(raw):
            problems.append(Problem(base_offset + pos, Severity.ERROR,
                                    f"device path node header needs 4 bytes, {len(raw) - pos} left"))
            break
        dtype, sub, length = struct.unpack_from("<BBH", raw, pos)
        if length < 4:
            problems.append(Problem(base_offset + pos, Severity.ERROR,
                                    f"device path node Length {length} is below the 4-byte header"))
            break
        if pos + length > len(raw):
            problems.append(Problem(base_offset + pos, Severity.ERROR,
                                    f"device path node Length {length} runs past the end "
                                    f"({len(raw) - pos} bytes left)"))
            break
        data = raw[pos + 4:pos + length]
        if dtype == END:
            nodes.append((base_offset + pos, dtype, sub, length, "," if sub == END_INSTANCE else ""))
            pos += length
            if sub == END_ENTIRE:
                ended = True
                break
            continue
        try:
            text = _node_text(dtype, sub, data, style)
        except _Short as e:
            problems.append(Problem(base_offset + pos, Severity.ERROR,
                                    f"device path node type 0x{dtype:x} subtype 0x{sub:x}: {e}"))
            text = f"Path({dtype},{sub},{data.hex().upper()})"
        nodes.append((base_offset + pos, dtype, sub, length, text))
        pos += length
    if not ended and not problems and raw:
        problems.append(Problem(base_offset + pos, Severity.WARNING,
                                "device path has no End Entire node (0x7F/0xFF)"))
    if ended and pos < len(raw):
        problems.append(Problem(base_offset + pos, Severity.INFO,
                                f"{len(raw) - pos} bytes follow the End Entire node"))
    return nodes, problems


def _join(nodes) -> str:
    out = ""
    for _off, dtype, sub, _len, text in nodes:
        if dtype == END:
            if sub == END_INSTANCE:
                out += ","
            continue
        if out and not out.endswith(","):
            out += "/"
        out += text
    return out


def device_path_text(raw: bytes, style: str = "uefi", base_offset: int = 0) -> tuple[str, list[Problem]]:
    """The text form of a device path (UEFI spec §10.6) and the problems found on the way."""
    nodes, problems = walk(raw, base_offset, style)
    return _join(nodes), problems


def decode_device_path(space: Space, offset: int, size: int, style: str = "uefi") -> Node:
    """A `device-path` Node over `space.data[offset:offset+size]`, one `device-path-node` child per node."""
    data = space.data if space.data is not None else b""
    raw = bytes(data[offset:offset + size])
    nodes, problems = walk(raw, offset, style)
    text = _join(nodes)
    root = Node("device-path", text or "(empty device path)", space, offset, len(raw))
    root.add("DevicePath", text, offset, len(raw))
    for off, dtype, sub, length, node_text in nodes:
        child = Node("device-path-node", node_text or ("End" if dtype == END else ""), space, off, length)
        child.add("Type", dtype, off, 1)
        child.add("SubType", sub, off + 1, 1)
        child.add("Length", length, off + 2, 2)
        root.append(child)
    root.problems.extend(problems)
    return root


# EFI_LOAD_OPTION.FilePathList is a packed array of device paths (UEFI 2.10 §3.1.3); a few at most.
MAX_DEVICE_PATHS_IN_LIST = 16


def decode_device_path_list(space: Space, offset: int, size: int, style: str = "uefi") -> list[Node]:
    """Decode a packed array of device paths (a load option's FilePathList), one Node each."""
    out: list[Node] = []
    pos, end = offset, offset + size
    while pos < end and len(out) < MAX_DEVICE_PATHS_IN_LIST:
        dp = decode_device_path(space, pos, end - pos, style)
        ends = [c for c in dp.children if c.get("Type") == END and c.get("SubType") == END_ENTIRE]
        if ends:
            used = ends[0].offset + ends[0].size - pos
            dp.size = used
            dp.problems = [p for p in dp.problems if "follow the End Entire node" not in p.message]
        else:
            used = end - pos
        out.append(dp)
        if used <= 0:
            break
        pos += used
    if pos < end and out:
        out[-1].warn(pos, f"more than {MAX_DEVICE_PATHS_IN_LIST} device paths in the list; rest not decoded")
    return out
