"""LiveScreen: a guest paused at a stop, and the gdb-like keys that move it.

Top: the phase bar. Then registers (changes since the previous stop in red), disassembly at RIP
with the module name, and the debugcon log. Below: the tree decoded at the stop, with the
selected node's fields and bytes (NodeTree, FieldTable and HexView, as on the inspect screen).

The screen talks only to a SessionLike (inspector/live/session_api.py), and only from thread
workers (`@work(thread=True, exclusive=True)`, Textual's guide "Workers": thread workers for
blocking calls): the UI thread never waits on the target. Run control (c, s, n, r) is one worker
group; interrupt is another, so it can be sent while `cont()` blocks.

The screen's state is three reactives: `running` (the run-control call under way), `dead` (why
the target is gone) and `error` (the last call's error, until the next stop). Their watchers
colour the status line and refresh the bindings, and `check_action` disables what cannot run now
(Textual's guide "Actions", dynamic actions: None greys a key in the footer, False hides it):
run control while the guest runs or after the target died, interrupt while it is stopped. A call
that raises is shown in the status line and as a notification and the screen stays usable. A
replay (`session.live` False) is read-only: n / p move through the recorded stops and the
run-control keys are not offered.

Every vCPU: a stop that lists more than one CPU (`Stop.cpus`) shows them in the CPU list under the
registers. `[` / `]`, a digit, or Enter / a click in the list select a CPU: `session.select_cpu(i)`
(a worker call like the others, in the run-control group, so it never overlaps one) re-presents the
stop about that CPU, and the registers, disassembly and status line show it; `s` then steps it (the
session keeps the selection). A stop a CPU other than CPU 0 is about says so ("CPU 2 hit the
breakpoint at …"). A session without `select_cpu`, or a stop with one CPU or none listed, answers
the CPU keys with why they are not available.

Layout CSS is in fwinspect.tcss (`LiveScreen …` rules).
"""
from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState

from decoders.model import Node
from inspector.live.cpus import stop_note
from inspector.live.session_api import PHASES, SessionLike, Stop
from inspector.live.target import TargetDead
from views.index import TreeIndex
from views.screens.node_screen import NodeScreen
from views.screens.prompt import PromptScreen
from views.widgets.cpu_list import CpuList, about_text, cpu_registers, no_selection
from views.widgets.disassembly import DisassemblyView
from views.widgets.field_table import FieldTable
from views.widgets.hex_view import HexView
from views.widgets.log_pane import LogPane
from views.widgets.node_tree import NodeTree, clean_text
from views.widgets.phase_bar import LABELS, PhaseBar
from views.widgets.registers import RegistersView

RUN_GROUP = "run-control"
INTERRUPT_GROUP = "interrupt"
# The worker of a CPU selection (in RUN_GROUP): its stop is the one shown, about another CPU.
SELECT_WORKER = "select-cpu"
# CPUs a digit key selects directly; `[` / `]` and the list reach the others.
DIGIT_CPUS = range(10)
CPU_KEY_NAMES = "left_square_bracket,right_square_bracket," + ",".join(str(n) for n in DIGIT_CPUS)
# Replay moves (n / p) queued while one is under way; more presses than this are dropped.
MAX_PENDING_MOVES = 32
# Error text shown in the status line is cut here (a backend can put a whole reply in it).
MAX_ERROR_CHARS = 300


def empty_tree(stop: Stop) -> Node:
    return Node("stop", f"stop {stop.index}: nothing decoded here")


WAITING = Node("stop", "waiting for the first stop…")


def same_place(index: TreeIndex, path: list[tuple[str, str]]) -> Node:
    """The node of `index` at the (kind, title) path below the root that another stop's tree had
    selected, as far down as it matches (the root when nothing does): stepping keeps a HOB
    selected while its list stays the same. Roots differ from stop to stop and are not compared."""
    node = index.root
    for kind, title in path[1:]:
        match = next((c for c in index.children(node) if c.kind == kind and c.title == title), None)
        if match is None:
            break
        node = match
    return node


class LiveScreen(NodeScreen):
    # Live and replay bindings share keys; check_action enables the set for this session, and a
    # key whose action is off falls through to the next binding of that key (App.run_action
    # returns False for a disabled action, and App._check_bindings tries the next binding).
    BINDINGS = [
        Binding("c", "cont", "Continue", id="live-continue"),
        Binding("s", "step", "Step", id="live-step"),
        Binding("n", "next", "Next handoff", id="live-next"),
        Binding("i", "interrupt", "Interrupt", id="live-interrupt"),
        # priority: Screen binds ctrl+c to copy-text, and gdb users press ctrl+c to interrupt.
        Binding("ctrl+c", "interrupt", "Interrupt", show=False, priority=True, id="live-interrupt-ctrl-c"),
        Binding("r", "run_to", "Run to phase", id="live-run-to"),
        Binding("b", "breakpoint", "Breakpoint", id="live-breakpoint"),
        Binding("colon", "console", "Console", id="live-console"),
        Binding("n", "next_stop", "Next stop", id="replay-next"),
        Binding("p", "previous", "Previous stop", id="replay-previous"),
        # Offered when the stop lists more than one CPU and the session can select one; otherwise
        # the same keys fall through to `cpu_unavailable`, which says why.
        Binding("left_square_bracket", "previous_cpu", "Prev CPU", id="live-cpu-previous"),
        Binding("right_square_bracket", "next_cpu", "Next CPU", id="live-cpu-next"),
        *(Binding(str(n), f"select_cpu({n})", f"CPU {n}", show=False, id=f"live-cpu-{n}") for n in DIGIT_CPUS),
        Binding(CPU_KEY_NAMES, "cpu_unavailable", "CPU selection", show=False, id="live-cpu-unavailable"),
    ]
    LIVE_ACTIONS = frozenset({"cont", "step", "next", "interrupt", "run_to", "breakpoint", "console"})
    REPLAY_ACTIONS = frozenset({"next_stop", "previous"})
    CPU_ACTIONS = frozenset({"previous_cpu", "next_cpu", "select_cpu"})

    running: reactive[str | None] = reactive(None, init=False)   # the run-control call under way
    dead: reactive[str | None] = reactive(None, init=False)      # why the target is gone, after TargetDead
    error: reactive[str | None] = reactive(None, init=False)     # the last call's error, until the next stop

    def __init__(self, session: SessionLike, title: str):
        super().__init__()
        self.session = session
        self.source_title = title
        # `x` writes the tree of the stop shown to <name>-stop.json in the current folder.
        self.source_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in title.split(" (")[0])[:60] + "-stop"
        self.live = bool(session.live)
        self.stop: Stop | None = None
        # The stop shown before this one (not a re-presentation of it): changed registers are
        # against the same CPU there.
        self.previous_stop: Stop | None = None
        # (CPU, reason, linear RIP) of what the stop is about: kept while other CPUs are selected.
        self.about: tuple[int, str, int] = (0, "", 0)
        self.root: Node | None = None
        self.current: Node | None = None
        self.reached: set[str] = set()
        self._pending: list[str] = []       # replay moves pressed while one was under way
        self.quitting = False               # the app is exiting: results are no longer shown
        self.stops_shown = 0
        self._status_text = ""
        # perf_counter at each run-control key and after each stop's first frame: key-to-redraw.
        self.key_times: list[tuple[str, float]] = []
        self.redraw_times: list[float] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield PhaseBar(id="phase-bar")
        with Horizontal(id="live-top"):
            with VerticalScroll(id="registers-box"):
                yield RegistersView(id="registers")
            with VerticalScroll(id="disassembly-box"):
                yield DisassemblyView(id="disassembly")
            yield LogPane(id="log")
        cpu_list = CpuList(id="cpus")
        cpu_list.display = False    # shown for a stop with more than one CPU
        yield cpu_list
        with Horizontal(id="panes"):
            yield NodeTree(TreeIndex(WAITING), id="tree")
            with Vertical(id="details"):
                yield Static(id="node-info")
                yield FieldTable(id="fields")
                yield HexView(id="hex")
        yield Static("", id="live-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#registers-box").border_title = "Registers"
        self.query_one("#disassembly-box").border_title = "Disassembly"
        self.query_one(LogPane).border_title = "Debug console"
        self.node_tree.border_title = "Decoded at this stop"
        self.fields.border_title = "Fields"
        self.hex_view.border_title = "Bytes"
        self.node_tree.focus()
        self.set_status("attaching…" if self.live else "loading the recording…")
        self._run("current")

    # -- widgets ------------------------------------------------------------------
    @property
    def phase_bar(self) -> PhaseBar:
        return self.query_one(PhaseBar)

    @property
    def registers(self) -> RegistersView:
        return self.query_one(RegistersView)

    @property
    def cpu_list(self) -> CpuList:
        return self.query_one(CpuList)

    @property
    def disassembly(self) -> DisassemblyView:
        return self.query_one(DisassemblyView)

    @property
    def log_pane(self) -> LogPane:
        return self.query_one(LogPane)

    @property
    def node_tree(self) -> NodeTree:
        return self.query_one(NodeTree)

    @property
    def status(self) -> Static:
        return self.query_one("#live-status", Static)

    @property
    def status_text(self) -> str:
        return self._status_text

    def set_status(self, text: str) -> None:
        """The status line's text; its colour follows `running` and `error` (the watchers)."""
        self._status_text = text
        self.status.update(Text(text))

    # -- state --------------------------------------------------------------------
    def watch_running(self, running: str | None) -> None:
        # A replay move or the first current() is quick and runs nothing: no "running" colour.
        self.status.set_class(self.live and running not in (None, "current", SELECT_WORKER), "running")
        self.refresh_bindings()

    def watch_dead(self, dead: str | None) -> None:
        self.refresh_bindings()

    def watch_error(self, error: str | None) -> None:
        self.status.set_class(error is not None, "error")

    def offered(self, action: str) -> bool:
        """Whether this kind of session has `action` at all: run control live, n / p in a replay."""
        if action in self.LIVE_ACTIONS:
            return self.live
        if action in self.REPLAY_ACTIONS:
            return not self.live and (action != "previous" or hasattr(self.session, "previous"))
        if action in self.CPU_ACTIONS:
            return self.cpus_selectable()
        if action == "cpu_unavailable":
            return not self.cpus_selectable()
        return True

    def cpus_selectable(self) -> bool:
        """The stop shown lists more than one CPU and the session can select one."""
        return (self.stop is not None and len(self.stop.cpus) > 1
                and callable(getattr(self.session, "select_cpu", None)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """True: the key runs. None: shown greyed, it cannot run now. False: not offered here."""
        if not self.offered(action):
            return False
        if action in self.CPU_ACTIONS:
            # A selection asks the target: not while it runs (nor once it is gone).
            if self.live and self.dead is not None:
                return None
            return None if self.running is not None else True
        if action not in self.LIVE_ACTIONS:
            return True
        if self.dead is not None:
            return None
        if action == "interrupt":
            return True if self.running is not None else None
        return None if self.running is not None else True

    # -- workers ------------------------------------------------------------------
    def _run(self, action: str, *args) -> None:
        self.running = action
        if action != "current" and self.live:
            self.set_status(f"running… ({action.replace('_', ' ')}; i or ctrl+c interrupts)")
        self._call(action, args)

    @work(thread=True, exclusive=True, group=RUN_GROUP, exit_on_error=False)
    def _call(self, action: str, args: tuple) -> tuple[Stop, TreeIndex]:
        stop = getattr(self.session, action)(*args)
        # The index walks the whole tree: build it here, not on the UI thread.
        return stop, TreeIndex(stop.tree if stop.tree is not None else empty_tree(stop))

    @work(thread=True, exclusive=True, group=RUN_GROUP, exit_on_error=False, name=SELECT_WORKER)
    def _select(self, cpu: int) -> tuple[Stop, TreeIndex]:
        stop = self.session.select_cpu(cpu)
        return stop, TreeIndex(stop.tree if stop.tree is not None else empty_tree(stop))

    @work(thread=True, exclusive=True, group=INTERRUPT_GROUP, exit_on_error=False)
    def _interrupt(self) -> tuple[Stop, TreeIndex]:
        stop = self.session.interrupt()
        return stop, TreeIndex(stop.tree if stop.tree is not None else empty_tree(stop))

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group not in (RUN_GROUP, INTERRUPT_GROUP) or self.quitting:
            return
        if event.state == WorkerState.SUCCESS:
            if worker.group == RUN_GROUP:
                self.running = None
            stop, index = worker.result
            await self.show_stop(stop, index, selected=worker.name == SELECT_WORKER)
        elif event.state == WorkerState.ERROR:
            if worker.group == RUN_GROUP:
                self.running = None
                self._pending.clear()
            self.failed(worker.error)
        elif event.state == WorkerState.CANCELLED and worker.group == RUN_GROUP:
            self.running = None
        if self.running is None and self._pending:
            self._replay_move(self._pending.pop(0))

    def failed(self, error: BaseException | None) -> None:
        message = clean_text(f"{type(error).__name__}: {error}", MAX_ERROR_CHARS)
        if isinstance(error, TargetDead):
            self.dead = message
            message = f"target gone: {message} — run control disabled; q quits"
        self.error = message
        self.set_status(f"error: {message}")
        self.notify(message, title="Target", severity="error", markup=False)

    # -- a stop -------------------------------------------------------------------
    async def show_stop(self, stop: Stop, index: TreeIndex, selected: bool = False) -> None:
        """Fill every pane from `stop`; changed registers are those that differ from the stop
        shown before it (for the same CPU). `selected`: `stop` is the stop shown, re-presented
        about another CPU by `select_cpu`."""
        if not selected and self.stop is not None and stop is self.stop:
            # A replay at its last (or first) stop, or an interrupt answered with the stop shown.
            self.set_status(self.describe_stop(stop) + self._edge_note())
            return
        if self.live and self.stop is not None and stop.index < self.stop.index:
            return  # an interrupt's answer that a later stop has overtaken
        # One repaint for the whole stop, not one per pane (Textual's App.batch_update; Memray's
        # live TUI, src/memray/reporters/tui.py, updates its panes the same way).
        with self.app.batch_update():
            await self._apply(stop, index, selected)
        self.call_after_refresh(lambda: self.redraw_times.append(time.perf_counter()))

    async def _apply(self, stop: Stop, index: TreeIndex, selected: bool = False) -> None:
        # Not fresh: the stop shown, about another CPU (a selection), or answered again with a
        # problem added (a step the session refused: a halted CPU would never finish it).
        fresh = not selected and (self.stop is None or stop.index != self.stop.index)
        added = [] if fresh or self.stop is None else [p for p in stop.problems if p not in self.stop.problems]
        if fresh:
            self.previous_stop = self.stop
            # Stop.about is the CPU that stopped (hit the breakpoint, was stepped); Stop.cpu the one
            # shown, another after a selection (a replay hands that copy back on a return to it).
            self.about = (stop.about, stop.reason, stop.linear_rip if stop.cpu == stop.about
                          else next((c.linear_rip for c in stop.cpus if c.index == stop.about), stop.linear_rip))
            # The phase bar is the stop's; selecting another CPU does not move the boot.
            if stop.phase in PHASES:
                # Everything up to the current phase was passed through on the way.
                self.reached.update(PHASES[:PHASES.index(stop.phase) + 1])
            self.phase_bar.show(stop.phase, self.reached)
        before = cpu_registers(self.previous_stop, stop.cpu)
        self.error = None
        self.stops_shown += 1
        multi = len(stop.cpus) > 1
        self.registers.show(stop.registers, before, stop.mode, stop.linear_rip)
        self.query_one("#registers-box").border_title = f"Registers: CPU {stop.cpu}" if multi else "Registers"
        box = self.query_one("#disassembly-box")
        where = f"Disassembly (CPU {stop.cpu})" if multi else "Disassembly"
        box.border_title = clean_text(f"{where}: {stop.module or 'unknown module'}", 60)
        self.disassembly.show(stop.disassembly, stop.linear_rip)
        self.cpu_list.display = multi
        if multi:
            self.cpu_list.show(stop.cpus, stop.cpu, self.about[0], self.about[1])
        if fresh:
            self.log_pane.show(stop.log)
        await self._show_tree(index)
        # Last: tests and the status line read `self.stop` as "this stop is fully shown".
        self.stop = stop
        if added:
            # The new problem first, and not a second time in the stop's problem count.
            self.set_status(clean_text(f"{added[-1]} · {self.describe_stop(stop, skip=added[-1])}", 400))
            self.notify(clean_text(added[-1], MAX_ERROR_CHARS), title="Target", severity="warning", markup=False)
        else:
            self.set_status(self.describe_stop(stop) + self._edge_note())
        if fresh and stop.about != 0 and stop.reason in ("breakpoint", "watchpoint"):
            # An application processor stopped the guest: say which one (a notification too,
            # the status line is overwritten by the next call).
            self.notify(about_text(*self.about), title=stop.reason.capitalize(), markup=False)

    def _edge_note(self) -> str:
        if self.live:
            return ""
        position, count = getattr(self.session, "position", None), getattr(self.session, "count", None)
        if position is None or count is None:
            return ""
        if position == count - 1:
            return "  (last recorded stop)"
        return "  (first recorded stop)" if position == 0 else ""

    def describe_stop(self, stop: Stop, skip: str | None = None) -> str:
        """The status line for `stop`; `skip`: a problem the caller shows itself."""
        what = stop.reason
        if len(stop.cpus) > 1 or stop.cpu != 0 or self.about[0] != 0:
            what = clean_text(about_text(*self.about), 100)
            if stop.cpu != self.about[0]:
                what += f" · showing CPU {stop.cpu}"
        parts = [f"stop {stop.index}", what, LABELS.get(stop.phase, stop.phase), stop.mode,
                 f"RIP 0x{stop.linear_rip:x}"]
        if stop.handoff:
            parts.append(f"handoff {LABELS.get(stop.handoff, stop.handoff)}")
        if stop.module:
            parts.append(stop.module)
        # The session's own note that an AP stopped says what `what` already says.
        said = stop_note(self.about[1], self.about[0], len(stop.cpus))
        problems = [p for p in stop.problems if p not in (skip, said)]
        if problems:
            parts.append(f"{len(problems)} problem(s): {problems[0]}")
        if not self.live:
            position, count = getattr(self.session, "position", None), getattr(self.session, "count", None)
            parts.insert(0, "replay" if position is None else f"replay {position + 1}/{count}")
        return clean_text(" · ".join(parts), 400)

    async def _show_tree(self, index: TreeIndex) -> None:
        if self.root is index.root:
            return
        tree = self.node_tree
        before = [] if self.current is None else [(n.kind, n.title) for n in tree.index.path(self.current)]
        # The same widget shows the new stop's tree: no remount, the focus stays where it was.
        tree.show_index(index)
        self.root = index.root
        self.current = None
        node = same_place(index, before)
        if node is not index.root and not tree.reveal(node):
            node = index.root
        self.show_node(node)

    # -- actions ------------------------------------------------------------------
    # Keys and palette commands reach these through App.run_action, which asks check_action
    # first; `_allowed` asks again for direct calls and for prompts answered after a change.
    def _allowed(self, action: str) -> bool:
        return self.check_action(action, ()) is True

    def _mark_key(self, action: str) -> None:
        self.key_times.append((action, time.perf_counter()))

    def _start(self, action: str, call: str, *args) -> None:
        if self._allowed(action):
            self._mark_key(call)
            self._run(call, *args)

    def action_cont(self) -> None:
        self._start("cont", "cont")

    def action_step(self) -> None:
        self._start("step", "step")

    def action_next(self) -> None:
        """Run to the next handoff."""
        self._start("next", "next_handoff")

    def _replay_move(self, action: str) -> None:
        """Replay moves are queued while one is under way, so n n n moves three stops."""
        if self.running is not None:
            if len(self._pending) < MAX_PENDING_MOVES:
                self._pending.append(action)
            return
        self._mark_key(action)
        self._run(action)

    def action_next_stop(self) -> None:
        if self._allowed("next_stop"):
            self._replay_move("next_handoff")

    def action_previous(self) -> None:
        if self._allowed("previous"):
            self._replay_move("previous")

    def action_interrupt(self) -> None:
        if self._allowed("interrupt"):
            self.set_status("interrupting…")
            self._interrupt()

    def interrupt_for_quit(self) -> Worker | None:
        """Send interrupt() if a run-control call is under way (the app is quitting); returns
        the worker to wait for, or None."""
        self.quitting = True
        if self.live and self.running is not None and self.dead is None:
            self._pending.clear()
            return self._interrupt()
        return None

    def _still_allowed(self, action: str, what: str) -> bool:
        """For a prompt's answer: the target may have died (or been interrupted by another view)
        while the prompt was open; say so instead of calling it."""
        if self._allowed(action):
            return True
        why = f"the target is gone ({self.dead})" if self.dead is not None else "the target is running"
        self.notify(f"{what}: not sent, {why}", severity="warning", markup=False)
        return False

    # -- CPUs -------------------------------------------------------------------------
    def _cpu_indices(self) -> list[int]:
        return [] if self.stop is None else [c.index for c in self.stop.cpus]

    def _select_cpu(self, cpu: int) -> None:
        if not self._allowed("select_cpu") or self.stop is None or cpu == self.stop.cpu:
            return
        if cpu not in self._cpu_indices():
            indices = self._cpu_indices()
            self.notify(f"no CPU {cpu}: this guest has CPUs {min(indices)}–{max(indices)}",
                        severity="warning", markup=False)
            return
        self._mark_key("select_cpu")
        self.running = SELECT_WORKER
        self.set_status(f"selecting CPU {cpu}…")
        self._select(cpu)

    def _cycle_cpu(self, delta: int) -> None:
        indices = self._cpu_indices()
        if self.stop is None or not indices:
            return
        at = indices.index(self.stop.cpu) if self.stop.cpu in indices else 0
        self._select_cpu(indices[(at + delta) % len(indices)])

    def action_next_cpu(self) -> None:
        self._cycle_cpu(1)

    def action_previous_cpu(self) -> None:
        self._cycle_cpu(-1)

    def action_select_cpu(self, cpu: int) -> None:
        self._select_cpu(cpu)

    def action_cpu_unavailable(self) -> None:
        """A CPU key where there is nothing to select: say why."""
        self.notify(f"CPU selection is not available: {no_selection(self.stop, self.session)}",
                    severity="warning", markup=False)

    @on(CpuList.CpuChosen)
    def _cpu_chosen(self, event: CpuList.CpuChosen) -> None:
        if self.offered("select_cpu"):
            self._select_cpu(event.index)
        else:
            self.action_cpu_unavailable()

    def action_breakpoint(self) -> None:
        """Set a breakpoint by address or by module (UI name or file GUID) + offset; a module not
        loaded yet gets it when it loads (the session watches image loads)."""
        if not self._allowed("breakpoint"):
            return

        def done(text: str | None) -> None:
            spec = (text or "").strip()
            if spec and self._still_allowed("breakpoint", spec):
                self._set_breakpoint(spec)

        self.app.push_screen(PromptScreen("Breakpoint", placeholder="BdsDxe+0x1a0 or 0xfffceb84",
                                          hint="an address, or MODULE[+OFFSET]: a UI name or file GUID "
                                               "(no offset: its entry point)"), done)

    @work(thread=True, group="breakpoint", exit_on_error=False)
    def _set_breakpoint(self, spec: str) -> None:
        try:
            bp = self.session.add_breakpoint(spec)
        except Exception as e:  # noqa: BLE001 - a bad spec or a dead target: shown, never fatal
            self.app.call_from_thread(self.notify, f"breakpoint {spec}: {e}", severity="error", markup=False)
            return
        where = getattr(bp, "where", None) or getattr(bp, "address", None)
        text = f"breakpoint {spec}: " + (f"0x{where:x}" if isinstance(where, int) else str(where or "pending"))
        self.app.call_from_thread(self.set_status, text)

    def action_console(self) -> None:
        """`:` sends a command to the target's console (gdb's CLI on the gdb backend, QEMU's monitor
        on RSP); the answer goes to the log pane."""
        if not self._allowed("console"):
            return

        def done(text: str | None) -> None:
            line = (text or "").strip()
            if line and self._still_allowed("console", line):
                self._console(line)

        self.app.push_screen(PromptScreen("Console command", placeholder="info registers",
                                          hint="gdb backend: any gdb command; RSP backend: a QEMU monitor command"),
                             done)

    @work(thread=True, group="console", exit_on_error=False)
    def _console(self, line: str) -> None:
        try:
            answer = self.session.console(line)
        except Exception as e:  # noqa: BLE001 - a refused or failed command is shown, never fatal
            answer = f"error: {type(e).__name__}: {e}"
        self.app.call_from_thread(self.log_pane.write_console, line, answer)

    def action_run_to(self) -> None:
        if not self._allowed("run_to"):
            return

        def done(text: str | None) -> None:
            phase = (text or "").strip().lower()
            if not phase:
                return
            if phase not in PHASES:
                self.notify(f"{phase!r} is not a phase; one of {', '.join(PHASES)}", severity="error",
                            markup=False)
                return
            if self._still_allowed("run_to", phase):
                self._start("run_to", "run_to", phase)

        self.app.push_screen(PromptScreen("Run to phase", placeholder="dxe-core",
                                          hint="one of: " + ", ".join(PHASES)), done)
