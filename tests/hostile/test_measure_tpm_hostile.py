"""predict_tpm and load_vars on hostile input: truncated, corrupted and random VARS, images without
PEIFV/DXEFV or whose compressed volume does not decompress. Every case ends with located problems,
never a traceback; bounded (a few hundred cases, one real image decoded once)."""
from __future__ import annotations

import functools
import random
import struct

import pytest

from tests.realdata import bookworm
from tests.decoders.test_measure_tpm import GLOBAL, IMAGE_SECURITY, _var, crafted_vars

SEED = 0x7C0


@functools.lru_cache(maxsize=None)
def _code_root():
    from inspector.image import load_image
    return load_image(bookworm("OVMF_CODE_4M.fd")).root


def _predict(vars_bytes: bytes):
    from decoders.measure.tpm import load_vars, predict_tpm
    return predict_tpm(_code_root(), load_vars(vars_bytes, "hostile.fd"), banks=("sha1", "sha256"))


def _check(p) -> None:
    """The contract: events are well formed, an unpredictable PCR has no value and says why."""
    regs = p.registers()
    for ev in p.events:
        assert set(ev.digests) == {"sha1", "sha256"}
        assert ev.index in (0, 7)
    if 7 in p.unpredictable:
        assert 7 not in regs["sha256"]
        assert any("PCR7" in x.message or "variable" in x.message or "VARS" in x.message for x in p.problems)
    else:
        names = [e.description.split(" ")[0] for e in p.events if e.index == 7]
        assert names[:5] == ["SecureBoot", "PK", "KEK", "db", "dbx"] and names[-1] == "separator"
    p.node()    # the node builds too


def _good() -> bytes:
    return crafted_vars(_var("PK", GLOBAL, b"P" * 40), _var("KEK", GLOBAL, b"K" * 30),
                        _var("db", IMAGE_SECURITY, b"D" * 20), _var("dbx", IMAGE_SECURITY, b"X" * 10))


def test_truncated_crafted_vars_every_length_step():
    data = _good()
    for cut in list(range(0, 0x48 + 28 + 4 * 100, 7)) + [len(data) - 1, len(data) // 2]:
        _check(_predict(data[:cut]))


def test_truncated_inside_a_variable_names_the_later_ones_unpredictable():
    """Cut inside KEK's data: PK (before the cut) is still predicted, KEK/db/dbx are named."""
    data = _good()
    kek_at = data.index("KEK".encode("utf-16-le"))
    p = _predict(data[:kek_at + 10])
    _check(p)
    names = [e.description.split(" ")[0] for e in p.events if e.index == 7]
    assert "PK" in names and "KEK" not in names
    assert 7 in p.unpredictable
    msgs = " ".join(x.message for x in p.problems)
    assert "KEK" in msgs and "dbx" in msgs


def test_bad_data_size_stops_the_walk_and_is_reported():
    data = bytearray(_good())
    kek = data.index("KEK".encode("utf-16-le")) - 60     # its AUTHENTICATED_VARIABLE_HEADER
    data[kek + 40:kek + 44] = struct.pack("<I", 0x7FFFFFF0)   # DataSize
    p = _predict(bytes(data))
    _check(p)
    assert 7 in p.unpredictable


def test_random_byte_flips_in_real_vars():
    from pathlib import Path
    real = Path(bookworm("OVMF_VARS_4M.ms.fd")).read_bytes()[:0x6000]   # the variables live here
    rng = random.Random(SEED)
    for _ in range(60):
        d = bytearray(real)
        for _ in range(rng.randint(1, 12)):
            d[rng.randrange(len(d))] = rng.randrange(256)
        _check(_predict(bytes(d)))


def test_random_bytes_as_vars():
    rng = random.Random(SEED + 1)
    for n in (0, 1, 16, 0x48, 0x100, 0x4000):
        for _ in range(5):
            _check(_predict(bytes(rng.randrange(256) for _ in range(n))))


def test_vars_that_is_not_a_varstore():
    from decoders.measure.tpm import load_vars, predict_tpm
    p = predict_tpm(_code_root(), load_vars(b"\xff" * 0x2000, "erased.fd"))
    assert 7 in p.unpredictable
    assert any("no variable store" in x.message for x in p.problems)


def test_image_without_peifv_and_dxefv_says_what_is_missing():
    from decoders.measure.tpm import load_vars, predict_tpm
    root = load_vars(_good(), "vars-as-image.fd")
    p = predict_tpm(root, None)
    assert 0 in p.unpredictable and 0 not in p.registers()["sha256"]
    msg = " ".join(x.message for x in p.problems)
    assert "no PEIFV (6938079B-B503-4E3D-9D24-B28337A25806) and DXEFV (7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)" in msg


@pytest.mark.parametrize("where", [5, 0x1000, 0x40000])
def test_image_whose_compressed_volumes_do_not_decompress(where):
    """Zeroes inside FVMAIN_COMPACT's LZMA section (its header at +5, the stream further on)."""
    from pathlib import Path
    from inspector.image import load_image
    from decoders.measure.tpm import predict_tpm
    data = bytearray(Path(bookworm("OVMF.fd")).read_bytes())
    lzma = data.index(bytes.fromhex("98584eee143959429d6edc7bd79403cf"))   # EE4E5898-… LZMA GUID, bytes_le
    start = lzma + 16 + 4 + 4          # EFI_GUID_DEFINED_SECTION: GUID, DataOffset, Attributes after the header
    data[start + where:start + where + 64] = bytes(64)
    p = predict_tpm(load_image("broken.fd", bytes(data)).root)
    assert 0 in p.unpredictable
    msg = " ".join(x.message for x in p.problems)
    assert "could not be decompressed" in msg and "LZMA" in msg
    assert any("SecureBoot" in x.message for x in p.problems)   # Secure Boot support is unknown now


@pytest.mark.parametrize("case", ["truncated-vars", "random-vars", "random-image"])
def test_measure_tpm_command_on_hostile_input(tmp_path, case):
    """The whole `fwinspect measure --tpm` process: a documented exit status, no traceback, bounded
    memory (tests/hostile/harness.py)."""
    from pathlib import Path
    from tests.hostile.harness import run_fwinspect
    rng = random.Random(SEED + 2)
    image = bookworm("OVMF_CODE_4M.fd")
    if case == "truncated-vars":
        bad = tmp_path / "vars.fd"
        bad.write_bytes(Path(bookworm("OVMF_VARS_4M.ms.fd")).read_bytes()[:0x3000])
        args = ["measure", image, "--vars", bad, "--tpm"]
    elif case == "random-vars":
        bad = tmp_path / "vars.fd"
        bad.write_bytes(bytes(rng.randrange(256) for _ in range(0x2000)))
        args = ["measure", image, "--vars", bad, "--tpm", "--bank", "sha1,sha256"]
    else:
        bad = tmp_path / "image.fd"
        bad.write_bytes(bytes(rng.randrange(256) for _ in range(0x10000)))
        args = ["measure", bad, "--tpm"]
    out = run_fwinspect(args)
    out.check()
