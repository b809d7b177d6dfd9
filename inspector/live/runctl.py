"""Small pieces of run control shared by the parts of a live session (session.py, copies.py,
modules.py): how a run a part drove ended, the time left before a deadline, and best-effort removal
of the breakpoints and watchpoints a part set.

A part never builds a Stop itself: it returns an `Outcome` and the session turns that into the Stop,
so building Stops (registers, disassembly, decoding) stays in one place.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from inspector.live.target import StopEvent, Target, TargetDead, TargetError

# The shortest wait handed to the target when a deadline has (nearly) passed.
MIN_WAIT = 0.05


@dataclass
class Outcome:
    """How a run ended when it did not reach what it was after."""

    event: StopEvent | None = None    # the guest stopped for something else: the Stop is built from it
    reason: str | None = None         # the guest is stopped: build a Stop with this reason
    problem: str | None = None        # said on the Stop
    timed_out: bool = False           # the guest still runs: interrupt it, then build the Stop

    @property
    def exited(self) -> bool:
        return self.event is not None and self.event.reason == "exited"


def remaining(deadline: float) -> float:
    return max(MIN_WAIT, deadline - time.monotonic())


def release(target: Target, timeout: float, breakpoints: Iterable[int] = (),
            watches: Iterable[tuple[int, int, str]] = (), keep: set[int] = frozenset()) -> None:
    """Remove breakpoints (except the addresses in `keep`, the user's) and watchpoints (address,
    size, kind), best effort: one may already be gone with a reset. A dead target still raises."""
    for a in breakpoints:
        if a in keep:
            continue
        try:
            target.remove_breakpoint(a, timeout)
        except TargetDead:
            raise
        except TargetError:
            pass
    for a, size, kind in watches:
        try:
            target.remove_watchpoint(a, size, kind, timeout)
        except TargetDead:
            raise
        except TargetError:
            pass
