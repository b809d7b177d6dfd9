"""explain_against on hostile logs and predictions: random bytes, a real log cut at every length or
with bytes flipped, signature lists whose sizes lie, a flood of divergent events, a prediction with
unknown banks. Each gives a `measure-against` node (problems where something could not be compared),
never a traceback; the node always serialises to JSON.

Logs are TCG PC Client PFP 1.05 §10.2 crypto-agile logs built with struct.pack (Spec ID event, then
TCG_PCR_EVENT2), or the real OVMF log of tests/data/ovmf-boots/.
"""
from __future__ import annotations

import hashlib
import json
import random
import struct
import uuid

import pytest

from decoders.errors import DecodeError
from decoders.eventlog import decode_event_log, replay
from decoders.eventlog.decode import event_digests, log_events
from decoders.measure.against import MAX_EXPLAINED, compare_registers, explain_against
from decoders.measure.model import PredictedEvent, Prediction
from decoders.model import Node
from tests.realdata import fixture

EV_NO_ACTION, EV_SEPARATOR = 0x3, 0x4
EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000001, 0x80000008
SHA256 = (0x000B, 32)
GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
CERT_X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")


def spec_id() -> bytes:
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 1) + struct.pack("<HH", *SHA256) + b"\0"
    return struct.pack("<II20sI", 0, EV_NO_ACTION, bytes(20), len(body)) + body


def event2(pcr, etype, digest, data) -> bytes:
    return struct.pack("<IIIH", pcr, etype, 1, SHA256[0]) + digest + struct.pack("<I", len(data)) + data


def variable(name: str, value: bytes) -> bytes:
    return GLOBAL.bytes_le + struct.pack("<QQ", len(name), len(value)) + name.encode("utf-16-le") + value


def prediction_from(log: Node, pcrs=(0, 7)) -> Prediction:
    """The log's own events as a prediction (what a perfect predictor would say)."""
    evs = []
    for i, ev in enumerate(log_events(log)):
        if i == 0 or ev.get("PCRIndex") not in pcrs or ev.get("EventType") == EV_NO_ACTION or ev.get("Event") is None:
            continue
        evs.append(PredictedEvent(ev.get("PCRIndex"), ev.get("EventType"), dict(event_digests(ev)), ev.get("Event"),
                                  "the full log"))
    return Prediction(evs, ("sha1", "sha256"))


def check(prediction: Prediction, log: Node, **kw) -> Node:
    node = explain_against(prediction, log, **kw)
    assert node.kind == "measure-against"
    json.dumps(node.to_json())
    fd = node.get("FirstDivergence")
    assert fd is None or isinstance(fd, int)
    return node


def decode_or_none(raw: bytes) -> Node | None:
    try:
        return decode_event_log(raw)
    except DecodeError:
        return None       # the log decoder's own verdict on input with nothing decodable


@pytest.fixture(scope="module")
def real():
    raw = fixture("ovmf-boots/bookworm-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog").read_bytes()
    return raw, prediction_from(decode_event_log(raw))


def test_random_logs_after_a_valid_header_never_raise():
    rnd = random.Random(1)
    pred = Prediction([PredictedEvent(0, EV_SEPARATOR, {"sha256": hashlib.sha256(bytes(4)).digest()}, bytes(4), "x")],
                      ("sha256",))
    for _ in range(300):
        raw = spec_id() + rnd.randbytes(rnd.randrange(0, 400))
        log = decode_or_none(raw)
        if log is not None:
            check(pred, log)


def test_random_bytes_never_raise():
    rnd = random.Random(2)
    pred = Prediction([], ("sha256",))
    for _ in range(200):
        log = decode_or_none(rnd.randbytes(rnd.randrange(0, 200)))
        if log is not None:
            check(pred, log)


def test_real_log_cut_at_every_length_reports_what_is_missing(real):
    raw, pred = real
    for cut in range(0, len(raw), 37):
        log = decode_or_none(raw[:cut])
        if log is None:
            continue
        node = check(pred, log)
        if node.get("FirstDivergence") is not None:
            # a cut log only lacks events: every divergence is a predicted event not in the log
            kinds = {c.get("Kind") for c in node.children if c.kind == "against-divergence"}
            assert kinds <= {"missing"}, (cut, kinds)


def test_real_log_cut_inside_the_pk_event_notes_the_truncated_event(real):
    raw, pred = real
    log = decode_event_log(raw[:0x394 + 0x100])       # #5 (PK) starts at 0x394 and is 0x4cd bytes
    node = check(pred, log)
    assert "event #5 is truncated (its data run past the end): not compared" in [p.message for p in node.problems]
    assert node.get("FirstDivergence") == 6        # past the end of a log of 6 events: PK never arrived


def test_real_log_with_flipped_bytes_never_raises(real):
    raw, pred = real
    rnd = random.Random(3)
    for _ in range(150):
        b = bytearray(raw)
        for _ in range(rnd.randrange(1, 6)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        log = decode_or_none(bytes(b))
        if log is not None:
            check(pred, log, so_far=rnd.random() < 0.5)


def test_signature_lists_that_lie_about_their_sizes_still_explain():
    lying = [CERT_X509.bytes_le + struct.pack("<III", 0xFFFFFFFF, 0, 16) + bytes(16),
             CERT_X509.bytes_le + struct.pack("<III", 28 + 20, 0, 20) + bytes(16) + b"\x30\x82\xff\xff",
             CERT_X509.bytes_le + struct.pack("<III", 10, 0, 0),
             b"\x01" * 7]
    for bad in lying:
        good = variable("PK", b"")
        wrong = variable("PK", bad)
        log = decode_event_log(spec_id() + event2(7, EV_EFI_VARIABLE_DRIVER_CONFIG, hashlib.sha256(wrong).digest(), wrong))
        pred = Prediction([PredictedEvent(7, EV_EFI_VARIABLE_DRIVER_CONFIG, {"sha256": hashlib.sha256(good).digest()},
                                          good, "VARS")], ("sha256",))
        node = check(pred, log)
        assert node.get("FirstDivergence") == 1
        assert node.get("Reason").startswith("#1 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: PK holds ")


def test_garbage_variable_data_on_both_sides():
    rnd = random.Random(4)
    for _ in range(100):
        a, b = rnd.randbytes(rnd.randrange(0, 80)), rnd.randbytes(rnd.randrange(0, 80))
        log = decode_event_log(spec_id() + event2(7, EV_EFI_VARIABLE_DRIVER_CONFIG, hashlib.sha256(a).digest(), a))
        pred = Prediction([PredictedEvent(7, EV_EFI_VARIABLE_DRIVER_CONFIG, {"sha256": hashlib.sha256(b).digest()},
                                          b, "VARS")], ("sha256",))
        check(pred, log)


def test_a_flood_of_divergent_events_is_bounded():
    n = 3000
    log_raw = spec_id() + b"".join(event2(7, EV_SEPARATOR, hashlib.sha256(struct.pack("<I", i)).digest(),
                                          struct.pack("<I", i)) for i in range(n))
    pred = Prediction([PredictedEvent(7, EV_SEPARATOR, {"sha256": hashlib.sha256(bytes(4) + b"x").digest()},
                                      bytes(4), "x") for _ in range(n)], ("sha256",))
    node = check(pred, decode_event_log(log_raw))
    listed = [c for c in node.children if c.kind == "against-divergence"]
    assert len(listed) == MAX_EXPLAINED
    assert f"{n - MAX_EXPLAINED} more divergences not listed (first {MAX_EXPLAINED} shown)" in \
        [p.message for p in node.problems]
    assert node.get("FirstDivergence") == 1


def test_prediction_with_unknown_banks_and_no_digests():
    raw = spec_id() + event2(0, EV_SEPARATOR, hashlib.sha256(bytes(4)).digest(), bytes(4))
    pred = Prediction([PredictedEvent(0, EV_SEPARATOR, {}, bytes(4), "nothing"),
                       PredictedEvent(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, {"sm3_256": bytes(32)}, b"\x01", "odd")],
                      ("sm3_256", "sha256"))
    node = check(pred, decode_event_log(raw))
    assert node.get("FirstDivergence") == 2      # the blob never came: past the end of a 2-event log
    compare_registers(pred, replay(decode_event_log(raw)), so_far=True)


def test_a_node_that_is_not_an_event_log():
    node = check(Prediction([], ("sha256",)), Node("hob-list", "not a log"))
    assert node.problems[0].message.startswith("not a TCG crypto-agile event log")
