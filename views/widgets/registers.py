"""RegistersView: the CPU state at a stop, with what changed since the previous stop in the
theme's error colour (red in the default themes).

The convention of pwndbg's and GEF's `context` command: keep the previous stop's registers and
mark what differs. Register names are those of `Stop.registers`: the gdbstub's x86-64 set (QEMU's
gdb-xml/i386-64bit.xml: rax..r15, rip, eflags, cs..gs selectors, fs_base/gs_base, cr0-cr4, efer)
plus the segment bases the monitor's `info registers` gives, as `cs_base`, `ss_base`, ...
QEMU's gdbstub sends that 64-bit set in every CPU mode (target/i386/gdbstub.c); outside long mode
values that fit in 32 bits are shown with 8 digits, which is how the CPU sees them there.
"""
from __future__ import annotations

import io

from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

GENERAL = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
           "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
CONTROL = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
# The flags register under either of its names (gdb's target.xml says eflags).
FLAGS_NAMES = ("rflags", "eflags")

NAME_STYLE = "dim"

# RFLAGS bits worth a letter (Intel SDM vol. 1, 3.4.3).
FLAG_BITS = ((0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"), (9, "IF"), (10, "DF"),
             (11, "OF"))


def flags_text(value: int) -> str:
    return " ".join(name for bit, name in FLAG_BITS if value >> bit & 1)


def changed_registers(now: dict[str, int], before: dict[str, int] | None) -> set[str]:
    """Names whose value differs from the previous stop (none on the first stop)."""
    if before is None:
        return set()
    return {name for name, value in now.items() if before.get(name) != value}


class RegistersView(Static):
    """Call `show(...)` at each stop; `changed` holds the names highlighted."""

    COMPONENT_CLASSES = {"registers--changed"}
    DEFAULT_CSS = """
    RegistersView {
        padding: 0 1;
    }
    RegistersView > .registers--changed { color: $text-error; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__("no stop yet", id=id, classes=classes)
        self.registers: dict[str, int] = {}
        self.changed: set[str] = set()
        self.mode = ""
        self.linear_rip: int | None = None

    def show(self, registers: dict[str, int], previous: dict[str, int] | None, mode: str,
             linear_rip: int) -> None:
        self.registers = dict(registers)
        self.changed = changed_registers(registers, previous)
        self.mode = mode
        self.linear_rip = linear_rip
        self.update(self.table())

    def notify_style_update(self) -> None:
        # A theme change: the changed-register colour is the theme's, so draw the table again.
        super().notify_style_update()
        if self.registers:
            self.update(self.table())

    def _changed_style(self, name: str) -> Style | str:
        if name not in self.changed:
            return ""
        return self.get_component_rich_style("registers--changed", partial=True)

    # -- rendering ----------------------------------------------------------------
    def _digits(self, value: int) -> int:
        return 16 if self.mode == "long64" or value > 0xFFFFFFFF else 8

    def _cell(self, name: str, label: str | None = None, digits: int | None = None) -> Text:
        text = Text()
        text.append(f"{label or name:<6} ", style=NAME_STYLE)
        value = self.registers.get(name)
        if value is None:
            text.append("?".rjust(digits or 8), style="dim")
            return text
        width = digits or self._digits(value)
        text.append(f"{value:0{width}x}", style=self._changed_style(name))
        return text

    def _segment(self, seg: str) -> Text:
        """`cs 0008@ffff0000`: selector and (when the monitor gave it) the descriptor-cache base."""
        text = Text()
        text.append(f"{seg:<3}", style=NAME_STYLE)
        sel, base = self.registers.get(seg), self.registers.get(f"{seg}_base")
        style = self._changed_style(seg)
        text.append("????" if sel is None else f"{sel:04x}", style=style)
        if base is not None:
            text.append("@", style=NAME_STYLE)
            # 8 digits unless the base needs more (FS/GS in long mode): the row stays in the panel.
            digits = 8 if base <= 0xFFFFFFFF else 16
            text.append(f"{base:0{digits}x}", style=self._changed_style(f"{seg}_base"))
        return text

    def _flags_name(self) -> str:
        return next((n for n in FLAGS_NAMES if n in self.registers), FLAGS_NAMES[1])

    def table(self) -> Table:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        regs = self.registers
        head = Text()
        head.append("mode  ", style=NAME_STYLE)
        head.append(self.mode or "?", style="bold")
        linear = Text()
        linear.append("linear ", style=NAME_STYLE)
        linear.append("?" if self.linear_rip is None else f"{self.linear_rip:x}", style="bold")
        grid.add_row(head, linear)
        flags = self._flags_name()
        grid.add_row(self._cell("rip"), self._cell(flags, "rflags", 8))
        for a, b in zip(GENERAL[0::2], GENERAL[1::2]):
            grid.add_row(self._cell(a), self._cell(b))
        # cr8 only when the session reports it; rows of two, the last one maybe alone.
        control = [c for c in CONTROL if c in regs or c != "cr8"]
        for i in range(0, len(control), 2):
            pair = control[i:i + 2]
            grid.add_row(*(self._cell(c) for c in pair))
        for i in range(0, len(SEGMENTS), 2):
            grid.add_row(self._segment(SEGMENTS[i]), self._segment(SEGMENTS[i + 1]))
        grid.add_row(Text(flags_text(regs.get(flags, 0)), style="dim"), Text(""))
        return grid

    @property
    def text(self) -> str:
        """The panel as plain text (for tests)."""
        console = Console(width=80, record=True, file=io.StringIO())
        console.print(self.table())
        return console.export_text()
