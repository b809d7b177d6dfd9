"""Where the sample images live: real ones from the distribution, and our own generated ones.

Real images come from Debian's `ovmf` package: bookworm's from the installed package,
Debian 13's fetched by `python -m sample_images.fetch` into `sample_images/real/` (git-ignored).
Our generator (`python -m sample_images.generate`) writes to `sample_images/out/` (git-ignored).
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL = HERE / "real"
OUT = HERE / "out"

# Debian 12 (bookworm) `ovmf` 2022.11: installed by the package.
BOOKWORM = {
    "OVMF.fd": Path("/usr/share/ovmf/OVMF.fd"),
    "OVMF_CODE.fd": Path("/usr/share/OVMF/OVMF_CODE.fd"),
    "OVMF_VARS.fd": Path("/usr/share/OVMF/OVMF_VARS.fd"),
    "OVMF_CODE_4M.fd": Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
    "OVMF_CODE_4M.secboot.fd": Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
    "OVMF_VARS_4M.fd": Path("/usr/share/OVMF/OVMF_VARS_4M.fd"),
    "OVMF_VARS_4M.ms.fd": Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
    # Secure Boot pairs (README.Debian): .ms and .snakeoil CODE are links to .secboot
    "OVMF_CODE_4M.ms.fd": Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd"),
    "OVMF_CODE_4M.snakeoil.fd": Path("/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"),
    "OVMF_VARS_4M.snakeoil.fd": Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"),
}

# Debian 13 (trixie) `ovmf` 2025.02: unpacked by sample_images.fetch.
TRIXIE_DIR = REAL / "trixie"


def bookworm(name: str) -> Path | None:
    p = BOOKWORM.get(name)
    return p if p is not None and p.is_file() else None


def trixie(name: str) -> Path | None:
    for sub in ("usr/share/ovmf", "usr/share/OVMF"):
        p = TRIXIE_DIR / sub / name
        if p.is_file():
            return p
    return None


def generated(name: str) -> Path:
    return OUT / name
