"""`fwinspect measure` and `mrtd`, whole process, side by side with the tools a user would pick
instead (README, "Budgets"): sev-snp-measure for the SEV-SNP launch digest (and, as the issue
sets it, as the yardstick for the metadata-only `mrtd` and `measure --tdx`), virt-fw-measure for
the TPM PCRs. Both come from PyPI (the test extras install them into the venv).

Run: `.venv/bin/python -m benchmarks.run --only measure` (or `python -m benchmarks.bench_measure`).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import sample_images
from benchmarks.common import Timing, bytecode_env, compare_pairs

VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    path = VENV_BIN / name
    return str(path) if path.exists() else shutil.which(name)


def bench_measure(runs: int) -> list[Timing]:
    image = sample_images.bookworm("OVMF.fd")
    if image is None:
        return [Timing("measure benchmarks: bookworm OVMF.fd missing (install `ovmf`)", float("nan"), [])]
    snp, vfm = _tool("sev-snp-measure"), _tool("virt-fw-measure")
    if snp is None or vfm is None:
        return [Timing("measure benchmarks: sev-snp-measure/virt-fw-measure missing (pip install '.[test]')",
                       float("nan"), [])]
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-measure-"))
    env = bytecode_env(tmp / "pycache")
    fw = str(VENV_BIN / "fwinspect")
    img = str(image)
    # No --kernel row: no image here has the SEV hashes-table area (only edk2's AmdSevX64 build),
    # so QEMU (and measure) refuse a kernel with it while sev-snp-measure computes on regardless.
    snp_args = ["--vcpus", "4", "--vcpu-type", "EPYC-v4"]
    pairs = [
        ("fwinspect mrtd OVMF.fd", [fw, "mrtd", img],
         "sev-snp-measure --mode snp (1 vCPU)", [snp, "--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4",
                                                "--ovmf", img]),
        ("fwinspect measure OVMF.fd --snp (4 vCPUs)", [fw, "measure", img, "--snp", *snp_args],
         "sev-snp-measure --mode snp (4 vCPUs)", [snp, "--mode", "snp", *snp_args, "--ovmf", img]),
        ("fwinspect measure OVMF.fd --tdx", [fw, "measure", img, "--tdx"],
         "sev-snp-measure --mode snp (1 vCPU)", [snp, "--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4",
                                                "--ovmf", img]),
        ("fwinspect measure OVMF.fd --tpm (sha1,sha256)", [fw, "measure", img, "--tpm", "--bank", "sha1,sha256"],
         "virt-fw-measure --digests (sha1,sha256)", [vfm, "--image", img, "--version", "", "--digests",
                                                     "--bank", "sha1", "--bank", "sha256"]),
    ]
    out = compare_pairs(pairs, max(runs, 15), cwd=str(tmp), env_a=env)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for t in bench_measure(7):
        print(t.row(), flush=True)
