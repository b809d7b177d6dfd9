"""Recordings of real boots for the tour tests, made once per test session.

`record_boot(image, path)` runs `fwinspect qemu IMAGE --until bds --record PATH` in this process (the
CLI starts QEMU, stops at every handoff on the way, records each stop with its tree and ends QEMU,
by its PID, whatever happens); the fixtures load the stops back with inspector.live.record, so the
chapters are told from a replay exactly as `fwinspect tour` tells them from a recording.

- `bookworm_boot`: Debian 12's OVMF.fd (X64, RELEASE: no debug log) with a swtpm TPM, so BDS finds
  a TCG event log;
- `code4m_boot`: Debian 12's OVMF_CODE_4M.fd (Ia32X64: SEC, PEI and the DXE IPL run 32-bit, the
  DXE core 64-bit);
- `debug_boot`: our DEBUG OvmfPkgX64 build, whose stops carry the debug log node;
- `debug_la57_boot`: the same build on `-cpu max`, where the ResetVector turns on 5-level paging.
Each is (stops, loaded image). Import the fixtures into a test module to use them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import pytest

from inspector.image import load_image
from inspector.live.record import load_recording
from inspector.live.script import add_live_arguments
from tests.realdata import bookworm, firmware, tool

# Reset to BDS under TCG on 2 shared cores: about a minute here (QEMU 7.2); the CLI's own --timeout
# bounds the run to BDS, so a hang fails the fixture instead of the session.
BOOT_TIMEOUT = 600


def record_boot(image: Path, path: Path, *extra: str) -> None:
    """`fwinspect qemu IMAGE --until bds --record PATH [extra]`; fails with its stderr if BDS is not reached."""
    p = argparse.ArgumentParser()
    add_live_arguments(p.add_subparsers())
    args = p.parse_args(["qemu", str(image), "--until", "bds", "--json", "--timeout", str(BOOT_TIMEOUT),
                         "--record", str(path), *extra])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = args.func(args)
    assert rc == 0, f"fwinspect qemu {image} --until bds: exit {rc}: {err.getvalue()[-2000:]}"


def recorded_boot(tmp_path_factory, name: str, image: Path, *extra: str, tpm: bool = False):
    """(stops, loaded image) of one real boot of `image` to BDS, recorded and read back."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    if tpm:
        tool("swtpm", "swtpm")
        extra = ("--tpm", *extra)
    path = tmp_path_factory.mktemp("tour") / f"{name}.fwrec"
    record_boot(image, path, *extra)
    return load_recording(path), load_image(image)


@pytest.fixture(scope="session")
def bookworm_boot(tmp_path_factory):
    return recorded_boot(tmp_path_factory, "bookworm", bookworm("OVMF.fd"), tpm=True)


@pytest.fixture(scope="session")
def debug_boot(tmp_path_factory):
    return recorded_boot(tmp_path_factory, "debug", firmware("ovmf-debug/OVMF.fd"))


@pytest.fixture(scope="session")
def code4m_boot(tmp_path_factory):
    return recorded_boot(tmp_path_factory, "code4m", bookworm("OVMF_CODE_4M.fd"))


@pytest.fixture(scope="session")
def debug_la57_boot(tmp_path_factory):
    return recorded_boot(tmp_path_factory, "debug-la57", firmware("ovmf-debug/OVMF.fd"), "--", "-cpu", "max")
