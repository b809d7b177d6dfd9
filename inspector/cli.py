"""The `fwinspect` command (DESIGN.md, "The CLI").

`fwinspect SOURCE` opens the app; subcommands print the same trees without it, with rich for
people and --json for scripts. Exit status: 0 clean, 1 the input had problems (what was decoded is
still printed), 2 usage errors (and files that cannot be read at all).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _load(path: str):
    from inspector.image import ImageError, load_image

    try:
        return load_image(path)
    except ImageError as e:
        raise UsageError(str(e)) from None


def _finish(root, args) -> int:
    from inspector.render import has_problems, print_problems, print_tree, write_json

    if args.json:
        write_json(root)
    else:
        print_tree(root, fields=getattr(args, "fields", False))
    if has_problems(root):
        if args.json:
            print_problems(root)
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_fd(args) -> int:
    img = _load(args.image)
    return _finish(img.root, args)


def cmd_mrtd(args) -> int:
    from decoders.model import Node
    from decoders.mrtd import compute_mrtd, mrtd_node
    from decoders.ovmf.metadata import tdx_sections
    from inspector.render import has_problems, write_json

    img = _load(args.image)
    meta = img.tdx_metadata()
    if meta is None:
        print(f"{args.image}: no TDX metadata (not a TDVF image); no MRTD to compute", file=sys.stderr)
        return EXIT_PROBLEMS
    orders = ["per-page", "two-pass"] if args.order == "both" else [args.order]
    results = [compute_mrtd(img.data, tdx_sections(meta), order=o) for o in orders]
    if args.json:
        root = Node("mrtd-report", f"MRTD of {img.path.name}")
        root.children = [mrtd_node(r) for r in results]
        root.problems = list(meta.problems)
        write_json(root)
    else:
        for r in results:
            print(f"{r.hex or 'not computed'}  {r.order}  ({r.pages_added} pages added, {r.pages_extended} extended)  {img.path.name}")
        for p in [*meta.problems, *(p for r in results for p in r.problems)]:
            print(p, file=sys.stderr)
    refused = any(r.problems for r in results)
    return EXIT_PROBLEMS if refused or has_problems(meta) else EXIT_OK


def cmd_extract(args) -> int:
    from inspector.extract import ExtractError, extract
    from inspector.render import has_problems

    img = _load(args.image)
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


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (use 0x... for hex)") from None


def _read_file(path: str, limit: int = 1 << 30) -> bytes:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if not p.is_file():
        raise UsageError(f"{p}: not a regular file")
    if p.stat().st_size > limit:
        raise UsageError(f"{p}: larger than {limit} bytes")
    return p.read_bytes()


def hob_tree(data: bytes, name: str, base: int | None, td_profile: str | None = None):
    """A HOB list file: the list, its memory map and, for a TD HOB, the TDVF lint and RTMR0 digest."""
    from decoders.errors import DecodeError
    from decoders.hob import decode_hob_list, lint_td_hob, memory_map, memory_map_node, td_hob_digest
    from decoders.model import Space

    space = Space(name, data, base)
    root = decode_hob_list(space, base or 0)
    root.append(memory_map_node(memory_map(root)))
    if td_profile:
        lint_td_hob(root, profile=td_profile)
        try:
            digest = td_hob_digest(data, 0)
            root.add("TdHobDigest", digest, display=f"SHA-384 {digest.hex()} (extended into RTMR0 by TDVF)")
        except DecodeError as e:
            root.problem(e.offset, f"no TD HOB digest: {e.message}")
    return root


def cmd_hob(args) -> int:
    data = _read_file(args.file)
    root = hob_tree(data, Path(args.file).name, args.base, args.td_profile)
    return _finish(root, args)


def _expected_values(args) -> dict:
    """--expect-quote QUOTE gives RTMR0-3 from a TDX quote v4; --expect NAME=HEX adds registers."""
    expected: dict = {}
    if args.expect_quote:
        from decoders.eventlog.quote import quote_expected

        expected.update(quote_expected(_read_file(args.expect_quote, 1 << 20)))
    for item in args.expect or []:
        name, _, value = item.partition("=")
        try:
            expected[name.strip().upper()] = bytes.fromhex(value.strip())
        except ValueError:
            raise UsageError(f"--expect {item!r}: want NAME=HEX, e.g. PCR7=ab12...") from None
    return expected


def cmd_eventlog(args) -> int:
    from decoders.eventlog import decode_event_log
    from decoders.eventlog.replay import QUIRKS_TPM2_TOOLS_54, check_digests, compare, replay
    from decoders.eventlog.yaml_export import to_tpm2_eventlog_yaml
    from inspector.render import has_problems

    data = _read_file(args.file)
    root = decode_event_log(data, kind=args.kind, space_name=Path(args.file).name)
    check_digests(root)
    if args.yaml:
        rp = replay(root, quirks=QUIRKS_TPM2_TOOLS_54 if args.tpm2_tools_54 else None)
        sys.stdout.write(to_tpm2_eventlog_yaml(root, rp, device_paths=args.device_paths))
        return EXIT_PROBLEMS if has_problems(root) else EXIT_OK
    rp = replay(root)
    expected = _expected_values(args)
    if args.replay or expected:
        root.append(rp.to_node())
    mismatch = False
    if expected:
        cmp = compare(rp, expected)
        root.append(cmp.to_node())
        mismatch = not cmp.matches
        if not args.json:
            print(cmp.summary())
            if cmp.first_event is not None:
                print(f"replay and expectation part at event #{cmp.first_event}")
    code = _finish(root, args) if (args.json or not expected or args.tree) else (
        EXIT_PROBLEMS if has_problems(root) else EXIT_OK)
    return EXIT_PROBLEMS if mismatch else code


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
    import json

    from decoders.paging import mapping_node, merge, page_tables_node, range_node
    from inspector.dump import dump_pages
    from inspector.render import has_problems

    from decoders.paging import table_tree_node

    with _open_dump(args) as dump:
        cfg = _paging_config(args)
        result = dump_pages(dump, args.cr3, args.la57, config=cfg)
        tables = table_tree_node(dump.memory, result.cr3, result.config) if args.tables and not args.json else None
    root = page_tables_node(result)
    if args.json:
        # Every leaf as a "mapping" node (or every merged range): streamed, because OVMF's identity
        # map alone is 524,288 leaves.
        head = root.to_json()
        head["children"] = []
        text = json.dumps(head, separators=(",", ":"))
        out = sys.stdout
        out.write(text[:-2])  # up to the empty children list's "["
        items = (range_node(r) for r in merge(result.mappings)) if args.merged else \
            (mapping_node(m) for m in result.mappings)
        for i, node in enumerate(items):
            out.write(("," if i else "") + json.dumps(node.to_json(), separators=(",", ":")))
        out.write("]}\n")
    else:
        if args.leaves:
            root.children = [mapping_node(m) for m in result.mappings]
        if tables is not None:
            root.children.insert(0, tables)
        _finish(root, argparse.Namespace(json=False, fields=False))
    return EXIT_PROBLEMS if has_problems(root) else EXIT_OK


def cmd_translate(args) -> int:
    from decoders.paging import translate
    from inspector.dump import CR4_LA57

    with _open_dump(args) as dump:
        cpu = dump.cpus[0] if dump.cpus else None
        cr3 = args.cr3 if args.cr3 is not None else (cpu.cr3 if cpu else None)
        if cr3 is None:
            raise UsageError("the dump has no CPU note with CR3: give --cr3")
        cfg = _paging_config(args)
        cfg.la57 = args.la57 if args.la57 is not None else bool(cpu and cpu.cr4 and cpu.cr4 & CR4_LA57)
        pa, steps = translate(dump.memory, cr3, args.va, cfg)
    for line in steps:
        print(line)
    if pa is None:
        print(f"0x{args.va:x}: not mapped")
        return EXIT_PROBLEMS
    print(f"0x{args.va:x} -> 0x{pa:x}")
    return EXIT_OK


def cmd_replay(args) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    if args.json:
        # The recorded stops as JSON lines, without the app (for scripts and diffing sessions).
        import json

        from inspector.live.record import RecordingError, load_recording

        try:
            stops = load_recording(args.file)
        except RecordingError as e:
            print(f"fwinspect replay: {e}", file=sys.stderr)
            return EXIT_PROBLEMS
        for stop in stops:
            sys.stdout.write(json.dumps(stop.to_json(), separators=(",", ":")) + "\n")
        return EXIT_OK
    from views.live_app import replay_main

    return replay_main(args.file)


def cmd_open(args) -> int:
    path = Path(args.source)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise UsageError(f"{path}: empty file")
    from inspector.sources import load_source
    from views.app import run_app

    # The app shows its first frame at once and decodes in a worker (views.app loader): any
    # source fwinspect knows (image, event log, HOB list, ACPI, quote) is recognised by content.
    run_app(None, path.name, loader=lambda: load_source(path)[1])
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fwinspect", description="Inspect VM firmware: images, HOBs, event logs, ACPI.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    fd = sub.add_parser("fd", help="print the flash layout of a firmware image")
    fd.add_argument("image")
    fd.add_argument("--json", action="store_true", help="print the Node tree as JSON")
    fd.add_argument("--fields", action="store_true", help="print every field under its node")
    fd.set_defaults(func=cmd_fd)

    m = sub.add_parser("mrtd", help="compute the TDX MRTD a TDVF image produces")
    m.add_argument("image")
    m.add_argument("--order", choices=["per-page", "two-pass", "both"], default="per-page",
                   help="per-page: PAGE.ADD then its MR.EXTENDs (td-shim, upstream QEMU); "
                        "two-pass: all PAGE.ADDs first (QEMU 8.x TDX trees)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_mrtd)

    x = sub.add_parser("extract", help="write every file, section and decompressed blob under DIR")
    x.add_argument("image")
    x.add_argument("dir")
    x.set_defaults(func=cmd_extract)

    a = sub.add_parser("acpi", help="decode ACPI tables: files, folders, or acpidump text (followed from the RSDP)")
    a.add_argument("paths", nargs="+", metavar="FILE|DIR")
    a.add_argument("--json", action="store_true")
    a.add_argument("--fields", action="store_true")
    a.add_argument("--aml", action="store_true", help="disassemble DSDT/SSDT with iasl (acpica-tools)")
    a.set_defaults(func=cmd_acpi)

    h = sub.add_parser("hob", help="decode a HOB list file (PI HOB list or TD HOB)")
    h.add_argument("file")
    h.add_argument("--base", type=_int, default=None, help="address the list was at (default: offsets)")
    h.add_argument("--td-profile", default="edk2-stable202408", choices=["edk2-stable202211", "edk2-stable202408"],
                   help="lint as a TD HOB with the rules of this TDVF version (ValidateHobList)")
    h.add_argument("--no-td", dest="td_profile", action="store_const", const=None,
                   help="a PI HOB list, not a TD HOB: no lint, no RTMR0 digest")
    h.add_argument("--json", action="store_true")
    h.add_argument("--fields", action="store_true")
    h.set_defaults(func=cmd_hob)

    e = sub.add_parser("eventlog", help="decode a TCG or CC (TDX) event log; replay PCRs/RTMRs")
    e.add_argument("file")
    e.add_argument("--kind", choices=["auto", "tcg", "cc"], default="auto")
    e.add_argument("--replay", action="store_true", help="add the replayed PCRs / RTMRs to the tree")
    e.add_argument("--expect-quote", metavar="QUOTE", help="compare RTMR0-3 with a TDX quote v4")
    e.add_argument("--expect", action="append", metavar="NAME=HEX", help="compare a register, e.g. PCR7=...")
    e.add_argument("--yaml", action="store_true", help="print the YAML tpm2_eventlog prints")
    e.add_argument("--tpm2-tools-54", action="store_true",
                   help="with --yaml: replay as tpm2_eventlog 5.4 does (it extends EV_NO_ACTION events)")
    e.add_argument("--device-paths", choices=["hex", "text"], default="hex", help="with --yaml")
    e.add_argument("--tree", action="store_true", help="with --expect*: print the tree too")
    e.add_argument("--json", action="store_true")
    e.add_argument("--fields", action="store_true")
    e.set_defaults(func=cmd_eventlog)

    def dump_args(p):
        p.add_argument("dump", help="QEMU dump-guest-memory ELF, or a raw pmemsave file with --base")
        p.add_argument("--base", type=_int, default=None, help="physical address of a raw file's first byte")

    def paging_args(p):
        p.add_argument("--cr3", type=_int, default=None, help="default: the first CPU's CR3 from the dump")
        p.add_argument("--la57", dest="la57", action="store_true", default=None, help="5-level paging")
        p.add_argument("--no-la57", dest="la57", action="store_false", help="4-level paging")
        p.add_argument("--maxphyaddr", type=int, default=52)
        p.add_argument("--tdx-shared-bit", type=int, default=None, metavar="BIT", help="GPAW-1: 47 or 51")
        p.add_argument("--sev-c-bit", type=int, default=None, metavar="BIT", help="CPUID 0x8000001F EBX[5:0]")
        p.add_argument("--no-nxe", action="store_true", help="EFER.NXE clear: bit 63 is reserved")

    d = sub.add_parser("dump", help="find and decode the firmware's structures in a memory dump")
    dump_args(d)
    d.add_argument("--image", help="the firmware image (flash is not in a dump; names loaded images)")
    d.add_argument("--json", action="store_true")
    d.add_argument("--fields", action="store_true")
    d.set_defaults(func=cmd_dump)

    pg = sub.add_parser("pages", help="walk the page tables in a memory dump")
    dump_args(pg)
    paging_args(pg)
    pg.add_argument("--merged", action="store_true", help="with --json: ranges instead of every leaf")
    pg.add_argument("--leaves", action="store_true", help="print every leaf instead of merged ranges")
    pg.add_argument("--tables", action="store_true", help="also print the tables themselves, level by level")
    pg.add_argument("--json", action="store_true")
    pg.set_defaults(func=cmd_pages)

    t = sub.add_parser("translate", help="translate a virtual address through a dump's page tables")
    dump_args(t)
    t.add_argument("va", type=_int)
    paging_args(t)
    t.set_defaults(func=cmd_translate)

    from inspector.live.script import add_live_arguments

    add_live_arguments(sub)  # qemu IMAGE ..., attach HOST:PORT --image IMAGE ...

    rp = sub.add_parser("replay", help="show a recorded live session (fwinspect qemu --record FILE) offline")
    rp.add_argument("file")
    rp.add_argument("--json", action="store_true", help="print the recorded stops as JSON lines, no app")
    rp.set_defaults(func=cmd_replay)

    o = sub.add_parser("open", help="open the app on a source (the default command)")
    o.add_argument("source")
    o.set_defaults(func=cmd_open)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 (argparse has no API)
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        argv.insert(0, "open")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as e:
        print(f"fwinspect: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:
        print(f"fwinspect: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - a bug of ours: one line for users, the traceback on request
        if os.environ.get("FWINSPECT_DEBUG"):
            raise
        print(f"fwinspect: internal error ({e.__class__.__name__}: {e}); FWINSPECT_DEBUG=1 shows the "
              f"traceback: please report it with the input", file=sys.stderr)
        return EXIT_PROBLEMS


# Commands that decode and exit: they skip the garbage collector and the interpreter's teardown.
ONE_SHOT = {"fd", "mrtd", "extract", "hob", "eventlog", "acpi", "dump", "pages", "translate"}


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
    sys.exit(main())
