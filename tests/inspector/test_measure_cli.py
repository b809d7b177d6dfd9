"""`fwinspect measure` as a user and a script see it: usage errors, the modes on real images with
the values the anchor tools and real boots give, --against on real boot logs and a real dump.

Values:
- SNP_LD: sev-snp-measure 0.0.13 `--mode snp --vmm-type QEMU --vcpus 4 --vcpu-type EPYC-v4 --ovmf
  /usr/share/ovmf/OVMF.fd` (checked against the tool itself in tests/decoders/test_measure_snp.py).
- MRTD: td-shim's td-shim-tee-info-hash on the same image (tests/inspector/test_cli.py).
- PCR7 and PCR0: the PCRs swtpm held after a real boot of that image (tests/live/
  test_measure_tpm_live.py reads them back; tests/data/ovmf-boots has the logs).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realdata import bookworm, fixture

ROOT = Path(__file__).resolve().parents[2]
SNP_4_EPYC_V4 = ("32ac9d7a17d28f7cd4404a4516d2f00519668c40ada2062351c36767e908eb3f"
                 "090d66c33ab10f80150e00a4385b6d0f")
MRTD_PER_PAGE = ("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057"
                 "fb887fed0744d5631a212967fb231c47")
# swtpm after a boot of Debian 12's OVMF.fd (no VARS: its own, empty, store)
PCR7_SHA256 = "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"
PCR7_SHA1 = "518bd167271fbb64589c61e43d8c0165861431d8"
BOOT_LOG = "ovmf-boots/bookworm-OVMF.fd.tcglog"
MS_LOG = "ovmf-boots/bookworm-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", "measure", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def nodes(stdout: str):
    stack = [json.loads(stdout)]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n["children"]))       # pre-order: the tree's order


def fields(node: dict) -> dict:
    return {f["name"]: f["value"] for f in node["fields"]}


def registers(stdout: str) -> dict:
    out = {}
    for n in nodes(stdout):
        if n["kind"] == "predicted-register":
            f = fields(n)
            out[(f["Register"], f["Bank"], f.get("Order"))] = f["Value"]
    return out


@pytest.mark.parametrize("args, words", [
    ([], "--tpm, --snp and/or --tdx"),
    (["--tdx", "--vcpus", "2"], "--vcpus goes with --snp"),
    (["--snp"], "--vcpu-type"),
    (["--snp", "--vcpu-type", "EPYC-v9"], "unknown --vcpu-type"),
    (["--snp", "--vcpu-type", "EPYC", "--vcpu-sig", "0x800f12"], "not both"),
    (["--snp", "--vcpu-type", "EPYC", "--initrd", "x"], "go with --kernel"),
    (["--tpm", "--bank", "md5"], "unknown bank md5"),
    (["--tdx", "--memory", "0"], "memory size"),
    (["--tpm", "--memory", "2G"], "--memory goes with --tdx"),
    (["--tdx", "--against", "x"], "--against goes with --tpm"),
])
def test_usage_errors_exit_2_with_one_line(args, words):
    r = run(str(bookworm("OVMF.fd")), *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""


def test_a_missing_image_is_a_usage_error():
    r = run("/nonexistent/OVMF.fd", "--tdx")
    assert r.returncode == 2 and "no such file" in r.stderr.lower()


def test_snp_json_gives_the_launch_digest_as_a_predicted_register():
    r = run(str(bookworm("OVMF.fd")), "--snp", "--vcpus", "4", "--vcpu-type", "EPYC-v4", "--json")
    assert r.returncode == 0, r.stderr
    assert registers(r.stdout) == {("SNP_LD", "sha384", None): SNP_4_EPYC_V4}
    regions = [fields(n) for n in nodes(r.stdout) if n["kind"] == "predicted-event"]
    assert [f["Region"] for f in regions][:1] == ["firmware image"]
    assert all(f["Register"] == "SNP_LD" and set(f["Digests"]) == {"sha384"} for f in regions)


def test_snp_on_an_image_without_sev_metadata_exits_1_and_says_so():
    r = run(str(bookworm("OVMF_CODE_4M.fd")), "--snp", "--vcpu-type", "EPYC")
    assert r.returncode == 1
    assert "no SEV metadata" in r.stderr


def test_tdx_on_an_image_without_tdx_metadata_exits_1_and_says_so():
    r = run(str(bookworm("OVMF_CODE_4M.fd")), "--tdx")
    assert r.returncode == 1
    assert "no TDX metadata" in r.stderr


def test_tdx_gives_the_mrtd_in_both_orders_and_the_td_hob():
    r = run(str(bookworm("OVMF.fd")), "--tdx", "--memory", "4G", "--json")
    assert r.returncode == 0, r.stderr
    regs = registers(r.stdout)
    assert regs[("MRTD", "sha384", "per-page")] == MRTD_PER_PAGE
    assert ("MRTD", "sha384", "two-pass") in regs
    hob = [n for n in nodes(r.stdout) if n["kind"] == "hob-list"]
    assert len(hob) == 1 and hob[0]["address"] == 0x809000
    # 4 GiB on q35: 2 GiB below 4 GiB (QEMU pc_q35.c: lowmem 0x80000000 from 0xb0000000 of RAM up),
    # the rest from 4 GiB
    tops = [fields(n) for n in nodes(r.stdout) if n["kind"] == "hob" and "RESOURCE" in n["title"]]
    assert max(f["PhysicalStart"] + f["ResourceLength"] for f in tops) == (4 << 30) + (2 << 30)


def test_tpm_predicts_pcr7_as_a_real_boot_reaches_it_in_both_banks():
    r = run(str(bookworm("OVMF.fd")), "--tpm", "--bank", "sha1,sha256", "--json")
    assert r.returncode == 0, r.stderr
    regs = registers(r.stdout)
    assert regs[("PCR7", "sha256", None)] == PCR7_SHA256
    assert regs[("PCR7", "sha1", None)] == PCR7_SHA1
    events = [fields(n) for n in nodes(r.stdout) if n["kind"] == "predicted-event"]
    assert [(e["PCRIndex"], e["EventType"]) for e in events] == [
        (0, 0x8), (0, 0x80000008), (0, 0x80000008),                 # CRTM version, PEIFV, DXEFV
        (7, 0x80000001), (7, 0x80000001), (7, 0x80000001), (7, 0x80000001), (7, 0x80000001), (7, 0x4),
        (0, 0x4)]
    assert all(set(e["Digests"]) == {"sha1", "sha256"} and e["Source"] for e in events)


def test_against_the_boots_own_log_parts_only_at_peifv_and_says_why():
    r = run(str(bookworm("OVMF.fd")), "--tpm", "--against", str(fixture(BOOT_LOG)), "--json")
    assert r.returncode == 1            # a comparison that fails
    against = [n for n in nodes(r.stdout) if n["kind"] == "measure-against"]
    assert len(against) == 1
    f = fields(against[0])
    assert f["FirstDivergence"] == 2
    divergences = [fields(n) for n in nodes(r.stdout) if n["kind"] == "against-divergence"]
    assert [(d["LogIndex"], d["PCRIndex"]) for d in divergences] == [(2, 0)]
    assert "PEIMs that ran before Tcg2Pei" in divergences[0]["Reason"]


def test_against_a_secure_boot_log_with_plain_vars_names_secure_boot_first():
    r = run(str(bookworm("OVMF_CODE_4M.secboot.fd")), "--vars", str(bookworm("OVMF_VARS_4M.fd")), "--tpm",
            "--against", str(fixture(MS_LOG)))
    assert r.returncode == 1
    assert "SecureBoot is 1 (enabled) in the log, 0 (disabled) predicted" in r.stdout


def test_against_a_file_that_is_no_tcg_log_is_a_located_problem(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 12)
    r = run(str(bookworm("OVMF.fd")), "--tpm", "--against", str(junk))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "not a TCG crypto-agile event log" in r.stdout


def test_all_three_modes_in_one_run():
    r = run(str(bookworm("OVMF.fd")), "--tpm", "--snp", "--tdx", "--vcpus", "4", "--vcpu-type", "EPYC-v4",
            "--json")
    assert r.returncode == 0, r.stderr
    root = json.loads(r.stdout)
    assert [c["kind"] for c in root["children"]] == ["tdx-prediction", "snp-prediction", "tpm-prediction"]
    regs = registers(r.stdout)
    assert regs[("SNP_LD", "sha384", None)] == SNP_4_EPYC_V4
    assert regs[("MRTD", "sha384", "per-page")] == MRTD_PER_PAGE
    assert regs[("PCR7", "sha256", None)] == PCR7_SHA256
