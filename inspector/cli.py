"""The `fwinspect` command (README, "Commands").

`fwinspect SOURCE` opens the app; subcommands print the same trees without it, as a text tree for
people and JSON (--json) for scripts. One table, COMMANDS, names every subcommand, its help and the
functions that add its arguments and run it; only the chosen command's arguments are built, so an
offline command imports nothing of the live session or the app.

Exit status: 0 clean; 1 the input had problems (what was decoded is still printed) or a comparison
failed; 2 usage errors and input that cannot be read at all; 3 an internal error (a bug of ours:
one line, the traceback with FWINSPECT_DEBUG=1).
"""
from __future__ import annotations

import argparse
import os
import sys
from stat import S_ISREG

from inspector.options import address, bit, expectation, maxphyaddr

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A usage error or an input that cannot be read at all: one line, exit 2."""


def _help_width() -> int:
    """The terminal's width for --help, as shutil.get_terminal_size gives it (COLUMNS, else the
    terminal, else 80), without importing shutil: argparse makes a formatter for every argument
    it adds, and shutil (with the compression modules it imports) is ~4 ms of a one-shot command."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position, _help_width() - 2 if width is None else width)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """One line naming the command and the option (argparse's default adds the usage block)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (--help for usage)\n")


class _Version(argparse.Action):
    """--version, read from the installed distribution only when asked (importlib.metadata is not
    cheap to import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("fwinspect")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        print(f"fwinspect {text}")
        parser.exit(EXIT_OK)


# ---- reading inputs ----------------------------------------------------------------------------

def load_image_arg(path: str):
    """The image a command was given, decoded; one that cannot be read is a usage error. Its LZMA
    sections start inflating on a thread before the decoders are imported (inspector.imagefile)."""
    from inspector.imagefile import EarlyLzma, ImageError, read_image

    try:
        data = read_image(path)
        early = EarlyLzma(data)
        from inspector.image import load_image

        return load_image(path, data, early)
    except ImageError as e:
        raise UsageError(str(e)) from None


def Path(path):        # noqa: N802 - pathlib.Path, imported when a command needs it
    """pathlib.Path(path). pathlib (with fnmatch and urllib.parse) is ~5 ms of start-up that the
    fast commands (`mrtd`, `measure`) do without: they read their files with os."""
    from pathlib import Path as _Path

    return _Path(path)


def _read_file(path: str, limit: int = 1 << 30, what: str = "") -> bytes:
    p = os.fspath(path)
    label = f"{what} {p}" if what else p
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UsageError(f"{label}: no such file") from None
    if not S_ISREG(st.st_mode):
        raise UsageError(f"{label}: not a regular file")
    if st.st_size > limit:
        raise UsageError(f"{label}: larger than {limit:,} bytes")
    with open(p, "rb") as f:
        return f.read()


def _finish(root, args, children=None) -> int:
    """Print `root` (text, or JSON with --json), streamed; 1 when it holds problems or the output
    budget cut it short."""
    from inspector.render import has_problems, print_problems, print_tree, write_json

    if args.json:
        complete = write_json(root, children=children)
    else:
        complete = print_tree(root, fields=getattr(args, "fields", False), children=children)
    if has_problems(root):
        if args.json:
            print_problems(root)
        return EXIT_PROBLEMS
    return EXIT_OK if complete else EXIT_PROBLEMS


# ---- the commands ------------------------------------------------------------------------------

def cmd_fd(args) -> int:
    img = load_image_arg(args.image)
    return _finish(img.root, args)


def cmd_mrtd(args) -> int:
    from decoders.model import Node
    from decoders.mrtd import compute_mrtds, image_tdx_metadata, mrtd_node
    from decoders.ovmf.metadata import tdx_sections
    from inspector.imagefile import ImageError, read_image
    from inspector.render import has_problems, print_problems, write_json

    # Only the GUIDed table and the TDVF descriptor: the MRTD hashes image bytes the descriptor
    # names, so nothing is decompressed (load_image_arg would decode the whole flash layout).
    try:
        data = read_image(args.image)
    except ImageError as e:
        raise UsageError(str(e)) from None
    name = Path(args.image).name
    meta = image_tdx_metadata(data, name)
    if meta is None:
        print(f"{args.image}: no TDX metadata (not a TDVF image); no MRTD to compute", file=sys.stderr)
        return EXIT_PROBLEMS
    orders = ["per-page", "two-pass"] if args.order == "both" else [args.order]
    from inspector.hashing import side_by_side

    results = compute_mrtds(data, tdx_sections(meta), orders, side_by_side(orders))
    if args.json:
        root = Node("mrtd-report", f"MRTD of {name}")
        root.children = [mrtd_node(r) for r in results]
        root.problems = list(meta.problems)
        write_json(root)
    else:
        for r in results:
            print(f"{r.hex or 'not computed'}  {r.order}  ({r.pages_added} pages added, {r.pages_extended} extended)  {name}")
        print_problems(meta)
        for p in dict.fromkeys(str(p) for r in results for p in r.problems):  # a refused MRTD says why
            print(p, file=sys.stderr)
    refused = any(r.digest is None for r in results)
    return EXIT_PROBLEMS if refused or has_problems(meta) else EXIT_OK


def cmd_extract(args) -> int:
    from inspector.extract import ExtractError, extract
    from inspector.render import has_problems

    img = load_image_arg(args.image)
    try:
        manifest = extract(img.root, args.dir)
    except (ExtractError, OSError) as e:
        print(f"{args.image}: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{len(manifest)} items written to {args.dir} (see manifest.json)")
    return EXIT_PROBLEMS if has_problems(img.root) else EXIT_OK


def cmd_acpi(args) -> int:
    from inspector.acpisource import decode_acpi_paths
    from inspector.aml import attach_disassembly

    for p in args.paths:
        if not Path(p).exists():
            raise UsageError(f"{p}: no such file or folder")
    root = decode_acpi_paths(args.paths)
    if args.aml:
        attach_disassembly(root)
    return _finish(root, args)


def cmd_hob(args) -> int:
    from inspector.sources import hob_tree

    data = _read_file(args.file)
    root = hob_tree(data, Path(args.file).name, args.base, args.td_profile)
    return _finish(root, args)


def cmd_eventlog(args) -> int:
    from decoders.eventlog import decode_event_log
    from decoders.eventlog.replay import QUIRKS_TPM2_TOOLS_54, check_digests, compare, replay
    from inspector.render import has_problems, print_problems

    data = _read_file(args.file)
    root = decode_event_log(data, kind=args.kind, space_name=Path(args.file).name)
    check_digests(root)
    if args.yaml:
        from decoders.eventlog.yaml_export import to_tpm2_eventlog_yaml

        rp = replay(root, quirks=QUIRKS_TPM2_TOOLS_54 if args.tpm2_tools_54 else None)
        sys.stdout.write(to_tpm2_eventlog_yaml(root, rp, device_paths=args.device_paths))
        return EXIT_PROBLEMS if has_problems(root) else EXIT_OK
    rp = replay(root)
    # What to compare with: RTMR0-3 of a TDX quote, then each --expect NAME=HEX (checked by
    # `expectation` when the options were parsed).
    expected: dict[str, bytes] = {}
    quote = None
    if args.expect_quote:
        from decoders.eventlog.quote import quote_expectation

        raw = _read_file(args.expect_quote, 1 << 20, "--expect-quote")
        quote, expected = quote_expectation(raw, Path(args.expect_quote).name)
    expected.update(args.expect or [])
    comparing = bool(args.expect_quote or args.expect)
    if args.replay or comparing:
        root.append(rp.to_node())
    failed = False
    if comparing:
        cmp = compare(rp, expected)
        node = root.append(cmp.to_node())
        if quote is not None:
            node.append(quote)  # the quote as read, its problems located in its own bytes
        failed = not cmp.matches or (quote is not None and has_problems(quote))
        if not args.json:
            if cmp.registers:
                print(cmp.summary())
            if cmp.first_event is not None:
                print(f"replay and expectation part at event #{cmp.first_event}")
            if quote is not None and not args.tree:
                print_problems(quote)
    if args.json or not comparing or args.tree:
        code = _finish(root, args)
    else:
        code = EXIT_PROBLEMS if has_problems(root) else EXIT_OK
    return EXIT_PROBLEMS if failed else code


# A DEBUG OVMF boot to the shell logs ~100 KB; 64 MiB is the largest input any command takes (README, "Budgets").
MAX_LOG_FILE = 64 << 20


def cmd_log(args) -> int:
    from decoders.edk2log import decode_log

    data = _read_file(args.file, MAX_LOG_FILE)
    return _finish(decode_log(data, Path(args.file).name), args)


def _open_dump(args):
    from inspector.dump import open_dump

    p = Path(args.dump)
    if not p.is_file():
        raise UsageError(f"{p}: no such file")
    if getattr(args, "image", None) and not Path(args.image).is_file():
        raise UsageError(f"{args.image}: no such file")
    return open_dump(p, base=args.base, image=getattr(args, "image", None))


def cmd_dump(args) -> int:
    from inspector.locate import dump_overview

    with _open_dump(args) as dump:
        return _finish(dump_overview(dump), args)


def _paging_config(args):
    from decoders.paging import PagingConfig

    cfg = PagingConfig(maxphyaddr=args.maxphyaddr, shared_bit=args.tdx_shared_bit, c_bit=args.sev_c_bit,
                       nxe=not args.no_nxe)
    return cfg


def cmd_pages(args) -> int:
    import itertools

    from decoders.model import Node
    from decoders.paging import MAX_LISTED, MAX_LISTED_JSON
    from decoders.paging_nodes import mapping_json_texts, mapping_titles, range_node, summary_node, table_tree_node
    from inspector.dump import CR4_PKE, dump_pages
    from inspector.render import has_problems

    with _open_dump(args) as dump:
        cpu = _dump_cpu(dump, args.cpu)
        cfg = _paging_config(args)
        cfg.pke = bool(cpu and cpu.cr4 and cpu.cr4 & CR4_PKE)   # dump_pages takes PKE from CR4 only without a config
        # No leaf is held: a first walk counts, a second streams them while the dump is open
        # (OVMF's identity map alone is 524,288 leaves).
        result = dump_pages(dump, args.cr3, args.la57, config=cfg, stream=True, cpu=args.cpu)
        each = args.leaves or (args.json and not args.merged)
        limit = MAX_LISTED_JSON if args.json else MAX_LISTED
        root = summary_node(result, listed="leaves" if each else "ranges", limit=limit)
        if args.json and each:
            # Leaves as JSON texts, formatted without a Node each; write_json takes them as children.
            children = (t for chunk in result.leaves(limit) for t in mapping_json_texts(chunk))
        elif each:
            children = (Node("mapping", t) for chunk in result.leaves(limit) for t in mapping_titles(chunk))
        else:
            children = itertools.islice((range_node(r) for r in result.merged()), limit)
        if args.tables and not args.json:
            children = itertools.chain([table_tree_node(dump.memory, result.cr3, result.config)], children)
        code = _finish(root, argparse.Namespace(json=args.json, fields=False), children)
    return EXIT_PROBLEMS if has_problems(root) else code


def _dump_cpu(dump, index: int | None):
    """CPU `index` of the dump (--cpu), else its first CPU (None when it has no CPU notes); a CPU
    the dump does not have is a usage error naming the ones it has."""
    if index is None:
        return dump.cpus[0] if dump.cpus else None
    cpu = next((c for c in dump.cpus if c.index == index), None)
    if cpu is None:
        raise UsageError(f"--cpu {index}: the dump has no CPU {index} ("
                         + (f"its CPUs: {', '.join(str(c.index) for c in dump.cpus)})" if dump.cpus
                            else "it has no CPU notes)"))
    return cpu


def cmd_translate(args) -> int:
    from decoders.paging import translate
    from decoders.paging_translate import non_canonical
    from inspector.dump import CR4_LA57, CR4_PKE

    with _open_dump(args) as dump:
        cpu = _dump_cpu(dump, args.cpu)
        cr3 = args.cr3 if args.cr3 is not None else (cpu.cr3 if cpu else None)
        if cr3 is None:
            raise UsageError(f"CPU {args.cpu} has no CR3 (no QEMU CPU note): give --cr3" if args.cpu is not None
                             else "the dump has no CPU note with CR3: give --cr3")
        cfg = _paging_config(args)
        cr4 = cpu.cr4 if cpu and cpu.cr4 else 0
        cfg.la57 = args.la57 if args.la57 is not None else bool(cr4 & CR4_LA57)
        cfg.pke = bool(cr4 & CR4_PKE)
        pa, steps = translate(dump.memory, cr3, args.va, cfg)
    for line in steps:
        print(line)
    if pa is None:
        if non_canonical(args.va, cfg.la57) is None:   # else the step above says why
            print(f"0x{args.va:x}: not mapped")
        return EXIT_PROBLEMS
    print(f"0x{args.va:x} -> 0x{pa:x}")
    return EXIT_OK


def cmd_replay(args) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    if not args.json:
        from inspector.live.record import RecordingError, check_recording

        try:
            check_recording(args.file)  # not a recording at all: a usage error, before the app starts
        except RecordingError as e:
            raise UsageError(f"replay: {e}") from None
        return start_app("replay", args.file)
    # The recorded stops as JSON lines, without the app (for scripts and diffing sessions), one stop
    # read and written at a time.
    from inspector.live.record import RecordingError, iter_recording
    from inspector.live.script import write_stop_json
    from inspector.render import Sink

    sink = Sink()
    try:
        for stop in iter_recording(args.file):
            write_stop_json(stop, sink)
            if sink.cut:
                break
    except RecordingError as e:
        sink.close()
        print(f"fwinspect replay: {e}", file=sys.stderr)
        # Not a recording at all: unreadable input; cut short or malformed later: what was read is out.
        return EXIT_USAGE if e.line <= 1 else EXIT_PROBLEMS
    sink.close()
    return EXIT_PROBLEMS if sink.cut else EXIT_OK


def cmd_open(args) -> int:
    paths = [Path(args.source)] + ([Path(args.other)] if args.other is not None else [])
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_file() and path.stat().st_size == 0:
            raise UsageError(f"{path}: empty file")
    if len(paths) == 2:
        # `fwinspect A B`: the diff screen of two firmware images; anything else is a usage error,
        # said before the app starts.
        from inspector.sources import MAX_SOURCE_SIZE, sniff

        for path in paths:
            if not path.is_file():
                raise UsageError(f"{path} is a folder: `fwinspect A B` compares two firmware images")
            with path.open("rb") as f:
                kind = sniff(f.read(MAX_SOURCE_SIZE), path)
            if kind != "image":
                raise UsageError(f"{path} is not a firmware image ({kind}): `fwinspect A B` compares two images")
        path_a, path_b = paths

        def load_diff():
            from inspector.diff import diff_images, load_pair
            from inspector.diff_measure import measurement_diff_started

            img_a, img_b = load_pair(path_a, path_b)
            measured = measurement_diff_started(img_a, img_b, path_a.name, path_b.name)
            root = diff_images(img_a.root, img_b.root)
            # As `fwinspect diff` shows it: what the change does to the MRTD and PCR0, last.
            measures = root.append(measured())
            if measures.get("Change") != "unchanged":
                root.field("Change").value = "changed"
            return root, img_a, img_b

        return start_app("diff", path_a, path_b, load_diff)
    path = paths[0]
    from inspector.sources import load_source

    # The app shows its first frame at once and decodes in a worker (views.app loader): any
    # source fwinspect knows (image, event log, HOB list, ACPI, quote) is recognised by content.
    # The path as given: the header shows it under the file's name, and `o` starts in its folder.
    return start_app("open", str(path), lambda: load_source(path)[1], args.symbols)


def start_app(kind: str, *args) -> int | None:
    """The one place the engine starts the Textual app (README, "Layout": inspector imports views only here): `open` a source,
    `replay` a recording, drive a `live` session, show a `tour` (None when the app has no tour screen),
    or the `diff` of two images."""
    if kind == "diff":
        from views.diff_app import run_diff

        return run_diff(*args)
    if kind == "open":
        from views.app import run_app

        name, loader, symbols = args
        run_app(None, name, loader=loader, symbols=symbols)
        return EXIT_OK
    if kind == "tour":
        # The tour screen (views/tour_app.py), when this fwinspect has it; None: print the chapters.
        try:
            import views.tour_app as tour_app
        except ModuleNotFoundError as e:
            if e.name != "views.tour_app":
                raise
            return None
        run_tour = getattr(tour_app, "run_tour", None)
        return run_tour(*args) if run_tour is not None else None
    if kind == "replay":
        from views.live_app import replay_main

        return replay_main(*args)
    from views.live_app import run_live

    run_live(*args)
    return EXIT_OK


# ---- the command table -------------------------------------------------------------------------

def _args_fd(p) -> None:
    p.add_argument("image")
    p.set_defaults(func=cmd_fd)


def _args_mrtd(p) -> None:
    p.add_argument("image")
    p.add_argument("--order", choices=["per-page", "two-pass", "both"], default="per-page",
                   help="per-page: PAGE.ADD then its MR.EXTENDs (td-shim, upstream QEMU); "
                        "two-pass: all PAGE.ADDs first (QEMU 8.x TDX trees)")
    p.set_defaults(func=cmd_mrtd)


def _args_extract(p) -> None:
    p.add_argument("image")
    p.add_argument("dir")
    p.set_defaults(func=cmd_extract)


def _args_acpi(p) -> None:
    p.add_argument("paths", nargs="+", metavar="FILE|DIR")
    p.add_argument("--aml", action="store_true", help="disassemble DSDT/SSDT with iasl (acpica-tools)")
    p.set_defaults(func=cmd_acpi)


def _args_hob(p) -> None:
    p.add_argument("file")
    p.add_argument("--base", type=address, default=None, help="address the list was at (default: offsets)")
    p.add_argument("--td-profile", default="edk2-stable202408", choices=["edk2-stable202211", "edk2-stable202408"],
                   help="lint as a TD HOB with the rules of this TDVF version (ValidateHobList)")
    p.add_argument("--no-td", dest="td_profile", action="store_const", const=None,
                   help="a PI HOB list, not a TD HOB: no lint, no RTMR0 digest")
    p.set_defaults(func=cmd_hob)


def _args_eventlog(p) -> None:
    p.add_argument("file")
    p.add_argument("--kind", choices=["auto", "tcg", "cc"], default="auto")
    p.add_argument("--replay", action="store_true", help="add the replayed PCRs / RTMRs to the tree")
    p.add_argument("--expect-quote", metavar="QUOTE", help="compare RTMR0-3 with a TDX quote v4")
    p.add_argument("--expect", action="append", type=expectation, metavar="NAME=HEX",
                   help="compare a register: PCR0-23 or RTMR0-3, e.g. PCR7=ab12...")
    p.add_argument("--yaml", action="store_true", help="print the YAML tpm2_eventlog prints")
    p.add_argument("--tpm2-tools-54", action="store_true",
                   help="with --yaml: replay as tpm2_eventlog 5.4 does (it extends EV_NO_ACTION events)")
    p.add_argument("--device-paths", choices=["hex", "text"], default="hex", help="with --yaml")
    p.add_argument("--tree", action="store_true", help="with --expect*: print the tree too")
    p.set_defaults(func=cmd_eventlog)


def _args_log(p) -> None:
    p.add_argument("file", help="an edk2 DEBUG log (QEMU -debugcon file:..., or a serial capture)")
    p.set_defaults(func=cmd_log)


def _dump_args(p) -> None:
    p.add_argument("dump", help="QEMU dump-guest-memory ELF, or a raw pmemsave file with --base")
    p.add_argument("--base", type=address, default=None, help="physical address of a raw file's first byte")


def _paging_args(p) -> None:
    p.add_argument("--cpu", type=int, default=None, metavar="N",
                   help="walk with CPU N's CR3 and CR4 (LA57, PKE) from the dump (default: the first CPU)")
    p.add_argument("--cr3", type=address, default=None, help="default: the CPU's CR3 from the dump (wins over --cpu's)")
    p.add_argument("--la57", dest="la57", action="store_true", default=None, help="5-level paging")
    p.add_argument("--no-la57", dest="la57", action="store_false", help="4-level paging")
    p.add_argument("--maxphyaddr", type=maxphyaddr, default=52, help="physical address width, 36-52 (default 52)")
    p.add_argument("--tdx-shared-bit", type=bit, default=None, metavar="BIT", help="GPAW-1: 47 or 51")
    p.add_argument("--sev-c-bit", type=bit, default=None, metavar="BIT", help="CPUID 0x8000001F EBX[5:0]")
    p.add_argument("--no-nxe", action="store_true", help="EFER.NXE clear: bit 63 is reserved")


def _args_dump(p) -> None:
    _dump_args(p)
    p.add_argument("--image", help="the firmware image (flash is not in a dump; names loaded images)")
    p.set_defaults(func=cmd_dump)


def _args_pages(p) -> None:
    _dump_args(p)
    _paging_args(p)
    p.add_argument("--merged", action="store_true", help="with --json: ranges instead of every leaf")
    p.add_argument("--leaves", action="store_true", help="print every leaf instead of merged ranges")
    p.add_argument("--tables", action="store_true", help="also print the tables themselves, level by level")
    p.set_defaults(func=cmd_pages)


def _args_translate(p) -> None:
    _dump_args(p)
    p.add_argument("va", type=address, help="the virtual address")
    _paging_args(p)
    p.set_defaults(func=cmd_translate)


def _args_replay(p) -> None:
    p.add_argument("file")
    p.set_defaults(func=cmd_replay)


def _args_open(p) -> None:
    p.add_argument("source")
    p.add_argument("other", nargs="?", metavar="B",
                   help="a second firmware image: show what changed from SOURCE to it (the diff screen)")
    p.add_argument("--symbols", metavar="DIR",
                   help="an edk2 build folder (or a folder of .debug files): name functions in the disassembly (d)")
    p.set_defaults(func=cmd_open)


def _parent_json() -> argparse.ArgumentParser:
    p = Parser(add_help=False)
    p.add_argument("--json", action="store_true", help="print JSON (the Node tree) for scripts")
    return p


def _parent_fields() -> argparse.ArgumentParser:
    p = Parser(add_help=False)
    p.add_argument("--fields", action="store_true", help="print every field under its node")
    return p


def _parent_version() -> argparse.ArgumentParser:
    p = Parser(add_help=False)
    p.add_argument("--version", action=_Version, help="print fwinspect's version and exit")
    return p


PARENTS = {"json": _parent_json, "fields": _parent_fields}

# name: (help, how its arguments are added, its parent parsers). A string names a function in a
# module imported only when that command is chosen (the live session's modules).
COMMANDS: dict[str, tuple[str, object, tuple[str, ...]]] = {
    "fd": ("print the flash layout of a firmware image", _args_fd, ("json", "fields")),
    "mrtd": ("compute the TDX MRTD a TDVF image produces", _args_mrtd, ("json",)),
    "measure": ("predict the measurements an image will produce: TPM PCR0/PCR7, SEV-SNP launch "
                "digest, TDX MRTD/RTMR0", "inspector.measure:add_measure_arguments", ("json",)),
    "diff": ("compare two firmware images by identity: modules added, removed and changed (code, data, "
             "depex, compression, debug-only), variables, TDX/SEV metadata", "inspector.diff:add_diff_arguments",
             ("json",)),
    "extract": ("write every file, section and decompressed blob under DIR", _args_extract, ()),
    "acpi": ("decode ACPI tables: files, folders, or acpidump text (followed from the RSDP)", _args_acpi,
             ("json", "fields")),
    "hob": ("decode a HOB list file (PI HOB list or TD HOB)", _args_hob, ("json", "fields")),
    "eventlog": ("decode a TCG or CC (TDX) event log; replay PCRs/RTMRs", _args_eventlog, ("json", "fields")),
    "log": ("decode an edk2 DEBUG log: modules loaded (PEIMs, drivers) and memory facts", _args_log,
            ("json", "fields")),
    "dump": ("find and decode the firmware's structures in a memory dump", _args_dump, ("json", "fields")),
    "pages": ("walk the page tables in a memory dump", _args_pages, ("json",)),
    "translate": ("translate a virtual address through a dump's page tables", _args_translate, ()),
    "qemu": ("boot an image in QEMU paused at reset and debug it by phase",
             "inspector.live.script:add_qemu_arguments", ()),
    "attach": ("debug a guest on a running gdbstub by phase", "inspector.live.script:add_attach_arguments", ()),
    "replay": ("show a recorded live session (fwinspect qemu --record FILE) offline", _args_replay, ("json",)),
    "tour": ("a guided walkthrough of the image and its boot, told with its own values",
             "inspector.tour.run:add_tour_arguments", ()),
    "review": ("review an image as a platform reviewer would: findings with evidence",
               "inspector.review.cli:add_review_arguments", ("json",)),
    "find": ("search every space of a source (decompressed volumes too) for bytes, text, a GUID or an integer", "inspector.find_cli:add_find_arguments", ("json",)),
    "disasm": ("disassemble a PE/TE module of an image at its entry point or an address, offline", "inspector.find_cli:add_disasm_arguments", ("json",)),
    "open": ("open the app on a source (the default command)", _args_open, ()),
}
# Commands that decode and exit: they skip the garbage collector and the interpreter's teardown.
ONE_SHOT = {"fd", "mrtd", "measure", "diff", "extract", "hob", "eventlog", "log", "acpi", "dump", "pages", "translate", "review", "find", "disasm"}

EPILOG = ("exit status: 0 clean; 1 the input had problems (what was decoded is still printed) or a "
          "comparison failed; 2 usage errors or unreadable input; 3 an internal error")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with `command` alone and its arguments; every command, without arguments, when
    `command` is None (the top-level --help lists them)."""
    p = Parser(prog="fwinspect", description="Inspect VM firmware: images, HOBs, event logs, ACPI, dumps, "
               "live QEMU boots. `fwinspect SOURCE` opens the app.", epilog=EPILOG,
               parents=[_parent_version()])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (text, setup, parents) in COMMANDS.items():
        if command is None:
            sub.add_parser(name, help=text)
            continue
        if name != command:
            continue
        sp = sub.add_parser(name, help=text, description=text, epilog=EPILOG,
                            parents=[_parent_version()] + [PARENTS[x]() for x in parents])
        if isinstance(setup, str):
            import importlib

            module, _, function = setup.partition(":")
            setup = getattr(importlib.import_module(module), function)
        setup(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "open")
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (EXIT_USAGE if e.code else EXIT_OK)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return dispatch(args.func, args)


def dispatch(func, args) -> int:
    """Run one command under one budget (decoders.budget) and turn what it raises into the exit
    status: UsageError and OSError 2, a bug of ours 3."""
    from decoders.budget import scope

    try:
        with scope():
            return func(args)
    except UsageError as e:
        print(f"fwinspect: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and let nothing flush into the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        print(f"fwinspect: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - a bug of ours: one line for users, the traceback on request
        if os.environ.get("FWINSPECT_DEBUG"):
            raise
        print(f"fwinspect: internal error ({e.__class__.__name__}: {str(e)[:200]}); FWINSPECT_DEBUG=1 shows "
              f"the traceback: please report it with the input", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """The console script. For a one-shot decode: main() without the garbage collector and without
    the interpreter's teardown; a decoded image is tens of thousands of objects, and collecting
    while building them and freeing them one by one at exit cost ~10 % of `fwinspect fd`
    (measured). The app and live sessions (long-running, with child processes and atexit
    clean-ups) exit normally."""
    one_shot = len(sys.argv) > 1 and sys.argv[1] in ONE_SHOT
    if not one_shot:
        sys.exit(main())
    import gc

    gc.disable()
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


if __name__ == "__main__":
    # `python -m inspector.cli`: run the imported module, not this __main__ copy, so the commands
    # that import inspector.cli (UsageError, the readers) share its classes.
    from inspector.cli import main as _main

    sys.exit(_main())
