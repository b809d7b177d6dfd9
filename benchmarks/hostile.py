"""Hostile inputs, whole process: the worst wall time and peak RSS per hostile class (README,
"Budgets": any command on any input up to 64 MiB, hostile included, <= 10 s and <= 256 MiB).
Inputs are built in a child process, so this process stays small: a child is charged the peak RSS
of the process that spawned it.

Run: `.venv/bin/python -m benchmarks.hostile [--only NAME] [--tree DIR]`. `--tree` runs another
checkout of the project (a `git worktree` of an older commit) on the same inputs, for before/after
figures. Nothing here is a pass/fail assertion; the tests in tests/hostile assert exit status and
memory.

ROWS is the table: (class name, builder). A builder takes a scratch folder, writes its input there
and returns the fwinspect argument lists to run on it (one class may run several commands; the row
reports the worst). Add rows for new classes at the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Builder = Callable[[Path], list[list[str]]]


def _in_child(gen, path: Path) -> str:
    from tests.hostile.test_fd_hostile import build_in_child
    return str(build_in_child(gen, path))


def _fd(gen) -> Builder:
    def build(tmp: Path) -> list[list[str]]:
        image = _in_child(gen, tmp / "input.fd")
        return [["fd", image], ["fd", "--json", image], ["extract", image, str(tmp / "x")]]
    return build


def _mrtd(gen) -> Builder:
    def build(tmp: Path) -> list[list[str]]:
        image = _in_child(gen, tmp / "input.fd")
        return [["mrtd", "--order", "both", image], ["mrtd", "--json", "--order", "both", image]]
    return build


def _measure(gen) -> Builder:
    def build(tmp: Path) -> list[list[str]]:
        image = _in_child(gen, tmp / "input.fd")
        return [["measure", image, "--tdx", "--snp", "--vcpu-type", "EPYC-v4", "--vcpus", "64", "--tpm"]]
    return build


def _extract(gen) -> Builder:
    def build(tmp: Path) -> list[list[str]]:
        return [["extract", _in_child(gen, tmp / "input.fd"), str(tmp / "x")]]
    return build


def _rows() -> list[tuple[str, Builder]]:
    from tests.hostile import test_extract_hostile as X
    from tests.hostile import test_fd_hostile as F
    from tests.hostile import test_mrtd_hostile as M

    rows: list[tuple[str, Builder]] = [(name, _fd(gen)) for name, gen in F.FD_CLASSES.items()]
    rows += [(name, _mrtd(gen)) for name, gen in M.MRTD_CLASSES.items()]
    rows += [(f"measure-{name}", _measure(gen)) for name, gen in M.MRTD_CLASSES.items()]
    rows += [(name, _extract(gen)) for name, gen in X.EXTRACT_CLASSES.items()]
    rows += _decode_rows()
    return rows


def _every_mode(module, gen) -> Builder:
    def build(tmp: Path) -> list[list[str]]:
        path = Path(_in_child(gen, tmp / "input"))
        return [[str(a) for a in module.command(path, mode)] for mode in module.MODES]
    return build


def _decode_rows() -> list[tuple[str, Builder]]:
    """pages, eventlog, hob, acpi and edk2log: a row per hostile input, over every output mode of its command."""
    from tests.hostile import (test_acpi_hostile, test_edk2log_hostile, test_eventlog_hostile, test_hob_hostile,
                               test_pages_hostile)

    return [(f"{module.__name__.split('_')[1]}-{case}", _every_mode(module, gen))
            for module in (test_pages_hostile, test_eventlog_hostile, test_hob_hostile, test_acpi_hostile,
                           test_edk2log_hostile)
            for case, gen in module.CASES.items()]


ROWS: list[tuple[str, Builder]] = []   # filled by _rows() at run time; other engineers append here


def run_one(args: list[str], tree: Path, timeout: float = 600.0) -> tuple[int | str | None, float, int, float]:
    """(exit status, "crash" for an internal error, or None when killed; seconds; peak RSS bytes;
    CPU seconds, user + system) of one whole fwinspect process. Wall time far above CPU time is
    waiting: on the disk (extract) or for a core on a busy machine."""
    entry = "import sys; sys.argv[0] = 'fwinspect'; from inspector.cli import run; run()"
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("FWINSPECT_DEBUG", None)
    start = time.monotonic()
    with open(os.devnull, "wb") as null, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", entry, *args], stdout=null, stderr=err,
                                stdin=subprocess.DEVNULL, cwd=tree, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                code = None
                break
            time.sleep(0.01)
        proc.returncode = -9 if code is None else code
        seconds = time.monotonic() - start
        err.seek(0)
        text = err.read()
    if code is not None and (b"internal error" in text or b"Traceback" in text):
        code = "crash"
    return code, seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="class names to run (default: all)")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout to run (default: this one)")
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args(argv)
    rows = _rows() + ROWS
    print(f"{'class':<26} {'worst s':>8} {'its cpu s':>9} {'peak MiB':>9}  exits (crash: internal error)  worst command")
    for name, build in rows:
        if a.only and name not in a.only:
            continue
        with tempfile.TemporaryDirectory(prefix="fwhostile-") as tmp:
            commands = build(Path(tmp))
            results = [(run_one(c, a.tree.resolve(), a.timeout), c) for c in commands]
        worst_t = max(results, key=lambda r: r[0][1])
        peak = max(r[0][2] for r in results)
        exits = ",".join(f">{a.timeout:.0f}s" if r[0][0] is None else str(r[0][0]) for r in results)
        cmd = " ".join(worst_t[1][:2])
        print(f"{name:<26} {worst_t[0][1]:8.2f} {worst_t[0][3]:9.2f} {peak / 2**20:9.0f}  {exits:<6} {cmd}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
