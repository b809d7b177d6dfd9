"""`fwinspect diff A B --json`, whole process, side by side with one `UEFIExtract A report` (README,
"Budgets": the diff of two 4 MiB images, both decoded, at most 1.0 x one UEFIExtract report of one
of them; peak RSS <= 160 MiB).

The pair is Debian 12's and Debian 13's OVMF_CODE_4M.fd (3.5 MiB each; FVMAIN_COMPACT inflates to
~13 and ~16 MiB), plus Debian 13's OVMF.fd against itself and against TDVF Config-B when present.
Runs alternate (ours, theirs, ours, ...) so the load of a shared machine falls on both alike; the
medians are reported with the CPU time and the load average (common.run_side_by_side).

Run: `.venv/bin/python -m benchmarks.bench_diff [RUNS]`. Needs `UEFIExtract` (Debian's uefitool-cli).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import sample_images
from benchmarks.common import Timing, bytecode_env, compare_pairs

VENV_BIN = Path(sys.executable).parent


def _config_b() -> Path | None:
    """Our TDVF Config-B build where the tests look for it (../shared/firmware, else `make firmware`'s cache)."""
    from tests.realdata import FIRMWARE_CACHE, SHARED_FIRMWARE

    return next((base / "inteltdx" / "OVMF.fd" for base in (SHARED_FIRMWARE, FIRMWARE_CACHE)
                 if (base / "inteltdx" / "OVMF.fd").is_file()), None)


def bench_diff(runs: int) -> list[Timing]:
    uefiextract = shutil.which("UEFIExtract")
    a, b = sample_images.bookworm("OVMF_CODE_4M.fd"), sample_images.trixie("OVMF_CODE_4M.fd")
    if uefiextract is None or a is None or b is None:
        return [Timing("diff benchmark: UEFIExtract (uefitool-cli) or the Debian 12/13 OVMF_CODE_4M.fd missing",
                       float("nan"), [])]
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-diff-"))
    env = bytecode_env(tmp / "pycache")
    fw = str(VENV_BIN / "fwinspect")
    # UEFIExtract writes FILE.report.txt beside its input: give it a copy in the scratch folder.
    copy_b = tmp / "OVMF_CODE_4M.fd"
    shutil.copyfile(b, copy_b)
    pairs = [("fwinspect diff --json CODE_4M deb12 deb13", [fw, "diff", "--json", str(a), str(b)],
              "UEFIExtract CODE_4M deb13 report", [uefiextract, str(copy_b), "report"])]
    ovmf = sample_images.trixie("OVMF.fd")
    if ovmf is not None:
        copy_ovmf = tmp / "OVMF.fd"
        shutil.copyfile(ovmf, copy_ovmf)
        pairs.append(("fwinspect diff --json OVMF.fd itself", [fw, "diff", "--json", str(ovmf), str(ovmf)],
                      "UEFIExtract OVMF.fd deb13 report", [uefiextract, str(copy_ovmf), "report"]))
        config_b = _config_b()
        if config_b is not None:
            pairs.append(("fwinspect diff --json Config-A Config-B", [fw, "diff", "--json", str(ovmf), str(config_b)],
                          "UEFIExtract OVMF.fd deb13 report", [uefiextract, str(copy_ovmf), "report"]))
    out = compare_pairs(pairs, max(runs, 9), cwd=str(tmp), env_a=env,
                        budget="<= 1.0; ours peak RSS budget 160 MiB")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for t in bench_diff(int(sys.argv[1]) if len(sys.argv) > 1 else 9):
        print(t.row(), flush=True)
