"""`fwinspect FILE` recognises what a file is by its content and opens the right tree."""
from __future__ import annotations

import pytest

from inspector.sources import load_source
from tests.realdata import bookworm, fixture


@pytest.mark.parametrize("rel,kind,root_kind", [
    ("hob/td-shim/hob_buffer.bin", "hob", "hob-list"),
    ("ccel/cc-trusted-api/ccel_data.bin", "eventlog", "event-log"),
    ("eventlog/tpm2-tools/event-arch-linux.bin", "eventlog", "event-log"),
    ("acpi/fwts/acpidump-0001/acpidump.log", "acpi", "acpi"),
    ("acpi/igvm-tooling-cloud-hypervisor/1vcpu-tpm2.aml", "acpi", "acpi-table"),
    ("acpi/igvm-tooling-cloud-hypervisor/1vcpu-rsdp.aml", "acpi", "acpi-rsdp"),
    ("ccel/cc-trusted-api/quote.bin", "tdx-quote", "tdx-quote"),
])
def test_fixture_files_are_recognised(rel, kind, root_kind):
    got_kind, root = load_source(fixture(rel))
    assert got_kind == kind
    assert root.kind == root_kind


def test_event_log_tree_carries_its_replay():
    _, root = load_source(fixture("ccel/cc-trusted-api/ccel_data.bin"))
    replay = next(root.find("replay"))
    # fixtures README: RTMR0 of this log starts c15727ca (the same as RTMR0 in quote.bin).
    bank = next(c for c in replay.children if c.title == "sha384")
    assert bank.get("RTMR0").hex().startswith("c15727ca")


def test_images_open_as_images():
    kind, root = load_source(bookworm("OVMF.fd"))
    assert kind == "image" and root.kind == "image"
    assert next(root.find("image-info")).get("TDX") is True


def test_app_image_tree_shows_mrtd_in_both_orders():
    _, root = load_source(bookworm("OVMF.fd"))
    mrtds = {n.get("Order"): n.get("MRTD") for n in root.find("mrtd")}
    assert set(mrtds) == {"per-page", "two-pass"}
    # td-shim's reference tool value (td-shim-tools td-shim-tee-info-hash)
    assert mrtds["per-page"].hex().startswith("4c7206f0f483c524")


def test_replay_table_lists_the_events_that_built_each_register():
    _, root = load_source(fixture("ccel/cc-trusted-api/ccel_data.bin"))
    bank = next(c for c in next(root.find("replay")).children if c.title == "sha384")
    rtmr0 = next(c for c in bank.children if c.kind == "replay-register" and c.title.startswith("RTMR0"))
    extends = rtmr0.children
    assert extends and extends[-1].get("ValueAfter") == rtmr0.get("Value")
    events = {e.offset: e for e in root.children if e.kind == "event"}
    for ext in extends:  # each row points at its event's bytes in the log
        ev = events[ext.offset]
        assert ext.space is root.space and ext.size == ev.size
        assert ev.get("MrIndex") == 1  # RTMR0 is CC MR index 1 (UEFI 2.10 §38.4.1)
