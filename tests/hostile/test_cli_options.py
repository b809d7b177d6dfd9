"""Every option value is checked when the options are parsed: out of range or malformed, it is a
usage error (exit 2) on one line naming the command and the option, never a traceback or a
silently different value (an address past 2^64 once translated as 0).

Ranges: bit positions 0-63 (a 64-bit PTE, Intel SDM vol. 3A table 4-19); MAXPHYADDR 36-52
(CPUID 0x80000008 EAX[7:0], at most 52 per SDM vol. 3A 4.1.4); addresses below 2^64.
"""
from __future__ import annotations

import pytest

from inspector.cli import main
from tests.hostile.harness import run_fwinspect

PAGES, TRANSLATE = "fwinspect pages: argument", "fwinspect translate: argument"
BELOW_2_64 = "is not an address below 2^64 (0x0-0xffffffffffffffff)"
CASES = [
    (["pages", "ram.bin", "--maxphyaddr", "200"], f"{PAGES} --maxphyaddr: 200 is not a MAXPHYADDR (36-52)"),
    (["pages", "ram.bin", "--maxphyaddr=-5"], f"{PAGES} --maxphyaddr: -5 is not a MAXPHYADDR (36-52)"),
    (["pages", "ram.bin", "--maxphyaddr", "35"], f"{PAGES} --maxphyaddr: 35 is not a MAXPHYADDR (36-52)"),
    (["pages", "ram.bin", "--sev-c-bit=-1"], f"{PAGES} --sev-c-bit: -1 is not a bit position (0-63)"),
    (["pages", "ram.bin", "--tdx-shared-bit", "64"], f"{PAGES} --tdx-shared-bit: 64 is not a bit position (0-63)"),
    (["pages", "ram.bin", "--cr3", "0x1" + "0" * 16], f"{PAGES} --cr3: 0x10000000000000000 {BELOW_2_64}"),
    (["pages", "ram.bin", "--base", "ram"], f"{PAGES} --base: not a number: 'ram' (use 0x... for hex)"),
    (["translate", "ram.bin", "0x1" + "0" * 16], f"{TRANSLATE} va: 0x10000000000000000 {BELOW_2_64}"),
    (["translate", "ram.bin", "-1"], f"{TRANSLATE} va: -1 {BELOW_2_64}"),
    (["translate", "ram.bin", "0x1000", "--maxphyaddr", "53"],
     f"{TRANSLATE} --maxphyaddr: 53 is not a MAXPHYADDR (36-52)"),
    (["hob", "hob.bin", "--base", "0x" + "f" * 17],
     f"fwinspect hob: argument --base: 0xfffffffffffffffff {BELOW_2_64}"),
    (["qemu", "x.fd", "--timeout", "-1"],
     "fwinspect: argument --timeout: -1 seconds: want more than 0 and at most a day"),
    (["fd"], "fwinspect fd: the following arguments are required: image"),
    (["fd", "x.fd", "--bogus"], "fwinspect: unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("argv,line", CASES, ids=[" ".join(a)[:40] for a, _ in CASES])
def test_bad_option_value_is_one_usage_line(capsys, argv, line):
    assert main(argv) == 2
    err = capsys.readouterr().err
    # argparse's errors point at --help; the one checked after parsing (QEMU's own options) does not
    suffix = "" if argv[0] == "qemu" else " (--help for usage)"
    assert err.splitlines() == [line + suffix]


def test_bad_values_from_a_whole_process(tmp_path):
    ram = tmp_path / "ram.bin"
    ram.write_bytes(bytes(0x4000))
    for argv in (["pages", ram, "--maxphyaddr", "200"], ["pages", ram, "--sev-c-bit=-1"],
                 ["translate", ram, "--base", "0", "--cr3", "0", str(1 << 64)]):
        out = run_fwinspect(argv)
        out.check()
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1 and out.stdout == b""


def test_edges_of_the_ranges_are_accepted(tmp_path):
    """A raw file whose page tables map nothing: the walk runs (exit 0 or 1), the values were taken."""
    ram = tmp_path / "ram.bin"
    ram.write_bytes(bytes(0x2000))
    for argv in (["translate", ram, "--base", "0", "--cr3", "0", hex((1 << 64) - 1), "--maxphyaddr", "36",
                  "--sev-c-bit", "0", "--tdx-shared-bit", "63"],
                 ["pages", ram, "--base", "0", "--cr3", "0x1000", "--maxphyaddr", "52"]):
        out = run_fwinspect(argv)
        out.check()
        assert out.returncode in (0, 1), out.describe()
