"""Hostile inputs for inspector.diff_measure, in process: metadata that asks for GiBs of pages,
overlapping or refused sections, volumes of thousands of files, images cut short. Each must give a
diff-measurements tree (no exception), bounded output, and little memory.

The TDVF images are those of tests/hostile/test_mrtd_hostile.py (OVMF reset-vector table + TDVF
descriptor, edk2 OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm); volumes and files are the PI spec
vol 3 layouts of tests/hostile/test_fd_hostile.py.
"""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from inspector.diff_measure import MAX_FILE_NODES, MAX_PAGE_NODES, measurement_diff
from inspector.image import load_image
from tests.hostile import test_fd_hostile as F
from tests.hostile.test_mrtd_hostile import BFV, GIB, MR_EXTEND, PAGE_AUG, TEMP_MEM, tdvf_image

MIB = 1 << 20
_BFV = (0, 0x8000, 0xFFFF0000, 0x8000, BFV, MR_EXTEND)
PEAK_LIMIT = 64 * MIB       # tracemalloc peak of one diff of two 64 KiB images


def _pair(tmp_path: Path, secs_a, secs_b):
    return load_image(tdvf_image(tmp_path / "a.fd", secs_a)), load_image(tdvf_image(tmp_path / "b.fd", secs_b))


def _run(a, b):
    tracemalloc.start()
    try:
        root = measurement_diff(a, b, "A", "B")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"peak {peak >> 20} MiB"
    assert root.kind == "diff-measurements"
    for n in root.walk():
        assert len(n.children) <= MAX_PAGE_NODES + 2 + max(MAX_FILE_NODES, MAX_PAGE_NODES), n.kind
    return root


def _mrtd(root):
    return next(c for c in root.children if c.kind == "diff-mrtd")


CASES = {
    # 1 GiB of TempMem moved by a page: 2^18 PAGE.ADDs hashed, the difference is two ranges.
    "gib-of-page-add-shifted": ([_BFV, (0, 0, 0x1_0000_0000, GIB, TEMP_MEM, 0)],
                                [_BFV, (0, 0, 0x1_0000_1000, GIB, TEMP_MEM, 0)]),
    # 48 GiB of PAGE.ADDs: over the MRTD budget, refused before hashing.
    "refused-page-add": ([_BFV, (0, 0, 0x1_0000_0000, 48 * GIB, TEMP_MEM, 0)], [_BFV]),
    # A BFV padded to 16 GiB with MR.EXTEND: refused.
    "refused-extend": ([(0, 0x8000, 0x1_0000_0000, 16 * GIB, BFV, MR_EXTEND)], [_BFV]),
    # PAGE.AUG memory is unmeasured, whatever its size (PermMem of td-shim): nothing to enumerate.
    "huge-page-aug": ([_BFV, (0, 0, 0x1_0000_0000, 1 << 50, 4, PAGE_AUG)], [_BFV]),
    # The same GPAs measured twice, with bytes from two places of the file.
    "overlapping-extends": ([_BFV, (0x8000, 0x4000, 0xFFFF0000, 0x4000, BFV, MR_EXTEND)],
                            [_BFV, (0x4000, 0x4000, 0xFFFF0000, 0x4000, BFV, MR_EXTEND)]),
    # A GPA range past 2^64.
    "gpa-overflow": ([_BFV, (0, 0, 0xFFFF_FFFF_FFFF_F000, 0x4000, TEMP_MEM, 0)], [_BFV]),
    # Data outside the file.
    "data-past-file": ([(0x8000, 0x100000, 0xFFF00000, 0x100000, BFV, MR_EXTEND)], [_BFV]),
    # As many 1 GiB TempMem sections as fit (each shifted by a page in B).
    "many-sections": ([_BFV] + [(0, 0, (i + 1) * GIB, 0x100000, TEMP_MEM, 0) for i in range(100)],
                      [_BFV] + [(0, 0, (i + 1) * GIB + 0x1000, 0x100000, TEMP_MEM, 0) for i in range(100)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_diff_measure_hostile_tdvf_metadata_gives_a_bounded_tree(case, tmp_path):
    a, b = _pair(tmp_path, *CASES[case])
    root = _run(a, b)
    mrtd = _mrtd(root)
    assert mrtd.get("Change") in ("changed", "unchanged")
    if case.startswith("refused") or case in ("gpa-overflow", "data-past-file"):
        assert "not comparable" in mrtd.title and not any(c.kind == "diff-mrtd-page" for c in mrtd.children)
        assert any("MRTD not computed" in p.message for p in mrtd.problems)
    if case == "gib-of-page-add-shifted":
        ranges = [c for c in mrtd.children if c.kind == "diff-mrtd-range"]
        assert [(r.get("Gpa"), r.get("Pages"), r.get("Change")) for r in ranges] == \
            [(0x1_0000_0000, 1, "removed"), (0x1_0000_0000 + GIB, 1, "added")]
    if case == "huge-page-aug":
        assert mrtd.get("PagesAddedOnOneSide") == 0


def test_diff_measure_hostile_thousands_of_files_bounded(tmp_path):
    def image(path, tag):
        files = [F.ffs_file(F._name(0), 0x05, F.section(F.EFI_SECTION_RAW, b"core"))]
        files += [F.ffs_file(F._name(i), 0x07, F.section(F.EFI_SECTION_RAW, tag + i.to_bytes(4, "little")))
                  for i in range(1, 3000)]
        return load_image(F.image_of([F.fv(files)], path))
    root = _run(image(tmp_path / "a.fd", b"A"), image(tmp_path / "b.fd", b"B"))
    tpm = next(c for c in root.children if c.kind == "diff-tpm")
    blob = next(c for c in tpm.children if c.kind == "diff-tpm-blob")
    files = [c for c in blob.children if c.kind == "diff-tpm-blob-file"]
    more = next(c for c in blob.children if c.kind == "diff-tpm-blob-more")
    assert len(files) == MAX_FILE_NODES and more.get("Count") == 2999 - MAX_FILE_NODES
    assert blob.get("Changed") == 2999


@pytest.mark.parametrize("cut", [0x1000, 0x100000, 0x1FFF00])
def test_diff_measure_hostile_cut_ovmf(cut, tmp_path):
    from tests.realdata import bookworm

    src = bookworm("OVMF.fd").read_bytes()
    whole = load_image(bookworm("OVMF.fd"))
    (tmp_path / "cut.fd").write_bytes(src[:cut])
    root = _run(whole, load_image(tmp_path / "cut.fd"))
    assert root.get("Change") == "changed"


def test_diff_measure_hostile_same_refused_metadata_is_unchanged(tmp_path):
    secs = CASES["refused-page-add"][0]
    a = load_image(tdvf_image(tmp_path / "a.fd", secs))
    root = _run(a, load_image(tdvf_image(tmp_path / "b.fd", secs)))
    mrtd = _mrtd(root)
    assert mrtd.get("Change") == "unchanged" and "not comparable" in mrtd.title
