"""Real data for tests: Debian's OVMF images, the shared fixtures, and the anchor tools.

A missing component skips the test with a reason naming the Debian package; under CI (CI=true)
it fails instead, because CI installs everything (DESIGN.md, "Real components").
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import sample_images

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
IN_CI = os.environ.get("CI") == "true"


def missing(reason: str):
    """Skip (developer machine) or fail (CI) because a real component is absent."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def bookworm(name: str) -> Path:
    p = sample_images.bookworm(name)
    if p is None:
        missing(f"{name} not found: install Debian bookworm's `ovmf` package")
    return p


def trixie(name: str) -> Path:
    p = sample_images.trixie(name)
    if p is None:
        missing(f"{name} of Debian 13 not found: run `python -m sample_images.fetch` (needs apt and the network)")
    return p


def fixture(rel: str) -> Path:
    p = FIXTURES / rel
    if not p.exists():
        # The fixtures live beside the checkout, not in it; their absence is a skip even in CI only
        # when the whole folder is gone.
        if not FIXTURES.is_dir():
            pytest.skip(f"../shared/fixtures is absent ({FIXTURES})")
        pytest.fail(f"fixture {rel} missing from {FIXTURES}")
    return p


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"`{name}` not found: install Debian's `{package}`")
    return path


@dataclass
class ExtractRow:
    """One row of `UEFIExtract FILE report`: Type | Subtype | Base | Size | CRC32 | Name, depth from dashes."""

    type: str
    subtype: str
    base: int | None
    size: int
    crc32: int
    depth: int
    name: str
    text: str


def uefiextract_report(image: Path, tmp: Path) -> list[ExtractRow]:
    """Run UEFIExtract's report on a copy of `image` in `tmp` and parse its rows."""
    exe = tool("UEFIExtract", "uefitool-cli")
    copy = tmp / image.name
    shutil.copyfile(image, copy)
    subprocess.run([exe, str(copy), "report"], check=True, capture_output=True, timeout=120)
    report = Path(str(copy) + ".report.txt")
    rows = []
    for line in report.read_text(errors="replace").splitlines()[1:]:
        cols = [c.strip() for c in line.split("|")]
        if len(cols) < 6:
            continue
        typ, sub, base, size, crc = cols[:5]
        rest = line.split("|", 5)[5].lstrip(" ")
        depth = len(rest) - len(rest.lstrip("-"))
        name_part = rest.lstrip("-").strip()
        name = name_part.split("|")[0].strip()
        text = name_part.split("|")[1].strip() if "|" in name_part else ""
        rows.append(ExtractRow(typ, sub, None if base == "N/A" else int(base, 16), int(size, 16),
                               int(crc, 16), depth, name, text))
    return rows
