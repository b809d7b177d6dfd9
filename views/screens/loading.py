"""LoadingScreen: shown while the source is decoded in a worker thread, or why that failed."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, LoadingIndicator


class LoadingScreen(Screen):
    DEFAULT_CSS = """
    LoadingScreen > Vertical { align: center middle; height: 1fr; }
    LoadingScreen Label { width: 100%; text-align: center; }
    LoadingScreen #loading-text.-error { color: $error; text-style: bold; }
    LoadingScreen LoadingIndicator { height: 3; }
    """

    def __init__(self, source_name: str):
        super().__init__()
        self.source_name = source_name

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield LoadingIndicator()
            yield Label(f"decoding {self.source_name} …", id="loading-text", markup=False)
        yield Footer()

    def failed(self, message: str) -> None:
        self.query_one(LoadingIndicator).display = False
        label = self.query_one("#loading-text", Label)
        label.add_class("-error")
        label.update(f"could not decode {self.source_name}: {message}")
