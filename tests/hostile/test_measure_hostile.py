"""Hostile inputs to `fwinspect measure`, each run as a whole process with every mode at once
(--tdx, --snp, --tpm with --vars and --against): the hostile-input contract (an exit status of
0, 1 or 2, no traceback, bounded time and memory) and a located reason for what was refused.

Images: the hostile TDVF descriptors of test_mrtd_hostile (refused sections, a GPA range past 2^64,
huge PAGE.ADD and MR.EXTEND ranges, thousands of sections), and Debian 12's OVMF.fd with bytes
flipped in its reset-vector table and metadata (the last 0x800 bytes: the GUIDed table, the SEV
and TDX descriptors, edk2 OvmfPkg/ResetVector) and in random places. VARS and --against logs:
random bytes, and a real boot log cut short.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.hostile.harness import run_fwinspect
from tests.hostile.test_fd_hostile import build_in_child, check_clean
from tests.hostile.test_mrtd_hostile import MRTD_CLASSES
from tests.realdata import bookworm, fixture

MODES = ["--tdx", "--snp", "--vcpu-type", "EPYC-v4", "--vcpus", "64", "--tpm", "--bank", "sha1,sha256"]


def flipped(seed: int, tail: bool) -> bytes:
    data = bytearray(bookworm("OVMF.fd").read_bytes())
    rng = random.Random(seed)
    lo = len(data) - 0x800 if tail else 0
    for _ in range(24 if tail else 200):
        data[rng.randrange(lo, len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("cls", sorted(MRTD_CLASSES))
def test_hostile_tdvf_metadata_in_every_mode(cls, tmp_path):
    image = build_in_child(MRTD_CLASSES[cls], tmp_path / f"{cls}.fd")
    out = run_fwinspect(["measure", image, *MODES])
    check_clean(out)
    # no SEV metadata and a refused or over-budget TDVF descriptor: both modes say so, exit 1
    assert out.returncode == 1, out.describe()
    assert b"no SEV metadata" in out.stderr, out.describe()


@pytest.mark.parametrize("seed", range(6))
def test_flipped_metadata_and_bytes_in_every_mode(seed, tmp_path):
    image = tmp_path / "ovmf.fd"
    image.write_bytes(flipped(seed, tail=seed % 2 == 0))
    rng = random.Random(seed)
    vars_ = tmp_path / "vars.fd"
    vars_.write_bytes(rng.randbytes(0x84000) if seed % 3 else b"\xff" * 0x84000)
    log = tmp_path / "log.bin"
    real = fixture("ovmf-boots/bookworm-OVMF.fd.tcglog").read_bytes()
    log.write_bytes(real[:rng.randrange(60, len(real))] if seed % 2 else rng.randbytes(4096))
    for json_out in ([], ["--json"]):
        out = run_fwinspect(["measure", image, *MODES, "--vars", vars_, "--against", log, *json_out])
        check_clean(out)
        assert out.returncode in (0, 1), out.describe()


def test_a_kernel_that_is_a_directory_is_a_usage_error(tmp_path):
    out = run_fwinspect(["measure", bookworm("OVMF.fd"), "--snp", "--vcpu-type", "EPYC", "--kernel", tmp_path])
    check_clean(out)
    assert out.returncode == 2 and b"not a regular file" in out.stderr, out.describe()
