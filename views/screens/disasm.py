"""DisasmScreen: a PE/TE image's code disassembled offline, from its entry point or an address.

The engine (inspector.pe_disasm.disassemble_image) picks the mode from the image's Machine
(IA32 or X64) and the run address (the flash address of an image that runs in place, else its
ImageBase) and names symbols when a build folder was given (`--symbols`); this screen lists its
header and notes, then its lines (address, bytes, instruction, symbol), then its problems. `g`
disassembles from another address inside the image, `e` goes back to the entry point, escape
closes.
"""
from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static

from decoders.model import Node
from views.index import parse_number
from views.screens.prompt import PromptScreen
from views.widgets.node_tree import clean_text

# Instructions per view: a screenful and a bit; `g` goes further.
LINES_PER_VIEW = 64
# Raw bytes shown per line: x86 instructions are at most 15 bytes; the rest is cut with "…".
MAX_RAW_BYTES = 8
MAX_TEXT_CHARS = 100

Disassembler = Callable[..., object]  # (node, address, count, symbols) -> pe_disasm.Disassembly


def default_disassembler(node: Node, address: int | None, count: int, symbols: object):
    from inspector.pe_disasm import disassemble_image

    return disassemble_image(node, address=address, count=count, symbols=symbols)


MODE_NAMES = {"prot32": "32-bit protected mode", "long64": "64-bit long mode"}


def disassembly_text(result) -> Text:
    """Header (image, machine, base, entry; the mode; the engine's notes), then one line per
    instruction: address, bytes, text, symbol; then the engine's problems."""
    text = Text()
    entry = result.entry
    head = getattr(result, "title", "") or f"base 0x{result.base:x}, entry 0x{entry:x}"
    text.append(clean_text(head, 200), style="bold")
    if result.mode:
        text.append(f"\n{MODE_NAMES.get(result.mode, result.mode)}", style="dim")
    for note in getattr(result, "notes", []) or []:
        text.append(f"\n{clean_text(str(note), 200)}", style="dim")
    text.append("\n")
    lines = list(result.lines)
    width = max([8] + [len(f"{line.address:x}") for line in lines])
    for line in lines:
        raw = bytes(line.raw)
        shown = raw[:MAX_RAW_BYTES].hex(" ") + (" …" if len(raw) > MAX_RAW_BYTES else "")
        here = entry is not None and line.address == entry
        text.append("\n")
        row = f"{'→' if here else ' '} {line.address:0{width}x}  {shown:<{MAX_RAW_BYTES * 3 + 1}} " \
              f"{clean_text(line.text, MAX_TEXT_CHARS)}"
        text.append(row, style="bold" if here else "")
        if line.symbol:
            text.append(f"  <{clean_text(str(line.symbol), MAX_TEXT_CHARS)}>", style="italic")
    if not lines:
        text.append("\nno instructions decoded here", style="dim italic")
    for problem in getattr(result, "problems", []) or []:
        text.append(f"\n{clean_text(str(problem), MAX_TEXT_CHARS * 2)}", style="bold")
    return text


class DisasmScreen(ModalScreen[None]):
    """The disassembly of `node` (a `pe` or `te` node); `g` asks for an address."""

    DEFAULT_CSS = """
    DisasmScreen { align: center middle; }
    DisasmScreen > VerticalScroll {
        width: 100; height: 90%;
        border: round $primary; background: $panel; padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    DisasmScreen #disasm-text { text-wrap: nowrap; text-overflow: ellipsis; }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="disasm-close"),
        Binding("g", "goto", "Disassemble at an address", id="disasm-goto"),
        Binding("e", "entry", "Back to the entry point", id="disasm-entry"),
    ]

    def __init__(self, node: Node, *, symbols: object = None, disassembler: Disassembler | None = None):
        super().__init__()
        self.node = node
        self.symbols = symbols
        self.disassembler = disassembler or default_disassembler
        self.address: int | None = None
        self.result = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="disasm-box") as box:
            box.border_title = escape(f"Disassembly: {clean_text(self.node.title or self.node.kind, 70)}")
            box.border_subtitle = "g address · e entry · escape closes"
            yield Static(id="disasm-text")

    def on_mount(self) -> None:
        self.show(None)

    def show(self, address: int | None) -> bool:
        """Disassemble from `address` (None: the entry point); False, with the reason shown, when
        the engine refuses (an address outside the image, no code there)."""
        result = self.disassembler(self.node, address, LINES_PER_VIEW, self.symbols)
        if address is not None and not result.lines and self.result is not None:
            # An address outside the image's code: say why, keep what was shown.
            why = "; ".join(result.problems) or f"nothing to disassemble at 0x{address:x}"
            self.notify(why, title="Disassembly", severity="error", markup=False)
            return False
        self.address, self.result = address, result
        self.query_one("#disasm-text", Static).update(disassembly_text(result))
        self.query_one(VerticalScroll).scroll_home(animate=False)
        return True

    @property
    def plain(self) -> str:
        """What the view shows, as plain text (for tests)."""
        return "" if self.result is None else disassembly_text(self.result).plain

    def action_goto(self) -> None:
        def done(text: str | None) -> None:
            if not text:
                return
            value = parse_number(text)
            if value is None:
                self.notify(f"{text!r} is not a hex address", severity="error", markup=False)
                return
            self.show(value)

        base = getattr(self.result, "base", None)
        hint = "" if base is None else f"an address inside the image (its base: 0x{base:x})"
        self.app.push_screen(PromptScreen("Disassemble at (hex)", placeholder="0xfffd26a4", hint=hint), done)

    def action_entry(self) -> None:
        self.show(None)
