"""Run one fwinspect command on one hostile input as a whole process, and say how it ended.

The budget every command holds on any input up to 64 MiB: exit status 0, 1 or 2 (3 is an
internal error, a bug), peak RSS (the kernel's ru_maxrss, which is VmHWM) at most
256 MiB, and at most 10 s. Tests assert the exit status and the memory; the time is only a hang
detector here (a generous timeout, because the suite runs beside other work on 2 cores); the
10 s figure is measured in `benchmarks/hostile.py`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEAK_RSS_LIMIT = 256 << 20
HANG_TIMEOUT = 120.0  # seconds; a hang, not a budget (see the module docstring)
ALLOWED_EXITS = (0, 1, 2)

# The console script's entry, so one-shot commands run exactly as a user's `fwinspect` does.
_ENTRY = "import sys; sys.argv[0] = 'fwinspect'; from inspector.cli import run; run()"

# A small launcher between pytest and the command. Linux charges a child, in ru_maxrss, with the
# high-water RSS of the memory it had before exec (kernel fs/exec.c, exec_mmap ->
# setmax_mm_hiwater_rss): a command forked straight from a pytest process of several hundred MiB
# would report pytest's size. Forked from this launcher instead, it starts from the launcher's
# ~10 MiB, and the launcher hands back the command's own rusage and exit status.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[2], *sys.argv[3:]])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


@dataclass
class Outcome:
    args: list[str]
    returncode: int | None  # None: killed after HANG_TIMEOUT
    seconds: float
    peak_rss: int  # bytes
    stdout: bytes
    stderr: bytes

    def describe(self) -> str:
        tail = self.stderr.decode(errors="replace")[-2000:]
        return (f"fwinspect {' '.join(self.args)}: exit {self.returncode}, {self.seconds:.1f} s, "
                f"peak {self.peak_rss >> 20} MiB\n{tail}")

    def check(self) -> None:
        """Assert the hostile-input contract: ended, a documented exit status, bounded memory."""
        assert self.returncode is not None, f"hung: {self.describe()}"
        assert self.returncode in ALLOWED_EXITS, f"bad exit: {self.describe()}"
        assert b"Traceback" not in self.stderr, f"traceback: {self.describe()}"
        assert self.peak_rss <= PEAK_RSS_LIMIT, f"memory: {self.describe()}"


def run_fwinspect(args: list[str | os.PathLike], timeout: float = HANG_TIMEOUT, cwd: Path | None = None,
                  stdout_to: Path | None = None) -> Outcome:
    """Run `fwinspect ARGS` in a child process (through `_LAUNCHER`, for its own peak RSS). Output
    goes to files (no pipe to drain while waiting); stdout is read back unless `stdout_to` names
    where to keep it (for commands whose output is large by design)."""
    import signal
    import tempfile

    argv = [str(a) for a in args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("FWINSPECT_DEBUG", None)
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(stdout_to) if stdout_to else Path(tmp) / "stdout"
        err_path = Path(tmp) / "stderr"
        result_path = Path(tmp) / "result"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            start = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(result_path), _ENTRY, *argv],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd or ROOT, env=env,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the command: one session
                proc.wait()
            seconds = time.monotonic() - start
        returncode: int | None = None
        peak = 0
        if result_path.exists():
            code, maxrss = result_path.read_text().split()
            returncode, peak = int(code), int(maxrss) * 1024
        stdout = b"" if stdout_to else out_path.read_bytes()
        stderr = err_path.read_bytes()
    return Outcome(argv, returncode, seconds, peak, stdout, stderr)


def build_inputs(tmp_path_factory, kind: str, cases: dict, suffix: str) -> dict[str, Path]:
    """Each case's generator writes its input once into a folder of its own: name -> path."""
    folder = tmp_path_factory.mktemp(kind)
    return {name: gen(folder / f"{name}{suffix}") for name, gen in cases.items()}
