"""LogPane: the debugcon output up to the stop (QEMU `-debugcon` on I/O port 0x402, where OVMF's
DebugLib writes: edk2 OvmfPkg/OvmfPkg.dec, PcdDebugIoPort).

Textual's `Log` widget draws only the visible lines (Line API), so a long boot log stays cheap.
A Stop carries the whole log so far; when the new text extends what is shown only the new part
is written, otherwise (a replay going back) the pane is refilled. Only the tail is kept.
"""
from __future__ import annotations

from textual.widgets import Log

# Lines kept in the pane: a DEBUG OVMF boot to the shell prints a few thousand lines.
MAX_LOG_LINES = 5000
# Characters of a Stop's log looked at: the tail of a hostile or runaway log.
MAX_LOG_CHARS = 1 << 20
# A single line is cut here (a log with no newlines would otherwise be one huge line).
MAX_LINE_CHARS = 400


def clean_line(line: str) -> str:
    """One printable line (control characters become U+FFFD), cut at MAX_LINE_CHARS."""
    out = "".join(ch if ch.isprintable() or ch == "\t" else "\ufffd" for ch in line[:MAX_LINE_CHARS + 1])
    return out if len(out) <= MAX_LINE_CHARS else out[:MAX_LINE_CHARS - 1] + "…"


class LogPane(Log):
    DEFAULT_CSS = """
    LogPane {
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(max_lines=MAX_LOG_LINES, auto_scroll=True, id=id, classes=classes)
        self._shown = ""

    def show(self, text: str) -> None:
        text = text[-MAX_LOG_CHARS:]
        if self._shown and text.startswith(self._shown):
            new = text[len(self._shown):]
        else:
            self.clear()
            new = text
        self._shown = text
        if not text:
            self.write("(no debug console output)\n")
            self._shown = ""
            return
        if new:
            # write() continues a partial last line, so a line split across two stops joins up.
            self.write("\n".join(clean_line(line) for line in new.replace("\r", "").split("\n")))

    def write_console(self, command: str, answer: str) -> None:
        """A console command and its answer, after whatever the log shows (the debugcon text that
        follows later is appended below it)."""
        lines = [f"» {clean_line(command)}"] + [clean_line(line) for line in answer.replace("\r", "").rstrip("\n").split("\n")]
        self.write(("\n" if self.lines and str(self.lines[-1]) else "") + "\n".join(lines) + "\n")

    @property
    def text(self) -> str:
        return "\n".join(str(line) for line in self.lines)
