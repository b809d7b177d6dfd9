"""DEPEX decoding (decoders/depex.py): every dependency section of Debian's real OVMF images against
UEFIExtract's own parse of the same bytes and against the [Depex] sections of edk2's .inf files;
hand-built opcode streams for the malformed cases."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from decoders import guids
from decoders.depex import MAX_OPCODES, MAX_STACK, decode_depex
from decoders.model import Node, Space
from tests.realdata import bookworm, tool, trixie


@dataclass
class DepexBody:
    module: str  # UI name of the FFS file, from UEFIExtract's folder name
    phase: str
    data: bytes
    uefiextract: list[str]  # UEFIExtract's "Parsed expression" lines: "PUSH <GUID>", "AND", "END"


_CACHE: dict[str, list[DepexBody]] = {}


def depex_sections(image: Path, tmp: Path) -> list[DepexBody]:
    key = str(image)
    if key in _CACHE:
        return _CACHE[key]
    exe = tool("UEFIExtract", "uefitool-cli")
    copy = tmp / image.name
    copy.write_bytes(image.read_bytes())
    subprocess.run([exe, str(copy), "dump"], check=True, capture_output=True, timeout=120)
    out = []
    for dirpath, _dirs, files in os.walk(str(copy) + ".dump"):
        d = Path(dirpath)
        if d.name.endswith("dependency section") and "body.bin" in files:
            phase = {"PEI": "pei", "DXE": "dxe", "MM": "mm", "SMM": "mm"}[d.name.split()[1]]
            info = (d / "info.txt").read_text(errors="replace")
            parsed = info.split("Parsed expression:", 1)[1].strip().splitlines()
            out.append(DepexBody(d.parent.name.split(" ", 1)[1], phase, (d / "body.bin").read_bytes(), parsed))
    _CACHE[key] = out
    return out


def decode(body: DepexBody) -> Node:
    return decode_depex(Space(body.module, body.data), 0, len(body.data), body.phase)


def opcodes(node: Node) -> list[str]:
    return [f.name + (f" {str(f.value).upper()}" if f.name in ("PUSH", "BEFORE", "AFTER") else "")
            for f in node.fields if f.name != "Expression"]


# The secboot builds have SMM (SMM_REQUIRE), so MM DEPEX sections (type 0x1C) too.
IMAGES = [("bookworm", "OVMF.fd"), ("bookworm", "OVMF_CODE_4M.fd"), ("bookworm", "OVMF_CODE_4M.secboot.fd"),
          ("trixie", "OVMF.fd"), ("trixie", "OVMF_CODE_4M.secboot.fd")]


@pytest.mark.real
@pytest.mark.parametrize("which,name", IMAGES)
def test_every_real_depex_matches_uefiextract_and_is_named(tmp_path, which, name):
    image = bookworm(name) if which == "bookworm" else trixie(name)
    bodies = depex_sections(image, tmp_path)
    assert len(bodies) > 50
    if "secboot" in name:
        assert {"pei", "dxe", "mm"} <= {b.phase for b in bodies}
    for body in bodies:
        node = decode(body)
        assert node.kind == "depex"
        assert not node.problems, (body.module, node.problems)
        assert opcodes(node) == body.uefiextract, body.module
        for f in node.fields:
            if f.name == "PUSH":
                assert guids.name(f.value), f"{body.module}: {f.value} has no name"
                assert guids.name(f.value) in node.get("Expression")


# The module's own [Depex] in edk2 2022.11 (the .inf named). The build ANDs the [Depex] of the
# libraries a module links (PeiPcdLib: gEfiPeiPcdPpiGuid, DxePcdLib: gEfiPcdProtocolGuid,
# QemuFwCfgDxeLib: gEdkiiIoMmuProtocolGuid OR gIoMmuAbsentProtocolGuid, ...) after it.
INF_DEPEX = {
    "DxeIpl": "gEfiPeiLoadFilePpiGuid AND gEfiPeiMasterBootModePpiGuid",  # MdeModulePkg/Core/DxeIplPeim/DxeIpl.inf
    "Tcg2Pei": "gEfiPeiMasterBootModePpiGuid AND gEfiTpmDeviceSelectedGuid",  # SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.inf
    "Tcg2ConfigPei": "gOvmfTpmMmioAccessiblePpiGuid",  # OvmfPkg/Tcg/Tcg2Config/Tcg2ConfigPei.inf
    "StatusCodeHandlerPei": "gEfiPeiRscHandlerPpiGuid",  # MdeModulePkg/Universal/StatusCodeHandler/Pei/
    "Tcg2PlatformPei": "gEfiTpmDeviceSelectedGuid",  # SecurityPkg/Tcg/Tcg2PlatformPei/Tcg2PlatformPei.inf
    "TpmMmioSevDecryptPei": "gEfiPeiMemoryDiscoveredPpiGuid",  # OvmfPkg/Tcg/TpmMmioSevDecryptPei/
    "LocalApicTimerDxe": "gEfiCpuArchProtocolGuid",  # OvmfPkg/LocalApicTimerDxe/LocalApicTimerDxe.inf
    "PciHostBridgeDxe": "gEfiCpuIo2ProtocolGuid AND gEfiCpuArchProtocolGuid",  # MdeModulePkg/Bus/Pci/PciHostBridgeDxe/
    "FaultTolerantWriteDxe": "gEfiFirmwareVolumeBlockProtocolGuid AND gEfiRuntimeArchProtocolGuid",
    "WatchdogTimer": "gEfiTimerArchProtocolGuid",  # MdeModulePkg/Universal/WatchdogTimerDxe/WatchdogTimer.inf
    "QemuFwCfgAcpiPlatform": "gEfiAcpiTableProtocolGuid",  # OvmfPkg/AcpiPlatformDxe/AcpiPlatformDxe.inf
    "LogoDxe": "gEfiHiiDatabaseProtocolGuid AND gEfiHiiImageExProtocolGuid",  # MdeModulePkg/Logo/LogoDxe.inf
    "SmbiosPlatformDxe": "gEfiSmbiosProtocolGuid",  # OvmfPkg/SmbiosPlatformDxe/SmbiosPlatformDxe.inf
    "MonotonicCounterRuntimeDxe": "gEfiVariableArchProtocolGuid AND gEfiVariableWriteArchProtocolGuid",
    "PcRtc": "gEfiVariableArchProtocolGuid AND gEfiVariableWriteArchProtocolGuid",  # PcAtChipsetPkg/Pcat...Dxe.inf
    "DevicePathDxe": "TRUE",  # MdeModulePkg/Universal/DevicePathDxe/DevicePathDxe.inf
}


@pytest.mark.real
def test_real_depex_expressions_follow_the_edk2_inf_files(tmp_path):
    bodies = {b.module: b for b in depex_sections(bookworm("OVMF.fd"), tmp_path)}
    for module, inf in INF_DEPEX.items():
        expr = decode(bodies[module]).get("Expression")
        assert expr == inf or expr.startswith(inf + " AND "), (module, expr)
    # PlatformPei's own [Depex] is TRUE (OvmfPkg/PlatformPei/PlatformPei.inf); what remains is
    # PeiPcdLib's (MdePkg/Library/PeiPcdLib/PeiPcdLib.inf).
    assert decode(bodies["PlatformPei"]).get("Expression") == "gEfiPeiPcdPpiGuid"
    # QemuFwCfgDxeLib.inf: "gEdkiiIoMmuProtocolGuid OR gIoMmuAbsentProtocolGuid", ANDed in: needs brackets.
    assert "AND (gEdkiiIoMmuProtocolGuid OR gIoMmuAbsentProtocolGuid)" in \
        decode(bodies["QemuFwCfgAcpiPlatform"]).get("Expression")
    assert decode(bodies["DxeIpl"]).title == \
        "PEI DEPEX: gEfiPeiLoadFilePpiGuid AND gEfiPeiMasterBootModePpiGuid AND gEfiPeiPcdPpiGuid"


# -- hand-built ------------------------------------------------------------------------------------
G = {n: guids.lookup(n) for n in ("gEfiPeiMemoryDiscoveredPpiGuid", "gPcdPpiGuid", "gEfiCpuArchProtocolGuid",
                                  "gEfiTimerArchProtocolGuid")}


def push(name: str) -> bytes:
    return b"\x02" + G[name].bytes_le


def run(data: bytes, phase="dxe") -> Node:
    return decode_depex(Space("t", data), 0, len(data), phase)


def msgs(node: Node) -> list[str]:
    return [p.message for p in node.problems]


def test_pei_and_expression_reads_as_infix():
    node = run(push("gEfiPeiMemoryDiscoveredPpiGuid") + push("gPcdPpiGuid") + b"\x03\x08", "pei")
    assert node.get("Expression") == "gEfiPeiMemoryDiscoveredPpiGuid AND gPcdPpiGuid"
    assert [f.name for f in node.fields] == ["Expression", "PUSH", "PUSH", "AND", "END"]
    assert [f.offset for f in node.fields[1:]] == [0, 17, 34, 35]
    assert not node.problems


def test_every_opcode_named_as_in_pidependency_h():
    """EFI_DEP_BEFORE 0x00 ... EFI_DEP_SOR 0x09 (PiDependency.h): each opcode's field has its name."""
    g = G["gEfiCpuArchProtocolGuid"].bytes_le
    assert [f.name for f in run(b"\x00" + g + b"\x08").fields[1:]] == ["BEFORE", "END"]
    assert [f.name for f in run(b"\x01" + g + b"\x08").fields[1:]] == ["AFTER", "END"]
    node = run(b"\x09" + push("gEfiCpuArchProtocolGuid") + b"\x06\x03\x07\x04\x05\x08")
    assert [f.name for f in node.fields[1:]] == ["SOR", "PUSH", "TRUE", "AND", "FALSE", "OR", "NOT", "END"]
    assert [f.value for f in node.fields[1:]] == [0x09, G["gEfiCpuArchProtocolGuid"], 0x06, 0x03, 0x07, 0x04,
                                                  0x05, 0x08]
    assert not node.problems


def test_not_or_and_precedence():
    data = (push("gEfiCpuArchProtocolGuid") + push("gEfiTimerArchProtocolGuid") + b"\x04\x05"
            + b"\x06\x03\x08")
    assert run(data).get("Expression") == "NOT (gEfiCpuArchProtocolGuid OR gEfiTimerArchProtocolGuid) AND TRUE"


def test_before_after_sor():
    g = G["gEfiCpuArchProtocolGuid"].bytes_le
    assert run(b"\x00" + g + b"\x08").get("Expression") == "BEFORE gEfiCpuArchProtocolGuid"
    assert run(b"\x01" + g + b"\x08").get("Expression") == "AFTER gEfiCpuArchProtocolGuid"
    node = run(b"\x09" + push("gEfiCpuArchProtocolGuid") + b"\x08")
    assert node.get("Expression") == "SOR gEfiCpuArchProtocolGuid" and not node.problems
    assert any("not allowed in a PEI" in m for m in msgs(run(b"\x00" + g + b"\x08", "pei")))
    assert any("SOR is not allowed in a MM" in m for m in msgs(run(b"\x09\x06\x08", "mm")))
    assert any("only be the first opcode" in m for m in msgs(run(b"\x06\x09\x08")))
    assert any("followed directly by END" in m for m in msgs(run(b"\x00" + g + b"\x06\x08")))


def test_unknown_opcode():
    node = run(b"\x06\x42\x08")
    assert any("unknown DEPEX opcode 0x42" in m for m in msgs(node))
    assert node.problems[0].offset == 1


def test_missing_end_and_empty():
    assert any("missing END" in m for m in msgs(run(b"\x06")))
    assert any("missing END" in m for m in msgs(run(b"")))


def test_truncated_guid():
    node = run(b"\x02" + bytes(7))
    assert any("needs a 16-byte GUID, only 7 bytes left" in m for m in msgs(node))


def test_stack_underflow_and_leftovers():
    assert any("stack underflow: AND" in m for m in msgs(run(b"\x06\x03\x08")))
    assert any("stack underflow: NOT" in m for m in msgs(run(b"\x05\x08")))
    assert any("2 values on the stack" in m for m in msgs(run(b"\x06\x07\x08")))


def test_stack_overflow_is_bounded():
    node = run(b"\x06" * (MAX_STACK + 5) + b"\x08")
    assert any("stack overflow" in m for m in msgs(node))


def test_hostile_long_streams_are_bounded():
    node = run(b"\x06" + b"\x05" * 100_000 + b"\x08")
    assert any(f"more than {MAX_OPCODES} opcodes" in m for m in msgs(node))
    assert len(node.fields) <= MAX_OPCODES + 1
    assert len(node.get("Expression")) <= 2048


def test_bytes_after_end_and_offset_in_space():
    data = b"\xff" * 8 + b"\x06\x08\x00\x00"
    node = decode_depex(Space("t", data), 8, 4, "dxe")
    assert node.get("Expression") == "TRUE"
    assert node.problems[0].offset == 10 and "2 bytes after END" in node.problems[0].message
    assert node.field("END").offset == 9


def test_unknown_guid_shown_raw():
    raw = bytes(range(16))
    node = run(b"\x02" + raw + b"\x08")
    assert node.get("Expression") == str(guids.from_bytes(raw)).upper()


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["pei", "dxe", "mm"]))
def test_any_bytes_give_a_depex_node(data, phase):
    node = run(data, phase)
    assert node.kind == "depex" and node.field("Expression") is not None
    node.to_json()


def test_offset_outside_the_space():
    node = decode_depex(Space("t", b"\x06\x08"), 5, 2, "pei")
    assert node.problems and "outside t" in node.problems[0].message
    node = decode_depex(Space("t", b"\x06\x08"), 0, 10, "pei")
    assert node.get("Expression") == "TRUE" and "runs past the end" in node.problems[0].message
