"""The live app: LiveScreen over a SessionLike, for `fwinspect qemu IMAGE`, `attach` and `replay`.

`run_live(session, title)` opens it on a live Session (or a Recorder around one) or a
ReplaySession; `replay_main(path)` is what `fwinspect replay FILE` calls. BaseApp gives it the
inspector's stylesheet, `?`/`q`, help sections and palette entries, so the tree, fields and hex
look and answer the same.
"""
from __future__ import annotations

import asyncio
import sys
from functools import partial
from pathlib import Path
from typing import Iterable

from textual.app import SystemCommand
from textual.screen import Screen
from textual.worker import WorkerCancelled, WorkerFailed

from inspector.live.session_api import SessionLike
from views.base_app import BaseApp
from views.screens.help import Section
from views.screens.live import LiveScreen


# Quitting while the guest runs: how long to wait for the interrupt before leaving anyway.
QUIT_INTERRUPT_TIMEOUT = 5.0

# The live screen's palette commands: (action, title, help).
PALETTE = (
    ("next_stop", "Next stop", "Replay: the next recorded stop (n)"),
    ("previous", "Previous stop", "Replay: go back one recorded stop (p)"),
    ("next", "Next handoff", "Run to the next boot handoff: SEC, PEI core, DXE core… (n)"),
    ("cont", "Continue", "Let the guest run until a breakpoint or interrupt (c)"),
    ("step", "Step", "Execute one instruction (s)"),
    ("interrupt", "Interrupt", "Stop the running guest (i, ctrl+c)"),
    ("run_to", "Run to phase", "Run until a named boot phase: sec, pei-core, dxe-core… (r)"),
    ("breakpoint", "Breakpoint", "Set a breakpoint: an address, or MODULE[+OFFSET] (b)"),
    ("console", "Console command", "Send a command to gdb or QEMU's monitor; the answer goes to the log (:)"),
    ("next_cpu", "Next CPU", "Show the next vCPU's registers and disassembly; s steps it (])"),
    ("previous_cpu", "Previous CPU", "Show the previous vCPU's registers and disassembly; s steps it ([)"),
)
# The CPU keys, listed whether or not this stop has CPUs to select (they say why not).
CPU_KEYS = [
    ("[ / ]", "Previous / next CPU: its registers and disassembly; s then steps it"),
    ("0 … 9", "CPU n"),
    ("enter / click", "In the CPU list: that CPU"),
]


class LiveApp(BaseApp):
    def __init__(self, session: SessionLike, title: str):
        super().__init__()
        self.session = session
        self.sub_title = title
        self.live_screen = LiveScreen(session, title)

    def get_default_screen(self) -> Screen:
        return self.live_screen

    # -- help and palette: the live screen's own keys (BaseApp adds the shared ones) ------
    def screen_sections(self) -> list[Section]:
        screen = self.live_screen
        # Every key this kind of session offers, whether or not it can run right now.
        keys = [b for b in LiveScreen.BINDINGS if screen.offered(b.action) and (b.show or b.key == "ctrl+c")
                and b.action not in LiveScreen.CPU_ACTIONS]
        title = "Run control" if screen.live else "Replay (run control is read-only)"
        return [(title, self.key_rows(keys)), ("CPUs (a guest with more than one)", CPU_KEYS)]

    def screen_commands(self) -> Iterable[SystemCommand]:
        screen = self.live_screen
        for action, title, help_text in PALETTE:
            # Through run_action, which asks check_action when the command runs, not when listed.
            if screen.offered(action):
                yield SystemCommand(title, help_text, partial(self.run_action, action, screen))

    async def action_quit(self) -> None:
        # A cont() still blocking in its worker thread would hold the process until its timeout
        # (worker threads are joined at exit): interrupt the guest first, then go.
        worker = self.live_screen.interrupt_for_quit()
        if worker is not None:
            try:
                await asyncio.wait_for(worker.wait(), QUIT_INTERRUPT_TIMEOUT)
            except (asyncio.TimeoutError, WorkerCancelled, WorkerFailed):
                pass  # quitting anyway; the failed interrupt was already shown
        self.exit()


def run_live(session: SessionLike, title: str) -> None:
    """Open the live screen on `session` (live or replayed); returns when the user quits. The
    caller owns the session and closes it (it may have QEMU processes to end)."""
    LiveApp(session, title).run()


def replay_main(path: str | Path) -> int:
    """`fwinspect replay FILE`: 0 after the user quits, 1 when the recording cannot be read
    (the reason, with file and line, goes to stderr)."""
    from inspector.live.record import RecordingError, ReplaySession

    try:
        session = ReplaySession(path)
    except (RecordingError, OSError) as e:
        print(f"fwinspect replay: {e}", file=sys.stderr)
        return 1
    try:
        run_live(session, f"replay {Path(path).name} ({session.count} stops)")
    finally:
        session.close()
    return 0


__all__ = ["LiveApp", "run_live", "replay_main"]
