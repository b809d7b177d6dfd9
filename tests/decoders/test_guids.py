"""The edk2 GUID-name registry (decoders/guids.py + decoders/guid_names.txt)."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from importlib import resources
from pathlib import Path

import pytest

from decoders import guids
from tests.decoders.test_depex import depex_sections
from tests.realdata import bookworm, trixie

# Values from the UEFI 2.10 / PI 1.8 specs and TCG/Intel TDX documents that define them.
SPEC = {
    "gEfiAcpi10TableGuid": "eb9d2d30-2d88-11d3-9a16-0090273fc14d",  # UEFI 4.6 ACPI_TABLE_GUID
    "gEfiAcpi20TableGuid": "8868e871-e4f1-11d3-bc22-0080c73c8881",  # UEFI 4.6 EFI_ACPI_TABLE_GUID
    "gEfiSmbiosTableGuid": "eb9d2d31-2d88-11d3-9a16-0090273fc14d",  # UEFI 4.6 SMBIOS_TABLE_GUID
    "gEfiSmbios3TableGuid": "f2fd1544-9794-4a2c-992e-e5bbcf20e394",  # UEFI 4.6 SMBIOS3_TABLE_GUID
    "gEfiHobListGuid": "7739f24c-93d7-11d4-9a3a-0090273fc14d",  # PI vol 3 HOB_LIST_GUID
    "gEfiDebugImageInfoTableGuid": "49152e77-1ada-4764-b7a2-7afefed95e8b",  # UEFI 18.4
    "gEfiMemoryAttributesTableGuid": "dcfa911d-26eb-469f-a220-38b7dc461220",  # UEFI 4.6
    "gEfiTcg2FinalEventsTableGuid": "1e2ed096-30e2-4254-bd89-863bbef82325",  # TCG EFI Protocol spec 6.5
    "gEfiCcFinalEventsTableGuid": "dd4a4648-2de7-4665-964d-21d9ef5fb446",  # UEFI 2.10 38.4
    "gEfiGlobalVariableGuid": "8be4df61-93ca-11d2-aa0d-00e098032b8c",  # UEFI 3.3
    "gEfiImageSecurityDatabaseGuid": "d719b2cb-3d3a-4596-a3bc-dad00e67656f",  # UEFI 32.6.1
    "gEfiCertX509Guid": "a5c059a1-94e4-4aa7-87b5-ab155c2bf072",  # UEFI 32.4.1
    "gEfiCertSha256Guid": "c1c41626-504c-4092-aca9-41f936934328",  # UEFI 32.4.1
    "gEfiHobMemoryAllocModuleGuid": "f8e21975-0899-4f58-a4be-5525a9c6d77a",  # PI vol 3
    "gEfiPeiMemoryDiscoveredPpiGuid": "f894643d-c449-42d1-8ea8-85bdd8c65bde",  # PI vol 1
    "gEfiFirmwareFileSystem2Guid": "8c8ce578-8a3d-4f1c-9935-896185c32dd3",  # PI vol 3
    "gLzmaCustomDecompressGuid": "ee4e5898-3914-4259-9d6e-dc7bd79403cf",  # MdeModulePkg.dec, LzmaDecompress.h
}


def test_table_is_large_and_well_formed():
    text = resources.files("decoders").joinpath("guid_names.txt").read_text(encoding="ascii")
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(rows) >= 500
    seen = set()
    for row in rows:
        assert len(row) == 2, row
        g = uuid.UUID(row[0])
        assert row[0] == str(g), row  # canonical lower case
        assert g not in seen, row  # one name per GUID
        seen.add(g)
        assert re.fullmatch(r"g[A-Za-z0-9_]+", row[1]), row  # edk2 C names, verbatim


@pytest.mark.parametrize("name,value", sorted(SPEC.items()))
def test_well_known_names_have_their_spec_values(name, value):
    assert guids.lookup(name) == uuid.UUID(value)
    assert guids.name(uuid.UUID(value)) == name


def test_describe_lookup_register():
    g = uuid.UUID(SPEC["gEfiAcpi20TableGuid"])
    assert guids.describe(g) == "gEfiAcpi20TableGuid (8868E871-E4F1-11D3-BC22-0080C73C8881)"
    assert guids.lookup("GEFIACPI20TABLEGUID") == g
    assert guids.register(g, "SomethingElse") == g and guids.name(g) == "gEfiAcpi20TableGuid"  # first wins
    new = uuid.UUID("0badc0de-0000-4000-8000-000000000001")
    assert guids.describe(new) == "0BADC0DE-0000-4000-8000-000000000001"
    guids.register(str(new), "TestOnlyGuid")
    assert guids.name(new) == "TestOnlyGuid"
    assert guids.from_bytes(g.bytes_le) == g
    assert guids.lookup("nonsense") is None
    assert guids.name(uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")) == "DXEFV"


def test_named_constants_are_the_guids_their_names_say():
    """guids.py names each GUID a decoder dispatches on once; the constant's name is the name the
    table gives that GUID, and no two constants share a value."""
    named = {k: v for k, v in vars(guids).items() if isinstance(v, uuid.UUID)}
    assert len(named) >= 40 and len(set(named.values())) == len(named)
    assert {k: guids.name(v) for k, v in named.items()} == {k: k for k in named}
    for name, value in SPEC.items():
        assert named.get(name, uuid.UUID(value)) == uuid.UUID(value), name


def test_import_does_not_load_the_table():
    code = ("import uuid, decoders.guids as g; g.register('8868e871-e4f1-11d3-bc22-0080c73c8881', 'Early');"
            "g.register('0badc0de-0000-4000-8000-000000000002', 'EarlyOnly'); assert not g._LOADED;"
            "assert g.name(uuid.UUID('8868e871-e4f1-11d3-bc22-0080c73c8881')) == 'gEfiAcpi20TableGuid';"
            "assert g.name(uuid.UUID('0badc0de-0000-4000-8000-000000000002')) == 'EarlyOnly'; assert g._LOADED")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)


@pytest.mark.real
def test_guids_found_in_real_images_have_names():
    """Wire bytes in Debian's images: the FFS2 file-system GUID of the FV header (FvHeader +0x10),
    and in the Secure Boot variable store the global-variable / db vendor GUIDs and the X.509
    signature type."""
    # OVMF.fd starts with the variable store FV, OVMF_CODE_4M with FVMAIN_COMPACT (OvmfPkg/OvmfPkgX64.fdf).
    fd = bookworm("OVMF.fd").read_bytes()
    assert guids.name(guids.from_bytes(fd[0x10:0x20])) == "gEfiSystemNvDataFvGuid"
    code = bookworm("OVMF_CODE_4M.fd").read_bytes()
    assert guids.name(guids.from_bytes(code[0x10:0x20])) == "gEfiFirmwareFileSystem2Guid"
    vars_ = bookworm("OVMF_VARS_4M.ms.fd").read_bytes()
    for name in ("gEfiGlobalVariableGuid", "gEfiImageSecurityDatabaseGuid", "gEfiCertX509Guid"):
        assert guids.lookup(name).bytes_le in vars_, name


@pytest.mark.real
@pytest.mark.parametrize("which,name", [("bookworm", "OVMF.fd"), ("bookworm", "OVMF_CODE_4M.secboot.fd"),
                                        ("trixie", "OVMF.fd")])
def test_every_guid_pushed_in_real_depex_has_a_name(tmp_path, which, name):
    """Read from UEFIExtract's own DEPEX parse (not ours): every PUSHed GUID is in the registry."""
    image = bookworm(name) if which == "bookworm" else trixie(name)
    pushed = {uuid.UUID(line.split()[1]) for b in depex_sections(image, tmp_path) for line in b.uefiextract
              if line.startswith(("PUSH", "BEFORE", "AFTER"))}
    assert len(pushed) > 20
    assert [g for g in pushed if guids.name(g) is None] == []
