"""`fwinspect find SOURCE PATTERN` and `fwinspect disasm IMAGE MODULE`: byte search over every space
of a source (inspector.find) and offline disassembly of a PE/TE image in a firmware image
(inspector.pe_disasm), for people (one line per hit or instruction) and scripts (--json).

Exit status: 0 something found / disassembled cleanly; 1 nothing found, or problems; 2 usage (a
bad pattern, an unknown module, an unreadable file).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from inspector.cli import EXIT_OK, EXIT_PROBLEMS, UsageError, load_image_arg
from inspector.options import address, ranged

# A hit or instruction count: at least one.
count = ranged(1, 1 << 31, "a count")


# -- find ------------------------------------------------------------------------------------------
def add_find_arguments(p) -> None:
    from inspector.find import DEFAULT_LIMIT

    p.add_argument("source", help="a firmware image (or any file the app opens: event log, HOB list, ACPI)")
    p.add_argument("pattern", help="hex bytes with ?? wildcards (4d5a??00, hex:4d 5a), text:NAME (ASCII "
                                   "and UTF-16LE), ascii:/utf16:, a GUID (both byte orders), u16:/u32:/u64:N")
    p.add_argument("--limit", type=count, default=DEFAULT_LIMIT, metavar="N",
                   help=f"stop after N hits (default {DEFAULT_LIMIT:,})")
    p.set_defaults(func=run_find)


def load_tree(path: str):
    """The decoded tree of SOURCE: an image through the CLI's image loader (its LZMA inflating
    early), anything else as the app opens it."""
    from inspector.sources import load_source, sniff

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if p.is_file():
        with p.open("rb") as f:
            head = f.read(4096)
        if sniff(head, p) == "image":
            return load_image_arg(path).root
    try:
        return load_source(p)[1]
    except (ValueError, EOFError) as e:
        raise UsageError(f"{p}: {e}") from None


def _path_text(hit) -> str:
    chain = hit.chain()
    return " > ".join(n.title for n in reversed(chain[:-1] if len(chain) > 1 else chain))


def run_find(args) -> int:
    from inspector.find import PatternError, find, parse_pattern

    try:
        pattern = parse_pattern(args.pattern)
    except PatternError as e:
        raise UsageError(f"pattern {args.pattern!r}: {e}") from None
    root = load_tree(args.source)
    result = find(root, pattern, limit=args.limit)
    out = sys.stdout
    if args.json:
        json.dump({"pattern": pattern.source, "read_as": pattern.describe(),
                   "variants": [{"name": v.name, "bytes": v.text()} for v in pattern.variants],
                   "spaces": result.spaces, "limit": result.limit, "truncated": result.truncated,
                   "problems": result.problems, "hits": [h.to_json() for h in result.hits]}, out)
        out.write("\n")
    else:
        for h in result.hits:
            inner = h.node
            where = f" @0x{h.address:x}" if h.address is not None else ""
            out.write(f"{h.space.name}  0x{h.offset:x}{where}  {h.variant}  "
                      f"{inner.title if inner is not None else '(no node)'}  [{_path_text(h)}]\n")
        more = f"first {len(result.hits):,} hits (--limit)" if result.truncated else f"{len(result.hits):,} hits"
        print(f"{more} in {result.spaces} space{'s' if result.spaces != 1 else ''}; {pattern.describe()}",
              file=sys.stderr)
    for p in result.problems:
        print(f"fwinspect find: {p}", file=sys.stderr)
    return EXIT_OK if result.hits and not result.problems else EXIT_PROBLEMS


# -- disasm ----------------------------------------------------------------------------------------
def add_disasm_arguments(p) -> None:
    p.add_argument("image", help="a firmware image (OVMF.fd, OVMF_CODE*.fd, a TDVF image)")
    p.add_argument("module", help="the module: its UI name (PlatformPei) or file GUID")
    p.add_argument("--at", type=address, default=None, metavar="ADDR",
                   help="start here (an address where the image runs, default its entry point)")
    p.add_argument("--count", type=count, default=32, metavar="N", help="instructions (default 32)")
    p.add_argument("--symbols", metavar="DIR", help="an edk2 Build folder (or a folder of .debug files): "
                                                  "name the functions")
    p.set_defaults(func=run_disasm)


def run_disasm(args) -> int:
    from inspector.pe_disasm import MAX_COUNT, disassemble_image, find_module

    root = load_image_arg(args.image).root
    found = find_module(root, args.module)
    if isinstance(found, str):
        raise UsageError(found)
    if args.count > MAX_COUNT:
        raise UsageError(f"--count {args.count} is more than {MAX_COUNT}")
    symbols = None
    if args.symbols:
        from inspector.pe_disasm import load_symbols

        p = Path(args.symbols)
        if not p.is_dir():
            raise UsageError(f"--symbols {p}: not a folder")
        symbols = load_symbols(p)
    d = disassemble_image(found, args.at, args.count, symbols)
    out = sys.stdout
    if args.json:
        json.dump(d.to_json(), out)
        out.write("\n")
    else:
        out.write(f"; {d.title}\n")
        for note in d.notes:
            out.write(f"; {note}\n")
        for line in d.lines:
            if line.symbol and line.symbol_start:
                out.write(f"{line.symbol}:\n")
            out.write(f"  {line.address:#010x}  {line.raw.hex(' '):<30}  {line.text}\n")
    for p in d.problems:
        print(f"fwinspect disasm: {p}", file=sys.stderr)
    return EXIT_OK if d.lines and not d.problems else EXIT_PROBLEMS
