"""CpuList: every vCPU at a stop, one row each (`Stop.cpus`, inspector/live/session_api.py).

A row is the CPU's index, its state (running, halted, or halted waiting for INIT-SIPI-SIPI: Intel
SDM vol. 3A 9.4), its mode, linear RIP, boot phase and module. `▶` marks the CPU whose registers
and disassembly the screen shows (the cursor row follows it); the `stop` column names the stop's
reason on the CPU the stop is about (the one that hit the breakpoint, or was stepped).

The screen shows the list only when a stop lists more than one CPU: a single-CPU guest looks as it
did before vCPUs were listed. Enter or a click on a row posts `CpuList.CpuChosen`; moving the
cursor alone does not select (a selection is a call to the target).
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events, on
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from inspector.live.session_api import CpuState, CpuView, Stop
from views.widgets.node_tree import clean_text
from views.widgets.phase_bar import LABELS

# QEMU's x86 machines take at most a few hundred vCPUs (q35: 288 without an IOMMU, `-smp maxcpus`);
# a recording could claim millions. Rows past this are left out, and the border says so.
MAX_ROWS = 1024
MAX_MODULE_CHARS = 40
SHOWN_MARK = "▶"
STATE_LABELS = {
    CpuState.RUNNING: "running",
    CpuState.HALTED: "halted",
    CpuState.WAIT_FOR_SIPI: "wait-for-SIPI",
    CpuState.UNKNOWN: "unknown",
}
COLUMNS = ("", "CPU", "state", "mode", "linear RIP", "phase", "module", "stop")


def rip_text(cpu: CpuView) -> str:
    """The linear RIP as the registers panel writes it: 16 digits in long mode or above 4 GiB."""
    digits = 16 if cpu.mode == "long64" or cpu.linear_rip > 0xFFFFFFFF else 8
    return f"{cpu.linear_rip:0{digits}x}"


def cpu_registers(stop: Stop | None, cpu: int) -> dict[str, int] | None:
    """CPU `cpu`'s registers at `stop`: the stop's own when it is about that CPU, else its CpuView's
    (None: the stop did not list that CPU)."""
    if stop is None:
        return None
    if stop.cpu == cpu:
        return stop.registers
    return next((c.registers for c in stop.cpus if c.index == cpu), None)


def about_text(cpu: int, reason: str, rip: int) -> str:
    """What a stop is about, by CPU: "CPU 2 hit the breakpoint at 0x…", "step on CPU 1"."""
    if reason == "breakpoint":
        return f"CPU {cpu} hit the breakpoint at 0x{rip:x}"
    if reason == "watchpoint":
        return f"CPU {cpu} hit a watchpoint (RIP 0x{rip:x})"
    return f"{reason} on CPU {cpu}"


def no_selection(stop: Stop | None, session: object) -> str:
    """Why no CPU can be selected at `stop` of `session`."""
    if stop is None:
        return "no stop yet"
    if not callable(getattr(session, "select_cpu", None)):
        return "this session cannot select a CPU"
    if not stop.cpus:
        return "this stop lists no CPUs (an older recording, or a backend that does not read them)"
    return "the guest has one CPU"


class CpuList(DataTable):
    """Call `show(cpus, shown, stop_cpu, reason)` at each stop; `row_texts` are the lines as text."""

    COMPONENT_CLASSES = {"cpu-list--waiting", "cpu-list--halted"}
    DEFAULT_CSS = """
    CpuList {
        height: auto;
        max-height: 10;
        border: round $foreground 30%;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    CpuList:focus { border: round $border; }
    CpuList > .cpu-list--waiting { color: $text-warning; }
    CpuList > .cpu-list--halted { color: $text-muted; }
    """

    @dataclass
    class CpuChosen(Message):
        """Enter or a click on the row of CPU `index`."""

        cpu_list: "CpuList"
        index: int

        @property
        def control(self) -> "CpuList":
            return self.cpu_list

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.cpus: list[CpuView] = []
        self.shown: int | None = None
        self.stop_cpu: int | None = None
        self.reason = ""
        self._styles: dict[str, object] = {}

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, cpus: list[CpuView], shown: int, stop_cpu: int, reason: str) -> None:
        """List `cpus`; CPU `shown` is marked and under the cursor, CPU `stop_cpu` carries `reason`."""
        self.cpus = list(cpus[:MAX_ROWS])
        self.shown, self.stop_cpu, self.reason = shown, stop_cpu, reason
        self._fill()
        left_out = len(cpus) - len(self.cpus)
        self.border_title = f"CPUs ({len(cpus)})" + (f", first {MAX_ROWS} listed" if left_out > 0 else "")
        row = next((i for i, c in enumerate(self.cpus) if c.index == shown), None)
        if row is not None:
            self.move_cursor(row=row, animate=False)

    def _fill(self) -> None:
        self._styles = self._state_styles()
        self.clear()
        for cpu in self.cpus:
            self.add_row(*self._cells(cpu), key=str(cpu.index))

    def _state_styles(self) -> dict[str, object]:
        return {CpuState.WAIT_FOR_SIPI: self.get_component_rich_style("cpu-list--waiting", partial=True),
                CpuState.HALTED: self.get_component_rich_style("cpu-list--halted", partial=True)}

    def _cells(self, cpu: CpuView) -> list[Text]:
        state = STATE_LABELS.get(cpu.state, clean_text(str(cpu.state), 20))
        state_style = self._styles.get(cpu.state, "")
        here = cpu.index == self.shown
        return [
            Text(SHOWN_MARK if here else " ", style="bold"),
            Text(str(cpu.index), style="bold" if here else "", justify="right"),
            Text(state, style=state_style),
            Text(clean_text(str(cpu.mode), 10)),
            Text(rip_text(cpu), justify="right"),
            Text(clean_text(LABELS.get(cpu.phase, str(cpu.phase)), 20)),
            Text(clean_text(cpu.module, MAX_MODULE_CHARS) if cpu.module else "—", style="" if cpu.module else "dim"),
            Text(clean_text(self.reason, 20) if cpu.index == self.stop_cpu else "", style="bold"),
        ]

    def notify_style_update(self) -> None:
        # A theme change: the state colours are the theme's, so write the rows again, the cursor
        # where it was. The component classes get the new theme after this call (measured: here
        # they still hold the old colours), so look once the styles are all updated. Focus and
        # hover come here too and change no colour: nothing to redo then.
        super().notify_style_update()
        if self.cpus and self.is_mounted:
            self.call_after_refresh(self._restyle)

    def _restyle(self) -> None:
        if self.cpus and self._state_styles() != self._styles:
            row = self.cursor_row
            self._fill()
            self.move_cursor(row=row, animate=False)

    async def _on_click(self, event: events.Click) -> None:
        # Textual's DataTable selects on a click on the cell already under the cursor and only moves
        # the cursor otherwise; in this list one click on a row chooses that CPU.
        meta = event.style.meta
        row, column = meta.get("row"), meta.get("column")
        again = isinstance(column, int) and Coordinate(row, column) == self.cursor_coordinate
        await super()._on_click(event)
        if isinstance(row, int) and 0 <= row < len(self.cpus) and not again:
            self.post_message(self.CpuChosen(self, self.cpus[row].index))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.CpuChosen(self, int(event.row_key.value)))

    @property
    def row_texts(self) -> list[str]:
        """Each row's cells joined by " | " (for tests)."""
        return [" | ".join(cell.plain for cell in self._cells(cpu)) for cpu in self.cpus]
