"""Hostile event logs: hypothesis mutates real fixtures (event sizes past the end or huge, digest
counts that lie, unknown algorithms, truncation, random bytes). Every input must give a Node with
located problems — never an exception — in bounded time and memory, and replay, digest checks,
comparison and the YAML export must cope with whatever was decoded.
"""
from __future__ import annotations

import functools
import struct
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.devicepath import device_path_text
from decoders.eventlog import check_digests, compare, decode_event_log, replay, to_tpm2_eventlog_yaml
from decoders.eventlog.quote import decode_tdx_quote
from tests.realdata import fixture

SEEDS = ["eventlog/tpm2-tools/event-sd-boot-fedora37.bin",        # crypto-agile, 2 banks
         "eventlog/tpm2-tools/event-uefi-sha1-log.bin",           # TPM 1.2 SHA-1
         "eventlog/tpm2-tss/binary_measurements_hcrtm.bin",       # SM3 bank, H-CRTM
         "eventlog/go-tpm-tools/gdc-host.bin",                    # StartupLocality
         "ccel/go-eventlog/CCEL_unpadded.data.bin",               # CC log
         "ccel/cc-trusted-api/ccel_data.bin"]                     # CC log with 0xFF padding

PER_EXAMPLE_SECONDS = 2.0
PEAK_BYTES = 64 << 20


@functools.cache
def _seeds():
    out = []
    for rel in SEEDS:
        raw = fixture(rel).read_bytes()
        log = decode_event_log(raw)
        events = [c for c in log.children if c.kind == "event"]
        # where each event's fields are, so mutations hit the header words that matter
        fields = [(f.name, f.offset) for ev in events for f in ev.fields if f.offset is not None]
        out.append((rel, raw[:20000], fields))
    return out


U32_LIES = st.sampled_from([0, 1, 0x7F, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF])


@st.composite
def mutated_log(draw):
    rel, raw, fields = draw(st.sampled_from(_seeds()))
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field", "alg", "truncate", "bytes", "specid"]))
        if kind == "field" and fields:
            name, off = draw(st.sampled_from([f for f in fields if f[0] in
                                               ("EventSize", "Count", "PCRIndex", "MrIndex", "EventType")] or fields))
            if off + 4 <= len(data):
                data[off:off + 4] = struct.pack("<I", draw(U32_LIES))
        elif kind == "alg" and fields:
            digests = [off for name, off in fields if name.startswith("Digest.")]
            if digests:
                off = draw(st.sampled_from(digests)) - 2      # the hashAlg in front of the digest
                data[off:off + 2] = struct.pack("<H", draw(st.sampled_from([0x0099, 0x0012, 0x000D, 0xFFFF])))
        elif kind == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif kind == "bytes" and data:
            pos = draw(st.integers(0, len(data) - 1))
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(chunk)] = chunk
        elif kind == "specid" and len(data) > 64:
            # numberOfAlgorithms / digestSize / vendorInfoSize of the Spec ID header
            off = draw(st.sampled_from([56, 62, 66]))
            data[off:off + 2] = struct.pack("<H", draw(st.sampled_from([0, 1, 0xFF, 0xFFFF])))
    return rel, bytes(data)


def _exercise(data: bytes):
    log = decode_event_log(data)
    assert log.kind == "event-log"
    for node, p in log.all_problems():
        assert p.offset is None or 0 <= p.offset <= len(data), (node.title, p)
        assert p.message
    rp = replay(log)
    check_digests(log)
    compare(rp, {"RTMR0": bytes(48)} if log.get("Format") == "cc" else {"sha256": {0: bytes(32)}})
    to_tpm2_eventlog_yaml(log, rp)
    to_tpm2_eventlog_yaml(log, rp, device_paths="text")
    log.to_json()
    return log


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_log())
def test_mutated_logs_give_located_problems_never_exceptions(case):
    rel, data = case
    t = time.perf_counter()
    _exercise(data)
    assert time.perf_counter() - t < PER_EXAMPLE_SECONDS


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=512), st.sampled_from(["auto", "tcg", "cc"]))
def test_random_bytes_decode_without_exception(data, kind):
    log = decode_event_log(data, kind=kind)
    replay(log)
    check_digests(log)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=256))
def test_random_device_paths_and_quotes_never_raise(data):
    text, problems = device_path_text(data)
    assert isinstance(text, str)
    device_path_text(data, style="efivar")
    decode_tdx_quote(data)


def test_lying_sizes_cost_bounded_memory():
    """An event claiming 4 GiB of data, a count of 2^32-1 digests, and a Spec ID with 65535
    algorithms: decoding reads only what is there."""
    rel, raw, fields = _seeds()[0]
    cases = []
    for name in ("EventSize", "Count"):
        off = next(o for n, o in fields if n == name and o > 100)
        d = bytearray(raw)
        d[off:off + 4] = b"\xff\xff\xff\xff"
        cases.append(bytes(d))
    d = bytearray(raw)
    d[56:60] = b"\xff\xff\x00\x00"
    cases.append(bytes(d))
    for data in cases:
        tracemalloc.start()
        t = time.perf_counter()
        log = _exercise(data)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < PEAK_BYTES and time.perf_counter() - t < PER_EXAMPLE_SECONDS
        assert any(p.severity.value == "error" for _n, p in log.all_problems())
