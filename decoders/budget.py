"""The one budget every decode runs under.

Firmware, dumps, logs and recordings are untrusted input: an image can declare thousands of
files, a compressed section can expand a thousandfold, a page-table dump can point every entry
at the same tables. Each decode therefore runs inside one `Budget` that caps

- `nodes`: Nodes built (the tree a person or a JSON consumer has to take in);
- `problems`: Problems recorded (one malformed region can otherwise report itself a million times);
- `held_bytes`: decompressed bytes held at once (blobs beyond it are re-decompressed on demand);
- `depth`: nesting (volumes in sections in volumes, devices paths, recordings);
- `output_bytes`: what a command prints (checked by the CLI's streaming writer).

The limits are checked where the work is done: a decoder asks `take_nodes()` before it builds a
batch, `hold()` before it keeps a blob, `deeper()` before it recurses. Reaching a limit never raises:
the caller gets False (or a shorter count), and the first time a limit is hit a located Problem on
the node where the work stopped says what was left out and which budget it was
("4,096 more files not shown; the budget is 200,000 nodes"). Later hits are only counted, and
`summarize()` adds one closing line to the root.

The active budget is a context variable, so the decoders deep in a call tree reach it without a
parameter threaded through every signature; `scope()` opens one at a command's entry point and is
reentrant (a decode inside a decode shares its caller's budget).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from .model import Node, Severity


class Limits:
    """What one decode may build and hold; each a keyword (Limits(nodes=40)), immutable."""

    # A real OVMF.fd decodes to about 3,000 nodes and a real 1 TiB identity map to 525k leaves,
    # which are streamed and not counted here; 200k is far above any real tree and still prints in
    # a few seconds.
    nodes = 200_000
    # Problems beyond this are counted, not kept: a person reads the first few hundred.
    problems = 10_000
    # Decompressed bytes kept in memory at once. Real OVMF images hold about 12 MiB decompressed;
    # the 256 MiB whole-process RSS budget leaves room for two 64 MiB blobs being worked on.
    held_bytes = 96 << 20
    # Nesting of decoded structures. edk2 nests volumes at most 3 deep; 16 stops a self-including
    # image long before Python's recursion limit.
    depth = 16
    # What one command prints. OVMF.fd --json --fields is about 6 MiB.
    output_bytes = 512 << 20
    # FFS files decoded in one image, and files one `extract` writes. Debian's OVMF.fd holds 146
    # files and extracts to 773; a file node costs ~0.1 ms to build and a written file about 1 ms
    # (a directory and a file), so 4,096 keeps either to a few seconds.
    files = 4_096
    # FFS sections decoded in one image: OVMF.fd holds 487; ~60 us each.
    sections = 8_192

    _NAMES = ("nodes", "problems", "held_bytes", "depth", "output_bytes", "files", "sections")

    def __init__(self, **limits: int):
        unknown = set(limits) - set(self._NAMES)
        if unknown:
            raise TypeError(f"unknown limits {sorted(unknown)}")
        for name, value in limits.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("Limits are immutable")

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{n}={getattr(self, n)}" for n in self._NAMES) + ")"


DEFAULT = Limits()


class Budget:
    def __init__(self, limits: Limits = DEFAULT):
        self.limits = limits
        self.nodes = 0
        self.problems = 0
        self.held = 0
        self.depth = 0
        # What was left out per budget, for the closing summary: name -> count.
        self.dropped: dict[str, int] = {}

    # -- nodes -------------------------------------------------------------------------------
    def take_nodes(self, wanted: int = 1) -> int:
        """How many of `wanted` nodes may still be built (0..wanted); charges that many."""
        granted = max(0, min(wanted, self.limits.nodes - self.nodes))
        self.nodes += granted
        return granted

    def take_node(self) -> bool:
        return self.take_nodes(1) == 1

    # -- problems ----------------------------------------------------------------------------
    def take_problem(self) -> bool:
        if self.problems >= self.limits.problems:
            self._drop("problems", 1)
            return False
        self.problems += 1
        return True

    # -- decompressed bytes held --------------------------------------------------------------
    def can_hold(self, nbytes: int) -> bool:
        return self.held + nbytes <= self.limits.held_bytes

    def hold(self, nbytes: int) -> bool:
        """Reserve `nbytes` of held memory; False (nothing reserved) when it does not fit."""
        if not self.can_hold(nbytes):
            return False
        self.held += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.held = max(0, self.held - nbytes)

    # -- depth -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def deeper(self) -> Iterator[bool]:
        """`with budget.deeper() as ok:`; ok is False when one more level would pass the limit."""
        if self.depth >= self.limits.depth:
            yield False
            return
        self.depth += 1
        try:
            yield True
        finally:
            self.depth -= 1

    # -- reporting ---------------------------------------------------------------------------
    def _drop(self, what: str, count: int) -> int:
        before = self.dropped.get(what, 0)
        self.dropped[what] = before + count
        return before

    def left_out(self, node: Node, offset: int | None, count: int, noun: str, limit: str) -> None:
        """Record on `node` that `count` `noun` were not decoded because budget `limit` was reached.

        Only the first cut per budget becomes a Problem on its node (it locates where decoding
        stopped); later ones are summed into the root's closing line by `summarize`.
        """
        if count <= 0:
            return
        if self._drop(limit, count) == 0:
            node.problems.append(_problem(offset, f"{count:,} more {noun} not shown; {self.describe(limit)}"))

    def describe(self, limit: str) -> str:
        value = getattr(self.limits, limit)
        unit = {"held_bytes": " bytes of decompressed data held at once", "output_bytes": " bytes of output"}
        return f"the budget is {value:,}{unit.get(limit, ' ' + limit.replace('_', ' '))}"

    def summarize(self, root: Node) -> None:
        """One closing line on the root for everything left out past the first located cut."""
        parts = [f"{count:,} {name.replace('_', ' ')}" for name, count in self.dropped.items() if count]
        if parts:
            root.problems.append(_problem(None, "budget reached, left out: " + ", ".join(parts)))


def _problem(offset: int | None, message: str):
    from .model import Problem
    return Problem(offset, Severity.WARNING, message)


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("fwinspect_budget", default=None)


def current() -> Budget:
    """The active budget. Every public decode function opens `scope()`, so inside a decoder this is
    the command's budget; outside any scope it is a fresh one that bounds only the caller's own use."""
    b = _CURRENT.get()
    return b if b is not None else Budget()


@contextlib.contextmanager
def scope(limits: Limits | None = None) -> Iterator[Budget]:
    """Open a budget for one command or one top-level decode; reentrant: inside an open scope it
    yields the caller's budget (so `limits` is ignored there)."""
    existing = _CURRENT.get()
    if existing is not None:
        yield existing
        return
    b = Budget(limits or DEFAULT)
    token = _CURRENT.set(b)
    try:
        yield b
    finally:
        _CURRENT.reset(token)
