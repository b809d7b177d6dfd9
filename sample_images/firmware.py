"""Build the edk2 images Debian's `ovmf` package does not ship, from Debian's own `edk2` source.

`make firmware` runs this. It fills `.cache/firmware/` (git-ignored) with the same layout as the
`../shared/firmware/` folder the tests read first:

    inteltdx/OVMF.fd            TDVF Config-B, OvmfPkg/IntelTdx/IntelTdxX64.dsc, RELEASE
    ovmf-debug/OVMF.fd          OvmfPkg/OvmfPkgX64.dsc, DEBUG, TPM 2.0 + CC measurement,
    ovmf-debug/OVMF_CODE.fd     5-level paging allowed
    ovmf-debug/OVMF_VARS.fd
    ovmf-debug/DEBUG.tar.xz     DEBUG/*.debug: every module's ELF with DWARF, of this very build

Steps, each skipped when its result is already there:
1. fetch Debian 13's `edk2` 2025.02-8+deb13u1 source (`apt-get source --download-only` with a
   private `deb-src` sources list and lists directory: the system's apt configuration is not
   touched) and check each file's SHA-256 against the signed Sources index apt just fetched;
2. unpack `edk2_2025.02.orig.tar.xz` and `debian.tar.xz`, apply `debian/patches/series` in order
   (one patch disables BrotliCompress, whose sources Debian's tarball leaves out);
3. `. ./edksetup.sh && make -C BaseTools`;
4. the two `build` lines below (toolchain tag GCC5), at the lowest CPU priority;
5. copy the outputs into the cache and write SHA256SUMS.

About 30 minutes on 2 cores; the work tree (`.cache/edk2-build/`, about 1.5 GB) is kept so that a
failed step can be resumed. Needs `nasm uuid-dev build-essential acpica-tools python3` (the Makefile
installs them when root) and the network.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sample_images.fetch import KEYRING, mirror

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "firmware"
WORK = ROOT / ".cache" / "edk2-build"

SOURCE = "edk2"
VERSION = "2025.02-8+deb13u1"
ORIG = "edk2_2025.02.orig.tar.xz"
DEBIAN = f"edk2_{VERSION}.debian.tar.xz"
# Debian's security archive carries the +debNuN updates until a point release folds them in.
SUITES = [("{mirror}", "trixie"), ("http://deb.debian.org/debian-security", "trixie-security")]

# The build lines, platform by platform: (output folder, dsc, target, extra arguments, Build/ subfolder).
PLATFORMS = [
    ("inteltdx", "OvmfPkg/IntelTdx/IntelTdxX64.dsc", "RELEASE", [], "IntelTdx/RELEASE_GCC5"),
    ("ovmf-debug", "OvmfPkg/OvmfPkgX64.dsc", "DEBUG",
     ["-DTPM2_ENABLE=TRUE", "-DCC_MEASUREMENT_ENABLE=TRUE",
      "--pcd", "gEfiMdeModulePkgTokenSpaceGuid.PcdUse5LevelPageTable=TRUE"], "OvmfX64/DEBUG_GCC5"),
]
OUTPUTS = {
    "inteltdx": ["OVMF.fd"],
    "ovmf-debug": ["OVMF.fd", "OVMF_CODE.fd", "OVMF_VARS.fd", "DEBUG.tar.xz"],
}
# What the images in ../shared/firmware hash to (its README). A rebuild differs in bytes (checked
# here, Debian 12, GCC 12: the same FFS files in both platforms, OVMF_VARS.fd identical, the DEBUG
# OVMF.fd with 11 pad files instead of 14), so a mismatch is reported, not an error.
REFERENCE_SHA256 = {
    "inteltdx/OVMF.fd": "31c8d4cba168130c1bb8d37633423f790c0f1ee821fdb7b27611c6005368a7f7",
    "ovmf-debug/DEBUG.tar.xz": "0b20eba031e1f96984e256e73e1b435ec55836c6021bcc8cfe2567a0e6c04112",
    "ovmf-debug/OVMF.fd": "8fd9efc1293a8c896c2f88cb66f57153b682ba84063262a916d6333e9ea20564",
    "ovmf-debug/OVMF_CODE.fd": "b28a057139a3fb33326b6c7c962f2527b479a3de6ac48a0443d0629a295ecbca",
    "ovmf-debug/OVMF_VARS.fd": "5d2ac383371b408398accee7ec27c8c09ea5b74a0de0ceea6513388b15be5d1e",
}
TOOLS = {"nasm": "nasm", "gcc": "build-essential", "make": "build-essential", "iasl": "acpica-tools",
         "python3": "python3", "apt-get": "apt", "apt-cache": "apt", "patch": "patch", "tar": "tar",
         "nice": "coreutils", "bash": "bash"}
# Bound each step so that a hung fetch or build ends; a full platform build takes ~10-15 minutes
# on 2 cores.
FETCH_TIMEOUT = 600
BUILD_TIMEOUT = 3 * 3600


class BuildError(Exception):
    pass


def log(msg: str) -> None:
    print(f"make firmware: {msg}", flush=True)


def have_outputs(dest: Path) -> bool:
    return all((dest / d / f).is_file() for d, files in OUTPUTS.items() for f in files)


def check_tools(fetch_only: bool = False) -> None:
    needed = {"apt-get", "apt-cache", "patch", "tar"} if fetch_only else set(TOOLS)
    missing = sorted({pkg for exe, pkg in TOOLS.items() if exe in needed and shutil.which(exe) is None})
    if not fetch_only and not Path("/usr/include/uuid/uuid.h").exists():
        missing.append("uuid-dev")
    if missing:
        raise BuildError("missing build tools; install Debian's " + " ".join(missing))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source_checksums(apt_opts: list[str]) -> dict[str, str]:
    """Checksums-Sha256 of edk2 VERSION from the Sources index apt verified against the Release
    file's signature: name -> sha256."""
    out = subprocess.run(["apt-cache", *apt_opts, "showsrc", SOURCE], check=True, capture_output=True,
                         text=True, timeout=FETCH_TIMEOUT).stdout
    for stanza in out.split("\n\n"):
        lines = stanza.splitlines()
        if f"Version: {VERSION}" not in lines:
            continue
        sums, inside = {}, False
        for line in lines:
            if line.startswith("Checksums-Sha256:"):
                inside = True
            elif inside and line.startswith(" "):
                digest, _size, name = line.split()
                sums[name] = digest
            else:
                inside = False
        return sums
    raise BuildError(f"{SOURCE} {VERSION} is not in trixie's Sources index")


def fetch(work: Path) -> None:
    """Download the two tarballs into WORK and check them against the signed index."""
    if all((work / n).is_file() for n in (ORIG, DEBIAN)) and (work / "SHA256OK").is_file():
        return
    uri = mirror()
    if uri is None:
        raise BuildError("no Debian mirror configured in /etc/apt")
    signed = f"[signed-by={KEYRING}] " if Path(KEYRING).exists() else ""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.chmod(d, 0o755)    # apt's unprivileged _apt user must reach the lists
        (d / "lists/partial").mkdir(parents=True)
        (d / "sources.list").write_text("".join(
            f"deb-src {signed}{base.format(mirror=uri)} {suite} main\n" for base, suite in SUITES))
        opts = ["-o", f"Dir::Etc::SourceList={d}/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={d}/lists"]
        log(f"fetching {SOURCE} {VERSION} source from {uri} (private sources list)")
        subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, timeout=FETCH_TIMEOUT)
        sums = _source_checksums(opts)
        # apt-get exits non-zero when one file of the source is unavailable (some mirrors lack the
        # .dsc); the two tarballs are all the build needs and are checked against `sums` below.
        subprocess.run(["apt-get", *opts, "source", "--download-only", f"{SOURCE}={VERSION}"],
                       cwd=work, timeout=FETCH_TIMEOUT)
    for name in (ORIG, DEBIAN):
        path = work / name
        if not path.is_file():
            raise BuildError(f"apt-get source did not download {name}")
        if name not in sums or _sha256(path) != sums[name]:
            raise BuildError(f"{name}: SHA-256 differs from trixie's Sources index")
    (work / "SHA256OK").write_text("".join(f"{sums[n]}  {n}\n" for n in (ORIG, DEBIAN)))


def unpack(work: Path) -> Path:
    """edk2 tree with Debian's patches applied, in WORK/src."""
    src = work / "src"
    if (src / ".debian-patches-applied").is_file():
        return src
    if src.exists():
        shutil.rmtree(src)
    src.mkdir()
    log(f"unpacking {ORIG} and {DEBIAN}")
    subprocess.run(["tar", "-xJf", str(work / ORIG), "-C", str(src), "--strip-components=1"], check=True)
    subprocess.run(["tar", "-xJf", str(work / DEBIAN), "-C", str(src)], check=True)
    series = [p.strip() for p in (src / "debian/patches/series").read_text().splitlines()
              if p.strip() and not p.startswith("#")]
    for name in series:
        with open(src / "debian/patches" / name, "rb") as patch:
            r = subprocess.run(["patch", "-p1", "-s", "--no-backup-if-mismatch"], stdin=patch, cwd=src,
                               capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"debian/patches/{name} does not apply: {r.stdout[-500:]}{r.stderr[-500:]}")
    (src / ".debian-patches-applied").write_text("\n".join(series) + "\n")
    log(f"applied {len(series)} patches from debian/patches/series")
    return src


def _edk2(src: Path, command: str) -> None:
    """Run COMMAND in bash after edksetup.sh, niced so that other work on the machine goes first."""
    env = dict(os.environ, WORKSPACE=str(src))
    # `build -n` runs modules in parallel; a -j inherited into its per-module makefiles races
    # ("No rule to make target .../DisplayEngine.efi"), and a calling make's jobserver is not ours.
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "EDK_TOOLS_PATH", "CONF_PATH"):
        env.pop(name, None)
    r = subprocess.run(["nice", "-n", "19", "bash", "-c", f". ./edksetup.sh >/dev/null && {command}"],
                       cwd=src, env=env, timeout=BUILD_TIMEOUT)
    if r.returncode != 0:
        raise BuildError(f"`{command}` failed (exit {r.returncode})")


def build(src: Path, jobs: int, only: list[str] | None = None) -> None:
    if not (src / "BaseTools/Source/C/bin/GenFw").exists():
        log("building BaseTools")
        _edk2(src, f"make -C BaseTools -j{jobs}")
    for folder, dsc, target, extra, _out in PLATFORMS:
        if only and folder not in only:
            continue
        line = ["build", "-a", "X64", "-t", "GCC5", "-p", dsc, "-b", target, *extra, "-n", str(jobs)]
        log(" ".join(line))
        _edk2(src, " ".join(line))


def install(src: Path, dest: Path, only: list[str] | None = None) -> None:
    """Copy the outputs into DEST (each file written beside and renamed into place)."""
    for folder, _dsc, _target, _extra, out in PLATFORMS:
        if only and folder not in only:
            continue
        fv = src / "Build" / out / "FV"
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS[folder]:
            final = dest / folder / name
            tmp = final.with_name(name + ".part")
            if name == "DEBUG.tar.xz":
                debug = sorted((src / "Build" / out / "X64").glob("*.debug"))
                if not debug:
                    raise BuildError(f"no .debug files in Build/{out}/X64")
                with tarfile.open(tmp, "w:xz") as tar:
                    for p in debug:
                        tar.add(p, arcname=f"DEBUG/{p.name}")
            else:
                if not (fv / name).is_file():
                    raise BuildError(f"the build made no Build/{out}/FV/{name}")
                shutil.copyfile(fv / name, tmp)
            tmp.replace(final)
    lines = []
    for folder, files in OUTPUTS.items():
        for name in files:
            rel = f"{folder}/{name}"
            if (dest / rel).is_file():
                digest = _sha256(dest / rel)
                lines.append(f"{digest}  {rel}\n")
                same = "same as" if digest == REFERENCE_SHA256[rel] else "differs from"
                log(f"{rel}: {digest[:16]}…, {same} ../shared/firmware's build")
    (dest / "SHA256SUMS").write_text("".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sample_images.firmware", description=__doc__.split("\n")[0])
    ap.add_argument("--dest", type=Path, default=CACHE, help=f"output folder (default {CACHE})")
    ap.add_argument("--work", type=Path, default=WORK, help=f"source and build tree (default {WORK})")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--fetch-only", action="store_true", help="fetch, check and unpack the source; no build")
    ap.add_argument("--platform", action="append", choices=list(OUTPUTS), help="build only this one (repeatable)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the outputs are there")
    args = ap.parse_args(argv)
    if have_outputs(args.dest) and not args.force and not args.fetch_only:
        log(f"already built in {args.dest}")
        return 0
    try:
        check_tools(args.fetch_only)
        args.work.mkdir(parents=True, exist_ok=True)
        fetch(args.work)
        src = unpack(args.work)
        if args.fetch_only:
            log(f"source ready in {src}")
            return 0
        build(src, args.jobs, args.platform)
        install(src, args.dest, args.platform)
    except (BuildError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        log(f"failed: {e}")
        return 1
    log(f"done: {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
