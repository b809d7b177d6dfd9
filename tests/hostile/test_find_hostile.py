"""Hostile input for `fwinspect find` and `fwinspect disasm`, each run as a whole process (README,
"Budgets": exit 0/1/2, no internal error, peak RSS <= 256 MiB, bounded time).

- find on every hostile flash class of test_fd_hostile (LZMA/Brotli bombs, deep volumes, many
  sections...) with the patterns that cost most: `??` (matches everywhere: the hit list is bounded),
  a wildcard pattern over the zero-filled blobs, and a long pattern with wildcards whose matching
  cost is length x size over repetitive bytes (stopped by the search's time limit, with a problem);
- bad patterns: a one-line usage error (exit 2);
- disasm on PE32 sections with hostile headers (PE/COFF spec layouts written with struct.pack):
  e_lfanew past the end, 0xFFFF sections, a .text whose raw data runs past the image, an entry point
  outside the image, an unknown machine: a problem (exit 1), never a traceback.
"""
from __future__ import annotations

import json
import struct

import pytest

from tests.hostile import test_fd_hostile as F
from tests.hostile.harness import run_fwinspect

EFI_SECTION_PE32 = 0x10

FIND_PATTERNS = {
    "everywhere": ["??", "--json"],
    "wildcards-over-zeros": ["00 00 ?? 01"],
    "long-wildcards": ["hex:" + "00" * 1500 + "??" + "00" * 1500 + "01"],
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("find-hostile")
    return {cls: F.build_in_child(gen, folder / f"{cls}.fd") for cls, gen in F.FD_CLASSES.items()}


@pytest.mark.parametrize("pattern", sorted(FIND_PATTERNS))
@pytest.mark.parametrize("cls", sorted(F.FD_CLASSES))
def test_find_on_hostile_images_stays_within_budget(cls, pattern, images, tmp_path):
    out = run_fwinspect(["find", images[cls], *FIND_PATTERNS[pattern]], stdout_to=tmp_path / "out")
    F.check_clean(out)
    assert out.returncode in (0, 1), out.describe()
    if pattern == "everywhere":
        doc = json.loads((tmp_path / "out").read_text())
        assert doc["truncated"] and len(doc["hits"]) == 10_000


@pytest.mark.parametrize("pattern", ["", "hex:4d5", "hex:??zz", "u64:0x1" + "0" * 16, "guid:not-a-guid",
                                     "hex:" + "??" * 5000])
def test_bad_patterns_are_one_line_usage_errors(pattern, images):
    out = run_fwinspect(["find", images["fd-empty-files"], pattern])
    F.check_clean(out)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.describe()


def pe32(machine: int = 0x14C, lfanew: int = 0x40, nsec: int = 1, raw_size: int = 0x20,
         entry: int = 0x200) -> bytes:
    """A PE32 image (PE/COFF spec 3.2, 3.4, 4), its fields set by the caller."""
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", lfanew)
    coff = struct.pack("<HHIIIHH", machine, nsec, 0, 0, 0, 0xE0, 0x0102)
    opt = struct.pack("<HBBIIIIII", 0x10B, 0, 0, 0x20, 0, 0, entry, 0x200, 0) + struct.pack("<III", 0x10000, 0x20, 0x20)
    opt += bytes(16) + struct.pack("<IIIHH", 0x220, 0x200, 0, 11, 0) + bytes(16) + struct.pack("<II", 0, 16) + bytes(128)
    sec = struct.pack("<8sIIIIIIHHI", b".text", raw_size, 0x200, raw_size, 0x200, 0, 0, 0, 0, 0x60000020)
    head = dos + b"PE\0\0" + coff + opt + sec
    return head + bytes(0x200 - len(head)) + b"\x90" * 0x1F + b"\xc3"


HOSTILE_PE = {
    "lfanew-past-end": pe32(lfanew=0x7FFFFFF0),
    "many-sections": pe32(nsec=0xFFFF),
    "raw-data-past-end": pe32(raw_size=0x7FFFFFF0),
    "entry-outside": pe32(entry=0xFFFFFF00),
    "arm64": pe32(machine=0xAA64),
}


@pytest.fixture(scope="module")
def pe_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("disasm-hostile")
    out = {}
    for i, (name, pe) in enumerate(HOSTILE_PE.items()):
        body = F.sections(F.section(EFI_SECTION_PE32, pe), F.section(F.EFI_SECTION_USER_INTERFACE, "Evil\0".encode("utf-16-le")))
        out[name] = F.image_of([F.fv([F.ffs_file(F._name(i), 0x07, body)])], folder / f"{name}.fd")   # DRIVER
    return out


@pytest.mark.parametrize("name", sorted(HOSTILE_PE))
def test_disasm_of_hostile_headers_is_a_problem(name, pe_images):
    out = run_fwinspect(["disasm", pe_images[name], "Evil", "--count", "10000"])
    F.check_clean(out)
    if name == "raw-data-past-end":
        # The section's bytes end with the image: what is there is listed, then the listing stops.
        assert out.returncode in (0, 1), out.describe()
        assert out.stdout.count(b"\n") < 100
    else:
        assert out.returncode == 1 and out.stderr.startswith(b"fwinspect disasm: "), out.describe()


@pytest.mark.parametrize("cls", ["fd-deep-volumes", "fd-many-sections"])
def test_disasm_on_hostile_images_without_the_module(cls, images):
    out = run_fwinspect(["disasm", images[cls], "PlatformPei"])
    F.check_clean(out)
    assert out.returncode == 2 and b"no module" in out.stderr
