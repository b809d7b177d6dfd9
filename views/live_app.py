"""The live app: LiveScreen over a SessionLike, for `fwinspect qemu IMAGE`, `attach` and `replay`.

`run_live(session, title)` opens it on a live Session (or a Recorder around one) or a
ReplaySession; `replay_main(path)` is what `fwinspect replay FILE` calls. Styles come from the
same fwinspect.tcss as the inspector (CSS_PATH), so the tree, fields and hex look the same.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import WorkerCancelled, WorkerFailed

from inspector.live.session_api import SessionLike
from views.screens.help import HelpScreen, Section
from views.screens.live import LiveScreen
from views.screens.node_screen import NodeScreen


# Quitting while the guest runs: how long to wait for the interrupt before leaving anyway.
QUIT_INTERRUPT_TIMEOUT = 5.0


class LiveApp(App[None]):
    CSS_PATH = "fwinspect.tcss"
    TITLE = "fwinspect"

    BINDINGS = [
        Binding("question_mark", "help", "Keys", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, session: SessionLike, title: str):
        super().__init__()
        self.session = session
        self.sub_title = title
        self.live_screen = LiveScreen(session, title)

    def get_default_screen(self) -> Screen:
        return self.live_screen

    # -- help ---------------------------------------------------------------------
    def key_sections(self) -> list[Section]:
        def rows(bindings) -> list[tuple[str, str]]:
            return [(self.get_key_display(b), b.description) for b in bindings if isinstance(b, Binding)]

        screen = self.live_screen
        replay = not screen.live
        keys = [b for b in LiveScreen.BINDINGS if b.show and screen.check_action(b.action, ())]
        keys += [b for b in LiveScreen.BINDINGS if b.key == "ctrl+c" and not replay]
        return [
            ("Everywhere", rows(self.BINDINGS) + [
                ("ctrl+p", "Command palette: every action by name"),
                ("tab / shift+tab", "Move between tree, fields, bytes and log"),
            ]),
            ("Replay (run control is read-only)" if replay else "Run control", rows(keys)),
            ("Tree", [
                ("up / down", "Move; the fields and bytes follow"),
                ("enter / space", "Expand or collapse"),
            ]),
            ("Fields", [("up / down", "Select a field: its bytes are marked in the hex view")]),
            ("Tree, fields and bytes", rows(NodeScreen.BINDINGS)),
        ]

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

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_sections()))

    # -- command palette ------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        live = self.live_screen
        yield SystemCommand("Help: keys", "Show every key binding (?)", self.action_help)
        if not live.live:
            yield SystemCommand("Next stop", "Replay: the next recorded stop (n)", live.action_next_stop)
            yield SystemCommand("Previous stop", "Replay: go back one recorded stop (p)", live.action_previous)
            return
        yield SystemCommand("Next handoff", "Run to the next boot handoff: SEC, PEI core, DXE core… (n)",
                            live.action_next)
        yield SystemCommand("Continue", "Let the guest run until a breakpoint or interrupt (c)", live.action_cont)
        yield SystemCommand("Step", "Execute one instruction (s)", live.action_step)
        yield SystemCommand("Interrupt", "Stop the running guest (i, ctrl+c)", live.action_interrupt)
        yield SystemCommand("Run to phase", "Run until a named boot phase: sec, pei-core, dxe-core… (r)",
                            live.action_run_to)


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
