"""Byte search across every space of a decoded source: the image and each decompressed blob.

Pattern syntax (`parse_pattern`), a prefix forcing how the rest is read:

| input                         | read as                                                       |
|-------------------------------|---------------------------------------------------------------|
| `hex:4d 5a ?? 00`             | bytes; `??` is any byte; spaces are ignored                    |
| `text:Hello`                  | the text in ASCII (UTF-8 when not ASCII) and in UTF-16LE       |
| `ascii:Hello` `utf16:Hello`   | the text in that encoding only                                 |
| `guid:8c8ce578-8a3d-...`      | the GUID in EFI byte order (EFI_GUID: Data1-3 little-endian,   |
|                               | UEFI 2.10 appendix A) and in RFC 4122 (big-endian) order       |
| `u8:` `u16:` `u32:` `u64:`    | an unsigned little-endian integer, decimal or 0x hex           |

Without a prefix, in this order: a GUID-looking string (8-4-4-4-12 hex digits, braces allowed) is
a GUID; an even number of hex digits, with `??` wildcards and spaces, is hex; a 0x number is
refused as ambiguous (`u32:` or `hex:` says which); anything else is text. `Pattern.describe()`
says how the input was read.

A hit names its space, offset, length, the variant that matched (`hex`, `ascii`, `utf-8`,
`utf-16le`, `guid-efi`, `guid-rfc4122`, `u32`, ...) and the nodes that hold it, innermost first
(inspector.nodes_at). Hits overlap as a plain `bytes.find` loop gives them (each start position
once per variant). At most `limit` hits are kept, in tree order of the spaces then by offset;
`truncated` says there were more.

A dump's physical memory (a MemoryBytes window over inspector.dump.DumpMemory) is searched region
by region, read in chunks; memory with no list of what is readable (a live target, a virtual
address space through the page tables) is not searched, and FindResult.problems says so.
"""
from __future__ import annotations

import re
import threading
import time
import weakref
from dataclasses import dataclass, field

from decoders.model import Node, Space
from inspector.nodes_at import NodeIndex

DEFAULT_LIMIT = 10_000
# Longest pattern accepted, in bytes: structures worth searching for are a few hundred bytes; a
# pattern pasted from a whole file is a mistake, and a regex over it is slow to build.
MAX_PATTERN = 4096

# Search windows (see _search): a window's worst case is about WINDOW_WORK byte comparisons.
WINDOW_WORK = 1 << 26
MIN_WINDOW, MAX_WINDOW = 4096, 4 << 20
# A search that has taken this long stops where it is and says so (a pattern with wildcards over
# repetitive bytes); the 4 MiB images and their decompressed volumes take well under a second.
TIME_LIMIT = 5.0

_GUID_RE = re.compile(r"\{?([0-9a-fA-F]{8})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-"
                      r"([0-9a-fA-F]{12})\}?")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2}|\?\?)+")
_INT_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}
_PREFIXES = ("hex", "text", "ascii", "utf16", "guid", *_INT_SIZES)


class PatternError(ValueError):
    """A pattern that cannot be searched for; the message is for users."""


@dataclass(frozen=True)
class Variant:
    """One byte sequence to look for: `items` is the bytes, None at a wildcard."""

    name: str
    items: tuple[int | None, ...]

    @property
    def length(self) -> int:
        return len(self.items)

    @property
    def literal(self) -> bytes | None:
        """The bytes when there is no wildcard."""
        if None in self.items:
            return None
        return bytes(self.items)

    def text(self) -> str:
        return " ".join("??" if b is None else f"{b:02x}" for b in self.items)


@dataclass(frozen=True)
class Pattern:
    source: str                   # what the user typed
    kind: str                     # hex, text, ascii, utf16, guid, u8/u16/u32/u64
    variants: tuple[Variant, ...]
    how: str                      # how bare input was read ("" when a prefix said so)

    def describe(self) -> str:
        """One line: how the input was read and the bytes searched for."""
        parts = "; ".join(f"{v.name} {_short(v.text())}" for v in self.variants)
        return f"{self.how or 'given as ' + self.kind + ':'} — {parts}"


def _short(text: str, most: int = 96) -> str:
    return text if len(text) <= most else text[:most] + " …"


# -- parsing ---------------------------------------------------------------------------------------
def parse_pattern(text: str) -> Pattern:
    """Read a search pattern (module docstring); PatternError says what is wrong with it."""
    if text is None or not text.strip():
        raise PatternError("empty pattern: give hex bytes, text:…, a GUID or u32:…")
    prefix, sep, rest = text.partition(":")
    key = prefix.strip().lower()
    if sep and key in _PREFIXES:
        return _parse_as(key, rest, text, "")
    bare = text.strip()
    if _GUID_RE.fullmatch(bare):
        return _parse_as("guid", bare, text, "read as a GUID")
    compact = "".join(bare.split())
    if _HEX_RE.fullmatch(compact):
        return _parse_as("hex", compact, text, "read as hex bytes")
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", bare):
        raise PatternError(f"{bare} is ambiguous: write u32:{bare} (or u16:/u64:) for a little-endian "
                           f"integer, hex:{bare[2:]} for these bytes in this order, text:{bare} for the text")
    return _parse_as("text", text, text, "read as text")


def _parse_as(kind: str, rest: str, source: str, how: str) -> Pattern:
    if kind == "hex":
        variants = (Variant("hex", _hex_items(rest)),)
    elif kind in ("text", "ascii", "utf16"):
        if rest == "":
            raise PatternError(f"empty {kind} pattern")
        variants = _text_variants(kind, rest)
    elif kind == "guid":
        variants = _guid_variants(rest)
    else:
        variants = (Variant(kind, tuple(_int_bytes(kind, rest))),)
    for v in variants:
        if v.length > MAX_PATTERN:
            raise PatternError(f"pattern of {v.length} bytes is longer than the {MAX_PATTERN} accepted")
    return Pattern(source, kind, variants, how)


def _hex_items(text: str) -> tuple[int | None, ...]:
    compact = "".join(text.split())
    if not compact:
        raise PatternError("empty hex pattern")
    if len(compact) % 2:
        raise PatternError(f"hex pattern has an odd number of digits ({len(compact)}): bytes are two digits each")
    items: list[int | None] = []
    for i in range(0, len(compact), 2):
        pair = compact[i:i + 2]
        if pair == "??":
            items.append(None)
            continue
        try:
            items.append(int(pair, 16))
        except ValueError:
            raise PatternError(f"not hex: {pair!r} at digit {i + 1} (bytes are two hex digits, ?? is any byte)") from None
        if not all(c in "0123456789abcdefABCDEF" for c in pair):   # int() accepts '+1', ' 1'
            raise PatternError(f"not hex: {pair!r} at digit {i + 1} (bytes are two hex digits, ?? is any byte)")
    return tuple(items)


def _text_variants(kind: str, text: str) -> tuple[Variant, ...]:
    out = []
    if kind in ("text", "ascii"):
        try:
            out.append(Variant("ascii", tuple(text.encode("ascii"))))
        except UnicodeEncodeError:
            if kind == "ascii":
                raise PatternError(f"{text!r} is not ASCII; text: searches it in UTF-8 and UTF-16LE") from None
            out.append(Variant("utf-8", tuple(text.encode("utf-8"))))
    if kind in ("text", "utf16"):
        try:
            out.append(Variant("utf-16le", tuple(text.encode("utf-16-le"))))
        except UnicodeEncodeError:   # a lone surrogate
            raise PatternError(f"{text!r} cannot be written in UTF-16") from None
    return tuple(out)


def _guid_variants(text: str) -> tuple[Variant, ...]:
    m = _GUID_RE.fullmatch(text.strip())
    if m is None:
        raise PatternError(f"not a GUID: {text.strip()!r} (expected 8-4-4-4-12 hex digits, e.g. "
                           f"8c8ce578-8a3d-4f1c-9935-896185c32dd3)")
    rfc = bytes.fromhex("".join(m.groups()))
    # EFI_GUID is {UINT32 Data1; UINT16 Data2; UINT16 Data3; UINT8 Data4[8]} in memory on a
    # little-endian machine (UEFI 2.10 appendix A): the first three fields are byte-swapped
    # relative to the RFC 4122 text order.
    efi = rfc[3::-1] + rfc[5:3:-1] + rfc[7:5:-1] + rfc[8:]
    return Variant("guid-efi", tuple(efi)), Variant("guid-rfc4122", tuple(rfc))


def _int_bytes(kind: str, text: str) -> bytes:
    size = _INT_SIZES[kind]
    t = text.strip().replace("_", "")
    try:
        value = int(t, 16) if t.lower().startswith("0x") else int(t, 10)
    except ValueError:
        raise PatternError(f"{kind}: {text.strip()!r} is not a number (decimal or 0x hex)") from None
    if not 0 <= value < 1 << (8 * size):
        raise PatternError(f"{kind}: {t} does not fit in {8 * size} bits unsigned "
                           f"(0 to 0x{(1 << (8 * size)) - 1:x})")
    return value.to_bytes(size, "little")


# -- searching -------------------------------------------------------------------------------------
class Hit:
    """One match: where (space, offset, length), which variant matched, and `path`, the nodes
    holding all its bytes in that space, innermost first (worked out on first use)."""

    __slots__ = ("space", "offset", "length", "variant", "_path", "_index")

    def __init__(self, space: Space, offset: int, length: int, variant: str, path: list[Node] | None = None,
                 index: NodeIndex | None = None):
        self.space, self.offset, self.length, self.variant = space, offset, length, variant
        self._path, self._index = path, index

    @property
    def path(self) -> list[Node]:
        if self._path is None:
            idx = self._index
            self._path = [] if idx is None else idx.path_range(self.space, self.offset, self.offset + self.length)
        return self._path

    @property
    def node(self) -> Node | None:
        """The innermost node holding the hit."""
        p = self.path
        return p[0] if p else None

    @property
    def address(self) -> int | None:
        """Where the hit's first byte is mapped (the image's flash address), None in a blob."""
        return self.space.address_of(self.offset)

    def chain(self) -> list[Node]:
        """`path`, continued out of a decompressed blob into the section and volume holding it."""
        if self._index is None:
            return self.path
        return self._index.chain(self.space, self.offset, self.offset + self.length)

    def __repr__(self) -> str:
        return (f"Hit(space={self.space.name!r}, offset=0x{self.offset:x}, length={self.length}, "
                f"variant={self.variant!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return (self.space is other.space and self.offset == other.offset and self.length == other.length
                and self.variant == other.variant)

    __hash__ = None

    def to_json(self) -> dict:
        chain = self.chain()
        out = {"space": self.space.name, "offset": self.offset, "length": self.length, "variant": self.variant}
        if self.address is not None:
            out["address"] = self.address
        out["path"] = [{"kind": n.kind, "title": n.title, "space": n.space.name if n.space else None,
                        "offset": n.offset, "size": n.size} for n in reversed(chain)]
        return out


@dataclass
class FindResult:
    pattern: Pattern
    hits: list[Hit] = field(default_factory=list)
    truncated: bool = False
    spaces: int = 0                       # distinct spaces searched
    limit: int = DEFAULT_LIMIT
    problems: list[str] = field(default_factory=list)


# One index per decoded tree, reused by every search and hex-cursor lookup on it (the app asks
# from worker threads: one lock).
_indexes: "weakref.WeakKeyDictionary[Node, NodeIndex]" = weakref.WeakKeyDictionary()
_indexes_lock = threading.Lock()


def index_for(root: Node, refresh: bool = False) -> NodeIndex:
    """The NodeIndex of `root`, built on first use and kept while the tree lives; `refresh` builds
    it again (after nodes were added to the tree)."""
    with _indexes_lock:
        idx = None if refresh else _indexes.get(root)
        if idx is None:
            idx = _indexes[root] = NodeIndex(root)
        return idx


def find(root: Node, pattern: Pattern, limit: int = DEFAULT_LIMIT, index: NodeIndex | None = None,
         time_limit: float = TIME_LIMIT) -> FindResult:
    """Every hit of `pattern` in every space of the tree under `root` (each space once, in tree
    order), at most `limit` of them; a search longer than `time_limit` seconds stops where it is,
    truncated, with a problem saying where."""
    if limit < 1:
        raise PatternError(f"limit must be at least 1, not {limit}")
    deadline = time.monotonic() + time_limit
    idx = index if index is not None else index_for(root)
    result = FindResult(pattern, limit=limit)
    for space in idx.spaces():
        try:
            data = space.data
        except Exception as e:  # noqa: BLE001 - a blob that cannot be made again: say which, go on
            result.problems.append(f"{space.name}: bytes not available ({e.__class__.__name__}: {e}); not searched")
            continue
        if data is None:
            continue            # a space with no bytes of its own (a dump file's, whose memory is another space)
        runs = None if _is_buffer(data) else _memory_runs(data)
        if runs is None and not _is_buffer(data):
            # A live guest's memory or a virtual address space (decoders.memory.MemoryBytes over a
            # target or the page tables): no list of what is readable; searching it is not done here.
            result.problems.append(f"{space.name}: memory read through a live target or page tables, "
                                   f"not a buffer; not searched")
            continue
        result.spaces += 1
        room = limit - len(result.hits)
        found: list[tuple[int, int, Variant]] = []
        stopped: int | None = None
        for order, v in enumerate(pattern.variants):
            if runs is not None:
                starts, cut = _search_runs(data, runs, v, room + 1, deadline)
            else:
                starts, cut = _search(data, v, room + 1, deadline)
            found.extend((at, order, v) for at in starts)
            if cut is not None:
                stopped = cut if stopped is None else min(stopped, cut)
        if stopped is not None:
            # Only what lies before the earliest cut is complete for every variant.
            found = [t for t in found if t[0] < stopped]
            result.truncated = True
            result.problems.append(f"{space.name}: search stopped at offset 0x{stopped:x} after {time_limit:g} s "
                                   f"(a long pattern with wildcards over repetitive bytes); hits before it are listed")
        found.sort(key=lambda t: (t[0], t[1]))
        if len(found) > room:
            found = found[:room]
            result.truncated = True
        result.hits.extend(Hit(space, at, v.length, v.name, index=idx) for at, _, v in found)
        if result.truncated:
            break
    return result


# A dump's physical memory is read this many bytes at a time (pread of the mapped file).
MEMORY_CHUNK = 4 << 20


def _memory_runs(data) -> list[tuple[int, int]] | None:
    """The readable [start, end) offsets of a MemoryBytes window over a Memory that lists its
    regions (inspector.dump.DumpMemory: a dump's PT_LOAD segments and the flash image behind them),
    adjacent regions merged; None for a Memory that does not (a live target)."""
    memory = getattr(data, "memory", None)
    regions = getattr(memory, "regions", None)
    start, size = getattr(data, "start", None), getattr(data, "size", None)
    if not callable(regions) or not isinstance(start, int) or not isinstance(size, int):
        return None
    spans = sorted((max(a, start), min(a + n, start + size)) for a, n, _label in regions())
    runs: list[tuple[int, int]] = []
    for lo, hi in spans:
        if lo >= hi:
            continue
        if runs and lo <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], hi))
        else:
            runs.append((lo, hi))
    return [(lo - start, hi - start) for lo, hi in runs]


def _search_runs(data, runs: list[tuple[int, int]], variant: Variant, most: int,
                 deadline: float) -> tuple[list[int], int | None]:
    """_search over the readable runs of a memory window, read MEMORY_CHUNK bytes at a time (plus
    the pattern's length - 1, so a hit across two chunks is found once, in the first)."""
    out: list[int] = []
    extra = variant.length - 1
    for lo, hi in runs:
        pos = lo
        while pos < hi and len(out) < most:
            end = min(hi, pos + MEMORY_CHUNK + extra)
            buf = data[pos:end]
            if len(buf) != end - pos:        # a hole the region list did not show: skip this chunk
                pos += MEMORY_CHUNK
                continue
            # A hit found here starts before pos + MEMORY_CHUNK (it ends by pos + CHUNK + length - 1),
            # where the next chunk begins: none is found twice.
            starts, cut = _search(buf, variant, most - len(out), deadline)
            out.extend(pos + at for at in starts)
            if cut is not None:
                return out, pos + cut
            pos += MEMORY_CHUNK
            if time.monotonic() > deadline and pos < hi:
                return out, pos
    return out, None


def _is_buffer(data) -> bool:
    try:
        memoryview(data).release()
    except TypeError:
        return False
    return True


def _search(data, variant: Variant, most: int, deadline: float) -> tuple[list[int], int | None]:
    """Start offsets of `variant` in `data`, overlapping (each start once, as a bytes.find loop
    from the last hit + 1 gives them), ascending, at most `most`; and the offset the search stopped
    at when it ran past `deadline` (time.monotonic), else None.

    One compiled regex per variant, `.` for each wildcard (DOTALL: any byte), searched again from
    one past each hit: re's search runs in C and skips to its literal prefix, about three times
    faster than bytes.find here, and a Python step is taken per hit only. Leading wildcards are
    left out of the regex (they would defeat the prefix skip) and put back in the offset.
    A literal pattern is matched in linear time, but one with wildcards is tried at each place its
    prefix matches, up to its whole length: over repetitive bytes (zero-filled blobs) a long
    pattern costs length x size. So the space is searched in windows of about WINDOW_WORK /
    length bytes, and the clock is read between windows."""
    n = len(data)
    items = variant.items
    length = len(items)
    if length == 0 or length > n:
        return [], None
    lead = 0
    while lead < length and items[lead] is None:
        lead += 1
    if lead == length:
        # All wildcards: every start position matches.
        return list(range(0, min(n - length + 1, most))), None
    search = _compiled(items[lead:])
    tail = length - lead                  # bytes the regex spans
    window = max(MIN_WINDOW, min(MAX_WINDOW, WINDOW_WORK // length))
    out: list[int] = []
    pos = lead
    while len(out) < most and pos + tail <= n:
        m = search(data, pos, min(n, pos + window + tail - 1))
        if m is None:
            pos += window
            if time.monotonic() > deadline and pos + tail <= n:
                return out, pos - lead
            continue
        at = m.start()
        out.append(at - lead)
        pos = at + 1
    return out, None


def _compiled(items: tuple[int | None, ...]):
    return re.compile(b"".join(b"." if b is None else re.escape(bytes((b,))) for b in items), re.DOTALL).search
