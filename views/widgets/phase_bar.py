"""PhaseBar: where the boot is, reset → SEC → PEI core → DXE IPL → DXE core → BDS (the order is
`PHASES` of inspector/live/session_api.py).

The current phase is highlighted, phases already reached are marked ✓, the rest are dim. One
line of text: the screen sets `current` and `reached` (attributes down, messages up: Textual
docs/guide/widgets.md, "Data flow").
"""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from inspector.live.session_api import PHASES
from views.widgets.node_tree import clean_text

# How each scriptable phase name reads in the bar.
LABELS = {
    "reset": "reset",
    "sec": "SEC",
    "pei-core": "PEI core",
    "dxe-ipl": "DXE IPL",
    "dxe-core": "DXE core",
    "bds": "BDS",
}
SEPARATOR = " › "


class PhaseBar(Static):
    COMPONENT_CLASSES = {"phase-bar--reached", "phase-bar--unknown"}
    DEFAULT_CSS = """
    PhaseBar {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    PhaseBar > .phase-bar--reached { color: $text-success; text-style: bold; }
    PhaseBar > .phase-bar--unknown { color: $text-warning; text-style: italic; }
    """

    current: reactive[str | None] = reactive(None)
    reached: reactive[frozenset[str]] = reactive(frozenset())

    def render_bar(self) -> Text:
        text = Text()
        for i, phase in enumerate(PHASES):
            if i:
                text.append(SEPARATOR, style="dim")
            label = LABELS.get(phase, phase)
            if phase == self.current:
                text.append(f" {label} ", style="bold reverse")
            elif phase in self.reached:
                text.append(f"✓{label}", style=self.get_component_rich_style("phase-bar--reached", partial=True))
            else:
                text.append(label, style="dim")
        if self.current is not None and self.current not in PHASES:
            # "unknown": RIP is in no phase the model knows (a driver outside the image, say).
            text.append(f"   phase: {clean_text(self.current, 40)}", style=self.get_component_rich_style("phase-bar--unknown", partial=True))
        return text

    def render(self) -> Text:
        return self.render_bar()

    def show(self, current: str | None, reached: set[str] | frozenset[str]) -> None:
        self.current = current
        self.reached = frozenset(reached)

    @property
    def plain(self) -> str:
        """The bar as plain text (for tests)."""
        return self.render_bar().plain
