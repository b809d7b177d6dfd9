"""The fwinspect Textual app: shows any decoded Node tree.

The CLI calls `run_app(root, source_name)`, or `run_app(None, name, loader=…)` to decode in a
worker behind the loading screen. `o` opens another source the same way, through `opener`
(inspector.sources.load_source unless given); the header names what is open. Imports go views →
inspector → decoders, never back: the engine modules (sources, nodes_at) are imported where used.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
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

# The inspector's palette commands: (action on the inspect screen, title, help).
PALETTE = (
    ("search", "Search nodes", "Find nodes by title, kind, GUID, or 0x offset/address (/)"),
    ("next_match", "Next match", "Jump to the next search match (n)"),
    ("previous_match", "Previous match", "Jump to the previous search match (N)"),
    ("find_bytes", "Find bytes", "Find hex bytes, text, a GUID or a number in every space (f)"),
    ("save", "Save bytes", "Write the selected node's bytes as stored to a file (w)"),
    ("save_decompressed", "Save decompressed bytes", "Write what the selected section decompresses to (W)"),
    ("copy", "Copy", "Copy the field's value, or the node's GUID or address (y)"),
    ("disassemble", "Disassemble", "Disassemble the selected PE/TE image from its entry point (d)"),
    ("open", "Open", "Open another firmware image, dump or log (o)"),
)


Opener = Callable[[str], tuple[str, Node]]  # path -> (kind, root), as inspector.sources.load_source


def default_opener(path: str) -> tuple[str, Node]:
    from inspector.sources import load_source

    return load_source(path)


def build_indexes(root: Node) -> tuple[TreeIndex, object]:
    """The tree index and the byte -> nodes index: each walks the whole tree, so the workers build
    them, not the UI thread."""
    from inspector.nodes_at import NodeIndex

    return TreeIndex(root), NodeIndex(root)


class FwInspectApp(BaseApp):
    def __init__(self, root: Node | None, source_name: str, loader: Callable[[], Node] | None = None, *,
                 opener: Opener | None = None, symbols: object = None):
        """Show `root`; or, with root None, call `loader` in a worker thread and show what it
        returns (the first frame then comes before the decoding is done). `opener` loads what `o`
        opens; `symbols` (a build folder) names code in the disassembly."""
        super().__init__()
        if root is None and loader is None:
            raise ValueError("FwInspectApp needs a root Node or a loader")
        self.root = root
        self.source_name = source_name
        self.loader = loader
        self.opener = opener or default_opener
        self.symbols = symbols
        self._symbol_index = None
        self._opening: str | None = None
        self.name_source(source_name)
        self.inspect_screen = None if root is None else InspectScreen(root, source_name)

    def symbol_index(self):
        """The `--symbols` build folder's index (inspector.pe_disasm.load_symbols), read once on
        first use; None without a folder."""
        if self.symbols is None or not isinstance(self.symbols, (str, Path)):
            return self.symbols
        if self._symbol_index is None:
            from inspector.pe_disasm import load_symbols

            self._symbol_index = load_symbols(self.symbols)
        return self._symbol_index

    def name_source(self, source_name: str, kind: str | None = None) -> None:
        """The header names what is open: the file's name as title, its path (and kind) below."""
        name = Path(source_name).name or source_name
        self.title = f"fwinspect: {name}"
        where = "" if source_name == name else source_name
        self.sub_title = where if kind is None else f"{where} ({kind})".lstrip()

    def get_default_screen(self) -> Screen:
        if self.inspect_screen is not None:
            return self.inspect_screen
        return LoadingScreen(self.source_name)

    def on_mount(self) -> None:
        if self.inspect_screen is None:
            # After the first refresh: the loading screen is up before the worker can finish.
            self.call_after_refresh(self._load)

    @work(thread=True, exit_on_error=False, name="decode")
    def _load(self) -> tuple[Node, TreeIndex, object]:
        root = self.loader()
        # The indexes walk the whole tree: do that here too, not on the UI thread.
        return (root, *build_indexes(root))

    # -- open another source (o) --------------------------------------------------------
    def open_source(self, path: str) -> None:
        """Decode `path` in a worker behind the loading screen, then show it in place of what is
        open; if it cannot be decoded, say why and keep what was open."""
        if self._opening is not None:
            self.notify(f"still opening {self._opening}", severity="warning", markup=False)
            return
        self._opening = path
        self.push_screen(LoadingScreen(path))
        self._open(path)

    @work(thread=True, exit_on_error=False, name="open", exclusive=True, group="open")
    def _open(self, path: str) -> tuple[str, Node, TreeIndex, object]:
        kind, root = self.opener(path)
        return (kind, root, *build_indexes(root))

    def _opened(self, path: str, kind: str, root: Node, index: TreeIndex, node_index: object) -> None:
        if isinstance(self.screen, LoadingScreen):
            self.pop_screen()
        self.root, self.source_name = root, path
        # The same screen shows the new tree (its widgets and focus stay): the screen under it may
        # be the default one, which Textual cannot switch away from.
        self.inspect_screen.show_tree(root, path, index, node_index)
        self.name_source(path, kind)
        self.notify(f"{path} ({kind}, {len(index)} nodes)", title="Opened", markup=False)

    def _open_failed(self, path: str, error: BaseException) -> None:
        if isinstance(self.screen, LoadingScreen):
            self.pop_screen()
        message = f"{error.filename or path}: {error.strerror}" if isinstance(error, OSError) and error.strerror \
            else f"{path}: {error}"
        self.notify(f"could not open {message}", title="Open", severity="error", markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == "open":
            if event.state == WorkerState.SUCCESS:
                path, self._opening = self._opening, None
                self._opened(path, *event.worker.result)
            elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
                path, self._opening = self._opening, None
                self._open_failed(path, event.worker.error)
            return
        if event.worker.name != "decode":
            return
        if event.state == WorkerState.SUCCESS:
            self.root, index, node_index = event.worker.result
            self.inspect_screen = InspectScreen(self.root, self.source_name, index=index, node_index=node_index)
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
            ("Fields and bytes here", [
                ("enter (fields)", "The whole value of the field, with its bytes"),
                ("arrows, click (bytes)", "Move the hex cursor: the line under Bytes names the nodes holding its byte"),
                ("enter (bytes)", "Select the innermost node holding the cursor byte"),
                ("n / N", "Next / previous hit of the last search (/ or f)"),
            ]),
        ]

    def screen_commands(self) -> Iterable[SystemCommand]:
        inspect = self.inspect_screen
        if inspect is None:  # still decoding
            return
        for action, title, help_text in PALETTE:
            yield SystemCommand(title, help_text, partial(self.run_action, action, inspect))


def run_app(root: Node | None, source_name: str, loader: Callable[[], Node] | None = None, *,
            opener: Opener | None = None, symbols: object = None) -> None:
    """Open the inspector on a decoded tree (or on what `loader` returns, decoded in a worker
    thread while the app already shows); returns when the user quits."""
    FwInspectApp(root, source_name, loader, opener=opener, symbols=symbols).run()


__all__ = ["FwInspectApp", "run_app"]
