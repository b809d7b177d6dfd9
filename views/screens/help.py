"""HelpScreen: every key binding of the app, grouped by where it works (`?` opens it)."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

Section = tuple[str, list[tuple[str, str]]]  # (heading, [(keys, what they do)])


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; height: auto; max-height: 90%;
        border: round $primary; background: $panel; padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help-close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, sections: list[Section]):
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "fwinspect keys"
            scroll.border_subtitle = "escape closes"
            yield Static(self.table(), id="help-keys")

    def table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column("key", style="bold", no_wrap=True, min_width=14)
        table.add_column("action")
        for i, (heading, rows) in enumerate(self.sections):
            if i:
                table.add_row("", "")
            table.add_row(Text(heading, style="bold underline"), "")
            for keys, what in rows:
                table.add_row(Text(keys), Text(what))
        return table

    def text(self) -> str:
        """The listed keys as plain lines (for tests)."""
        return "\n".join(f"{keys}\t{what}" for _, rows in self.sections for keys, what in rows)
