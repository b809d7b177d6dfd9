"""Timing helpers: whole-process wall time and peak RSS, medians of several runs."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Timing:
    label: str
    median_s: float
    runs: list[float]
    peak_rss_mib: float | None = None
    note: str = ""

    def row(self) -> str:
        rss = f"{self.peak_rss_mib:7.1f} MiB" if self.peak_rss_mib is not None else "      -    "
        return f"{self.label:<58} {self.median_s * 1000:9.1f} ms  {rss}  (n={len(self.runs)}) {self.note}"


def run_process(label: str, argv: list[str], runs: int = 7, cwd: str | None = None, env=None,
                ok_codes=(0, 1)) -> Timing:
    """Median wall time of a whole process, and its peak RSS from a separate run under
    /usr/bin/time (a child's own rusage counts the pages it shared with this big parent
    before exec, so it cannot be taken from the timed runs)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
                              env=env).returncode
        times.append(time.perf_counter() - t0)
        if code not in ok_codes:
            return Timing(label, float("nan"), times, None, f"exit {code}")
    rss = None
    if os.path.exists("/usr/bin/time"):
        r = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, cwd=cwd, env=env, text=True)
        try:
            rss = int(r.stderr.strip().splitlines()[-1]) / 1024
        except (ValueError, IndexError):
            rss = None
    return Timing(label, statistics.median(times), times, rss)


def bytecode_env(cache: Path) -> dict[str, str]:
    """The environment with Python's bytecode cache on, kept in `cache` (not beside the sources)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_side_by_side(a: tuple[str, list[str]], b: tuple[str, list[str]], runs: int = 15, warmup: int = 3,
                     cwd: str | None = None, env_a: dict | None = None) -> tuple[Timing, Timing]:
    """Two whole processes timed in alternation (a, b, a, b, ...), so load from other work on the
    machine falls on both alike; each Timing carries its median wall time and CPU time (user +
    system, from the child's rusage) in its note with the 1-minute load average before and after
    (on a shared 2-core machine a load above 1 takes the second core a threaded run overlaps on),
    and its peak RSS as run_process measures it."""
    import resource

    def once(argv: list[str], env: dict | None) -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    envs = (env_a, None)
    for _ in range(warmup):
        once(a[1], env_a)
        once(b[1], None)
    load_before = os.getloadavg()[0]
    walls: dict[int, list[float]] = {0: [], 1: []}
    cpus: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(runs):
        for i, (_, argv) in enumerate((a, b)):
            wall, cpu = once(argv, envs[i])
            walls[i].append(wall)
            cpus[i].append(cpu)
    load = f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    out = []
    for i, (label, argv) in enumerate((a, b)):
        t = run_process(label, argv, runs=1, cwd=cwd, env=envs[i])  # its peak RSS
        out.append(Timing(label, statistics.median(walls[i]), walls[i], t.peak_rss_mib,
                          f"cpu {statistics.median(cpus[i]) * 1000:.0f} ms, {load}"))
    return out[0], out[1]


def compare_pairs(pairs, runs: int, *, cwd: str | None = None, env_a: dict | None = None,
                  ratio: str = "ours/theirs", budget: str = "<= 1.0") -> list[Timing]:
    """run_side_by_side over (name, argv, other name, other argv) pairs; the other side's note gets
    the ratio of the medians and the budget it is held to."""
    out: list[Timing] = []
    for name_a, argv_a, name_b, argv_b in pairs:
        ours, theirs = run_side_by_side((f"{name_a} (whole process)", argv_a), (name_b, argv_b), runs,
                                        cwd=cwd, env_a=env_a)
        theirs.note += f"; ratio {ratio} = {ours.median_s / theirs.median_s:.2f} (budget {budget})"
        out += [ours, theirs]
    return out


def run_inprocess(label: str, fn, runs: int = 9, warmup: int = 1) -> Timing:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(label, statistics.median(times), times)


def machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} {os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def bench_main(bench, doc: str, runs: int = 5) -> None:
    """`python -m benchmarks.bench_X [--runs N]`: the machine, then bench(runs)'s rows."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--runs", type=int, default=runs)
    args = ap.parse_args()
    print(machine())
    for t in bench(args.runs):
        print(t.row())
