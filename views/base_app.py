"""BaseApp: what the inspector app and the live app share: `?` shows the keys, ctrl+p reaches
every action, `q` quits.

One stylesheet (fwinspect.tcss), the app-wide bindings, the help screen with the sections every
node screen has (tree, fields, bytes), and the palette's help entry. Each app adds the sections
and palette commands of its own screen: `screen_sections()` and `screen_commands()`.
"""
from __future__ import annotations

from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from views.screens.help import HelpScreen, Section
from views.screens.node_screen import NodeScreen


class BaseApp(App[None]):
    CSS_PATH = "fwinspect.tcss"
    TITLE = "fwinspect"

    BINDINGS = [
        Binding("question_mark", "help", "Keys", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    # -- help ---------------------------------------------------------------------
    def key_rows(self, bindings: Iterable[Binding]) -> list[tuple[str, str]]:
        """(keys as the footer shows them, description) for each declared Binding."""
        return [(self.get_key_display(b), b.description) for b in bindings if isinstance(b, Binding)]

    def key_sections(self) -> list[Section]:
        """Every key the app answers to, from the bindings themselves where we declare them."""
        return [
            ("Everywhere", self.key_rows(BaseApp.BINDINGS) + [
                ("ctrl+p", "Command palette: every action by name"),
                ("tab / shift+tab", "Move between the panes"),
            ]),
            *self.screen_sections(),
            ("Tree", [
                ("up / down", "Move; the fields and bytes follow"),
                ("enter / space", "Expand or collapse"),
                ("shift+left", "Go to parent"),
                ("shift+up / shift+down", "Previous / next sibling"),
            ]),
            ("Fields", [("up / down", "Select a field or problem: its bytes are marked in the hex view")]),
            ("Bytes", [("arrows, pgup/pgdn, click", "Move the cursor byte (the view follows it)"),
                       ("home / end", "Cursor to the start / end of the space")]),
            ("Tree, fields and bytes", self.key_rows(NodeScreen.BINDINGS)),
        ]

    def screen_sections(self) -> list[Section]:
        """The sections of this app's own screen, listed after "Everywhere"."""
        return []

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_sections()))

    # -- command palette ------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help: keys", "Show every key binding (?)", self.action_help)
        yield from self.screen_commands()
        if isinstance(screen, NodeScreen):
            yield SystemCommand("Go to offset or address", "Scroll the hex view to a hex offset or address (g)",
                                screen.action_goto)
            yield SystemCommand("Export JSON", "Write the tree to a JSON file in the current directory (x)",
                                screen.action_export)
            yield SystemCommand("Export JSON to…", "Write the tree as JSON to a path you enter (X)",
                                screen.action_export_as)
            yield SystemCommand("Show enclosing bytes", "Hex view: the section a decompressed blob came from",
                                screen.action_parent_space)

    def screen_commands(self) -> Iterable[SystemCommand]:
        """The palette commands of this app's own screen."""
        return ()


__all__ = ["BaseApp"]
