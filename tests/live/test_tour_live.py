"""`fwinspect tour` on a real boot: Debian 12's OVMF.fd booted by QEMU under TCG from the reset vector
to BdsDxe's entry, recorded, then told again from the recording with no QEMU: the same chapters.

One boot (about 10 s here), as whole processes, QEMU ended by the CLI that started it; every wait
is bounded by the subprocess timeout.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realdata import bookworm, tool

ROOT = Path(__file__).resolve().parents[2]
# The whole tour's budget inside fwinspect (--timeout), and the process's beyond it.
TOUR_TIMEOUT = 120
PROCESS_TIMEOUT = 240


def fwinspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT, cwd=ROOT)


_BOOKWORM_TOUR: list = []


def bookworm_tour_once(tmp_path_factory) -> tuple[Path, Path, list]:
    """`fwinspect tour OVMF.fd --json --record F` on Debian 12's OVMF.fd (rsp backend): (image, F, chapters),
    booted once per session: tests/live/test_tour_real.py compares its gdb-backend tour of the same
    image with it."""
    if not _BOOKWORM_TOUR:
        tool("qemu-system-x86_64", "qemu-system-x86")
        image = bookworm("OVMF.fd")
        rec = tmp_path_factory.mktemp("tour") / "tour.rec"
        live = fwinspect("tour", str(image), "--json", "--record", str(rec), "--timeout", str(TOUR_TIMEOUT))
        assert live.returncode == 0, live.stderr
        _BOOKWORM_TOUR.append((image, rec, json.loads(live.stdout)))
    return _BOOKWORM_TOUR[0]


@pytest.fixture(scope="module")
def bookworm_tour(tmp_path_factory) -> tuple[Path, Path, list]:
    return bookworm_tour_once(tmp_path_factory)


@pytest.mark.live
def test_tour_to_bds_recorded_and_replayed_gives_the_same_chapters(bookworm_tour):
    image, rec, chapters = bookworm_tour

    # The offline chapters first, then one per stop in boot order, ending at BDS.
    phases = [c["phase"] for c in chapters]
    assert phases[:6] == ["offline"] * 6
    boot = [c for c in chapters if c["phase"] != "offline"]
    assert [c["phase"] for c in boot if c["chapter"] != "to-long-mode"] == [
        "reset", "sec", "pei-core", "dxe-ipl", "dxe-core", "bds"]
    assert "stopped" not in [c["chapter"] for c in chapters]

    # The recording names the image it booted, with its SHA-256.
    header = json.loads(rec.read_text().split("\n", 1)[0])
    assert header["tour"] == {"image": str(image.resolve()),
                              "sha256": hashlib.sha256(image.read_bytes()).hexdigest()}

    # Each boot chapter is told at the recorded stop it names: `fwinspect replay --json` lists them.
    replayed_stops = [json.loads(line) for line in fwinspect("replay", str(rec), "--json").stdout.splitlines()]
    by_index = {s["index"]: s for s in replayed_stops}
    for c in boot:
        assert c["stop"] in by_index, c["chapter"]
        if c["chapter"] != "to-long-mode":
            assert by_index[c["stop"]]["handoff"] == c["phase"], c["chapter"]
    assert by_index[boot[0]["stop"]]["linear_rip"] == 0xFFFFFFF0
    assert replayed_stops[-1]["handoff"] == "bds"

    # Told again from the recording, with no QEMU: the same chapters, value for value.
    again = fwinspect("tour", "--replay", str(rec), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == chapters
