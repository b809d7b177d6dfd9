"""DisassemblyView: the instructions at RIP (Stop.disassembly), the one at RIP marked.

The session disassembles with capstone in the CPU's current mode at the linear RIP (CS base +
IP: 0xFFFFFFF0 at reset, where the CS base is 0xFFFF0000 (Intel SDM vol. 3A, 9.1.4), never
CS*16+IP); this widget only shows the lines it got, with the module RIP is in as the border
title. Lines are few (tens), so a Static is enough.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from views.widgets.node_tree import clean_text

# Lines shown: the session sends a screenful; a hostile recording could send millions.
MAX_LINES = 200
MAX_TEXT_CHARS = 120
CURRENT_STYLE = "bold reverse"


class DisassemblyView(Static):
    DEFAULT_CSS = """
    DisassemblyView {
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__("", id=id, classes=classes)
        self.lines: list[tuple[int, str]] = []
        self.rip: int | None = None

    def show(self, lines: list[tuple[int, str]], rip: int | None) -> None:
        self.lines = list(lines[:MAX_LINES])
        self.rip = rip
        self.update(self.render_text())

    def render_text(self) -> Text:
        if not self.lines:
            return Text("no disassembly at this stop", style="dim italic")
        width = max(8, max(len(f"{a:x}") for a, _ in self.lines))
        text = Text()
        for i, (address, insn) in enumerate(self.lines):
            if i:
                text.append("\n")
            here = address == self.rip
            line = f"{'→' if here else ' '} {address:0{width}x}  {clean_text(insn, MAX_TEXT_CHARS)}"
            text.append(line, style=CURRENT_STYLE if here else "")
        return text

    @property
    def text(self) -> str:
        return self.render_text().plain
