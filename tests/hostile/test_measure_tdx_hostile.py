"""Hostile input for the TDX prediction: random and overlapping TDVF sections, absurd memory sizes,
truncated and mutated images, corrupt variable stores. Every case ends with located problems or a
result, never an exception, and the work stays bounded (seeded random cases, a few hundred)."""
from __future__ import annotations

import random
import struct
import uuid

import pytest

from decoders.hob import decode_hob_list, lint_td_hob
from decoders.measure.tdhob_build import build_td_hob
from decoders.measure.tdx import MAX_VARIABLES, predict_tdx, read_variable_store
from decoders.model import Severity, Space
from decoders.ovmf.metadata import TdxSection
from tests.realdata import firmware, trixie

GiB = 1 << 30
TDX_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
TABLE_FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")


def _plausible_sections(rng: random.Random) -> list[TdxSection]:
    """BFV and CFV below 4 GiB, a TD_HOB and some TempMem pages in the first 64 MiB (they may overlap)."""
    rows = [(0, 0xFFE00000, 0x100000), (1, 0xFFD00000, 0x100000)]
    rows.append((2, rng.randrange(0, 0x4000) * 0x1000, rng.randrange(1, 5) * 0x1000))
    rows += [(3, rng.randrange(0, 0x4000) * 0x1000, rng.randrange(0, 17) * 0x1000) for _ in range(rng.randrange(0, 8))]
    rng.shuffle(rows)
    return [TdxSection(i, 0, 0, addr, size, typ, 0, None, 0x100 + 32 * i) for i, (typ, addr, size) in enumerate(rows)]


def _random_sections(rng: random.Random) -> list[TdxSection]:
    if rng.random() < 0.5:
        return _plausible_sections(rng)
    out = []
    for i in range(rng.randrange(0, 12)):
        typ = rng.choice([0, 1, 2, 2, 3, 3, 3, 4, 5, 8, 99])
        addr = rng.choice([rng.randrange(0, 1 << 24) & ~0xFFF, rng.randrange(0, 1 << 64), 0x809000,
                           rng.randrange(0, 1 << 40)])
        size = rng.choice([0, 0x1000, 0x2000, rng.randrange(0, 1 << 20), rng.randrange(0, 1 << 64), 0x10000])
        out.append(TdxSection(i, 0, 0, addr, size, typ, rng.randrange(0, 4), None, 0x100 + 32 * i))
    return out


@pytest.mark.parametrize("seed", range(150))
def test_random_sections_and_memory_give_a_valid_hob_or_errors(seed):
    rng = random.Random(seed)
    secs = _random_sections(rng)
    memory = rng.choice([0, -5, 1, 0x1000, 0x1FFF, GiB, 3 * GiB, 0xB0000000, 1 << 52, (1 << 52) + 1,
                         1 << 64, rng.randrange(0, 1 << 45), 64 << 20, GiB + 0x1000, 8 * GiB])
    hob, gpa, problems = build_td_hob(secs, memory)
    assert isinstance(gpa, int)
    if not hob:
        assert any(p.severity == Severity.ERROR for p in problems)
        return
    td_hob = next(s for s in secs if s.type == 2)
    assert len(hob) <= td_hob.memory_data_size and gpa == td_hob.memory_address
    node = decode_hob_list(Space("td-hob", hob, base=gpa), gpa)
    assert not list(node.all_problems())
    assert lint_td_hob(node, td_hob_size=td_hob.memory_data_size) == []
    # The resources tile the q35 RAM in address order, and every accepted section is SYSTEM_MEMORY.
    res = [struct.unpack_from("<IIQQ", hob, off + 24) for off in range(56, len(hob) - 8, 48)]
    ram = -(-memory // 8192) * 8192
    below = ram if ram < 0xB0000000 else 0x80000000
    expected_end, covered = 0, 0
    for rtype, attr, start, length in res:
        if start == 1 << 32 and expected_end == below:
            expected_end = start
        assert start == expected_end and attr == 0x7 and rtype in (0, 7)
        expected_end, covered = start + length, covered + length
    assert covered == ram
    for s in secs:
        if s.type in (2, 3) and s.memory_data_size:
            assert any(r[0] == 0 and r[2] <= s.memory_address and s.memory_address + s.memory_data_size <= r[2] + r[3]
                       for r in res)


def _tdvf_image(rows, size: int = 0x40000, cfv: bytes | None = None) -> bytes:
    """A small TDVF image: the descriptor's rows (DataOffset, RawDataSize, MemoryAddress,
    MemoryDataSize, Type, Attributes) and the OVMF GUIDed table pointing at them."""
    image = bytearray(size)
    if cfv is not None:
        image[:len(cfv)] = cfv
    # a SEC that can hash: SHA-512/384's first round constants (FIPS 180-4 §4.2.3) as a UINT64 table
    image[0x30000:0x30010] = struct.pack("<QQ", 0x428A2F98D728AE22, 0x7137449123EF65CD)
    desc_at = size - 0x1000
    image[desc_at:desc_at + 16] = b"TDVF" + struct.pack("<III", 16 + 32 * len(rows), 1, len(rows))
    for i, r in enumerate(rows):
        image[desc_at + 16 + 32 * i:desc_at + 48 + 32 * i] = struct.pack("<IIQQII", *r)
    entry = struct.pack("<IH", size - desc_at, 22) + TDX_OFFSET_GUID.bytes_le
    table = entry + struct.pack("<H", len(entry) + 18) + TABLE_FOOTER_GUID.bytes_le
    image[size - 0x20 - len(table):size - 0x20] = table
    return bytes(image)


GOOD_ROWS = [(0x20000, 0x10000, 0xFFFE0000, 0x10000, 0, 1), (0, 0x20000, 0xFFFC0000, 0x20000, 1, 0),
             (0, 0, 0x809000, 0x2000, 2, 0), (0, 0, 0x800000, 0x6000, 3, 0)]


def test_crafted_image_is_predicted_without_problems():
    pred = predict_tdx(_tdvf_image(GOOD_ROWS), "crafted", memory=GiB, secure_boot_build=True)
    assert [p for p in pred.problems if p.severity == Severity.ERROR] == []
    assert len(pred.rtmr0.events) == 8 and all(r.digest for r in pred.mrtd)


@pytest.mark.parametrize("rows,why", [
    # overlapping TD_HOB and TempMem
    (GOOD_ROWS[:3] + [(0, 0, 0x80A000, 0x2000, 3, 0)], "overlaps"),
    # BFV data past the end of the image
    ([(0x3F000, 0x10000, 0xFFFE0000, 0x10000, 0, 1)] + GOOD_ROWS[1:], "outside the image"),
    # no TD_HOB
    ([GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[3]], "TD_HOB"),
    # a section asking for 2^40 bytes of measured memory
    ([(0x20000, 0x10000, 0xFFFE0000, 1 << 40, 0, 1)] + GOOD_ROWS[1:], "budget"),
])
def test_bad_sections_are_problems(rows, why):
    pred = predict_tdx(_tdvf_image(rows), "crafted", memory=GiB)
    assert any(why in p.message for p in pred.problems), [str(p) for p in pred.problems]
    pred.node()


@pytest.mark.parametrize("seed", range(100))
def test_mutated_descriptors_never_raise(seed):
    rng = random.Random(seed)
    image = bytearray(_tdvf_image(GOOD_ROWS))
    desc_at = len(image) - 0x1000
    for _ in range(rng.randrange(1, 8)):
        at = desc_at + rng.randrange(0, 16 + 32 * len(GOOD_ROWS))
        image[at] = rng.randrange(256)
    if rng.random() < 0.3:
        image = image[:rng.randrange(0, len(image))]
    pred = predict_tdx(bytes(image), "mutated", memory=rng.choice([GiB, 0, 1 << 60]), orders=("per-page",),
                       secure_boot_build=rng.choice([True, False, None]))
    pred.node()
    if not pred.rtmr0.events:
        assert pred.problems


@pytest.mark.parametrize("cut", [0, 1, 0x30, 0x1000, 0x3FF000, 0x3FFFF0, 0x400000 - 1])
def test_truncated_real_image(cut):
    image = firmware("inteltdx/OVMF.fd").read_bytes()
    for part in (image[:cut], image[len(image) - cut:]):
        pred = predict_tdx(part, "cut", orders=("per-page",))
        pred.node()
        if not pred.rtmr0.events:
            assert pred.problems


@pytest.fixture(scope="module")
def ms_vars() -> bytes:
    return trixie("OVMF_VARS_4M.ms.fd").read_bytes()


@pytest.mark.parametrize("seed", range(100))
def test_corrupt_vars_give_a_store_or_a_refusal(ms_vars, seed):
    rng = random.Random(seed)
    data = bytearray(ms_vars)
    hlen = struct.unpack_from("<H", data, 0x30)[0]
    for _ in range(rng.randrange(1, 6)):
        # mostly the headers and the first variables, where a flip changes the walk
        at = rng.choice([rng.randrange(0, hlen + 28), rng.randrange(hlen, hlen + 0x2000), rng.randrange(len(data))])
        data[at] = rng.randrange(256)
    problems = []
    store = read_variable_store(bytes(data), 0, problems)
    assert isinstance(store, dict)
    if problems:
        assert store == {} and problems[0].severity == Severity.WARNING and problems[0].offset is not None


@pytest.mark.parametrize("size", [0, 1, 0x3F, 0x40, 0x47, 0x48, 0x63, 0x64, 0x1000, 0x83FFF])
def test_truncated_vars(ms_vars, size):
    problems = []
    assert read_variable_store(ms_vars[:size], 0, problems) == {}
    assert problems
    pred = predict_tdx(trixie("OVMF.fd").read_bytes(), "OVMF.fd", vars_data=ms_vars[:size], orders=(),
                       secure_boot_build=True)
    assert any("VARS file has" in p.message for p in pred.problems)


def test_variable_count_is_bounded():
    """A crafted store of more than MAX_VARIABLES empty variables is refused, not walked forever."""
    n = MAX_VARIABLES + 10
    var = struct.pack("<HBBIQ16sIII", 0x55AA, 0x3F, 0, 7, 0, bytes(16), 0, 0, 0) + bytes(16)
    body = var * n
    hlen = 0x48
    store_size = 28 + len(body) + 4
    total = hlen + store_size
    fv = bytearray(b"\xff" * total)
    fv[:hlen] = (bytes(16) + uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50").bytes_le
                 + struct.pack("<Q4sIHHHBB", total, b"_FVH", 0x4FEFF, hlen, 0, 0, 0, 2) + bytes(hlen - 56))
    checksum = (-sum(struct.unpack_from(f"<{hlen // 2}H", fv, 0))) & 0xFFFF
    fv[0x32:0x34] = struct.pack("<H", checksum)
    fv[hlen:hlen + 28] = (uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792").bytes_le
                          + struct.pack("<IBBHI", store_size, 0x5A, 0xFE, 0, 0))
    fv[hlen + 28:hlen + 28 + len(body)] = body
    problems = []
    assert read_variable_store(bytes(fv), 0, problems) == {}
    assert f"more than {MAX_VARIABLES}" in problems[0].message
