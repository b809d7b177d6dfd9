"""TDVF Config-B (OvmfPkg/IntelTdx/IntelTdxX64.dsc, PEI-less) booted by QEMU 7.2 under TCG, which has
no TDX: SEC takes its non-TD path (OvmfPkg/IntelTdx/Sec/SecMain.c), PeilessStartup builds its own
HOB list (OvmfPkg/Library/PeilessStartupLib/Hob.c ConstructSecHobList), decompresses DXEFV into
pages allocated at run time and loads the DXE core from it (PeilessStartupLib/DxeLoad.c). The
session follows it reset -> SEC -> DXE core -> BDS.

Expected values come from the image and from QEMU's monitor, never from the session's own decoding:
- DXE core: the RIP at the stop is the image base + DxeCore's AddressOfEntryPoint read from the
  image, the PE header at that base (read with the monitor's `pmemsave`) is DxeCore's, the MODULE
  memory-allocation HOB DxeLoadCore built (BuildModuleHob) names that base and entry, `info
  registers` agrees on RIP and RCX, and RCX is the HOB list: a PHIT (HobType 1, Version 9) first,
  SYSTEM_MEMORY resource descriptors covering the guest's RAM: [0, 640 KiB) and [1 MiB, -m)
  (OvmfPkg/Library/PlatformInitLib/MemDetect.c QemuInitializeRamBelow1gb, PlatformQemuInitializeRam).
- DXEFV: once the DXE core runs, the session's DXEFV is the FV2 HOB named DXEFV (the realigned copy
  DXE dispatches from, EmbeddedPkg/Library/PrePiLib/FwVol.c FfsProcessFvFile), not the first
  decompressed copy, and its header is the image's DXEFV header.
- BDS: RIP = image base + BdsDxe's AddressOfEntryPoint, and the PE header there is BdsDxe's.
- `fwinspect qemu IMAGE --until bds --json` stops at BdsDxe's entry the same way.

Two boots: one session driven handoff by handoff, one through the CLI. QEMU ended by PID, every
wait bounded.
"""
from __future__ import annotations

import argparse
import json
import re
import struct
import uuid
from pathlib import Path

import pytest

from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.script import add_live_arguments
from inspector.live.session import Session
from tests.realdata import firmware, tool

MEMORY = "256M"
MEMORY_BYTES = 256 << 20
# Generous for 2 loaded cores: the whole boot to BdsDxe takes ~4 s under TCG here.
HANDOFF_TIMEOUT = 120.0
HOB_BYTES = 0x10000
PE_BYTES = 0x400
MODULE_HOB_GUID = uuid.UUID("f8e21975-0899-4f58-a4be-5525a9c6d77a")     # gEfiHobMemoryAllocModuleGuid
DXE_CORE_GUID = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")       # MdeModulePkg/Core/Dxe/DxeMain.inf
BDS_DXE_GUID = uuid.UUID("6d33944a-ec75-4855-a54d-809c75241f6c")        # MdeModulePkg/Universal/BdsDxe
DXEFV_GUID = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")          # IntelTdxX64.fdf [FV.DXEFV]
HOB_HANDOFF, HOB_MEMORY_ALLOCATION, HOB_RESOURCE_DESCRIPTOR, HOB_FV2 = 1, 2, 3, 9   # MdePkg/Include/Pi/PiHob.h
EFI_RESOURCE_SYSTEM_MEMORY = 0
# RAM the platform library describes: below 640 KiB, then from 1 MiB to the top (MemDetect.c).
EXPECTED_RAM = [(0, 640 << 10), (1 << 20, MEMORY_BYTES)]


def image_pe(img, guid):
    for f in img.root.find("ffs"):
        if f.get("Name") == guid:
            pe = next((c for c in f.walk() if c.kind == "pe"), None)
            if pe is not None:
                return pe
    raise AssertionError(f"{guid} not in the image")


def pe_header(raw: bytes) -> bytes:
    """'PE\\0\\0' through the COFF header and the optional header up to ImageBase (which the loader rewrites)."""
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    return raw[lfanew:lfanew + 4 + 20 + 24]


def walk_hobs(raw: bytes):
    """(HobType, bytes) of each HOB (PI vol. 3 5.2: HobType, HobLength), through END_OF_HOB_LIST."""
    off = 0
    while off + 8 <= len(raw):
        htype, hlen = struct.unpack_from("<HH", raw, off)
        yield htype, raw[off:off + hlen]
        if htype == 0xFFFF or hlen == 0:
            return
        off += hlen


def union(ranges):
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [tuple(r) for r in out]


class Boot:
    """Config-B driven handoff by handoff; at each stop QEMU's monitor reads what the tests check."""

    def __init__(self, path: Path, tmp: Path):
        self.image = load_image(path)
        self.tmp = tmp
        self.qemu = QemuProcess(path, memory=MEMORY).start()
        try:
            self.session = Session(self.qemu.attach("rsp"), self.image, self.qemu)
        except BaseException:
            self.qemu.close()
            raise
        self.stops, self.regs, self.raw = {}, {}, {}
        self.failure = None
        self.stops["reset"] = self.session.current()
        for _ in range(4):
            stop = self.session.next_handoff(HANDOFF_TIMEOUT)
            if stop.handoff is None:
                self.failure = stop
                break
            self.stops[stop.handoff] = stop
            self.regs[stop.handoff] = self.info_registers()
            base = stop.tree.get("ImageBase") if stop.tree is not None else None
            if base is not None:
                self.raw[stop.handoff] = self.pmemsave(base, PE_BYTES)
            if stop.handoff == "dxe-core":
                self.raw["hobs"] = self.pmemsave(self.regs["dxe-core"]["RCX"], HOB_BYTES)
                dxefv = self.session.handoffs.dxefv
                self.dxefv_base = self.session.copies.fv_ram_base(dxefv)
                self.raw["dxefv"] = self.pmemsave(self.dxefv_base, 0x48) if self.dxefv_base is not None else b""
                self.dxefv_header = bytes(dxefv.bytes[:0x48])
            if stop.handoff == "bds":
                break

    def info_registers(self) -> dict[str, int]:
        text = self.qemu.hmp("info registers")
        return {k: int(v, 16) for k, v in re.findall(r"\b(R[A-Z0-9]{1,2}|RIP)=([0-9a-f]{16})", text)}

    def pmemsave(self, address: int, size: int) -> bytes:
        out = self.tmp / f"mem-{address:x}-{size:x}.bin"
        self.qemu.qmp.execute("pmemsave", val=address, size=size, filename=str(out))
        return out.read_bytes()

    def close(self):
        self.session.close()


@pytest.fixture(scope="module")
def boot(tmp_path_factory):
    tool("qemu-system-x86_64", "qemu-system-x86")
    b = Boot(firmware("inteltdx/OVMF.fd"), tmp_path_factory.mktemp("configb"))
    yield b
    b.close()


def need(boot, phase):
    if phase not in boot.stops:
        pytest.fail(f"{phase} not reached: {boot.failure and (boot.failure.linear_rip, boot.failure.problems)}")
    return boot.stops[phase]


@pytest.mark.live
def test_configb_handoffs_are_reset_sec_dxe_core_bds(boot):
    assert boot.session.handoffs.phases() == ["reset", "sec", "dxe-core", "bds"]
    assert need(boot, "sec").linear_rip == boot.session.handoffs.sec_entry == 0xFFFD9B84


@pytest.mark.live
def test_configb_next_handoff_stops_at_dxe_core_entry_loaded_by_peiless_sec(boot):
    stop = need(boot, "dxe-core")
    pe = image_pe(boot.image, DXE_CORE_GUID)
    entry_rva, header = pe.get("AddressOfEntryPoint"), pe_header(pe.bytes)
    assert entry_rva == 0x14A58
    base = stop.tree.get("ImageBase")
    rip, mode, phase = stop.linear_rip, stop.mode, stop.phase
    assert (mode, phase) == ("long64", "dxe-core")
    assert rip == base + entry_rva
    assert boot.regs["dxe-core"]["RIP"] == rip
    assert pe_header(boot.raw["dxe-core"]) == header
    # DxeLoadCore's MODULE allocation HOB (PeilessStartupLib/DxeLoad.c BuildModuleHob): the base
    # (MemoryBaseAddress at 24) and the entry (EntryPoint at 64) the loader itself recorded.
    hobs = list(walk_hobs(boot.raw["hobs"]))
    module = [h for t, h in hobs if t == HOB_MEMORY_ALLOCATION and uuid.UUID(bytes_le=h[8:24]) == MODULE_HOB_GUID
              and uuid.UUID(bytes_le=h[48:64]) == DXE_CORE_GUID]
    assert len(module) == 1
    assert struct.unpack_from("<Q", module[0], 24)[0] == base
    assert struct.unpack_from("<Q", module[0], 64)[0] == rip


@pytest.mark.live
def test_configb_dxe_core_hob_list_in_rcx_starts_with_phit_and_covers_ram(boot):
    stop = need(boot, "dxe-core")
    rcx = boot.regs["dxe-core"]["RCX"]
    assert stop.registers["rcx"] == rcx
    hobs = list(walk_hobs(boot.raw["hobs"]))
    htype, phit = hobs[0]
    assert htype == HOB_HANDOFF and struct.unpack_from("<I", phit, 8)[0] == 9      # PHIT, version 9
    assert hobs[-1][0] == 0xFFFF
    ram = [(start, start + length) for t, h in hobs if t == HOB_RESOURCE_DESCRIPTOR
           and struct.unpack_from("<I", h, 24)[0] == EFI_RESOURCE_SYSTEM_MEMORY
           for start, length in [struct.unpack_from("<QQ", h, 32)]]
    assert union(ram) == EXPECTED_RAM
    decoded = next(stop.tree.find("hob-list"))
    address, types = decoded.get("Address"), [h.get("HobType") for h in decoded.children]
    assert address == rcx
    assert types == [t for t, _ in hobs]
    assert sorted(boot.session.boot.ram) == sorted((a, b - a) for a, b in ram)


@pytest.mark.live
def test_configb_dxefv_after_dxe_core_is_the_volume_its_fv2_hob_names(boot):
    need(boot, "dxe-core")
    fv2 = [struct.unpack_from("<Q", h, 8)[0] for t, h in walk_hobs(boot.raw["hobs"])
           if t == HOB_FV2 and uuid.UUID(bytes_le=h[24:40]) == DXEFV_GUID]
    assert len(fv2) == 1
    assert boot.dxefv_base == fv2[0]
    assert boot.raw["dxefv"] == boot.dxefv_header


@pytest.mark.live
def test_configb_next_handoff_stops_at_bds_dxe_entry(boot):
    stop = need(boot, "bds")
    pe = image_pe(boot.image, BDS_DXE_GUID)
    entry_rva, header = pe.get("AddressOfEntryPoint"), pe_header(pe.bytes)
    base = stop.tree.get("ImageBase")
    assert stop.linear_rip == base + entry_rva
    assert boot.regs["bds"]["RIP"] == stop.linear_rip
    assert pe_header(boot.raw["bds"]) == header
    assert (stop.mode, stop.phase, stop.module) == ("long64", "bds", "BdsDxe")


# ---- the scriptable path -------------------------------------------------------------------------

@pytest.mark.live
def test_configb_run_qemu_until_bds_prints_bds_dxe_entry(capsys):
    tool("qemu-system-x86_64", "qemu-system-x86")
    path = firmware("inteltdx/OVMF.fd")
    p = argparse.ArgumentParser()
    add_live_arguments(p.add_subparsers())
    a = p.parse_args(["qemu", str(path), "--until", "bds", "--json", "--timeout", str(HANDOFF_TIMEOUT)])
    assert a.func(a) == 0
    out = json.loads(capsys.readouterr().out)
    entry_rva = image_pe(load_image(path), BDS_DXE_GUID).get("AddressOfEntryPoint")
    fields = {f["name"]: f["value"] for f in out["tree"]["fields"]}
    assert (out["handoff"], out["mode"], out["module"]) == ("bds", "long64", "BdsDxe")
    assert out["linear_rip"] == out["registers"]["rip"] == fields["ImageBase"] + entry_rva
    assert out["problems"] == []
