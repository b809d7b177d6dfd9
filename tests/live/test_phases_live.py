"""The boot-phase session against a real QEMU 7.2 booting Debian's OVMF: reset -> SEC -> PEI core ->
DXE IPL -> DXE core -> BDS by next_handoff(), and the scriptable `fwinspect qemu --until PHASE --json`.

Expected values come from the images, the specs and the guest's own memory, never from our output:
- reset: linear 0xFFFFFFF0 in real mode (Intel SDM vol. 3A 9.1.4), bytes = the image's last 16;
- SEC: 4 GiB - image size + SEC PE offset + AddressOfEntryPoint; EBP = SECFV base, DI = 'BP'
  (OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm); flat 32-bit for an IA32 SEC, long mode for X64;
- PEI core: ImageBase + AddressOfEntryPoint of the PEI_CORE PE in PEIFV (build-time relocated), and
  the hand-off's BootFirmwareVolumeBase = ImageBase - the PE's offset in PEIFV (0x820000: [FD.MEMFD] of the .fdf);
- DXE IPL / DXE core / BDS: the PE header in guest memory at the image base equals the module's
  header in the image (read raw from the guest), and the DXE core entry equals the EntryPoint of the
  MODULE memory-allocation HOB DxeIpl built (parsed here with `struct`, PI vol. 3 5.4.3); RCX is a
  PHIT (HobType 1, Version 9) and the SYSTEM_MEMORY resource descriptors add up to -m less the legacy
  hole [640 KiB, 1 MiB) (OvmfPkg/PlatformPei MemDetect.c: RAM below 640 KiB, then from 1 MiB).

One QEMU per (image, backend) for the module, ended by PID; every wait bounded.
"""
from __future__ import annotations

import argparse
import json
import struct
import uuid
from pathlib import Path

import pytest

from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.script import add_live_arguments
from inspector.live.session import Session
from tests.realdata import bookworm, tool, trixie

FOUR_GIB = 1 << 32
MEMORY = "256M"
MEMORY_BYTES = 256 << 20
LEGACY_HOLE = (1 << 20) - (640 << 10)
# The whole boot to BdsDxe is ~5 s under TCG here; generous for 2 loaded cores.
HANDOFF_TIMEOUT = 60.0
MODULE_HOB_GUID = uuid.UUID("f8e21975-0899-4f58-a4be-5525a9c6d77a")     # gEfiHobMemoryAllocModuleGuid
DXE_CORE_GUID = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")
TEMP_RAM_SUPPORT_PPI = uuid.UUID("dbe23aa9-a345-4b97-85b6-b226f1617389")

# OvmfPkg/Sec/SecMain.c SecCoreStartupWithStack hands PEI the temporary RAM PcdOvmfSecPeiTempRamBase/
# Size ([FD.MEMFD] of OvmfPkg/OvmfPkgX64.fdf and OvmfPkgIa32X64.fdf, at MEMFD_BASE_ADDRESS 0x800000), its
# lower half as PEI's heap (PeiTemporaryRam), its upper half as the stack. edk2-stable202211 (bookworm)
# has 0x010000|0x010000; later releases put the SEC APIC page table at 0x010000 and start it at
# 0x011000|0x00F000 (trixie's 2025.02).
TEMP_RAM = {"bookworm": (0x810000, 0x10000), "trixie": (0x811000, 0xF000)}

# (dist, image, backend, tpm). With a TPM, Tcg2Pei hashes DXEFV before DxeIpl copies DxeCore out of
# it: the copy-following must not mistake the hash's reads for the loader's.
# Debian's two OVMF releases (bookworm's 2022.11, trixie's 2025.02), each image with both backends
# (the 4 MiB CODE images with their VARS), and once with a TPM, whose PEI module reads DXEFV while
# the handoff watches sit on it.
CONFIGS = [(dist, name, backend, False) for dist in ("bookworm", "trixie")
           for name in ("OVMF.fd", "OVMF_CODE_4M.fd") for backend in ("rsp", "gdb")] + \
          [("bookworm", "OVMF_CODE_4M.fd", "rsp", True)]


def image_path(dist: str, name: str):
    return bookworm(name) if dist == "bookworm" else trixie(name)


def pe_of(img, ffs_type=None, guid=None):
    for f in img.root.find("ffs"):
        if (ffs_type is not None and f.get("Type") == ffs_type) or (guid is not None and f.get("Name") == guid):
            pe = next((c for c in f.walk() if c.kind == "pe"), None)
            if pe is not None:
                return f, pe
    raise AssertionError("module not in image")


def pe_header(raw: bytes) -> bytes:
    """'PE\\0\\0' through the end of the COFF header and the optional header up to ImageBase."""
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    return raw[lfanew:lfanew + 4 + 20 + 24]


class Boot:
    """One boot driven handoff by handoff; what the tests need from guest memory is read at each stop."""

    def __init__(self, path, backend, tpm=False):
        self.path = path
        self.image = load_image(path)
        self.qemu = QemuProcess(path, memory=MEMORY, tpm=tpm).start()
        try:
            self.session = Session(self.qemu.attach(backend), self.image, self.qemu)
        except BaseException:
            self.qemu.close()
            raise
        self.stops = {}
        self.raw = {}
        first = self.session.current()
        self.stops[first.phase] = first
        for _ in range(6):
            stop = self.session.next_handoff(HANDOFF_TIMEOUT)
            if stop.handoff is None:
                self.failure = stop
                break
            self.stops[stop.handoff] = stop
            t = self.session.target
            if stop.tree is not None and stop.tree.get("ImageBase") is not None:
                self.raw[stop.handoff] = t.read_physical(stop.tree.get("ImageBase"), 0x400)
            if stop.handoff == "dxe-core":
                self.raw["hobs"] = t.read_physical(stop.registers["rcx"], 0x10000)
            if stop.handoff == "bds":
                break

    def close(self):
        self.session.close()


@pytest.fixture(scope="module", params=CONFIGS,
                ids=[f"{d}-{n}-{b}" + ("-tpm" if t else "") for d, n, b, t in CONFIGS])
def boot(request):
    dist, name, backend, tpm = request.param
    tool("qemu-system-x86_64", "qemu-system-x86")
    if backend == "gdb":
        tool("gdb", "gdb")
    if tpm:
        tool("swtpm", "swtpm")
    b = Boot(image_path(dist, name), backend, tpm)
    b.dist = dist
    yield b
    b.close()


def need(boot, phase):
    if phase not in boot.stops:
        pytest.fail(f"{phase} not reached: {getattr(boot, 'failure', None)}")
    return boot.stops[phase]


@pytest.mark.live
def test_session_starts_at_reset_vector_in_real_mode(boot):
    stop = need(boot, "reset")
    assert (stop.mode, stop.linear_rip, stop.phase) == ("real", 0xFFFFFFF0, "reset")
    assert stop.registers["cs_base"] == 0xFFFF0000
    assert stop.tree.get("ResetVectorBytes") == boot.path.read_bytes()[-16:]
    assert stop.disassembly[0][0] == 0xFFFFFFF0


@pytest.mark.live
def test_next_handoff_reaches_sec_entry_with_bfv_in_ebp(boot):
    stop = need(boot, "sec")
    sec, pe = pe_of(boot.image, ffs_type=3)
    base = FOUR_GIB - len(boot.image.data)
    fv = min((n for n in boot.image.root.find("fv") if n.space is boot.image.root.space
              and n.offset <= sec.offset < n.offset + n.size), key=lambda n: n.size)
    # Plain values only in asserts: pytest's repr of a Node would print its whole Space.
    entry, bfv, machine, ui = base + pe.offset + pe.get("AddressOfEntryPoint"), base + fv.offset, \
        pe.get("Machine"), sec.get("UI")
    rip, mode, regs = stop.linear_rip, stop.mode, dict(stop.registers)
    assert rip == entry
    assert regs["rbp"] & 0xFFFFFFFF == bfv
    assert regs["rdi"] & 0xFFFF == 0x5042
    assert mode == ("prot32" if machine == 0x14C else "long64")
    if mode == "prot32":
        assert regs["cs_base"] == 0          # flat
    assert stop.module == ui


@pytest.mark.live
def test_next_handoff_reaches_pei_core_with_sec_pei_handoff(boot):
    stop = need(boot, "pei-core")
    f, pe = pe_of(boot.image, ffs_type=4)
    peifv = next(n for n in boot.image.root.find("fv") if n.space is pe.space
                 and n.offset <= pe.offset < n.offset + n.size)
    entry = pe.get("ImageBase") + pe.get("AddressOfEntryPoint")
    peifv_ram, peifv_size = pe.get("ImageBase") - (pe.offset - peifv.offset), peifv.size
    assert stop.linear_rip == entry
    ho = {f.name: f.value for f in next(stop.tree.find("sec-pei-handoff")).fields}
    assert ho["BootFirmwareVolumeBase"] == peifv_ram == 0x820000
    assert ho["BootFirmwareVolumeSize"] == peifv_size
    assert ho["DataSize"] == (36 if stop.mode == "prot32" else 72)
    base, size = TEMP_RAM[boot.dist]
    assert (ho["TemporaryRamBase"], ho["TemporaryRamSize"]) == (base, size)
    assert (ho["PeiTemporaryRamBase"], ho["PeiTemporaryRamSize"]) == (base, size // 2)
    assert (ho["StackBase"], ho["StackSize"]) == (base + size // 2, size // 2)
    ppis = next(stop.tree.find("ppi-list"))
    guids_, last_flags = [d.get("GuidValue") for d in ppis.children], ppis.children[-1].get("Flags")
    assert TEMP_RAM_SUPPORT_PPI in guids_         # OvmfPkg/Sec/SecMain.c mPrivateDispatchTable
    assert last_flags & 0x80000000


@pytest.mark.live
def test_next_handoff_reaches_shadowed_dxe_ipl(boot):
    stop = need(boot, "dxe-ipl")
    _, pe = pe_of(boot.image, guid=uuid.UUID("86d70125-baa3-4296-a62f-602bebbb9081"))
    xip_base, entry_rva, machine, header = pe.get("ImageBase"), pe.get("AddressOfEntryPoint"), \
        pe.get("Machine"), pe_header(pe.bytes)
    base = stop.tree.get("ImageBase")
    assert base != xip_base                             # not the XIP copy in PEIFV (PcdShadowPeimOnBoot)
    assert stop.linear_rip == base + entry_rva
    assert pe_header(boot.raw["dxe-ipl"]) == header
    assert stop.mode == ("prot32" if machine == 0x14C else "long64")
    assert stop.phase == "dxe-ipl"


def _walk_hobs(raw: bytes):
    off = 0
    while off + 8 <= len(raw):
        htype, hlen = struct.unpack_from("<HH", raw, off)
        yield htype, raw[off:off + hlen]
        if htype == 0xFFFF or hlen == 0:
            return
        off += hlen


@pytest.mark.live
def test_next_handoff_reaches_dxe_core_with_phit_in_rcx(boot):
    stop = need(boot, "dxe-core")
    assert stop.mode == "long64"
    hobs = list(_walk_hobs(boot.raw["hobs"]))
    htype, phit = hobs[0]
    assert htype == 1 and struct.unpack_from("<I", phit, 8)[0] == 9          # PHIT, version 9
    # DxeIpl's MODULE allocation HOB for DxeCore carries the entry we stopped at (DxeLoad.c BuildModuleHob).
    module = [h for t, h in hobs if t == 2 and uuid.UUID(bytes_le=h[8:24]) == MODULE_HOB_GUID
              and uuid.UUID(bytes_le=h[48:64]) == DXE_CORE_GUID]
    assert len(module) == 1
    assert struct.unpack_from("<Q", module[0], 64)[0] == stop.linear_rip
    assert struct.unpack_from("<Q", module[0], 24)[0] == stop.tree.get("ImageBase")
    ram = sum(struct.unpack_from("<Q", h, 40)[0] for t, h in hobs
              if t == 3 and struct.unpack_from("<I", h, 24)[0] == 0)
    assert ram == MEMORY_BYTES - LEGACY_HOLE
    decoded = next(stop.tree.find("hob-list"))
    types, kinds = [h.get("HobType") for h in decoded.children], {h.kind for h in decoded.children}
    assert types == [t for t, _ in hobs]
    assert kinds == {"hob"}
    pages = next(stop.tree.find("page-tables"))
    cr3, mapped = pages.get("CR3"), pages.get("MappedBytes")
    assert cr3 == stop.registers["cr3"]
    assert mapped >= MEMORY_BYTES
    header = pe_header(pe_of(boot.image, ffs_type=5)[1].bytes)
    assert pe_header(boot.raw["dxe-core"]) == header


@pytest.mark.live
def test_next_handoff_reaches_bds_dxe_entry_with_system_table(boot):
    stop = need(boot, "bds")
    _, pe = pe_of(boot.image, guid=uuid.UUID("6d33944a-ec75-4855-a54d-809c75241f6c"))
    entry_rva, header = pe.get("AddressOfEntryPoint"), pe_header(pe.bytes)
    assert stop.linear_rip == stop.tree.get("ImageBase") + entry_rva
    assert pe_header(boot.raw["bds"]) == header
    assert (stop.mode, stop.phase, stop.module) == ("long64", "bds", "BdsDxe")
    signature = next(stop.tree.find("efi-system-table")).get("Hdr.Signature")
    assert signature == b"IBI SYST"


# ---- the scriptable path -------------------------------------------------------------------------

def _args(*argv):
    p = argparse.ArgumentParser()
    add_live_arguments(p.add_subparsers())
    return p.parse_args(list(argv))


@pytest.mark.live
def test_run_qemu_until_dxe_core_prints_hob_json(capsys):
    tool("qemu-system-x86_64", "qemu-system-x86")
    path = bookworm("OVMF.fd")
    a = _args("qemu", str(path), "--until", "dxe-core", "--json", "--timeout", str(HANDOFF_TIMEOUT))
    assert a.func(a) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["phase"], out["handoff"], out["mode"]) == ("dxe-core", "dxe-core", "long64")
    assert out["linear_rip"] == out["registers"]["rip"]
    hob_list = next(c for c in out["tree"]["children"] if c["kind"] == "hob-list")
    assert hob_list["children"][0]["kind"] == "hob"
    fields = {f["name"]: f["value"] for f in hob_list["children"][0]["fields"]}
    assert fields["HobType"] == 1 and fields["Version"] == 9
    assert hob_list["children"][-1]["fields"][0] == {**hob_list["children"][-1]["fields"][0], "value": 0xFFFF}


@pytest.mark.live
def test_run_qemu_until_unreachable_in_time_exits_1(capsys):
    tool("qemu-system-x86_64", "qemu-system-x86")
    a = _args("qemu", str(bookworm("OVMF.fd")), "--until", "bds", "--timeout", "0.5")
    assert a.func(a) == 1
    assert "not reached" in capsys.readouterr().err


@pytest.mark.live
def test_run_attach_until_pei_core_on_a_running_gdbstub(capsys):
    tool("qemu-system-x86_64", "qemu-system-x86")
    path = bookworm("OVMF.fd")
    with QemuProcess(path, memory=MEMORY) as q:
        host, port = q.gdb_address
        a = _args("attach", f"{host}:{port}", "--image", str(path), "--until", "pei-core", "--json")
        assert a.func(a) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["handoff"], out["mode"]) == ("pei-core", "long64")
        handoff = next(c for c in out["tree"]["children"] if c["kind"] == "sec-pei-handoff")
        fields = {f["name"]: f["value"] for f in handoff["fields"]}
        assert fields["BootFirmwareVolumeBase"] == 0x820000      # PcdOvmfPeiMemFvBase, 2022.11
        assert q.alive()                 # attach leaves someone else's QEMU running


def test_cli_records_every_handoff_and_replays_them(tmp_path):
    """`fwinspect qemu IMAGE --until dxe-core --record F` then `fwinspect replay F --json`: the
    recording holds one stop per handoff, in boot order, and the last is the DXE core entry."""
    import subprocess
    import sys

    from tests.realdata import bookworm, tool

    tool("qemu-system-x86_64", "qemu-system-x86")
    repo = Path(__file__).resolve().parents[2]
    rec = tmp_path / "boot.fwrec"
    r = subprocess.run([sys.executable, "-m", "inspector.cli", "qemu", str(bookworm("OVMF.fd")), "--until",
                        "dxe-core", "--json", "--record", str(rec)], capture_output=True, text=True,
                       timeout=180, cwd=repo)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["handoff"] == "dxe-core"
    r = subprocess.run([sys.executable, "-m", "inspector.cli", "replay", str(rec), "--json"],
                       capture_output=True, text=True, timeout=60, cwd=repo)
    stops = [json.loads(line) for line in r.stdout.splitlines()]
    assert [s["handoff"] for s in stops] == ["reset", "sec", "pei-core", "dxe-ipl", "dxe-core"]
    assert stops[0]["linear_rip"] == 0xFFFFFFF0 and stops[0]["mode"] == "real"
    hobs = [n for n in stops[-1]["tree"]["children"] if n["kind"] == "hob-list"]
    assert hobs and hobs[0]["children"][0]["fields"][0]["value"] == 1  # PHIT first (HobType 1)
