"""Fetch Debian 13's `ovmf` package (OVMF 2025.02) without touching the system's apt setup.

How: a temporary sources list and lists directory, `apt-get download`, then `dpkg -x` into
sample_images/real/trixie. Nothing third-party is committed; the folder is git-ignored. Does nothing when the images are already there; prints why when it cannot fetch.
"""
from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sample_images import TRIXIE_DIR, trixie

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def mirror() -> str | None:
    """The Debian mirror apt already uses (deb822 .sources first, then sources.list)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in Path(path).read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M)
        if m and "security" not in m.group(1):
            return m.group(1)
    return None


def fetch_trixie() -> str:
    if trixie("OVMF.fd") or trixie("OVMF_CODE_4M.fd"):
        return "trixie ovmf: already present"
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        return "trixie ovmf: skipped, no apt-get/dpkg on this machine"
    uri = mirror()
    if uri is None:
        return "trixie ovmf: skipped, no Debian mirror configured"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "lists/partial").mkdir(parents=True)
        signed = f"[signed-by={KEYRING}] " if Path(KEYRING).exists() else ""
        (d / "sources.list").write_text(f"deb {signed}{uri} trixie main\n")
        opts = [f"-o", f"Dir::Etc::SourceList={d}/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={d}/lists", "-o", f"Dir::Cache::archives={d}"]
        try:
            subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, timeout=300,
                           capture_output=True)
            subprocess.run(["apt-get", *opts, "download", "ovmf"], check=True, timeout=300, cwd=d,
                           capture_output=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            err = getattr(e, "stderr", b"") or b""
            return f"trixie ovmf: fetch failed ({e.__class__.__name__}: {err.decode(errors='replace')[-300:]})"
        debs = sorted(d.glob("ovmf_*.deb"))
        if not debs:
            return "trixie ovmf: apt-get download produced no ovmf_*.deb"
        TRIXIE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(debs[0]), str(TRIXIE_DIR)], check=True, timeout=120)
        return f"trixie ovmf: unpacked {debs[0].name} into {TRIXIE_DIR}"


def main() -> int:
    print(fetch_trixie())
    return 0


if __name__ == "__main__":
    sys.exit(main())
