"""DiffHexView: a HexView of one side of a diff whose bytes that differ from the other side's
are highlighted.

The screen sets `span` (this side's bytes of the selected node) and `against`: the other side's
bytes of the same node, compared position by position from the start of each span (byte i of A's
span against byte i of B's). A byte past the end of the shorter side, or on a side whose node
has no counterpart (added or removed), differs. Only rows on screen are compared (HexView
renders visible rows only), so a 2 MiB volume costs nothing until it is scrolled through; the
first differing byte is found with slice comparisons in C (`first_difference`).
"""
from __future__ import annotations

from textual.reactive import reactive

from views.widgets.hex_view import BYTES_PER_ROW, HexView

# first_difference compares this many bytes at a time before looking byte by byte.
CHUNK = 4096

# Highlight level of a differing byte: above the node's span (1) and the field's mark (2); the
# cursor adds 4, as in HexView.
DIFF = 3

Against = tuple[object, int, int]  # (the other side's data, start, end) of the compared bytes
# The other side of a node that has none: empty, so each of this side's bytes differs.
NO_COUNTERPART: Against = (b"", 0, 0)


def first_difference(a, a_start: int, a_end: int, b, b_start: int, b_end: int, start: int = 0) -> int | None:
    """The first position i >= start where a[a_start + i] differs from b[b_start + i] (a position
    inside one span and past the end of the other differs too); None when the spans are equal
    from `start` on."""
    a_len, b_len = a_end - a_start, b_end - b_start
    common = min(a_len, b_len)
    pos = start
    while pos < common:
        n = min(CHUNK, common - pos)
        if a[a_start + pos:a_start + pos + n] != b[b_start + pos:b_start + pos + n]:
            for i in range(pos, pos + n):
                if a[a_start + i] != b[b_start + i]:
                    return i
        pos += n
    return max(start, common) if max(start, common) < max(a_len, b_len) else None


def difference_ranges(a, a_start: int, a_end: int, b, b_start: int, b_end: int, limit: int = 64) -> list[tuple[int, int]]:
    """Runs [i, j) of differing positions (at most `limit` runs): what tests and the status line
    read."""
    out: list[tuple[int, int]] = []
    longest = max(a_end - a_start, b_end - b_start)
    pos = 0
    while len(out) < limit:
        i = first_difference(a, a_start, a_end, b, b_start, b_end, pos)
        if i is None:
            break
        j = i + 1
        common = min(a_end - a_start, b_end - b_start)
        while j < longest and (j >= common or a[a_start + j] != b[b_start + j]):
            j += 1
        out.append((i, j))
        pos = j
    return out


class DiffHexView(HexView):
    """A HexView whose bytes that differ from `against` are highlighted (`hex-view--diff`)."""

    COMPONENT_CLASSES = HexView.COMPONENT_CLASSES | {"hex-view--diff"}
    DEFAULT_CSS = """
    DiffHexView > .hex-view--diff { background: $error 60%; color: $text; text-style: bold; }
    """

    # None: not compared (the enclosing bytes `p` shows); NO_COUNTERPART: the node has no other
    # side (added or removed), so every byte of its span differs.
    against: reactive[Against | None] = reactive(None)

    # What to say in place of bytes when this side has no node (an added node has no A side).
    absent: reactive[str | None] = reactive(None)

    def watch_against(self) -> None:
        self._invalidate()

    def watch_absent(self) -> None:
        if self.space is None:
            self.watch_space(None)

    def message(self) -> str:
        if self.space is None and self.absent:
            return self.absent
        return super().message()

    def _styles(self) -> dict:
        if self._style_memo is None:
            st = super()._styles()
            diff = st["base"] + self.get_component_rich_style("hex-view--diff")
            cursor = self.get_component_rich_style("hex-view--cursor")
            st["levels"][DIFF] = diff
            st["levels"][DIFF + 4] = diff + cursor
        return self._style_memo

    def differs(self, offset: int) -> bool:
        """Whether the byte at `offset` of this side (inside `span`) differs from the other side."""
        span = self.span
        if span is None or not span[0] <= offset < span[1]:
            return False
        against = self.against
        if against is None:
            return False
        other, start, end = against
        j = start + offset - span[0]
        # A side whose stated size runs past its bytes (hostile input) differs where it has none.
        return j >= min(end, len(other)) or self.data[offset] != other[j]

    def _level(self, offset: int) -> int:
        level = super()._level(offset)
        if level & 3 != 2 and self.differs(offset):
            # The field mark stays on top: a marked field reads as one bar.
            level = (level & 4) | DIFF
        return level

    def byte_levels(self, row: int) -> list[int]:
        """The highlight level of each byte of row `row` as drawn (0 plain, 1 the node, 2 the
        field, 3 differs; +4 the cursor): what tests read."""
        data = self.data
        if data is None:
            return []
        start = row * BYTES_PER_ROW
        return [self._level(start + i) for i in range(min(BYTES_PER_ROW, len(data) - start))]

    def differing(self, limit: int = 64) -> list[tuple[int, int]]:
        """The runs [start, end) of this side's offsets that differ (at most `limit`)."""
        span = self.span
        if span is None or self.data is None:
            return []
        if self.against is None:
            return []
        other, start, end = self.against
        # Spans cut to the bytes there are (a hostile size may run past them).
        end = max(start, min(end, len(other)))
        span = (span[0], max(span[0], min(span[1], len(self.data))))
        runs = difference_ranges(self.data, span[0], span[1], other, start, end, limit)
        # Positions past this side's end differ only on the other side.
        return [(span[0] + i, span[0] + min(j, span[1] - span[0])) for i, j in runs if i < span[1] - span[0]]

    def first_differing(self) -> int | None:
        runs = self.differing(limit=1)
        return runs[0][0] if runs else None


__all__ = ["DiffHexView", "NO_COUNTERPART", "first_difference", "difference_ranges"]
