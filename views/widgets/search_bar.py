"""SearchBar: the `/` input docked under the panes; enter asks for the next match.

It stays open while the user presses enter to walk through the matches, and shows the screen's
"n of m" status. The search itself runs in the screen: nodes by title, kind, GUID or offset
(views.index.TreeIndex.search), or bytes when the query has a pattern prefix (`hex:`, `text:`,
`guid:`, `u32:` …; inspector.find).
"""
from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label


class SearchBar(Horizontal):
    """Posts `SearchBar.Find(query)` on enter and `SearchBar.Closed` on escape."""

    DEFAULT_CSS = """
    SearchBar {
        dock: bottom;
        height: 3;
        display: none;
        background: $panel;
        padding: 0 1;
    }
    SearchBar.-open { display: block; }
    SearchBar > Label { width: auto; padding: 1 1 0 0; }
    SearchBar > Input { width: 1fr; }
    SearchBar > #search-status { min-width: 12; padding: 1 0 0 1; color: $text-muted; }
    SearchBar > #search-status.-none { color: $warning; }
    """

    BINDINGS = [Binding("escape", "close", "Close search", id="search-close")]

    @dataclass
    class Find(Message):
        bar: "SearchBar"
        query: str

        @property
        def control(self) -> "SearchBar":
            return self.bar

    @dataclass
    class Closed(Message):
        bar: "SearchBar"

    status: reactive[str] = reactive("", init=False)

    def compose(self) -> ComposeResult:
        yield Label("Find")
        yield Input(placeholder="title, kind, GUID, 0x offset/address; hex:/text:/guid:/u32: for bytes",
                    id="search-input")
        yield Label("", id="search-status")

    @property
    def input(self) -> Input:
        return self.query_one("#search-input", Input)

    def open(self) -> None:
        self.add_class("-open")
        self.input.focus()
        self.input.select_all()

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def action_close(self) -> None:
        self.remove_class("-open")
        self.post_message(self.Closed(self))

    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Find(self, event.value))

    @on(Input.Changed, "#search-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.status = ""

    def watch_status(self, status: str) -> None:
        label = self.query_one("#search-status", Label)
        label.update(status)
        label.set_class(status == "no match", "-none")
