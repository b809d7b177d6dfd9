"""Hostile event logs: hypothesis mutates real fixtures (event sizes past the end or huge, digest
counts that lie, unknown algorithms, truncation, random bytes). Every input must give a Node with
located problems — never an exception — in bounded memory, and replay, digest checks, comparison
and the YAML export must cope with whatever was decoded. Logs of many minimal events, written with
struct.pack from the TCG PC Client PFP 1.05 layouts (10.2.1 TCG_PCR_EVENT, 10.2.2 TCG_PCR_EVENT2,
10.4.5.1 the Spec ID event), check the event budget and the trailing-padding rule. (Times are
measured in benchmarks/hostile.py, not asserted here.)
"""
from __future__ import annotations

import functools
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders import budget
from decoders.devicepath import device_path_text
from decoders.eventlog import check_digests, compare, decode_event_log, replay, to_tpm2_eventlog_yaml
from decoders.eventlog.decode import MAX_EVENTS
from decoders.eventlog.quote import decode_tdx_quote
from tests.realdata import fixture

SEEDS = ["eventlog/tpm2-tools/event-sd-boot-fedora37.bin",        # crypto-agile, 2 banks
         "eventlog/tpm2-tools/event-uefi-sha1-log.bin",           # TPM 1.2 SHA-1
         "eventlog/tpm2-tss/binary_measurements_hcrtm.bin",       # SM3 bank, H-CRTM
         "eventlog/go-tpm-tools/gdc-host.bin",                    # StartupLocality
         "ccel/go-eventlog/CCEL_unpadded.data.bin",               # CC log
         "ccel/cc-trusted-api/ccel_data.bin"]                     # CC log with 0xFF padding

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
    _exercise(data)


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
        log = _exercise(data)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < PEAK_BYTES
        assert any(p.severity.value == "error" for _n, p in log.all_problems())


# -- many events: the budget and the padding rule ------------------------------------------------

EV_POST_CODE, EV_NO_ACTION, SHA256 = 1, 3, 0x000B


def _sha1_event(pcr: int = 0) -> bytes:
    """TCG_PCR_EVENT: PCRIndex, EventType, Digest[20], EventSize 0 (PFP 1.05 10.2.1)."""
    return struct.pack("<II20sI", pcr, EV_POST_CODE, bytes(20), 0)


def _agile_log(count: int) -> bytes:
    """Spec ID Event03 with one SHA-256 bank, then `count` TCG_PCR_EVENT2 of 50 bytes each."""
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBIHHB", 0, 0, 2, 0, 2, 1, SHA256, 32, 0)
    head = struct.pack("<II20sI", 0, EV_NO_ACTION, bytes(20), len(body)) + body
    return head + struct.pack("<IIIH32sI", 0, EV_POST_CODE, 1, SHA256, bytes(32), 0) * count


def test_events_past_max_events_are_a_located_problem():
    log = decode_event_log(_sha1_event() * (MAX_EVENTS + 7))
    assert log.get("EventCount") == MAX_EVENTS
    (p,) = log.problems
    assert p.offset == MAX_EVENTS * 32 and p.severity.value == "warning"
    assert p.message == f"224 more bytes of events not decoded; the budget is {MAX_EVENTS:,} events"


def test_the_node_budget_cuts_events_where_it_runs_out():
    with budget.scope(budget.Limits(nodes=2 * 10 + 1)):
        log = decode_event_log(_agile_log(30))
    # The Spec ID event is not charged; ten events take the 20 nodes that fit.
    assert log.get("EventCount") == 11
    spec_id_end = 32 + 33          # TCG_PCR_EVENT header + a Spec ID body with one algorithm
    cut = [p for p in log.problems if "budget" in p.message]
    assert [(p.offset, p.message) for p in cut] == [
        (spec_id_end + 10 * 50, "1,000 more bytes of events not shown; the budget is 21 nodes"),
        (None, "budget reached, left out: 1,000 nodes")]


def test_events_starting_with_zero_bytes_are_not_padding_until_the_zero_run_at_the_end():
    # PCR0 events begin with four zero bytes; only the run of zeros at the very end is padding.
    events = _sha1_event() * 1000
    log = decode_event_log(events + b"\x01")
    assert log.get("EventCount") == 1000
    (p,) = [p for p in log.problems if p.offset == 32000]
    assert p.message == "1 trailing bytes, too short for a 32-byte TCG_PCR_EVENT header"
    log = decode_event_log(events + bytes(4096))
    assert log.get("EventCount") == 1000
    (p,) = log.problems
    assert (p.offset, p.severity.value) == (32000, "info")
    assert p.message == "log ends at 0x7d00; 4096 bytes of 0x00 padding follow"
    log = decode_event_log(_agile_log(3) + b"\xff" * 100)
    assert log.get("EventCount") == 4 and [p.message for p in log.problems] == [
        f"log ends at 0x{len(_agile_log(3)):x}; 100 bytes of 0xFF padding follow"]


def test_digest_findings_past_the_problem_budget_are_counted_on_the_log():
    # EV_SEPARATOR (PFP 1.05 10.4.1, type 4): the digest is the hash of the 4-byte event data; here
    # every logged digest is zero, so each of the 30 events mismatches.
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBIHHB", 0, 0, 2, 0, 2, 1, SHA256, 32, 0)
    head = struct.pack("<II20sI", 0, EV_NO_ACTION, bytes(20), len(body)) + body
    separator = struct.pack("<IIIH32sI4s", 7, 4, 1, SHA256, bytes(32), 4, bytes(4))
    with budget.scope(budget.Limits(problems=10)):
        log = decode_event_log(head + separator * 30)
        checks = check_digests(log)
    assert len(checks) == 30 and not any(c.matches for c in checks)
    flagged = [ev for ev in log.children if ev.problems]
    assert len(flagged) == 10 and flagged[0].problems[0].offset == 32 + 33 + 12 + 2
    assert log.problems[-1].message == "20 more digest findings not listed; the budget is 10 problems"
