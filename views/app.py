"""The fwinspect Textual app: shows any decoded Node tree.

The CLI decodes the source and calls `run_app(root, source_name)`; nothing here decodes bytes
or imports `inspector` (imports go views → inspector → decoders, never back).
"""
from __future__ import annotations

from typing import Callable, Iterable

from textual import work
from textual.app import SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from decoders.model import Node
from views.base_app import BaseApp
from views.index import TreeIndex
from views.screens.help import Section
from views.screens.inspect import InspectScreen
from views.screens.loading import LoadingScreen
from views.widgets.search_bar import SearchBar


class FwInspectApp(BaseApp):
    def __init__(self, root: Node | None, source_name: str, loader: Callable[[], Node] | None = None):
        """Show `root`; or, with root None, call `loader` in a worker thread and show what it
        returns (the first frame then comes before the decoding is done)."""
        super().__init__()
        if root is None and loader is None:
            raise ValueError("FwInspectApp needs a root Node or a loader")
        self.root = root
        self.source_name = source_name
        self.loader = loader
        self.sub_title = source_name
        self.inspect_screen = None if root is None else InspectScreen(root, source_name)

    def get_default_screen(self) -> Screen:
        if self.inspect_screen is not None:
            return self.inspect_screen
        return LoadingScreen(self.source_name)

    def on_mount(self) -> None:
        if self.inspect_screen is None:
            # After the first refresh: the loading screen is up before the worker can finish.
            self.call_after_refresh(self._load)

    @work(thread=True, exit_on_error=False, name="decode")
    def _load(self) -> tuple[Node, TreeIndex]:
        root = self.loader()
        # The index walks the whole tree: do that here too, not on the UI thread.
        return root, TreeIndex(root)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "decode":
            return
        if event.state == WorkerState.SUCCESS:
            self.root, index = event.worker.result
            self.inspect_screen = InspectScreen(self.root, self.source_name, index=index)
            # Pushed over the loading screen: the default screen has no result callback to switch.
            self.push_screen(self.inspect_screen)
        elif event.state == WorkerState.ERROR and isinstance(self.screen, LoadingScreen):
            # The app stays up and says why; q quits.
            self.screen.failed(str(event.worker.error))

    # -- help and palette: the inspector's own keys (BaseApp adds the shared ones) --------
    def screen_sections(self) -> list[Section]:
        return [
            ("Inspector", self.key_rows(InspectScreen.BINDINGS)),
            ("Search bar", [("enter", "Next match (shows n of m)")] + self.key_rows(SearchBar.BINDINGS)),
        ]

    def screen_commands(self) -> Iterable[SystemCommand]:
        inspect = self.inspect_screen
        if inspect is None:  # still decoding
            return
        yield SystemCommand("Search nodes", "Find nodes by title, kind, GUID, or 0x offset/address (/)",
                            inspect.action_search)
        yield SystemCommand("Next match", "Jump to the next search match (n)", inspect.action_next_match)
        yield SystemCommand("Previous match", "Jump to the previous search match (N)",
                            inspect.action_previous_match)


def run_app(root: Node | None, source_name: str, loader: Callable[[], Node] | None = None) -> None:
    """Open the inspector on a decoded tree (or on what `loader` returns, decoded in a worker
    thread while the app already shows); returns when the user quits."""
    FwInspectApp(root, source_name, loader).run()


__all__ = ["FwInspectApp", "run_app"]
