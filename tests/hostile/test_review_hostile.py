"""`fwinspect review` on hostile and malformed input, whole process: never a traceback, a hang or
unbounded memory (tests/hostile/harness.py), and on damaged images the rules that can run do
while the others say why they could not (an `info` finding "cannot decide: ...")."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.hostile.harness import run_fwinspect
from tests.hostile.test_fd_hostile import check_clean, images  # noqa: F401 (images: the fixture)
from tests.realdata import bookworm

# The hostile images of every class run through `review` with the other image commands
# (test_fd_hostile IMAGE_COMMANDS); here, the same images as VARS, and review's own malformed inputs.


@pytest.mark.parametrize("cls", ["fd-bad-checksums", "fd-deep-volumes", "fd-lzma-bombs"])
def test_review_hostile_image_as_vars_stays_within_budget(cls, images, tmp_path):
    out = run_fwinspect(["review", bookworm("OVMF_CODE_4M.secboot.fd"), "--vars", images[cls], "--json"],
                        stdout_to=tmp_path / "out")
    check_clean(out)
    assert out.returncode in (0, 1), out.describe()


def _review_json(tmp_path, *args):
    out = run_fwinspect(["review", *args, "--json"], stdout_to=tmp_path / "out.json")
    check_clean(out)
    return out, json.loads((tmp_path / "out.json").read_text())


def _findings(doc):
    return [{f["name"]: f["value"] for f in c["fields"]} for c in doc["children"]]


def test_truncated_image_runs_what_it_can_and_says_why_not_the_rest(tmp_path):
    """The first 2,000,000 bytes of OVMF.fd: SECFV and the reset vector are cut off, the DXE
    volume is whole. The emulated store is still seen; what needs the whole module list or the
    reset-vector table says it cannot decide."""
    data = bookworm("OVMF.fd").read_bytes()[:2_000_000]
    path = tmp_path / "truncated.fd"
    path.write_bytes(data)
    out, doc = _review_json(tmp_path, path)
    assert out.returncode == 1
    got = {(f["Rule"], f["Severity"], f["Summary"].startswith("cannot decide")) for f in _findings(doc)}
    assert ("image-decode", "warning", False) in got
    assert ("emulated-variable-store", "warning", False) in got
    assert ("secure-boot-without-smm", "info", True) in got
    platform = [f for f in _findings(doc) if f["Rule"] == "platform-config"][0]
    assert "CC technologies: cannot tell" in platform["Summary"]


def test_random_bytes_image_decides_nothing_and_says_so(tmp_path):
    path = tmp_path / "random.fd"
    path.write_bytes(os.urandom(1 << 16))
    out, doc = _review_json(tmp_path, path)
    assert out.returncode == 1
    fs = _findings(doc)
    assert {f["Rule"] for f in fs if f["Severity"] == "info"} >= {
        "platform-config", "secure-boot-without-smm", "emulated-variable-store", "measurement-driver-arbitration",
        "multiple-iommu-producers", "varstore-health"}
    assert all(f["Summary"].startswith("cannot decide") for f in fs if f["Severity"] == "info")


@pytest.mark.parametrize("damage", ["truncated", "store-size", "ftw-crc", "random", "empty-fv"])
def test_malformed_vars_is_a_varstore_warning_and_the_image_rules_still_run(damage, tmp_path):
    data = bytearray(bookworm("OVMF_VARS_4M.ms.fd").read_bytes())
    if damage == "truncated":
        data = data[:100_000]
    elif damage == "store-size":
        data[0x48 + 16:0x48 + 20] = b"\xff\xff\xff\x7f"       # VARIABLE_STORE_HEADER.Size
    elif damage == "ftw-crc":
        data[0x41010:0x41014] = bytes(4)                       # EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER.Crc
    elif damage == "random":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty-fv":
        data[0x48:0x40000] = b"\xff" * (0x40000 - 0x48)         # the store erased, header and all
    path = tmp_path / "VARS.fd"
    path.write_bytes(bytes(data))
    out, doc = _review_json(tmp_path, bookworm("OVMF_CODE_4M.secboot.fd"), "--vars", path)
    assert out.returncode == 1, out.describe()
    fs = _findings(doc)
    assert any(f["Rule"] == "varstore-health" and f["Severity"] == "warning" for f in fs), fs
    # the image's own rules are unaffected: SMM-protected Secure Boot, the platform summary
    assert not any(f["Rule"] == "secure-boot-without-smm" for f in fs)
    assert [f["Summary"] for f in fs if f["Rule"] == "platform-config"] == [
        "PEI present; IA32X64 (SEC IA32, DXE X64); built for SEV (SEV-ES AP reset block)"]


def test_vars_that_is_not_a_file_or_empty_is_a_usage_error(tmp_path):
    empty = tmp_path / "empty.fd"
    empty.write_bytes(b"")
    for vars_ in (tmp_path, empty):
        out = run_fwinspect(["review", bookworm("OVMF_CODE_4M.secboot.fd"), "--vars", vars_])
        check_clean(out)
        assert out.returncode == 2, out.describe()
