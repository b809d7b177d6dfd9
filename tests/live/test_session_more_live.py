"""Breakpoints by module, image-load events, DXE tables at every stop, the debugcon log and the gdb
script, against a real QEMU 7.2 booting Debian's OVMF_CODE_4M.fd with a swtpm TPM 2.0.

Expected values come from the image, the guest's memory and the anchor tools, never our output:
- PlatformPei (a pre-memory PEIM, XIP in PEIFV): RIP = its PE ImageBase + AddressOfEntryPoint read
  with `struct` from the image (PEIFV is build-time relocated: [FD.MEMFD] of the .fdf);
- BdsDxe (a DXEFV driver, ImageBase 0 in the image): RIP = the ImageBase of the loaded image whose
  FvFile is BdsDxe's GUID, read from the guest's own debug image info table with `struct`, plus the
  entry RVA; and the PE header at that base equals BdsDxe's in the image;
- ACPI tables: the bytes read raw from the guest sum to 0 (ACPI 6.5 5.2.6);
- the TCG2 log: tpm2_eventlog on the same bytes lists the same number of events;
- debugcon: bytes written to I/O port 0x402 through the monitor's `o` command appear in Stop.log
  (Debian's release OVMF writes nothing there itself: a RELEASE build has no DEBUG output).
One QEMU for the module, ended by PID; every wait bounded.
"""
from __future__ import annotations

import struct
import subprocess
import uuid

import pytest

from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.session import Session
from tests.realdata import bookworm, tool

TIMEOUT = 90.0
BDS_DXE = uuid.UUID("6d33944a-ec75-4855-a54d-809c75241f6c")
DEBUG_IMAGE_INFO_TABLE = uuid.UUID("49152e77-1ada-4764-b7a2-7afefed95e8b")
DEBUGCON_TEXT = "fwinspect-debugcon\n"
# Let the guest run on past BdsDxe's entry until the platform BDS has installed ACPI (QEMU's
# fw_cfg tables, OvmfPkg/AcpiPlatformDxe) and Tcg2Dxe its log: the UEFI shell is up by then.
SETTLE = 15.0


def pe_fields(raw: bytes) -> dict:
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    nsec = struct.unpack_from("<H", raw, lfanew + 6)[0]
    opt = struct.unpack_from("<H", raw, lfanew + 20)[0]
    magic = struct.unpack_from("<H", raw, lfanew + 24)[0]
    entry = struct.unpack_from("<I", raw, lfanew + 24 + 16)[0]
    base = struct.unpack_from("<Q" if magic == 0x20B else "<I", raw, lfanew + 24 + (24 if magic == 0x20B else 28))[0]
    text = None
    for i in range(nsec):
        name, _vs, va = struct.unpack_from("<8sII", raw, lfanew + 24 + opt + 40 * i)
        if name.rstrip(b"\0") == b".text":
            text = va
    return {"entry": entry, "base": base, "text": text, "header": raw[lfanew:lfanew + 48]}


def module_pe(img, ui: str) -> bytes:
    ffs = next(f for f in img.root.find("ffs") if f.get("UI") == ui)
    return bytes(next(c for c in ffs.walk() if c.kind == "pe").bytes)


class Run:
    def __init__(self):
        tool("qemu-system-x86_64", "qemu-system-x86")
        tool("swtpm", "swtpm")
        self.path = bookworm("OVMF_CODE_4M.fd")
        self.image = load_image(self.path)
        self.qemu = QemuProcess(self.path, memory="256M", tpm=True).start()
        try:
            self.session = Session(self.qemu.attach("rsp"), self.image, self.qemu)
            self._drive()
        except BaseException:
            self.session.close() if hasattr(self, "session") else self.qemu.close()
            raise

    def _drive(self):
        s, t = self.session, self.session.target
        self.reset = s.current()
        self.pei_bp = s.add_breakpoint("PlatformPei")
        bds = pe_fields(module_pe(self.image, "BdsDxe"))
        self.bds_bp = s.add_breakpoint(f"BdsDxe+0x{bds['entry']:x}")
        self.pei_pending, self.bds_pending = self.pei_bp.pending, self.bds_bp.pending
        self.pei_stop = s.cont(TIMEOUT)
        self.bds_stop = s.cont(TIMEOUT)
        self.bds_base = self._guest_image_base(BDS_DXE)
        self.bds_header = t.read_physical(self.bds_base, 0x400) if self.bds_base is not None else b""
        for ch in DEBUGCON_TEXT.encode():
            t.monitor(f"o /b 0x402 0x{ch:x}")
        self.step_stop = s.step()
        s.remove_breakpoint(self.bds_bp.spec)
        self.late = s.cont(SETTLE)              # no breakpoint left: times out, interrupts, decodes
        self.script = s.gdb_script()
        self.raw_tables = {}
        acpi = next(self.late.tree.find("acpi"), None) if self.late.tree is not None else None
        for table in (acpi.children if acpi is not None else []):
            if table.kind == "acpi-table" and table.space is not None and table.space.base:
                sig = bytes(table.bytes[:4]).decode("ascii", "replace")
                length = struct.unpack_from("<I", bytes(table.bytes[:8]), 4)[0]
                self.raw_tables[sig] = t.read_physical(table.space.base, length)

    def _guest_image_base(self, file_guid):
        """ImageBase of the loaded image from FvFile `file_guid`, straight from guest memory:
        system table pointer -> config tables -> EFI_DEBUG_IMAGE_INFO_TABLE_HEADER -> entries ->
        EFI_LOADED_IMAGE_PROTOCOL (UEFI 2.10 4.3, 9.1, 18.4.3) -> FilePath media FW file node (4/6)."""
        t = self.session.target
        rd = t.read_physical
        hdr = None
        for addr in range(0x10000000 - 0x400000, 0, -0x400000):
            if rd(addr, 8) == b"IBI SYST":
                st = struct.unpack_from("<Q", rd(addr + 8, 8))[0]
                n, cfg = struct.unpack_from("<QQ", rd(st + 104, 16))
                for i in range(n):
                    e = rd(cfg + 24 * i, 24)
                    if uuid.UUID(bytes_le=e[:16]) == DEBUG_IMAGE_INFO_TABLE:
                        hdr = struct.unpack_from("<Q", e, 16)[0]
                break
        assert hdr is not None
        _status, size, table = struct.unpack("<IIQ", rd(hdr, 16))
        ptrs = [p for (p,) in struct.iter_unpack("<Q", rd(table, (size + 64) * 8)) if p][:size]
        for p in ptrs:
            li = struct.unpack_from("<Q", rd(p, 16), 8)[0]
            raw = rd(li, 0x60)
            file_path, image_base = struct.unpack_from("<Q", raw, 0x20)[0], struct.unpack_from("<Q", raw, 0x40)[0]
            for _ in range(8):
                if not file_path:
                    break
                typ, sub, length = struct.unpack("<BBH", rd(file_path, 4))
                if typ == 4 and sub == 6 and uuid.UUID(bytes_le=rd(file_path + 4, 16)) == file_guid:
                    return image_base
                if typ == 0x7F or length < 4:
                    break
                file_path += length
        return None

    def close(self):
        self.session.close()


@pytest.fixture(scope="module")
def run():
    r = Run()
    yield r
    r.close()


@pytest.mark.live
def test_peim_breakpoint_by_name_hits_its_xip_entry(run):
    pe = pe_fields(module_pe(run.image, "PlatformPei"))
    stop = run.pei_stop
    assert not run.pei_pending
    assert (stop.reason, stop.linear_rip, stop.module) == ("breakpoint", pe["base"] + pe["entry"], "PlatformPei")
    assert stop.mode == "prot32"                     # IA32 PEI in OVMF_CODE_4M (OvmfPkgIa32X64.fdf)


@pytest.mark.live
def test_pending_dxe_breakpoint_set_at_reset_hits_at_loaded_image_base_plus_offset(run):
    pe = pe_fields(module_pe(run.image, "BdsDxe"))
    stop = run.bds_stop
    assert run.reset.linear_rip == 0xFFFFFFF0 and run.bds_pending
    assert run.bds_base is not None
    assert (stop.reason, stop.linear_rip) == ("breakpoint", run.bds_base + pe["entry"])
    assert pe_fields(run.bds_header)["header"][:24] == pe["header"][:24]
    assert stop.mode == "long64" and stop.module == "BdsDxe"
    assert run.session.load_events > 0 and not stop.problems


@pytest.mark.live
def test_dxe_stop_tree_lists_loaded_images_named_by_ui(run):
    tree = run.bds_stop.tree
    dbg = next(tree.find("efi-debug-image-info-table"))
    names = {c.get("Name") for c in dbg.children}
    assert {"DxeCore", "BdsDxe", "Tcg2Dxe"} <= names
    bds = next(c for c in dbg.children if c.get("Name") == "BdsDxe")
    assert bds.get("ImageBase") == run.bds_base


@pytest.mark.live
def test_acpi_tables_found_with_valid_checksums(run):
    assert {"FACP", "DSDT", "APIC"} <= set(run.raw_tables)
    for sig, raw in run.raw_tables.items():
        if sig != "FACS":                            # FACS has no checksum (ACPI 6.5 5.2.10)
            assert sum(raw) & 0xFF == 0, sig


@pytest.mark.live
def test_tcg2_event_log_decodes_like_tpm2_eventlog(run, tmp_path):
    tool("tpm2_eventlog", "tpm2-tools")
    logs = [n for n in run.late.tree.find("event-log")]
    assert logs, [c.title for c in run.late.tree.children]
    log = logs[0]
    data = bytes(log.space.data)
    events = [c for c in log.children if c.kind == "event"]
    assert not [p for p in log.problems if p.severity == "error"]
    f = tmp_path / "log.bin"
    f.write_bytes(data)
    out = subprocess.run(["tpm2_eventlog", str(f)], capture_output=True, text=True, timeout=60).stdout
    assert len(events) == out.count("- EventNum:")
    assert len(events) > 5


@pytest.mark.live
def test_debugcon_bytes_written_to_port_0x402_appear_in_stop_log(run):
    assert hasattr(run.reset, "log")
    assert run.step_stop.log.endswith(DEBUGCON_TEXT)


@pytest.mark.live
def test_console_on_rsp_is_qemus_monitor(run):
    """On the RSP backend the app's console goes to QEMU's monitor (qRcmd)."""
    answer = run.session.console("info registers")
    assert "CS =" in answer and "CR0=" in answer


@pytest.mark.live
def test_gdb_script_has_bds_dxe_at_image_base_plus_text_rva(run):
    text = pe_fields(run.bds_header)["text"]
    assert f"add-symbol-file BdsDxe.debug 0x{run.bds_base + text:x}" in run.script.splitlines()


@pytest.mark.live
def test_cli_break_on_pending_module_with_symbols_and_gdb_script(tmp_path, capsys):
    """`fwinspect qemu OVMF.fd --break BdsDxe --symbols DEBUG --gdb-script F --json` on our DEBUG
    build with its own .debug files: runs to BdsDxe's entry, names it `_ModuleEntryPoint` with
    addr2line's line, and writes an add-symbol-file line at ImageBase + the loaded PE's .text RVA."""
    import argparse
    import json

    from inspector.live.script import add_live_arguments
    from tests.realdata import debug_symbols, firmware
    tool("qemu-system-x86_64", "qemu-system-x86")
    symdir = debug_symbols()
    script = tmp_path / "syms.gdb"
    path = firmware("ovmf-debug/OVMF.fd")
    p = argparse.ArgumentParser()
    add_live_arguments(p.add_subparsers())
    a = p.parse_args(["qemu", str(path), "--break", "BdsDxe", "--symbols", str(symdir),
                      "--gdb-script", str(script), "--json", "--timeout", str(TIMEOUT)])
    assert a.func(a) == 0
    out = json.loads(capsys.readouterr().out)
    bds = pe_fields(module_pe(load_image(path), "BdsDxe"))
    sym = next(c for c in out["tree"]["children"] if c["kind"] == "symbol")
    fields = {f["name"]: f["value"] for f in sym["fields"]}
    where = subprocess.run(["addr2line", "-e", str(symdir / "BdsDxe.debug"), hex(fields["ElfAddress"])],
                           capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    assert out["reason"] == "breakpoint" and out["module"].startswith("BdsDxe!_ModuleEntryPoint at ")
    assert out["linear_rip"] == fields["ImageBase"] + bds["entry"]
    assert f'{fields["File"]}:{fields["Line"]}' == where
    assert f"add-symbol-file {symdir / 'BdsDxe.debug'} 0x{fields['ImageBase'] + bds['text']:x}" in \
        script.read_text().splitlines()


@pytest.mark.live
def test_pending_breakpoint_by_guid_works_over_the_gdb_backend():
    """The same image-load watch through gdb/MI (pygdbmi): a breakpoint by file GUID + entry RVA."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    tool("gdb", "gdb")
    path = bookworm("OVMF.fd")
    img = load_image(path)
    entry = pe_fields(module_pe(img, "BdsDxe"))["entry"]
    q = QemuProcess(path, memory="256M").start()
    s = None
    try:
        s = Session(q.attach("gdb"), img, q)
        s.current()
        bp = s.add_breakpoint(f"{str(BDS_DXE).upper()}+0x{entry:x}")
        stop = s.cont(TIMEOUT)
        header = s.target.read_physical(stop.linear_rip - entry, 0x400)
        assert (stop.reason, stop.module, bp.module) == ("breakpoint", "BdsDxe", "BdsDxe")
        assert pe_fields(header)["header"][:24] == pe_fields(module_pe(img, "BdsDxe"))["header"][:24]
        # The app's console on this backend is gdb's CLI: it agrees with the stop's registers.
        answer = s.console("info registers rip")
        assert f"0x{stop.linear_rip:x}" in answer
    finally:
        if s is not None:
            s.close()
        else:
            q.close()
