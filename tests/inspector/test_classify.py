"""What kind of image it is, on Debian's real images; expectations from the edk2 build files
(OvmfPkgX64.fdf / OvmfPkgIa32X64.fdf layouts) and the Debian package contents."""
from __future__ import annotations

from inspector.image import load_image
from tests.realdata import bookworm, firmware, trixie


def info(path):
    return load_image(path).info


def test_bookworm_unified_x64_is_tdx_config_a_with_sev():
    i = info(bookworm("OVMF.fd"))
    assert i.get("Layout").startswith("unified")
    assert i.get("Architecture") == "X64"
    assert i.get("TDX") is True and "Config-A" in i.field("TDX").display
    assert i.get("SEV") is True and "SEV-ES" in i.field("SEV").display
    assert i.get("SecureBootKeys") is False


def test_bookworm_code_4m_is_ia32x64_without_cc_metadata():
    i = info(bookworm("OVMF_CODE_4M.fd"))
    assert i.get("Layout").startswith("CODE only")
    assert i.get("Architecture") == "IA32X64"  # SEC is IA32 (OvmfPkgIa32X64.dsc: [Components.IA32]), DXE X64
    assert i.get("TDX") is False


def test_bookworm_split_code_rebases_tdx_metadata():
    i = info(bookworm("OVMF_CODE.fd"))
    assert i.get("Layout").startswith("CODE only")
    assert "code-only" in str(i.get("TDX.ImageLayout"))


def test_ms_vars_has_secure_boot_keys():
    i = info(bookworm("OVMF_VARS_4M.ms.fd"))
    assert i.get("Layout") == "VARS only"
    assert i.get("SecureBootKeys") is True
    assert i.field("SecureBootKeys").display == "enrolled: PK, KEK, db, dbx"


def test_trixie_code_4m_is_x64_with_tdx():
    i = info(trixie("OVMF_CODE_4M.fd"))
    assert i.get("Architecture") == "X64"  # Debian 13 builds the 4 MiB image from OvmfPkgX64
    assert i.get("TDX") is True


def test_config_b_is_told_by_the_absence_of_pei_not_by_a_volume_name():
    # OvmfPkg/IntelTdx/README.md: Config-A keeps PEI, Config-B skips it. A PEI core in a volume
    # whose name is not PEIFV's GUID is still PEI; with the PEI volume gone, the image is PEI-less.
    from decoders.model import Field
    from inspector.classify import PEIFV, classify

    img = load_image(bookworm("OVMF.fd"))
    peifv = next(n for n in img.root.walk() if n.kind == "fv" and n.get("FvName") == PEIFV)
    peifv.fields = [Field("FvName", None) if f.name == "FvName" else f for f in peifv.fields]
    renamed = classify(img.root, len(img.data))
    assert renamed.field("TDX").display == "TDX metadata present; Config-A (PEI present)"
    for n in img.root.walk():
        n.children = [c for c in n.children if c is not peifv]
    gone = classify(img.root, len(img.data))
    assert gone.field("TDX").display == "TDX metadata present; Config-B (PEI-less: no PEIFV, no PEI_CORE file)"


def test_config_b_build_is_classified_pei_less():
    i = info(firmware("inteltdx/OVMF.fd"))
    assert i.get("Layout").startswith("unified") and i.get("Architecture") == "X64"
    assert i.field("TDX").display == "TDX metadata present; Config-B (PEI-less: no PEIFV, no PEI_CORE file)"
