"""ChapterText: one chapter of a tour: its title, its prose with every decoded value marked, the
places where this boot is not the usual story (in the theme's warning colour) and its "try this"
commands.

The values and the commands are the widget's items: up/down (or left/right) move between them
and enter chooses one; a click chooses the one under the mouse (a `@click` action in the text's
style meta, which Textual's App._broker_event runs in this widget's namespace). Choosing posts
`ValueChosen` or `CommandChosen`; the screen jumps the tree, fields and bytes (attributes down,
messages up).

Where a value sits in the prose is found again in the text: the chapter keeps each value's text
but not its offset (inspector/tour/model.py, Writer.say fills the template and keeps only the
result). `value_spans` finds them at word boundaries, longest text first, so "0x1000" is never
taken for part of "0x10000".
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from inspector.tour.model import Chapter, Value
from views.widgets.node_tree import clean_text

# The prefix Writer.unexpected puts before each unexpected line in the prose.
UNEXPECTED_PREFIX = "Not as usual: "
# A chapter's prose and commands come from decoded input (names, titles): each line is cut here.
MAX_TEXT_CHARS = 20_000
MAX_COMMAND_CHARS = 200

Span = tuple[int, int, int]  # (start, end, index into chapter.values)


def _occurrences(text: str, needle: str) -> list[int]:
    """Starts of `needle` in `text` where it is a whole word: no letter, digit or underscore
    right before or after it (so a value "3" is not found inside "0x30")."""
    out, start = [], 0
    while needle:
        i = text.find(needle, start)
        if i < 0:
            break
        before = text[i - 1] if i > 0 else " "
        after = text[i + len(needle)] if i + len(needle) < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            out.append(i)
        start = i + 1
    return out


def value_spans(text: str, values: list[Value]) -> list[Span]:
    """Where each value's text is in `text`, in text order.

    First every value takes the first free place of its text (longest texts first, values in
    chapter order among equal lengths: Writer lists them in the order the sentences used them).
    Then a text that only one value has is marked again wherever else it stands (a value said
    twice is listed once)."""
    taken: list[Span] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in taken)

    order = sorted(range(len(values)), key=lambda i: -len(values[i].text))
    for i in order:
        needle = values[i].text
        for start in _occurrences(text, needle):
            if free(start, start + len(needle)):
                taken.append((start, start + len(needle), i))
                break
    owners: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        owners.setdefault(v.text, []).append(i)
    for i in order:
        needle = values[i].text
        if len(owners[needle]) != 1:
            continue
        for start in _occurrences(text, needle):
            if free(start, start + len(needle)):
                taken.append((start, start + len(needle), i))
    return sorted(taken)


def unexpected_spans(text: str, unexpected: list[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """The spans of `text` that say an unexpected line ("Not as usual: ..." as Writer.unexpected
    writes it, or the bare line), and the lines the text does not hold (shown after it)."""
    spans, missing = [], []
    for line in unexpected:
        for needle in (UNEXPECTED_PREFIX + line, line):
            i = text.find(needle) if needle else -1
            if i >= 0:
                spans.append((i, i + len(needle)))
                break
        else:
            missing.append(line)
    return spans, missing


@dataclass
class Item:
    """One thing the cursor can stand on: a value's place in the prose, or a command."""

    value: int | None = None        # index into chapter.values
    command: str | None = None
    span: tuple[int, int] = (0, 0)  # its characters in the rendered text


class ChapterText(Widget, can_focus=True):
    """Set `chapter` (and `heading`) to show it; posts `ValueChosen` / `CommandChosen`."""

    COMPONENT_CLASSES = {
        "chapter-text--title",
        "chapter-text--heading",
        "chapter-text--value",
        "chapter-text--cursor",
        "chapter-text--unexpected",
        "chapter-text--command",
        "chapter-text--muted",
    }
    DEFAULT_CSS = """
    ChapterText {
        height: auto;
        padding: 0 1;
    }
    ChapterText > .chapter-text--title { text-style: bold; color: $text-primary; }
    ChapterText > .chapter-text--heading { text-style: bold; color: $text-muted; }
    ChapterText > .chapter-text--value { color: $text-accent; text-style: bold underline; }
    ChapterText > .chapter-text--cursor { background: $accent 40%; color: $text; text-style: bold; }
    ChapterText > .chapter-text--unexpected { color: $text-warning; background: $warning-muted; }
    ChapterText > .chapter-text--command { color: $text-secondary; }
    ChapterText > .chapter-text--muted { color: $text-muted; }
    """

    BINDINGS = [
        Binding("down,right", "move(1)", "Next value or command", show=False, id="chapter-next-item"),
        Binding("up,left", "move(-1)", "Previous value or command", show=False, id="chapter-previous-item"),
        Binding("enter", "choose", "Go to the value / run the command", show=False, id="chapter-choose"),
    ]

    @dataclass
    class ValueChosen(Message):
        """The user chose `value` (the screen shows its node and field)."""

        chapter_text: "ChapterText"
        value: Value

        @property
        def control(self) -> "ChapterText":
            return self.chapter_text

    @dataclass
    class CommandChosen(Message):
        """The user chose a "try this" line."""

        chapter_text: "ChapterText"
        command: str

        @property
        def control(self) -> "ChapterText":
            return self.chapter_text

    chapter: reactive[Chapter | None] = reactive(None, always_update=True, layout=True)
    heading: reactive[str] = reactive("", layout=True)
    cursor: reactive[int] = reactive(0)

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.items: list[Item] = []
        self._text = Text()
        self._body_start = 0
        self._missing: list[str] = []
        self._style_memo: dict[str, Style] | None = None

    # -- what is shown ----------------------------------------------------------------
    def watch_chapter(self, chapter: Chapter | None) -> None:
        self.set_reactive(ChapterText.cursor, 0)
        self._layout(chapter)
        self.refresh(layout=True)

    def watch_heading(self) -> None:
        self._layout(self.chapter)

    def watch_cursor(self) -> None:
        self.refresh()
        self.scroll_to_cursor()

    @property
    def current(self) -> Item | None:
        return self.items[self.cursor] if 0 <= self.cursor < len(self.items) else None

    @property
    def plain(self) -> str:
        """The text shown (for tests and copying)."""
        return self._text.plain

    def _layout(self, chapter: Chapter | None) -> None:
        """Build the text once per chapter; the cursor only restyles it (render)."""
        self.items = []
        text = Text()
        if chapter is None:
            self._text = text
            return
        text.append(clean_text(chapter.title, 200), style="chapter-text--title")
        if self.heading:
            text.append("\n" + self.heading, style="chapter-text--muted")
        text.append("\n\n")
        body = chapter.text[:MAX_TEXT_CHARS]
        start = len(text)
        self._body_start = start
        # The prose keeps its line breaks; other control characters cannot come from a template
        # but can from a decoded name: shown as U+FFFD.
        text.append("".join(ch if ch.isprintable() or ch == "\n" else "\ufffd" for ch in body))
        warn, self._missing = unexpected_spans(body, chapter.unexpected)
        for s, e in warn:
            text.stylize("chapter-text--unexpected", start + s, start + e)
        # Writer records where it put each value; a chapter built by other means is searched.
        spans = [sp for sp in chapter.spans if sp[1] <= len(body)] if chapter.spans else value_spans(body, chapter.values)
        for s, e, i in spans:
            self.items.append(Item(value=i, span=(start + s, start + e)))
        for line in self._missing:
            text.append("\n\n")
            text.append(clean_text(UNEXPECTED_PREFIX + line, MAX_COMMAND_CHARS * 2), style="chapter-text--unexpected")
        if chapter.try_this:
            text.append("\n\nTry this", style="chapter-text--heading")
            for command in chapter.try_this:
                text.append("\n  ")
                line = clean_text(command, MAX_COMMAND_CHARS)
                self.items.append(Item(command=command, span=(len(text), len(text) + len(line))))
                text.append(line, style="chapter-text--command")
        if chapter.command:
            text.append("\n\nThe same values: ", style="chapter-text--muted")
            text.append(clean_text(chapter.command, MAX_COMMAND_CHARS), style="chapter-text--muted")
        self._text = text

    def render(self) -> Text:
        text = self._text.copy()
        # The parts are named by component class in _layout and styled here, at render time, so
        # they take the current theme's colours.
        styles = self._styles()
        text.spans = [s._replace(style=styles[s.style]) if isinstance(s.style, str) else s for s in text.spans]
        value, cursor = styles["chapter-text--value"], styles["chapter-text--cursor"]
        for n, item in enumerate(self.items):
            s, e = item.span
            if item.value is not None:
                text.stylize(value, s, e)
            if n == self.cursor:
                text.stylize(cursor, s, e)
            text.stylize(Style.from_meta({"@click": f"choose({n})"}), s, e)
        return text

    def _styles(self) -> dict[str, Style]:
        """The component classes' styles, looked up once per theme or CSS change, not per span."""
        if self._style_memo is None:
            self._style_memo = {name: self.get_component_rich_style(name, partial=True)
                                for name in self.COMPONENT_CLASSES}
        return self._style_memo

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_memo = None

    # -- moving and choosing ---------------------------------------------------------
    def action_move(self, delta: int) -> None:
        if self.items:
            self.cursor = (self.cursor + delta) % len(self.items)

    def action_choose(self, n: int | None = None) -> None:
        """Choose item `n` (a click) or the one under the cursor (enter)."""
        if n is not None:
            if not 0 <= n < len(self.items):
                return
            self.cursor = n
            self.focus()
        item = self.current
        if item is None or self.chapter is None:
            return
        if item.value is not None:
            self.post_message(self.ValueChosen(self, self.chapter.values[item.value]))
        elif item.command is not None:
            self.post_message(self.CommandChosen(self, item.command))

    def scroll_to_cursor(self) -> None:
        """Bring the cursor's line into view in the scrolling box around this widget."""
        item, parent = self.current, self.parent
        if item is None or not isinstance(parent, Widget) or self.size.width <= 0:
            return
        if self.cursor == 0:
            # Back at the first value: show the chapter from its title.
            parent.scroll_home(animate=False, immediate=True)
            return
        width = max(1, self.content_region.width)
        # The line the item starts on once wrapped as it is drawn.
        before = self._text[:item.span[0]]
        line = len(before.wrap(self.app.console, width)) - 1 if before.plain else 0
        top = self.virtual_region.y + self.styles.gutter.top + line
        parent.scroll_to_region(Region(0, top, 1, 1), animate=False, immediate=True)


__all__ = ["ChapterText", "value_spans", "unexpected_spans", "UNEXPECTED_PREFIX"]
