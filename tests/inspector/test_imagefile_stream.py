"""The FD decoder reads an image's LZMA section while inspector.imagefile still inflates it
(`EarlyLzma.get.stream`): the tree must be byte for byte the one decoded without early bytes, on
Debian's OVMF.fd, under a small budget, and when the stream turns out bad only after the decoder
has read part of it (then what it decoded is undone and the section decoded as always).

Sections are built as in test_imagefile.py (PI 1.8 vol 3, 3.2.5.9 EFI_GUID_DEFINED_SECTION with an
LZMA payload as edk2's LzmaCompress writes it).
"""
from __future__ import annotations

import json
import lzma
import struct
import threading

from decoders import budget
from decoders.fd import decode_image, sections
from inspector.imagefile import EarlyLzma, LzmaStream, lzma_sections
from tests.inspector.test_imagefile import guided_section, lzma_payload
from tests.realdata import bookworm


def _tree(data: bytes, early: EarlyLzma | None, limits: budget.Limits | None = None) -> str:
    with budget.scope(limits):
        root = decode_image(data, name="x", predecoded=early.get if early else None)
    return json.dumps(root.to_json())


def _ovmf() -> bytes:
    return bookworm("OVMF.fd").read_bytes()


def _corrupt(data: bytes, fraction: float) -> bytes:
    """Debian's OVMF.fd with the LZMA stream of FVMAIN_COMPACT zeroed from `fraction` of the way in."""
    (payload, end, _), = lzma_sections(data)
    cut = payload + 13 + int((end - payload - 13) * fraction)
    return data[:cut] + bytes(end - cut) + data[end:]


def test_debian_ovmf_decoded_while_it_inflates_is_the_tree_decoded_after():
    data = _ovmf()
    early = EarlyLzma(data)
    assert early.get.stream(data, lzma_sections(data)[0][0]) is not None   # it does stream
    assert _tree(data, EarlyLzma(data)) == _tree(data, None)


def test_a_stream_that_breaks_late_is_undone_and_decoded_as_without_it(monkeypatch):
    data = _corrupt(_ovmf(), 0.8)
    (payload, end, declared), = lzma_sections(data)
    stream = LzmaStream(data, payload, end, declared)
    stream.run()
    assert not stream.need(declared) and stream.filled > 0x100000   # fails past PEIFV, inside DXEFV
    want = _tree(data, None)
    assert "payload not decompressed" in want
    undone = []
    real = sections._Undo.undo

    def spy(self):
        undone.append(self.ctx.files - self.counts[1])   # files decoded from the stream, now dropped
        real(self)

    monkeypatch.setattr(sections._Undo, "undo", spy)
    assert _tree(data, EarlyLzma(data)) == want
    assert len(undone) == 1 and undone[0] > 20   # PEIFV's files at least were decoded, then undone


def test_broken_streams_under_a_small_budget_give_the_same_cut_tree():
    small = budget.Limits(nodes=400, problems=20, files=60, sections=200)
    for fraction in (0.05, 0.5, 0.95):
        data = _corrupt(_ovmf(), fraction)
        assert _tree(data, EarlyLzma(data), small) == _tree(data, None, small)
    data = _ovmf()
    assert _tree(data, EarlyLzma(data), small) == _tree(data, None, small)


def test_a_stream_longer_than_declared_is_not_used():
    plain = bytes(range(256)) * 64
    data = b"\xff" * 64 + guided_section(lzma_payload(plain, declared=len(plain) - 100)) + b"\xff" * 8
    (payload, end, declared), = lzma_sections(data)
    stream = LzmaStream(data, payload, end, declared)
    stream.run()
    assert not stream.need(declared)
    assert _tree(data, EarlyLzma(data)) == _tree(data, None)


def test_need_waits_for_the_bytes_and_the_verdict():
    plain = bytes(range(256)) * 4096   # 1 MiB: several pieces
    data = guided_section(lzma_payload(plain))
    (payload, end, declared), = lzma_sections(data)
    stream = LzmaStream(data, payload, end, declared)
    seen = []
    reader = threading.Thread(target=lambda: seen.append((stream.need(1000), bytes(stream.data[:1000]))))
    reader.start()
    stream.run()
    reader.join(timeout=10)
    assert seen == [(True, plain[:1000])]
    assert stream.need(declared) and stream.data == plain


def test_a_section_is_handed_over_once_whole_or_streaming():
    plain = b"fwinspect" * 1000
    data = guided_section(lzma_payload(plain))
    early = EarlyLzma(data)
    stream = early.get.stream(data, 24)
    assert stream is not None and stream.need(len(plain)) and stream.data == plain
    assert early.get(data, 24) is None and early.get.stream(data, 24) is None
    assert struct.unpack_from("<Q", data, 24 + 5)[0] == len(plain)
    assert lzma.decompress(data[24:], format=lzma.FORMAT_ALONE) == plain


def test_overlapping_early_lzma_threads_restore_the_switch_interval():
    """Two images inflating at once (`diff`): the interval is the original once both are done,
    whichever ends first (inspector/imagefile.py lowers it for the first and restores it after the last)."""
    import sys
    import threading

    from inspector import imagefile

    before = sys.getswitchinterval()
    go = threading.Barrier(2)

    def user():
        imagefile._lower_switch_interval()
        go.wait(5)
        assert sys.getswitchinterval() == min(before, imagefile.SWITCH_INTERVAL)
        go.wait(5)
        imagefile._restore_switch_interval()

    threads = [threading.Thread(target=user) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sys.getswitchinterval() == before
