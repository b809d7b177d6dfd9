"""Real data for tests: Debian's OVMF images, the third-party fixtures, our edk2 builds, the anchor tools.

A missing component skips the test with a reason naming what provides it (a Debian package, `make
firmware`); under CI (CI=true) it fails instead, because CI installs everything (README, what `make
test` needs). The third-party fixtures are in the repository (tests/data/, README there); only the
edk2 builds live outside it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import sample_images

ROOT = Path(__file__).resolve().parents[1]
# Event logs, CCEL logs with their TDX quotes, the TD HOB, ACPI tables and each reference tool's
# output: tests/data/README.md gives every file's origin, licence and how its oracle output was made.
FIXTURES = DATA = ROOT / "tests" / "data"
# edk2 builds too big for the repository (TDVF Config-B, a DEBUG OvmfPkgX64 with its .debug files):
# read in place beside the checkout, else from the cache `make firmware` fills with the same layout.
SHARED_FIRMWARE = ROOT.parent / "shared" / "firmware"
FIRMWARE_CACHE = ROOT / ".cache" / "firmware"
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
    """tests/data/REL. A file missing from a source folder that is there is a broken checkout (fail);
    a whole source folder removed on purpose (say acpi/fwts, the GPL-2 data) is a missing component."""
    p = DATA / rel
    if not p.exists():
        folder = DATA.joinpath(*Path(rel).parts[:2])
        if not folder.is_dir():
            missing(f"tests/data/{Path(rel).parts[0]}/{folder.name} is absent (see tests/data/README.md)")
        pytest.fail(f"fixture {rel} missing from {DATA}")
    return p


def firmware(rel: str) -> Path:
    """One of our edk2 builds, e.g. `firmware("ovmf-debug/OVMF.fd")`: ../shared/firmware/REL, else
    .cache/firmware/REL as built by `make firmware`."""
    for base in (SHARED_FIRMWARE, FIRMWARE_CACHE):
        if (base / rel).is_file():
            return base / rel
    missing(f"edk2 build {rel} not found in {SHARED_FIRMWARE} or {FIRMWARE_CACHE}: run `make firmware` "
            "(builds it from Debian's edk2 source, about 30 minutes)")


def params(values, what: str, argcount: int = 1) -> list:
    """A parametrisation list that is never silently empty: when `values` is empty, one parameter
    set (of `argcount` Nones) that skips (outside CI) or fails (CI) saying that `what` is missing."""
    values = list(values)
    if values:
        return values
    return [pytest.param(*[None] * argcount, marks=pytest.mark.missing_resource(f"no {what}"), id="missing")]


def require(values, what: str) -> list:
    """`values` as a list; when empty, skip (outside CI) or fail (CI) saying that `what` is missing.
    For tests that go over a whole collection (counts, coverage, the largest file)."""
    values = list(values)
    if not values:
        missing(f"no {what}")
    return values


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


# The DEBUG OvmfPkgX64 build's .debug files, unpacked once (git-ignored: .cache/).
DEBUG_SYMBOLS = ROOT / ".cache" / "debug-symbols"


def debug_symbols() -> Path:
    """The folder of .debug files that firmware("ovmf-debug/DEBUG.tar.xz") unpacks to (a flat
    DEBUG/ folder), unpacked on first use into .cache/debug-symbols/. Safe under pytest-xdist: each
    worker unpacks into its own temporary folder and renames it into place; the loser of the race
    uses the winner's."""
    import tarfile
    import tempfile

    done = DEBUG_SYMBOLS / "DEBUG"
    if done.is_dir():
        return done
    archive = firmware("ovmf-debug/DEBUG.tar.xz")
    DEBUG_SYMBOLS.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="debug-symbols-", dir=DEBUG_SYMBOLS.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / "DEBUG").is_dir():
            pytest.fail(f"{archive} holds no DEBUG/ folder")
        try:
            os.rename(tmp, DEBUG_SYMBOLS)
        except OSError:
            if not done.is_dir():       # not another worker's win: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done
