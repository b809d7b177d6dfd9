"""Hostile event logs, each run as a whole `fwinspect eventlog` process (README, "Budgets").

Layouts from the TCG PC Client Platform Firmware Profile 1.05, 10.2.1 TCG_PCR_EVENT (PCRIndex u32,
EventType u32, SHA-1 Digest[20], EventSize u32, Event) and 10.2.2 TCG_PCR_EVENT2 (PCRIndex, EventType,
TPML_DIGEST_VALUES {count u32, {hashAlg u16, digest}[count]}, EventSize, Event); the Spec ID event
10.4.5.1 TCG_EfiSpecIDEventStruct ("Spec ID Event03", platformClass u32, specVersionMinor/Major,
specErrata, uintnSize u8, numberOfAlgorithms u32, {algorithmId u16, digestSize u16}[n],
vendorInfoSize u8).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.hostile.harness import build_inputs, run_fwinspect

EV_NO_ACTION, EV_POST_CODE, EV_EFI_VARIABLE_DRIVER_CONFIG = 3, 1, 0x80000001
SHA256, SHA384 = 0x000B, 0x000C


def spec_id_event(algs: list[tuple[int, int]], pcr: int = 0) -> bytes:
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algs))
    body += b"".join(struct.pack("<HH", a, s) for a, s in algs) + b"\0"
    return struct.pack("<II20sI", pcr, EV_NO_ACTION, bytes(20), len(body)) + body


def event2(pcr: int, etype: int, algs: list[tuple[int, int]], data: bytes = b"") -> bytes:
    digests = b"".join(struct.pack("<H", a) + bytes(s) for a, s in algs)
    return struct.pack("<III", pcr, etype, len(algs)) + digests + struct.pack("<I", len(data)) + data


def _write(path: Path, head: bytes, event: bytes, count: int, tail: bytes = b"") -> Path:
    """`head`, `count` copies of `event`, `tail`, written a MiB at a time: the generating process
    stays small (a child's peak RSS as wait4 reports it includes its parent's at the fork)."""
    per = max(1, (1 << 20) // len(event))
    with path.open("wb") as f:
        f.write(head)
        for done in range(0, count, per):
            f.write(event * min(per, count - done))
        f.write(tail)
    return path


def minimal_sha1(path: Path, count: int = 20_000) -> Path:
    """A TPM 1.2 log of `count` 32-byte events with no data (EV_POST_CODE, PCR0)."""
    return _write(path, b"", struct.pack("<II20sI", 0, EV_POST_CODE, bytes(20), 0), count)


def minimal_agile(path: Path, count: int = 20_000) -> Path:
    """A crypto-agile log with one SHA-256 bank and `count` minimal events."""
    algs = [(SHA256, 32)]
    return _write(path, spec_id_event(algs), event2(0, EV_POST_CODE, algs), count)


def minimal_agile_64mib(path: Path) -> Path:
    """64 MiB of 50-byte events: 1.3 million, far past any event budget."""
    return minimal_agile(path, (64 << 20) // 50)


def minimal_cc(path: Path, count: int = 200_000) -> Path:
    """A CC (TDX) log: Spec ID with PCRIndex 1 and SHA-384 only, then minimal RTMR events."""
    algs = [(SHA384, 48)]
    return _write(path, spec_id_event(algs, pcr=1), event2(1, EV_POST_CODE, algs), count)


def zero_prefixed(path: Path, count: int = 200_000) -> Path:
    """Events that begin with zero bytes, then one non-zero byte at the very end: a padding check
    that reads the rest of the log at each event is quadratic here."""
    return _write(path, b"", struct.pack("<II20sI", 0, EV_POST_CODE, bytes(20), 0), count, b"\x01")


def variable_events(path: Path, count: int = 100_000) -> Path:
    """EV_EFI_VARIABLE_DRIVER_CONFIG events with a small UEFI_VARIABLE_DATA each (UEFI GUID,
    UnicodeNameLength, VariableDataLength, name, data): every event decodes a child."""
    algs = [(SHA256, 32)]
    name = "SecureBoot".encode("utf-16-le")
    data = bytes(16) + struct.pack("<QQ", len(name) // 2, 1) + name + b"\x01"
    return _write(path, spec_id_event(algs), event2(7, EV_EFI_VARIABLE_DRIVER_CONFIG, algs, data), count)


CASES = {
    "minimal-sha1-20k": minimal_sha1,
    "minimal-agile-20k": minimal_agile,
    "minimal-agile-64mib": minimal_agile_64mib,
    "minimal-cc-200k": minimal_cc,
    "zero-prefixed-200k": zero_prefixed,
    "variables-100k": variable_events,
}
MODES = {"tree": [], "json": ["--json"], "replay": ["--replay", "--json"]}


def command(path: Path, mode: str) -> list:
    return ["eventlog", path, *MODES[mode]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory, "eventlog", CASES, ".bin")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_event_log_whole_process(inputs, case, mode):
    run_fwinspect(command(inputs[case], mode), stdout_to=Path(os.devnull)).check()
