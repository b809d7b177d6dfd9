"""Hostile edk2 DEBUG logs, each run as a whole `fwinspect log` process (README, "Budgets").

What a real log holds is in decoders/edk2log.py (the DEBUG format strings it recognises); these are
the inputs no edk2 build writes: random bytes, NULs, one line of 64 MiB, a million lines, as many
module loads and events as fit, and a million bad lines.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.hostile.harness import build_inputs, run_fwinspect

SIZE = 64 << 20      # the largest input any command takes
DRIVER = b"Loading driver %d\nLoading driver at 0x0000F107000 EntryPoint=0x0000F10F2F9 DevicePathDxe.efi\n"
PPI = b"Install PPI: 8C8CE578-8A3D-4F1C-9935-896185C32DD3\n"


def random_bytes(path: Path) -> Path:
    path.write_bytes(random.Random(10).randbytes(SIZE))
    return path


def nul_bytes(path: Path) -> Path:
    path.write_bytes(bytes(SIZE))
    return path


def one_long_line(path: Path) -> Path:
    path.write_bytes(b"Loading PEIM at 0x" + b"1" * (SIZE - 40) + b"\n")
    return path


def million_lines(path: Path) -> Path:
    path.write_bytes(b"x\n" * 1_000_000)
    return path


def many_events(path: Path) -> Path:
    """Install PPI lines up to 64 MiB: ~1.3 million events."""
    path.write_bytes(PPI * (SIZE // len(PPI)))
    return path


def many_module_loads(path: Path) -> Path:
    """Driver loads (with a malformed name line before each) up to 64 MiB: ~700,000 loads."""
    path.write_bytes(DRIVER * (SIZE // len(DRIVER)))
    return path


def many_bad_lines(path: Path) -> Path:
    """A million garbage lines then a million lines cut in half."""
    path.write_bytes(b"\x01\n" * 1_000_000 + b"Loading driver at 0x1\n" * 1_000_000)
    return path


CASES = {
    "random-64mib": random_bytes,
    "nul-64mib": nul_bytes,
    "one-line-64mib": one_long_line,
    "million-lines": million_lines,
    "many-events": many_events,
    "many-module-loads": many_module_loads,
    "many-bad-lines": many_bad_lines,
}
MODES = {"tree": [], "json": ["--json"]}


def command(path: Path, mode: str) -> list:
    return ["log", path, *MODES[mode]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory, "edk2log", CASES, ".log")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_edk2_log_whole_process(inputs, case, mode):
    outcome = run_fwinspect(command(inputs[case], mode), stdout_to=Path(os.devnull))
    outcome.check()
    # Lines no format claims are only counted (exit 0); the others are bad input or hold more than is
    # kept: located problems, exit 1.
    assert outcome.returncode == (0 if case == "million-lines" else 1), outcome.describe()
