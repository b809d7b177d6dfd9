"""The tour app: `fwinspect tour` tells the boot chapter by chapter (TourScreen).

`run_tour(chapters, stops, image)` opens it on chapters written by inspector/tour (offline ones
over the image's tree, boot ones over the trees decoded at the stops). BaseApp gives it the
inspector's stylesheet, `?`/`q`, help sections and palette entries, so the tree, fields and hex
look and answer as everywhere else.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any, Iterable

from textual.app import SystemCommand
from textual.screen import Screen

from decoders.model import Node
from inspector.live.session_api import Stop
from inspector.tour.model import Chapter
from views.base_app import BaseApp
from views.screens.help import Section
from views.screens.tour import TourScreen
from views.widgets.chapter_text import ChapterText
from views.widgets.search_bar import SearchBar

# The tour screen's palette commands: (action, title, help).
PALETTE = (
    ("next_chapter", "Next chapter", "The next chapter of the tour (n)"),
    ("previous_chapter", "Previous chapter", "The previous chapter of the tour (p)"),
    ("contents", "Chapters", "The table of contents: go to any chapter (t)"),
    ("search", "Search nodes", "Find nodes by title, kind, GUID, or 0x offset/address (/)"),
)


def image_tree(image: Any) -> Node | None:
    """The tree of `image`: what inspector.image.load_image returns (its `root`), or a Node."""
    if image is None or isinstance(image, Node):
        return image
    return getattr(image, "root", None)


def image_name(image: Any) -> str:
    path = getattr(image, "path", None)
    if path is not None:
        return Path(path).name
    root = image_tree(image)
    return root.space.name if root is not None and root.space is not None else "tour"


class TourApp(BaseApp):
    def __init__(self, chapters: list[Chapter], stops: list[Stop] | None, image: Any):
        super().__init__()
        name = image_name(image)
        self.sub_title = f"tour of {name} ({len(chapters)} chapters)"
        self.tour_screen = TourScreen(chapters, stops, image_tree(image), f"{name}-tour")

    def get_default_screen(self) -> Screen:
        return self.tour_screen

    # -- help and palette: the tour's own keys (BaseApp adds the shared ones) ------------
    def screen_sections(self) -> list[Section]:
        return [
            ("Tour", self.key_rows(TourScreen.BINDINGS) + [("/", "Search nodes")]),
            ("Chapter text", [("up / down, left / right", "Move between the values and the commands"),
                              ("enter or click", "A value: show its node and field. A command: run it")]),
            ("Search bar", [("enter", "Next match (shows n of m)")] + self.key_rows(SearchBar.BINDINGS)),
        ]

    def screen_commands(self) -> Iterable[SystemCommand]:
        screen = self.tour_screen
        for action, title, help_text in PALETTE:
            # Through run_action, which asks check_action when the command runs, not when listed.
            yield SystemCommand(title, help_text, partial(self.run_action, action, screen))


def run_tour(chapters: list[Chapter], stops: list[Stop] | None, image: Any) -> int:
    """Open the tour; 0 after the user quits, 1 (with the reason on stderr) when there is no
    chapter to tell. `image` is what inspector.image.load_image returns (or its root Node, or
    None when every chapter is told at a stop)."""
    if not chapters:
        print("fwinspect tour: no chapter to tell", file=sys.stderr)
        return 1
    TourApp(chapters, stops, image).run()
    return 0


__all__ = ["TourApp", "run_tour", "ChapterText"]
