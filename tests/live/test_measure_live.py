"""Predicted PCR0/PCR7 next to the replayed ones at live stops (inspector/live/measured.py).

Live: Debian 12's OVMF.fd booted by QEMU 7.2 under TCG with a swtpm TPM 2.0, driven by a Session
from the reset vector to BdsDxe's entry (one boot, about 10 s here; every wait bounded, QEMU and
swtpm ended by PID by QemuProcess). At the BDS stop the `measure-check` node's values must equal
the replay of the log in the same tree (decoders/eventlog/replay.py) and predict_tpm's events cut to
as many per PCR as that log holds, extended here with hashlib (PCR = H(PCR || digest), TPM 2.0 Part 1
"PCR Extend").

Offline: a stop tree made of the real OVMF log of tests/data/ovmf-boots/bookworm-OVMF.fd.tcglog cut
before its PCR7 separator (as a stop before the Secure Boot policy is complete sees it), with a
prediction built from known events.
"""
from __future__ import annotations

import hashlib
import struct

import pytest

from decoders.eventlog import decode_event_log, replay
from decoders.eventlog.decode import event_digests, log_events
from decoders.measure.model import PredictedEvent, Prediction
from decoders.model import Node
from inspector.live.measured import MeasureCheck, find_tcg_log
from tests.realdata import bookworm, fixture, tool

EV_NO_ACTION, EV_SEPARATOR = 0x3, 0x4
# bookworm-OVMF.fd.tcglog: event #9 (PCR7 EV_SEPARATOR) starts at 0x718 (fwinspect eventlog; README there).
BEFORE_PCR7_SEPARATOR = 0x718
BDS_TIMEOUT = 60.0


def extend(bank: str, digests: list[bytes]) -> bytes:
    value = bytes(hashlib.new(bank).digest_size)
    for d in digests:
        value = hashlib.new(bank, value + d).digest()
    return value


def log_counts(log: Node) -> dict[int, int]:
    counts: dict[int, int] = {}
    for i, ev in enumerate(log_events(log)):
        if i and ev.get("EventType") != EV_NO_ACTION and ev.get("Event") is not None:
            counts[ev.get("PCRIndex")] = counts.get(ev.get("PCRIndex"), 0) + 1
    return counts


def own_prediction(log: Node, extra: list[PredictedEvent] = ()) -> Prediction:
    """The log's PCR0/PCR7 events as a prediction, plus `extra` events not logged yet."""
    evs = [PredictedEvent(ev.get("PCRIndex"), ev.get("EventType"), dict(event_digests(ev)), ev.get("Event"), "log")
           for i, ev in enumerate(log_events(log))
           if i and ev.get("PCRIndex") in (0, 7) and ev.get("EventType") != EV_NO_ACTION]
    return Prediction(evs + list(extra), ("sha1", "sha256", "sha384", "sha512"))


def separator(pcr: int) -> PredictedEvent:
    return PredictedEvent(pcr, EV_SEPARATOR, {b: hashlib.new(b, bytes(4)).digest()
                                              for b in ("sha1", "sha256", "sha384", "sha512")},
                          bytes(4), "ReadyToBoot")


def registers(node: Node) -> dict[tuple[str, str], Node]:
    return {(c.get("Register"), c.get("Bank")): c for c in node.children if c.kind == "measure-check-register"}


# -- offline: a recorded stop ----------------------------------------------------------------------

def early_stop_tree() -> tuple[Node, Node]:
    raw = fixture("ovmf-boots/bookworm-OVMF.fd.tcglog").read_bytes()[:BEFORE_PCR7_SEPARATOR]
    tree = Node("dxe-state", "DXE state at a stop before the PCR7 separator")
    log = tree.append(decode_event_log(raw))
    return tree, log


def test_stop_before_the_separators_compares_with_the_prediction_so_far():
    tree, log = early_stop_tree()
    calls = []

    def predictor(root, vars_path, banks):
        calls.append(banks)
        # the whole boot's prediction: the separators are predicted but not logged yet
        return own_prediction(log, [separator(7), separator(0)])

    mc = MeasureCheck(Node("image", "x"), None, predictor=predictor)
    node = mc.attach(tree)
    assert node is tree.children[-1] and node.kind == "measure-check"
    assert calls == [("sha1", "sha256", "sha384", "sha512")]
    regs = registers(node)
    assert sorted(regs) == sorted((f"PCR{p}", b) for p in (0, 7) for b in ("sha1", "sha256", "sha384", "sha512"))
    rp = replay(log)
    for (reg, bank), r in regs.items():
        assert r.get("Replayed") == rp.value(bank, int(reg[3:])).hex()
        assert r.get("Predicted") == r.get("Replayed") and r.get("Equal") is True
    assert node.get("FirstDivergence") is None
    assert node.title == "PCR0/PCR7: predicted vs replayed"
    assert node.field("Summary").display == "all 8 equal so far"
    # PCR7 so far: SecureBoot, PK, KEK, db, dbx of the real log, extended here
    pcr7 = [dict(event_digests(ev))["sha256"] for ev in log_events(log)[4:9]]
    assert regs[("PCR7", "sha256")].get("Predicted") == extend("sha256", pcr7).hex()
    # a second stop reuses the prediction
    mc.attach(early_stop_tree()[0])
    assert len(calls) == 1


def test_stop_with_a_divergent_event_gives_the_reason_on_that_pcr():
    tree, log = early_stop_tree()
    pred = own_prediction(log)
    secure_boot = pred.events[3]
    assert secure_boot.data[-1] == 0                        # SecureBoot = 0 in this boot
    data = secure_boot.data[:-1] + b"\x01"
    pred.events[3] = PredictedEvent(7, secure_boot.event_type, {b: hashlib.new(b, data).digest() for b in pred.banks},
                                    data, "VARS")
    node = MeasureCheck(Node("image", "x"), None, predictor=lambda *a: pred).attach(tree)
    regs = registers(node)
    assert regs[("PCR0", "sha256")].get("Equal") is True
    assert regs[("PCR7", "sha256")].get("Equal") is False
    assert regs[("PCR7", "sha256")].get("Reason") == (
        "#4 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: SecureBoot is 0 (disabled) in the log, 1 (enabled) predicted from "
        "the VARS: Secure Boot was off in the boot, and these VARS would turn it on (a PK is enrolled)")
    assert node.get("FirstDivergence") == 4
    assert node.field("Summary").display == "4 of 8 differ"


def test_a_failing_predictor_is_a_problem_on_the_node_not_a_traceback():
    tree, _log = early_stop_tree()

    def broken(*_a):
        raise ValueError("no PEIFV")

    node = MeasureCheck(Node("image", "x"), None, predictor=broken).attach(tree)
    assert [p.message for p in node.problems] == ["the prediction failed: ValueError: no PEIFV"]


def test_a_tree_without_a_tcg_log_gets_no_node():
    tree = Node("dxe-state", "no log yet")
    tree.append(Node("acpi", "tables"))
    assert MeasureCheck(Node("image", "x"), None, predictor=lambda *a: 1 / 0).attach(tree) is None
    assert tree.children[-1].kind == "acpi"


def test_the_log_is_found_at_most_two_levels_down():
    _tree, log = early_stop_tree()
    handoff = Node("bds-handoff", "BDS")
    handoff.append(Node("module", "BdsDxe"))
    handoff.append(log)
    assert find_tcg_log(handoff) is log
    deep = Node("a", "a")
    deep.append(Node("b", "b")).append(Node("c", "c")).append(log)
    assert find_tcg_log(deep) is None


# -- live: one boot to BDS -------------------------------------------------------------------------

@pytest.mark.live
def test_bds_stop_of_a_real_boot_shows_prediction_and_replay():
    tool("qemu-system-x86_64", "qemu-system-x86")
    tool("swtpm", "swtpm")
    from decoders.measure.tpm import predict_tpm
    from inspector.image import load_image
    from inspector.live.qemu import QemuProcess
    from inspector.live.session import Session

    path = bookworm("OVMF.fd")
    image = load_image(path)
    qemu = QemuProcess(path, memory="256M", tpm=True).start()
    try:
        session = Session(qemu.attach("rsp"), image, qemu)
        stop = session.run_to("bds", BDS_TIMEOUT)
        # PEIFV as the guest holds it (the session reads it once for its own prediction)
        where = predict_tpm(image.root, None).peifv_range
        peifv_ram = session.phys.read(*where)
    finally:
        qemu.close()
    assert stop.handoff == "bds", stop.problems
    checks = [n for n in stop.tree.children if n.kind == "measure-check"]
    assert len(checks) == 1, [c.kind for c in stop.tree.children]
    node = checks[0]
    log = find_tcg_log(stop.tree)
    banks = tuple(log.get("Algorithms"))
    assert banks == ("sha1", "sha256", "sha384", "sha512")
    counts = log_counts(log)
    # Tcg2Pei's three PCR0 events are in, ReadyToBoot's PCR0 separator is not yet; PCR7's five
    # variables and its separator are (Tcg2Dxe.c MeasureSecureBootPolicy ran when the variable write
    # protocol appeared, before BdsDxe's entry)
    assert {p: counts.get(p) for p in (0, 7)} == {0: 3, 7: 6}
    rp = replay(log)
    pred = predict_tpm(image.root, None, banks=banks, peifv_ram=peifv_ram)
    regs = registers(node)
    for pcr in (0, 7):
        mine = [ev for ev in pred.events if ev.index == pcr][:counts.get(pcr, 0)]
        for bank in ("sha1", "sha256"):
            r = regs[(f"PCR{pcr}", bank)]
            replayed = rp.value(bank, pcr)
            assert r.get("Replayed") == (replayed or bytes(hashlib.new(bank).digest_size)).hex()
            assert r.get("Predicted") == extend(bank, [ev.digests[bank] for ev in mine]).hex()
            assert r.get("Equal") is (r.get("Predicted") == r.get("Replayed"))
    # PCR7 is complete at BDS: the value of the whole boot's log (bookworm-OVMF.fd.tcglog, captured the same way),
    # predicted from the image's own empty Secure Boot variables
    assert regs[("PCR7", "sha256")].get("Replayed") == "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"
    assert regs[("PCR7", "sha256")].get("Equal") is True
    # PCR0 as far as it goes at BDS (CRTM version, PEIFV as in RAM, DXEFV) is the boot's: the first
    # three PCR0 events of the whole boot's log, replayed
    whole = decode_event_log(fixture("ovmf-boots/bookworm-OVMF.fd.tcglog").read_bytes())
    first3 = [ev for ev in log_events(whole) if ev.get("PCRIndex") == 0 and ev.get("EventType") != 3][:3]
    expected = extend("sha256", [dict(event_digests(ev))["sha256"] for ev in first3]).hex()
    assert regs[("PCR0", "sha256")].get("Replayed") == expected
    assert regs[("PCR0", "sha256")].get("Equal") is True
