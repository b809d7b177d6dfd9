"""The diff app: `fwinspect A B` shows the differences between two firmware images (DiffScreen).

The CLI passes a loader that decodes both images and diffs them (inspector.diff `load_pair` and
`diff_images`); it runs in a worker thread while the loading screen shows, and so do the index
and the maps of both trees the screen needs (views/widgets/diff_sides.py), so the first frame of the diff costs only drawing.
BaseApp gives the inspector's stylesheet, `?`/`q`, help sections and palette entries.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import work
from textual.app import SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from decoders.model import Node
from views.base_app import BaseApp
from views.screens.diff import DiffScreen
from views.screens.help import Section
from views.screens.inspect import InspectScreen
from views.screens.loading import LoadingScreen
from views.widgets.diff_sides import Sides
from views.widgets.diff_tree import DiffIndex
from views.widgets.search_bar import SearchBar

# The diff screen's palette commands: (action, title, help).
PALETTE = (
    ("next_change", "Next change", "Select the next added, removed or changed node (n)"),
    ("previous_change", "Previous change", "Select the previous added, removed or changed node (N)"),
    ("toggle_unchanged", "Show or hide unchanged", "Show the unchanged nodes too, dimmed, or hide them (u)"),
    ("search", "Search nodes", "Find nodes by title, kind, GUID, or 0x offset/address (/)"),
)

# Loader result: the diff tree, then A's and B's images (what inspector.image.load_image returns,
# or their root Nodes).
Loaded = tuple[Node, Any, Any]


def tree_of(image: Any) -> Node | None:
    if image is None or isinstance(image, Node):
        return image
    return getattr(image, "root", None)


def make_sides(image_a: Any, image_b: Any) -> Sides:
    return Sides(tree_of(image_a), tree_of(image_b))


def pair_names(path_a: str | Path, path_b: str | Path) -> tuple[str, str]:
    """What the title calls the two files: their names, or, when the names are the same (two
    OVMF.fd), their paths as given."""
    a, b = Path(path_a), Path(path_b)
    if a.name != b.name:
        return a.name, b.name
    return str(a), str(b)


class DiffApp(BaseApp):
    def __init__(self, name_a: str, name_b: str, loaded: Loaded | None = None,
                 loader: Callable[[], Loaded] | None = None):
        """Show `loaded` (diff tree, image A, image B); or, with it None, call `loader` in a worker
        thread and show what it returns."""
        super().__init__()
        if loaded is None and loader is None:
            raise ValueError("DiffApp needs a diff tree or a loader")
        self.name_a, self.name_b = name_a, name_b
        self.loader = loader
        self.sub_title = f"A: {name_a}  ↔  B: {name_b}"
        self.diff_screen: DiffScreen | None = None
        if loaded is not None:
            root, image_a, image_b = loaded
            self.diff_screen = DiffScreen(root, name_a, name_b, make_sides(image_a, image_b))

    def get_default_screen(self) -> Screen:
        if self.diff_screen is not None:
            return self.diff_screen
        return LoadingScreen(f"{self.name_a} and {self.name_b}")

    def on_mount(self) -> None:
        if self.diff_screen is None:
            self.call_after_refresh(self._load)

    @work(thread=True, exit_on_error=False, name="diff")
    def _load(self) -> tuple[Node, Sides, DiffIndex]:
        root, image_a, image_b = self.loader()
        # Walks of the whole trees: here, not on the UI thread.
        return root, make_sides(image_a, image_b), DiffIndex(root)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "diff":
            return
        if event.state == WorkerState.SUCCESS:
            root, sides, index = event.worker.result
            self.diff_screen = DiffScreen(root, self.name_a, self.name_b, sides, index=index)
            self.push_screen(self.diff_screen)
        elif event.state == WorkerState.ERROR and isinstance(self.screen, LoadingScreen):
            self.screen.failed(str(event.worker.error))

    # -- help and palette ---------------------------------------------------------------
    def screen_sections(self) -> list[Section]:
        shared = [b for b in InspectScreen.BINDINGS if b.action in ("search", "parent_space")]
        return [
            ("Diff", self.key_rows(DiffScreen.BINDINGS) + self.key_rows(shared) + [
                ("+ - ~ =", "Marks in the tree: added, removed, changed, unchanged"),
            ]),
            ("Fields and bytes", [
                ("A | B", "A field that differs shows each side's value"),
                ("red bytes", "Bytes of the node that differ between A and B"),
            ]),
            ("Search bar", [("enter", "Next match (shows n of m)")] + self.key_rows(SearchBar.BINDINGS)),
        ]

    def screen_commands(self) -> Iterable[SystemCommand]:
        screen = self.diff_screen
        if screen is None:
            return
        for action, title, help_text in PALETTE:
            yield SystemCommand(title, help_text, partial(self.run_action, action, screen))


def run_diff(path_a: str | Path, path_b: str | Path, loader: Callable[[], Loaded]) -> int:
    """Open the diff app on what `loader` returns (decoded in a worker while the app shows);
    0 after the user quits."""
    name_a, name_b = pair_names(path_a, path_b)
    DiffApp(name_a, name_b, loader=loader).run()
    return 0


__all__ = ["DiffApp", "run_diff", "pair_names"]
