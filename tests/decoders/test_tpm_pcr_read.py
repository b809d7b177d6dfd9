"""TPM2_PCR_Read marshalling of inspector.live.tpmrelay against bytes built here with struct.pack from
the TPM 2.0 Library spec (Part 3 §22.4 Tables 110/111; Part 2 §10.6 TPMS_PCR_SELECTION, §10.9.2
TPML_DIGEST, §10.9.7 TPML_PCR_SELECTION; all big-endian), and hostile responses: each one is a
TpmResponseError naming what is wrong, never another exception."""
from __future__ import annotations

import hashlib
import struct

import pytest

from inspector.live.tpmrelay import (TpmRelayError, TpmResponseError, parse_pcr_read_response, pcr_read_command,
                                     read_pcrs_with)

# TPM 2.0 Library Part 2: TPM_ST_NO_SESSIONS (§6.9), TPM_CC_PCR_Read (§6.5.2), TPM_ALG_SHA1/SHA256 (§6.3)
ST_NO_SESSIONS = 0x8001
CC_PCR_READ = 0x17E
SHA1, SHA256 = 0x0004, 0x000B
SIZE = {SHA1: 20, SHA256: 32}


def digest_of(alg: int, n: int) -> bytes:
    """A distinct, recognisable value per bank and PCR."""
    return hashlib.new("sha1" if alg == SHA1 else "sha256", bytes([alg, n])).digest()


def selection(pairs) -> bytes:
    """TPML_PCR_SELECTION from [(alg, [pcr, ...]), ...] with 3-byte bitmaps."""
    out = struct.pack(">I", len(pairs))
    for alg, pcrs in pairs:
        bitmap = [0, 0, 0]
        for n in pcrs:
            bitmap[n // 8] |= 1 << (n % 8)
        out += struct.pack(">HB3B", alg, 3, *bitmap)
    return out


def response(pairs, counter=7, tag=ST_NO_SESSIONS, code=0, digests=None, size_delta=0, tail=b"") -> bytes:
    """A TPM2_PCR_Read response (Table 111): header, pcrUpdateCounter, pcrSelectionOut, pcrValues."""
    if digests is None:
        digests = [digest_of(alg, n) for alg, pcrs in pairs for n in pcrs]
    body = struct.pack(">I", counter) + selection(pairs) + struct.pack(">I", len(digests))
    body += b"".join(struct.pack(">H", len(d)) + d for d in digests) + tail
    return struct.pack(">HII", tag, 10 + len(body) + size_delta, code) + body


# ---- the command

def test_pcr_read_command_for_two_banks_pcr0_to_7_is_the_spec_layout():
    cmd = pcr_read_command({SHA1: list(range(8)), SHA256: list(range(8))})
    body = struct.pack(">I", 2) + struct.pack(">HB3B", SHA1, 3, 0xFF, 0, 0) + struct.pack(">HB3B", SHA256, 3, 0xFF, 0, 0)
    assert cmd == struct.pack(">HII", ST_NO_SESSIONS, 10 + len(body), CC_PCR_READ) + body
    assert len(cmd) == 26


def test_pcr_read_command_sets_bit_n_mod_8_of_byte_n_div_8():
    cmd = pcr_read_command({SHA256: [7, 16, 23]})
    assert cmd[14:] == struct.pack(">HB3B", SHA256, 3, 0x80, 0x00, 0x81)


def test_pcr_index_outside_0_to_23_is_refused():
    with pytest.raises(ValueError, match="24"):
        pcr_read_command({SHA1: [24]})


# ---- the response

def test_response_digests_map_to_the_selected_pcrs_in_order():
    data = response([(SHA1, [0, 7]), (SHA256, [0, 7])], counter=0x1234)
    r = parse_pcr_read_response(data, {SHA1: [0, 7], SHA256: [0, 7]})
    assert r.update_counter == 0x1234
    assert r.values == {SHA1: {0: digest_of(SHA1, 0), 7: digest_of(SHA1, 7)},
                        SHA256: {0: digest_of(SHA256, 0), 7: digest_of(SHA256, 7)}}


def test_read_pcrs_asks_again_for_what_the_8_digest_limit_left_out():
    """A TPM returns at most 8 digests and says which in pcrSelectionOut (Part 3 §22.4.1)."""
    sent = []

    def tpm(cmd: bytes) -> bytes:
        sent.append(cmd)
        (count,) = struct.unpack_from(">I", cmd, 10)
        asked, pos = [], 14
        for _ in range(count):
            alg, sz = struct.unpack_from(">HB", cmd, pos)
            bits = int.from_bytes(cmd[pos + 3:pos + 3 + sz], "little")
            asked.append((alg, [n for n in range(24) if bits >> n & 1]))
            pos += 3 + sz
        out, room = [], 8
        for alg, pcrs in asked:
            if room:
                out.append((alg, pcrs[:room]))
                room -= len(pcrs[:room])
        return response(out)

    values = read_pcrs_with(tpm, ("sha1", "sha256"), range(8))
    assert values == {"sha1": {n: digest_of(SHA1, n) for n in range(8)},
                      "sha256": {n: digest_of(SHA256, n) for n in range(8)}}
    assert len(sent) == 2
    assert sent[1] == pcr_read_command({SHA256: list(range(8))})


def test_read_pcrs_reports_an_unallocated_bank():
    with pytest.raises(TpmResponseError, match="sha1 PCR\\[0, 1\\].*not allocated"):
        read_pcrs_with(lambda cmd: response([]), ("sha1",), range(2))


def test_read_pcrs_refuses_values_from_two_moments():
    answers = iter([response([(SHA1, list(range(8)))], counter=1), response([(SHA256, list(range(8)))], counter=2)])
    with pytest.raises(TpmRelayError, match="changed"):
        read_pcrs_with(lambda cmd: next(answers), ("sha1", "sha256"), range(8))


def test_unknown_bank_name_is_a_value_error():
    with pytest.raises(ValueError, match="md5"):
        read_pcrs_with(lambda cmd: b"", ("md5",), range(8))


# ---- hostile responses

REQ = {SHA256: [0, 7]}
GOOD = response([(SHA256, [0, 7])])


@pytest.mark.parametrize("cut", range(len(GOOD)))
def test_every_truncation_is_a_response_error(cut):
    with pytest.raises(TpmResponseError):
        parse_pcr_read_response(GOOD[:cut], REQ)


def test_truncated_body_with_a_matching_size_names_the_field():
    short = GOOD[:-5]
    data = struct.pack(">HII", ST_NO_SESSIONS, len(short), 0) + short[10:]
    with pytest.raises(TpmResponseError, match="truncated in the digest of PCR7"):
        parse_pcr_read_response(data, REQ)


def test_wrong_tag():
    with pytest.raises(TpmResponseError, match="tag 0x8002"):
        parse_pcr_read_response(response([(SHA256, [0, 7])], tag=0x8002), REQ)


def test_error_response_code_is_named():
    data = struct.pack(">HII", ST_NO_SESSIONS, 10, 0x100)   # TPM_RC_INITIALIZE: no TPM2_Startup yet
    with pytest.raises(TpmResponseError, match="0x00000100.*TPM_RC_INITIALIZE"):
        parse_pcr_read_response(data, REQ)


def test_response_code_other_than_zero_with_a_body_is_still_an_error():
    with pytest.raises(TpmResponseError, match="0x00000922"):
        parse_pcr_read_response(response([(SHA256, [0, 7])], code=0x922), REQ)


def test_size_field_disagreeing_with_the_bytes():
    with pytest.raises(TpmResponseError, match="responseSize"):
        parse_pcr_read_response(response([(SHA256, [0, 7])], size_delta=1), REQ)


def test_digest_count_above_8():
    pcrs = list(range(9))
    with pytest.raises(TpmResponseError, match="pcrValues.count 9"):
        parse_pcr_read_response(response([(SHA256, pcrs)]), {SHA256: pcrs})


def test_digest_count_not_matching_the_selection():
    data = response([(SHA256, [0, 7])], digests=[digest_of(SHA256, 0)])
    with pytest.raises(TpmResponseError, match="count 1 but pcrSelectionOut selects 2"):
        parse_pcr_read_response(data, REQ)


def test_selection_count_too_large():
    data = struct.pack(">HII", ST_NO_SESSIONS, 10 + 8, 0) + struct.pack(">II", 0, 0xFFFFFFFF)
    with pytest.raises(TpmResponseError, match="pcrSelectionOut.count 4294967295"):
        parse_pcr_read_response(data, REQ)


def test_sizeof_select_too_large():
    body = struct.pack(">IIHB", 0, 1, SHA256, 255) + bytes(255) + struct.pack(">I", 0)
    data = struct.pack(">HII", ST_NO_SESSIONS, 10 + len(body), 0) + body
    with pytest.raises(TpmResponseError, match="sizeofSelect 255"):
        parse_pcr_read_response(data, REQ)


def test_digest_of_the_wrong_size_for_its_bank():
    data = response([(SHA256, [0, 7])], digests=[digest_of(SHA1, 0), digest_of(SHA1, 7)])
    with pytest.raises(TpmResponseError, match="20 bytes, expected 32"):
        parse_pcr_read_response(data, REQ)


def test_pcr_that_was_not_requested():
    with pytest.raises(TpmResponseError, match="not requested"):
        parse_pcr_read_response(response([(SHA256, [0, 8])]), REQ)


def test_bank_that_was_not_requested():
    with pytest.raises(TpmResponseError, match="alg 0x0004"):
        parse_pcr_read_response(response([(SHA1, [0])]), REQ)


def test_trailing_bytes():
    with pytest.raises(TpmResponseError, match="3 bytes after pcrValues"):
        parse_pcr_read_response(response([(SHA256, [0, 7])], tail=b"\0\0\0"), REQ)
