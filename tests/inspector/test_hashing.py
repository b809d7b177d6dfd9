"""inspector.hashing: a SHA-384 fed on its own thread gives hashlib's digest, and compute_mrtds with
it gives the MRTDs the plain hashes give (and leaves no thread behind, even when it fails)."""
from __future__ import annotations

import hashlib
import threading

import pytest

from decoders import mrtd
from decoders.mrtd import ORDERS, compute_mrtds, image_tdx_metadata
from decoders.ovmf.metadata import tdx_sections
from inspector.hashing import ThreadedHash, side_by_side
from tests.realdata import bookworm


def test_threaded_hash_is_hashlib_over_the_same_buffers_in_order():
    # Small and large buffers (hashlib keeps the GIL below 2 KiB, releases it above), more than the
    # queue depth of them, and bytearrays as compute_mrtds passes them.
    bufs = [bytes([i]) * n for i, n in enumerate((1, 127, 2048, 5000, 1 << 20, 3, 4096, 1 << 16) * 3)]
    t = ThreadedHash(hashlib.sha384(), depth=2)
    for b in bufs:
        t.update(bytearray(b))
    assert t.digest() == hashlib.sha384(b"".join(bufs)).digest()
    t.close()                                   # idempotent after digest()


def test_side_by_side_keeps_the_first_order_on_the_callers_thread():
    new_hash = side_by_side(ORDERS)
    first, other = new_hash(ORDERS[0]), new_hash(ORDERS[1])
    assert not isinstance(first, ThreadedHash)
    assert isinstance(other, ThreadedHash)
    other.close()


def test_mrtds_with_threads_equal_the_plain_ones_on_a_real_image():
    path = bookworm("OVMF.fd")
    data = path.read_bytes()
    sections = tdx_sections(image_tdx_metadata(data, path.name))
    plain = compute_mrtds(data, sections, ORDERS)
    before = threading.active_count()
    threaded = compute_mrtds(data, sections, ORDERS, side_by_side(ORDERS))
    assert [r.digest for r in threaded] == [r.digest for r in plain]
    # Debian 12's OVMF.fd, per-page and two-pass (as `fwinspect mrtd --order both` printed them
    # before the orders were hashed side by side).
    assert [r.hex for r in threaded] == [
        "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47",
        "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1"]
    assert threading.active_count() == before


def test_a_failure_while_hashing_ends_the_thread(monkeypatch):
    path = bookworm("OVMF.fd")
    data = path.read_bytes()
    sections = tdx_sections(image_tdx_metadata(data, path.name))

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(mrtd, "_hash_section", broken)
    before = threading.active_count()
    with pytest.raises(RuntimeError):
        compute_mrtds(data, sections, ORDERS, side_by_side(ORDERS))
    assert threading.active_count() == before
