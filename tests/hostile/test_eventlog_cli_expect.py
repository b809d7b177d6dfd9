"""Comparison inputs of `fwinspect eventlog` from a hostile hand: a TDX quote cut short or from
another TEE, and malformed --expect values. Each becomes a located problem (exit 1) or a usage
error naming the option (exit 2), never a traceback; each run as a whole process.

The quote layout is Intel's TDX DCAP "Quote Format" (v4): a 48-byte header {Version u16,
AttestationKeyType u16, TeeType u32 (0x81 TDX, 0x00 SGX), ...}, then the 584-byte TD quote body
whose RTMR0-3 sit at body offsets 328, 376, 424 and 472.
"""
from __future__ import annotations

import struct

import pytest

from inspector.cli import main
from tests.hostile.harness import run_fwinspect
from tests.realdata import fixture

LOG = "ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.bin"
QUOTE = "ccel/go-tdx-guest/cos-113-tdx-quote.dat"
HEADER, BODY = 48, 584


def _quote(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("cut", [0, 20, HEADER, 100, HEADER + BODY - 1])
def test_truncated_quote_is_a_located_problem_naming_where_it_ends(tmp_path, cut):
    quote = _quote(tmp_path, f"cut{cut}.dat", fixture(QUOTE).read_bytes()[:cut])
    out = run_fwinspect(["eventlog", fixture(LOG), "--expect-quote", quote])
    out.check()
    assert out.returncode == 1
    lines = out.stderr.decode().splitlines()
    assert f"error cut{cut}.dat 0x{cut:x} tdx-quote 'TDX quote': RTMR0-3 not compared: it ends at 0x{cut:x}, " \
           f"before the TD quote body's end (0x{HEADER + BODY:x})" in lines


@pytest.mark.parametrize("offset,value,message", [
    (4, 0x00, "TeeType 0x0 is not TDX (0x81)"),          # an SGX quote
    (0, 3, "quote Version 3; this decoder knows version 4 (TD quote body v1.0)"),
])
def test_foreign_quote_is_not_compared_and_says_why(tmp_path, offset, value, message):
    data = bytearray(fixture(QUOTE).read_bytes())
    struct.pack_into("<I" if offset == 4 else "<H", data, offset, value)
    quote = _quote(tmp_path, "foreign.dat", bytes(data))
    out = run_fwinspect(["eventlog", fixture(LOG), "--expect-quote", quote, "--json"])
    out.check()
    assert out.returncode == 1
    err = out.stderr.decode()
    assert f"0x{offset:x} tdx-quote-header 'quote header': {message}" in err
    assert "RTMR0-3 not compared: not a TDX quote v4" in err


def test_intact_quote_still_matches_with_exit_0():
    out = run_fwinspect(["eventlog", fixture(LOG), "--expect-quote", fixture(QUOTE)])
    out.check()
    assert out.returncode == 0
    assert out.stdout.decode().splitlines() == [f"RTMR{i}: match" for i in range(4)]


@pytest.mark.parametrize("value,says", [
    ("=", "'=': want PCRn=HEX (n 0-23) or RTMRn=HEX (n 0-3)"),
    ("SHA256=00", "'SHA256=00': SHA256 is not a register"),
    ("PCR24=" + "00" * 32, "PCR24 is not a register"),
    ("RTMR4=" + "00" * 48, "RTMR4 is not a register"),
    ("PCR7=00", "'PCR7=00': a 1-byte value; PCR7 holds 20, 32, 48 or 64 bytes"),
    ("RTMR0=" + "00" * 32, "a 32-byte value; RTMR0 holds 48 bytes (SHA-384)"),
    ("PCR7=zz", "'zz' is not hex"),
    ("PCR7", "'PCR7': want PCRn=HEX"),
])
def test_malformed_expect_is_one_usage_line_naming_the_option(capsys, value, says):
    assert main(["eventlog", "log.bin", "--expect", value]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("fwinspect eventlog: argument --expect: ") and says in err[0]


def test_malformed_expect_whole_process_and_missing_quote_file(tmp_path):
    bad = run_fwinspect(["eventlog", fixture(LOG), "--expect", "SHA256=00"])
    bad.check()
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    missing = run_fwinspect(["eventlog", fixture(LOG), "--expect-quote", tmp_path / "none.dat"])
    missing.check()
    assert missing.returncode == 2
    assert missing.stderr.decode() == f"fwinspect: --expect-quote {tmp_path / 'none.dat'}: no such file\n"
