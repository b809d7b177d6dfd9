"""`fwinspect review`: each rule on crafted trees, then every finding on Debian's images and our
edk2 builds checked against what the image holds (UEFIExtract's module list, the DEPEX bytes).

The GUIDs below are typed again from each module's .inf FILE_GUID (edk2-stable202502), not taken
from inspector.review.catalogue, so a rule keyed on a wrong GUID fails here.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from decoders.depex import decode_depex
from decoders.model import Node, Space
from inspector.review import gate, review
from tests.realdata import bookworm, firmware, trixie, uefiextract_report

ROOT = Path(__file__).resolve().parents[2]
G = uuid.UUID
# FILE_GUIDs (.inf)
SECURE_BOOT_CONFIG_DXE = G("F0E6A44F-7195-41c3-AC64-54F202CD0A21")  # SecurityPkg/.../SecureBootConfigDxe.inf
PI_SMM_CORE = G("E94F54CD-81EB-47ed-AEC3-856F5DC157A9")             # MdeModulePkg/Core/PiSmmCore/PiSmmCore.inf
VARIABLE_SMM = G("23A089B3-EED5-4ac5-B2AB-43E3298C2343")            # .../Variable/RuntimeDxe/VariableSmm.inf
VARIABLE_RUNTIME_DXE = G("CBD2E4D5-7068-4FF5-B462-9822B4AD8D60")    # .../VariableRuntimeDxe.inf
EMU_FVB = G("22dc2b60-fe40-42ac-b01f-3ab1fad9aad8")                  # OvmfPkg/EmuVariableFvbRuntimeDxe/Fvb.inf
FLASH_FVB = G("733cbac2-b23f-4b92-bc8e-fb01ce5907b7")                # .../FvbServicesRuntimeDxe.inf
TCG2_DXE = G("FDFF263D-5F68-4591-87BA-B768F445A9AF")                # SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.inf
TD_TCG2_DXE = G("F062221E-C607-44C2-B0B4-C3886331D351")             # OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.inf
TCG2_PEI = G("A0C98B77-CBA5-4BB8-993B-4AF6CE33ECE4")                # SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.inf
TD_TCG2_PEI = G("fcb3a3d6-6274-411c-a548-bd0e717d533a")             # OvmfPkg/Tcg/TdTcg2Pei/TdTcg2Pei.inf
IOMMU_DXE = G("8657015b-ea43-440d-949a-af3be365c0fc")               # OvmfPkg/IoMmuDxe/IoMmuDxe.inf
NON_COHERENT_IOMMU = G("7ed510aa-9cdc-49d2-a306-6e11e359f9b3")      # EmbeddedPkg/.../NonCoherentIoMmuDxe.inf
DXE_CORE = G("D6A2CB7F-6A18-4e2f-B43B-9920A733700A")                # MdeModulePkg/Core/Dxe/DxeMain.inf
# protocol/PPI GUIDs (.dec)
VARIABLE_ARCH = G("1e5668e2-8481-11d4-bcf1-0080c73c8881")   # MdePkg.dec gEfiVariableArchProtocolGuid
ACPI_TABLE = G("ffe06bdd-6107-46a6-7bb2-5a9c7ec5275c")      # MdePkg.dec gEfiAcpiTableProtocolGuid
TPM_SELECTED = G("7f4158d3-074d-456d-8cb2-01f9c8f79daa")    # SecurityPkg.dec gEfiTpmDeviceSelectedGuid
GLOBAL = G("8be4df61-93ca-11d2-aa0d-00e098032b8c")          # gEfiGlobalVariableGuid

USB = {G(x) for x in ("2FB92EFA-2EE0-4bae-9EB6-7464125E1EF7", "BDFE430E-8F2A-4db0-9991-6F856594777E",
                      "B7F50E91-A759-412c-ADE4-DCD03E7F7C28", "240612B7-A063-11d4-9A3A-0090273FC14D",
                      "2D2E62CF-9ECF-43b7-8219-94E7FC713DFE", "9FB4B4A7-42C0-4bcd-8540-9BCC6711F83E")}
LEGACY = {G(x) for x in ("820C59BB-274C-43B2-83EA-DAC673035A59", "5E523CB4-D397-4986-87BD-A6DD8B22F455",
                         "19DF145A-B1D4-453f-8507-38816676D7F6", "864E1CA8-85EB-4D63-9DCC-6E0FC90FFD55",
                         "C4D1F932-821F-4744-BF06-6D30F7730F8D")}
# NetworkPkg/Network.fdf.inc with the options OvmfPkgX64.dsc sets by default in 2022-2025
# (no HTTP/TLS/IPv6 in the DEBUG build) + OvmfPkg/VirtioNetDxe/VirtioNet.inf
NETWORK_IPV4 = {G(x) for x in ("A210F973-229D-4f4d-AA37-9895E6C9EABA", "A2f436EA-A127-4EF8-957C-8048606FF670",
                               "E4F61863-FE2C-4b56-A8F4-08519BC439DF", "025BBFC7-E6A9-4b8b-82AD-6815A1AEAF4A",
                               "529D3F93-E8E9-4e73-B1E1-BDF6A9D50113", "94734718-0BBC-47fb-96A5-EE7A5AE6A2AD",
                               "9FB1A1F3-3B71-4324-B39A-745CBB015FFF", "6d6963ab-906d-4a65-a7ca-bd40e5d6af2b",
                               "DC3641B8-2FA8-4ed3-BC1F-F9962A03454B", "1A7E4468-2F55-4a56-903C-01265EB7622B",
                               "B95E9FDA-26DE-48d2-8807-1F9107AC5E3A", "86CDDF93-4872-4597-8AF9-A35AE4D3725F",
                               "A92CDB4B-82F1-4E0B-A516-8A655D371524")}
TDX_MODULES = {G("E750224E-7BCE-40AF-B5BB-47E3611EB5C2"), TD_TCG2_DXE, TD_TCG2_PEI}


# ---- crafted trees -------------------------------------------------------------------------------

def depex_bytes(*ops) -> bytes:
    """PI vol 2 DEPEX opcodes: a GUID is PUSH; 'AND' 'OR' 'NOT' 'TRUE' 'FALSE'; END is added."""
    codes = {"AND": 0x03, "OR": 0x04, "NOT": 0x05, "TRUE": 0x06, "FALSE": 0x07}
    out = b""
    for op in ops:
        out += b"\x02" + op.bytes_le if isinstance(op, uuid.UUID) else bytes([codes[op]])
    return out + b"\x08"


class Builder:
    """A minimal decoded-image tree: one volume of FFS files with UI sections and DEPEXes."""

    def __init__(self):
        self.space = Space("crafted.fd", bytes(0x100000), 0xFFF00000)
        self.root = Node("image", "crafted", self.space, 0, 0x100000)
        self.fv = self.root.append(Node("fv", "Volume", self.space, 0, 0x100000))
        self.pos = 0x100

    def module(self, guid: uuid.UUID, ui: str | None, ftype: int = 0x07, depex: bytes | None = None,
               phase: str = "dxe", size: int = 0x1000) -> Node:
        ffs = self.fv.append(Node("ffs", ui or str(guid), self.space, self.pos, size))
        ffs.add("Name", guid)
        ffs.add("Type", ftype)
        if depex is not None:
            dspace = Space(f"depex-{self.pos}", depex)
            sec = ffs.append(Node("section", "DEPEX section", self.space, self.pos + 0x18, len(depex) + 4))
            sec.append(decode_depex(dspace, 0, len(depex), phase))
        if ui is not None:
            sec = ffs.append(Node("section", "UI", self.space, self.pos + 0x40, 0x20))
            sec.add("Type", 0x15)
            sec.add("String", ui)
        self.pos += size
        return ffs

    def dxe_core(self) -> "Builder":
        self.module(DXE_CORE, "DxeCore", ftype=0x05)
        return self


def vars_tree(variables, free: int = 0x30000, ftw_problem: str | None = None, store_size: int = 0x3ffb8) -> Node:
    space = Space("VARS.fd", bytes(0x84000), 0xFFF7C000)
    root = Node("image", "VARS", space, 0, 0x84000)
    fv = root.append(Node("fv", "NV", space, 0, 0x84000))
    store = fv.append(Node("variable-store", "store", space, 0x48, store_size))
    pos = 0x64
    for name, vendor, state in variables:
        v = store.append(Node("variable", name, space, pos, 0x80))
        v.add("State", state)
        v.add("Name", name)
        v.add("VendorGuid", vendor)
        pos += 0x80
    store.append(Node("free-space", "free", space, pos, free))
    ftw = fv.append(Node("ftw-working-block", "FTW", space, 0x41000, 0x1000))
    if ftw_problem:
        ftw.problem(0x41010, ftw_problem)
    return root


def rules_of(r: Node) -> list[tuple[str, str]]:
    return sorted((f.get("Rule"), f.get("Severity")) for f in r.children)


def findings(r: Node, rule: str) -> list[Node]:
    return [f for f in r.children if f.get("Rule") == rule]


def evidence_guids(f: Node) -> set:
    return {e.get("FileGuid") for e in f.children if e.get("FileGuid") is not None}


class TestSecureBootWithoutSmm:
    def test_config_dxe_without_smm_is_a_risk_naming_the_writers(self):
        b = Builder().dxe_core()
        b.module(SECURE_BOOT_CONFIG_DXE, "SecureBootConfigDxe")
        b.module(VARIABLE_RUNTIME_DXE, "VariableRuntimeDxe")
        b.module(FLASH_FVB, "FvbServicesRuntimeDxe")
        [f] = findings(review(b.root), "secure-boot-without-smm")
        assert f.get("Severity") == "risk"
        assert evidence_guids(f) == {SECURE_BOOT_CONFIG_DXE, VARIABLE_RUNTIME_DXE, FLASH_FVB}

    def test_smm_core_and_smm_variable_driver_make_it_quiet(self):
        b = Builder().dxe_core()
        b.module(SECURE_BOOT_CONFIG_DXE, "SecureBootConfigDxe")
        b.module(PI_SMM_CORE, "PiSmmCore", ftype=0x0D)
        b.module(VARIABLE_SMM, "VariableSmm", ftype=0x0A)
        r = review(b.root)
        assert findings(r, "secure-boot-without-smm") == []
        assert "written in SMM" in r.field("Rule.secure-boot-without-smm").display

    def test_smm_core_with_a_runtime_variable_driver_is_still_a_risk(self):
        b = Builder().dxe_core()
        b.module(SECURE_BOOT_CONFIG_DXE, "SecureBootConfigDxe")
        b.module(PI_SMM_CORE, "PiSmmCore", ftype=0x0D)
        b.module(VARIABLE_RUNTIME_DXE, "VariableRuntimeDxe")
        [f] = findings(review(b.root), "secure-boot-without-smm")
        assert f.get("Severity") == "risk" and "no SMM variable driver" in f.get("Summary")

    def test_keys_in_the_vars_file_offer_secure_boot(self):
        b = Builder().dxe_core()
        b.module(VARIABLE_RUNTIME_DXE, "VariableRuntimeDxe")
        v = vars_tree([("PK", GLOBAL, 0x3F), ("KEK", GLOBAL, 0x3F)])
        [f] = findings(review(b.root, v), "secure-boot-without-smm")
        assert f.get("Severity") == "risk"
        assert {e.get("Name") for e in f.children if e.get("What") == "Secure Boot key"} == {"PK", "KEK"}
        # deleted keys offer nothing
        v = vars_tree([("PK", GLOBAL, 0x3C)])
        assert findings(review(b.root, v), "secure-boot-without-smm") == []

    def test_the_module_is_known_by_its_file_guid_not_its_ui_name(self):
        b = Builder().dxe_core()
        b.module(uuid.uuid4(), "SecureBootConfigDxe")       # a look-alike name
        b.module(VARIABLE_RUNTIME_DXE, "VariableRuntimeDxe")
        assert findings(review(b.root), "secure-boot-without-smm") == []
        b = Builder().dxe_core()
        b.module(SECURE_BOOT_CONFIG_DXE, None)                # no UI section at all
        assert [f.get("Severity") for f in findings(review(b.root), "secure-boot-without-smm")] == ["risk"]

    def test_an_incomplete_module_list_cannot_decide(self):
        b = Builder()                                         # no DXE core: the DXE volume is missing
        b.module(SECURE_BOOT_CONFIG_DXE, "SecureBootConfigDxe")
        [f] = findings(review(b.root), "secure-boot-without-smm")
        assert f.get("Severity") == "info" and f.get("Decided") is False and "cannot decide" in f.get("Summary")


class TestDepexArbitration:
    def test_monotone_depexes_are_not_exclusive(self):
        b = Builder().dxe_core()
        b.module(TCG2_DXE, "Tcg2Dxe", depex=depex_bytes(VARIABLE_ARCH))
        b.module(TD_TCG2_DXE, "TdTcg2Dxe", depex=depex_bytes(VARIABLE_ARCH, ACPI_TABLE, "AND"))
        [f] = findings(review(b.root), "measurement-driver-arbitration")
        assert f.get("Severity") == "info" and f.get("Exclusive") is False
        [f] = findings(review(b.root, profile="tdx"), "measurement-driver-arbitration")
        assert f.get("Severity") == "warning" and f.get("Exclusive") is False
        assert [e.get("Expression") for e in f.children if e.get("Kind") == "depex"] == [
            "gEfiVariableArchProtocolGuid", "gEfiVariableArchProtocolGuid AND gEfiAcpiTableProtocolGuid"]

    def test_a_not_makes_them_exclusive(self):
        b = Builder().dxe_core()
        b.module(TCG2_DXE, "Tcg2Dxe", depex=depex_bytes(VARIABLE_ARCH, TPM_SELECTED, "AND"))
        b.module(TD_TCG2_DXE, "TdTcg2Dxe", depex=depex_bytes(VARIABLE_ARCH, TPM_SELECTED, "NOT", "AND"))
        [f] = findings(review(b.root), "measurement-driver-arbitration")
        assert f.get("Severity") == "info" and f.get("Exclusive") is True

    def test_pei_pair_is_checked_too(self):
        b = Builder().dxe_core()
        b.module(TCG2_PEI, "Tcg2Pei", ftype=0x06, phase="pei", depex=depex_bytes(TPM_SELECTED))
        b.module(TD_TCG2_PEI, "TdTcg2Pei", ftype=0x06, phase="pei", depex=depex_bytes("TRUE"))
        [f] = findings(review(b.root), "measurement-driver-arbitration")
        assert evidence_guids(f) == {TCG2_PEI, TD_TCG2_PEI} and f.get("Exclusive") is False

    def test_a_malformed_depex_cannot_decide(self):
        b = Builder().dxe_core()
        b.module(TCG2_DXE, "Tcg2Dxe", depex=b"\x02" + VARIABLE_ARCH.bytes_le[:5])
        b.module(TD_TCG2_DXE, "TdTcg2Dxe", depex=depex_bytes(ACPI_TABLE))
        [f] = findings(review(b.root), "measurement-driver-arbitration")
        assert f.get("Severity") == "info" and f.get("Decided") is False

    def test_one_driver_alone_is_no_finding(self):
        b = Builder().dxe_core()
        b.module(TCG2_DXE, "Tcg2Dxe", depex=depex_bytes(VARIABLE_ARCH))
        assert findings(review(b.root), "measurement-driver-arbitration") == []

    def test_two_iommu_producers_are_a_warning_with_their_depexes(self):
        b = Builder().dxe_core()
        b.module(IOMMU_DXE, "IoMmuDxe", depex=depex_bytes(VARIABLE_ARCH))
        b.module(NON_COHERENT_IOMMU, "NonCoherentIoMmuDxe", depex=depex_bytes("TRUE"))
        [f] = findings(review(b.root), "multiple-iommu-producers")
        assert f.get("Severity") == "warning" and evidence_guids(f) == {IOMMU_DXE, NON_COHERENT_IOMMU}
        assert sum(1 for e in f.children if e.get("Kind") == "depex") == 2


class TestVariableStore:
    def test_emulated_store_without_flash_driver_says_always(self):
        b = Builder().dxe_core()
        b.module(EMU_FVB, "EmuVariableFvbRuntimeDxe")
        [f] = findings(review(b.root), "emulated-variable-store")
        assert f.get("Severity") == "warning" and "always live in RAM" in f.get("Summary")
        assert f.get("FlashDriver") is False

    def test_deleted_variables_are_info_naming_old_keys(self):
        b = Builder().dxe_core()
        v = vars_tree([("db", G("d719b2cb-3d3a-4596-a3bc-dad00e67656f"), 0x3C), ("Boot0000", GLOBAL, 0x3F)])
        [f] = findings(review(b.root, v), "varstore-health")
        assert f.get("Severity") == "info" and f.get("Deleted") == 1 and "db" in f.get("Summary")
        assert [e.get("Name") for e in f.children] == ["db"]
        assert (f.children[0].space, f.children[0].offset, f.children[0].size) == (v.space, 0x64, 0x80)

    def test_a_full_store_and_a_corrupt_ftw_block_are_warnings(self):
        b = Builder().dxe_core()
        v = vars_tree([("Boot0000", GLOBAL, 0x3F)], free=0x100, ftw_problem="Crc 0x0 does not match")
        r = review(b.root, v)
        sev = sorted((f.get("Severity"), f.get("Summary").split(": ", 1)[1][:20]) for f in findings(r, "varstore-health"))
        assert [s for s, _ in sev] == ["warning", "warning"]
        assert gate(r)

    def test_code_only_without_vars_cannot_decide(self):
        r = review(Builder().dxe_core().root)
        [f] = findings(r, "varstore-health")
        assert f.get("Severity") == "info" and "--vars" in f.get("Summary")


class TestReviewNode:
    def test_evidence_points_at_the_node_it_names(self):
        b = Builder().dxe_core()
        target = b.module(SECURE_BOOT_CONFIG_DXE, "SecureBootConfigDxe")
        [f] = findings(review(b.root), "secure-boot-without-smm")
        ev = f.children[0]
        assert ev.kind == "evidence" and (ev.space, ev.offset, ev.size) == (target.space, target.offset, target.size)
        assert (f.space, f.offset, f.size) == (ev.space, ev.offset, ev.size)
        assert ev.get("FileGuid") == SECURE_BOOT_CONFIG_DXE and ev.get("UiName") == "SecureBootConfigDxe"

    def test_every_rule_reports_an_outcome_and_a_review_is_not_reviewed_again(self):
        b = Builder().dxe_core()
        b.module(SECURE_BOOT_CONFIG_DXE, "SecureBootConfigDxe")
        r = review(b.root)
        assert {f.name for f in r.fields if f.name.startswith("Rule.")} == {
            "Rule.platform-config", "Rule.secure-boot-without-smm", "Rule.emulated-variable-store",
            "Rule.cc-unneeded-driver", "Rule.measurement-driver-arbitration", "Rule.multiple-iommu-producers",
            "Rule.varstore-health"}
        b.root.children.insert(0, r)
        assert rules_of(review(b.root)) == rules_of(r)

    def test_unknown_profile_is_refused(self):
        with pytest.raises(ValueError):
            review(Builder().root, profile="arm")


# ---- real images ---------------------------------------------------------------------------------

_BASE = [("emulated-variable-store", "warning"), ("platform-config", "info")]
# A warning for a confidential-guest profile, info otherwise (the drivers' entry points decide at run time)
_ARB = [("measurement-driver-arbitration", "info")] * 2
_ARB_CC = [("measurement-driver-arbitration", "warning")] * 2
# (id, image getter, VARS getter, profile, expected (rule, severity) list, platform-config summary)
CASES = [
    ("bookworm-OVMF.fd", lambda: bookworm("OVMF.fd"), None, "generic",
     _BASE + [("secure-boot-without-smm", "risk")],
     "TDX Config-A (PEI present); X64 (SEC X64, DXE X64); built for TDX (TDX metadata) and SEV (SEV-SNP "
     "metadata, SEV-ES AP reset block)"),
    ("bookworm-4M", lambda: bookworm("OVMF_CODE_4M.fd"), lambda: bookworm("OVMF_VARS_4M.fd"), "generic",
     _BASE + [("secure-boot-without-smm", "risk")], "PEI present; IA32X64 (SEC IA32, DXE X64); built for SEV (SEV-ES AP reset block)"),
    ("bookworm-secboot-ms", lambda: bookworm("OVMF_CODE_4M.ms.fd"), lambda: bookworm("OVMF_VARS_4M.ms.fd"), "generic",
     [("platform-config", "info"), ("varstore-health", "info")],
     "PEI present; IA32X64 (SEC IA32, DXE X64); built for SEV (SEV-ES AP reset block)"),
    ("bookworm-secboot-snakeoil", lambda: bookworm("OVMF_CODE_4M.snakeoil.fd"),
     lambda: bookworm("OVMF_VARS_4M.snakeoil.fd"), "generic",
     [("platform-config", "info"), ("varstore-health", "info")],
     "PEI present; IA32X64 (SEC IA32, DXE X64); built for SEV (SEV-ES AP reset block)"),
    ("trixie-OVMF.fd", lambda: trixie("OVMF.fd"), None, "generic", _BASE + _ARB,
     "TDX Config-A (PEI present); X64 (SEC X64, DXE X64); built for TDX (TDX metadata) and SEV (SEV-SNP "
     "metadata, SEV-ES AP reset block)"),
    ("trixie-4M", lambda: trixie("OVMF_CODE_4M.fd"), lambda: trixie("OVMF_VARS_4M.fd"), "generic", _BASE + _ARB, None),
    ("trixie-secboot-ms", lambda: trixie("OVMF_CODE_4M.ms.fd"), lambda: trixie("OVMF_VARS_4M.ms.fd"), "generic",
     _ARB + [("platform-config", "info"), ("varstore-health", "info")], None),
    ("trixie-strictnx-snakeoil", lambda: trixie("OVMF_CODE_4M.secboot.strictnx.fd"),
     lambda: trixie("OVMF_VARS_4M.snakeoil.fd"), "generic",
     _ARB + [("platform-config", "info"), ("varstore-health", "info")], None),
    ("trixie-OVMF.fd-tdx", lambda: trixie("OVMF.fd"), None, "tdx", _BASE + _ARB_CC + [("cc-unneeded-driver", "warning")] * 5,
     None),
    ("configb-tdx", lambda: firmware("inteltdx/OVMF.fd"), None, "tdx",
     _BASE + [("cc-unneeded-driver", "warning")] * 2,
     "TDX Config-B (PEI-less: no PEI core, no PEIFV); X64 (SEC X64, DXE X64); built for TDX (TDX metadata) and "
     "SEV (SEV-SNP metadata, SEV-ES AP reset block)"),
    ("debug-sev", lambda: firmware("ovmf-debug/OVMF.fd"), None, "sev",
     _BASE + _ARB_CC + [("cc-unneeded-driver", "warning")] * 4, None),
]


@pytest.fixture(scope="module")
def reviewed():
    from inspector.image import load_image

    cache = {}

    def get(case_id):
        if case_id not in cache:
            _, image, vars_, profile, _, _ = next(c for c in CASES if c[0] == case_id)
            img = image()
            var = vars_() if vars_ else None
            root = load_image(img).root
            cache[case_id] = (img, root, review(root, load_image(var).root if var else None, profile))
        return cache[case_id]
    return get


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """UEFIExtract's FFS files of an image: {GUID: [(UI name, size), ...]}."""
    cache = {}

    def get(image: Path):
        if image not in cache:
            rows = uefiextract_report(image, tmp_path_factory.mktemp("uefiextract"))
            out: dict = {"subtypes": {r.subtype for r in rows if r.type == "File"}}
            for r in rows:
                if r.type == "File":
                    try:
                        out.setdefault(G(r.name), []).append((r.text, r.size))
                    except ValueError:
                        pass        # "Padding file", "Non-UEFI data"
            cache[image] = out
        return cache[image]
    return get


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_real_image_findings_are_exactly_these(case, reviewed):
    case_id, _, _, _, expected, platform = case
    _, _, r = reviewed(case_id)
    assert rules_of(r) == sorted(expected)
    if platform is not None:
        assert [f.get("Summary") for f in findings(r, "platform-config")] == [platform]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_real_image_findings_rest_on_modules_uefiextract_lists(case, reviewed, modules):
    """Every rule's verdict recomputed from UEFIExtract's module list, and every file named as
    evidence is a file UEFIExtract lists, with the same UI name and size (decompressed)."""
    case_id, _, _, profile, _, _ = case
    image, _, r = reviewed(case_id)
    mods = modules(image)
    for f in r.children:
        for e in f.children:
            if e.get("Kind") == "ffs":
                g = e.get("FileGuid")
                assert g in mods, (f.title, g)
                assert (e.get("UiName"), e.get("Bytes")) in mods[g], (g, mods[g])
    has = set(mods) - {"subtypes"}
    [platform] = findings(r, "platform-config")
    assert platform.get("Pei") is ("PEI core" in mods["subtypes"])
    sb = findings(r, "secure-boot-without-smm")
    secure_boot_offered = SECURE_BOOT_CONFIG_DXE in has or case_id.endswith(("ms", "snakeoil"))
    assert bool(sb) == (secure_boot_offered and not {PI_SMM_CORE, VARIABLE_SMM} <= has)
    emu = findings(r, "emulated-variable-store")
    assert bool(emu) == (EMU_FVB in has)
    if emu:
        assert emu[0].get("FlashDriver") is (FLASH_FVB in has)
        assert {e.get("FileGuid") for e in emu[0].children if e.get("What") == "RAM variable store driver"} == {EMU_FVB}
    pairs = [(a, b) for a, b in ((TCG2_DXE, TD_TCG2_DXE), (TCG2_PEI, TD_TCG2_PEI)) if a in has and b in has]
    arb = findings(r, "measurement-driver-arbitration")
    assert sorted(frozenset(evidence_guids(f)) for f in arb) == sorted(frozenset(p) for p in pairs)
    assert len(findings(r, "multiple-iommu-producers")) == (len({IOMMU_DXE, NON_COHERENT_IOMMU} & has) > 1)
    cc = {f.get("Category"): evidence_guids(f) for f in findings(r, "cc-unneeded-driver")}
    if profile == "generic":
        assert cc == {}
    else:
        assert cc.get("usb") == USB & has and USB & has
        assert cc.get("legacy-storage-io") == LEGACY & has
        if NETWORK_IPV4 & has:
            assert NETWORK_IPV4 & has <= cc["network"]
        else:
            assert "network" not in cc
        if profile == "sev":
            assert cc.get("other-cc") == TDX_MODULES & has
        for f in findings(r, "cc-unneeded-driver"):
            assert f.get("Bytes") == sum(e.get("Bytes") for e in f.children)


def _depex_opcodes(blob: bytes) -> tuple[set, set]:
    """An independent reading of a DEPEX (PI vol 2 opcode table): the GUIDs pushed, the opcodes used."""
    pushed, ops, i = set(), set(), 0
    while i < len(blob):
        op = blob[i]
        ops.add(op)
        if op in (0x00, 0x01, 0x02):
            pushed.add(uuid.UUID(bytes_le=blob[i + 1:i + 17]))
            i += 17
        else:
            i += 1
            if op == 0x08:
                break
    return pushed, ops


@pytest.mark.parametrize("case_id", ["trixie-OVMF.fd", "trixie-strictnx-snakeoil", "debug-sev"])
def test_arbitration_depexes_match_the_section_bytes_and_the_inf(case_id, reviewed):
    """The DEPEX evidence covers the section's bytes; read independently, the .inf's [Depex] GUIDs are
    there (Tcg2Dxe.inf: gEfiVariableArchProtocolGuid; TdTcg2Dxe.inf: + gEfiAcpiTableProtocolGuid;
    Tcg2Pei.inf: gEfiTpmDeviceSelectedGuid) and no NOT or FALSE: nothing makes the pair exclusive."""
    _, _, r = reviewed(case_id)
    arb = findings(r, "measurement-driver-arbitration")
    assert len(arb) == 2
    must = {TCG2_DXE: {VARIABLE_ARCH}, TD_TCG2_DXE: {VARIABLE_ARCH, ACPI_TABLE}, TCG2_PEI: {TPM_SELECTED},
            TD_TCG2_PEI: set()}
    for f in arb:
        assert f.get("Exclusive") is False
        depexes = [e for e in f.children if e.get("Kind") == "depex"]
        assert len(depexes) == 2
        for e in depexes:
            blob = bytes(e.space.data[e.offset:e.offset + e.size])
            pushed, ops = _depex_opcodes(blob)
            assert must[e.get("FileGuid")] <= pushed
            assert not ops & {0x05, 0x07}           # NOT, FALSE


def test_debian_secboot_builds_are_not_flagged_secure_boot_without_smm(reviewed):
    for case_id in ("bookworm-secboot-ms", "bookworm-secboot-snakeoil", "trixie-secboot-ms", "trixie-strictnx-snakeoil"):
        _, _, r = reviewed(case_id)
        assert findings(r, "secure-boot-without-smm") == []
        assert "written in SMM" in r.field("Rule.secure-boot-without-smm").display


def test_deleted_records_counted_as_the_store_holds_them(reviewed):
    """OVMF_VARS_4M.ms.fd (bookworm): 26 deleted records (25 VAR_ADDED & VAR_IN_DELETED_TRANSITION &
    VAR_DELETED 0x3C, one VAR_ADDED & VAR_DELETED 0x3D), as `fwinspect fd` titles its store."""
    _, _, r = reviewed("bookworm-secboot-ms")
    [f] = findings(r, "varstore-health")
    assert f.get("Deleted") == 26 and len(f.children) == 26
    assert sorted(e.get("State") for e in f.children) == [0x3C] * 25 + [0x3D]


# ---- the command ---------------------------------------------------------------------------------

def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", "review", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_exit_status_gates_on_warning_and_risk():
    clean = _run(bookworm("OVMF_CODE_4M.secboot.fd"), "--vars", bookworm("OVMF_VARS_4M.ms.fd"), "--json")
    assert clean.returncode == 0, clean.stderr
    doc = json.loads(clean.stdout)
    assert doc["kind"] == "review"
    assert sorted(c["fields"][0]["value"] for c in doc["children"]) == ["platform-config", "varstore-health"]
    risky = _run(bookworm("OVMF.fd"))
    assert risky.returncode == 1 and "RISK secure-boot-without-smm" in risky.stdout


def test_cli_usage_errors_exit_2(tmp_path):
    assert _run(tmp_path / "missing.fd").returncode == 2
    assert _run(bookworm("OVMF.fd"), "--profile", "arm").returncode == 2
    assert _run(bookworm("OVMF.fd"), "--vars", tmp_path / "missing.fd").returncode == 2


# ---- the app: a Review node at the top of the image's tree ---------------------------------------

@pytest.mark.asyncio
async def test_app_selecting_a_finding_and_its_evidence_shows_the_module_bytes():
    """The review inserted first in the image tree (as inspector.sources.image_tree is to do): the
    finding and its evidence show the bytes of SecureBootConfigDxe's FFS file in the hex view."""
    from inspector.image import load_image
    from views.app import FwInspectApp
    from views.widgets.hex_view import HexView

    root = load_image(bookworm("OVMF.fd")).root
    r = review(root)
    root.children.insert(0, r)
    [f] = findings(r, "secure-boot-without-smm")
    target = next(n for n in root.find("ffs") if n.get("Name") == SECURE_BOOT_CONFIG_DXE)
    app = FwInspectApp(root, "OVMF.fd")
    async with app.run_test(size=(120, 40)) as pilot:
        for node in (f, f.children[0]):
            assert app.screen.node_tree.reveal(node)
            await pilot.pause()
            hv = app.screen.query_one(HexView)
            assert hv.space is target.space
            assert hv.span == (target.offset, target.offset + target.size)


def test_hostile_depex_nesting_and_many_copies_stay_bounded():
    """1000 NOTs (decoders.depex allows 1024 opcodes) would recurse past Python's limit: the rule
    says it cannot decide; 3000 copies of one IOMMU producer make one finding with bounded text."""
    b = Builder().dxe_core()
    b.module(TCG2_DXE, "Tcg2Dxe", depex=depex_bytes(VARIABLE_ARCH, *["NOT"] * 1000))
    b.module(TD_TCG2_DXE, "TdTcg2Dxe", depex=depex_bytes(ACPI_TABLE))
    for _ in range(3000):
        b.module(IOMMU_DXE, "IoMmuDxe", depex=depex_bytes(VARIABLE_ARCH), size=0x20)
    r = review(b.root)
    [arb] = findings(r, "measurement-driver-arbitration")
    assert arb.get("Severity") == "info" and "deeper than" in arb.get("Summary")
    [io] = findings(r, "multiple-iommu-producers")
    assert io.get("Producers") == 3000 and len(io.get("Summary")) < 2000


def _raw_deleted_names(vars_file: Path) -> list[str]:
    """An independent walk of the authenticated variable store (MdeModulePkg/Include/Guid/
    VariableFormat.h): VARIABLE_STORE_HEADER (28 bytes) after the 0x48-byte FV header, then
    AUTHENTICATED_VARIABLE_HEADER (60 bytes: StartId 0x55AA, State, ..., NameSize @36, DataSize @40),
    name, data, each record 4-byte aligned; deleted = State with VAR_DELETED's bit (0x02) clear."""
    import struct

    data = vars_file.read_bytes()
    store_size = struct.unpack_from("<I", data, 0x48 + 16)[0]
    pos, end, out = 0x48 + 28, 0x48 + store_size, []
    while pos + 60 <= end and struct.unpack_from("<H", data, pos)[0] == 0x55AA:
        state = data[pos + 2]
        name_size, data_size = struct.unpack_from("<II", data, pos + 36)
        if not state & 0x02:
            out.append(data[pos + 60:pos + 60 + name_size].decode("utf-16-le").rstrip("\0"))
        pos = (pos + 60 + name_size + data_size + 3) & ~3
    return out


@pytest.mark.parametrize("case_id,vars_", [("bookworm-secboot-ms", lambda: bookworm("OVMF_VARS_4M.ms.fd")),
                                           ("trixie-strictnx-snakeoil", lambda: trixie("OVMF_VARS_4M.snakeoil.fd"))])
def test_deleted_variables_match_a_raw_walk_of_the_vars_file(case_id, vars_, reviewed):
    _, _, r = reviewed(case_id)
    [f] = findings(r, "varstore-health")
    assert [e.get("Name") for e in f.children] == _raw_deleted_names(vars_())
