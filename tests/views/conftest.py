"""A real boot, recorded once per test session, for the live-screen tests.

Debian's OVMF.fd under QEMU 7.2 (TCG), from the reset vector to the DXE core entry, one stop at
each handoff on the way, made by the command users run (`fwinspect qemu OVMF.fd --until dxe-core
--record FILE`). Under TCG the same image on the same QEMU boots the same way: two recordings are
byte-for-byte equal, so the screens drawn from it are fixed. The recording holds guest memory of
a third-party binary, so it is made at test time in a temporary folder and never committed.

FWINSPECT_RECORDED_BOOT=FILE uses a recording made earlier with that same command instead of
booting (on a machine without QEMU; the snapshot then holds only for the same QEMU and image).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realdata import bookworm, tool

ROOT = Path(__file__).resolve().parents[2]
# The boot to the DXE core is 2-3 s under TCG here; generous for 2 loaded cores.
RECORD_TIMEOUT = 180


@pytest.fixture(scope="session")
def recorded_boot(tmp_path_factory) -> Path:
    """The recording file of OVMF.fd's boot from reset to the DXE core entry."""
    given = os.environ.get("FWINSPECT_RECORDED_BOOT")
    if given:
        return Path(given)
    image = bookworm("OVMF.fd")
    tool("qemu-system-x86_64", "qemu-system-x86")
    path = tmp_path_factory.mktemp("recorded-boot") / "ovmf-to-dxe-core.jsonl"
    done = subprocess.run([sys.executable, "-m", "inspector.cli", "qemu", str(image), "--until", "dxe-core",
                           "--record", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=RECORD_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"recording the boot failed ({done.returncode}): {done.stderr[-2000:]}")
    return path
