"""`fwinspect qemu` and `fwinspect attach`: live sessions from the command line.

    fwinspect qemu IMAGE [--vars VARS] [--memory 256M] [--smp N] [--tpm] [--backend rsp|gdb] [--until PHASE] [--json]
                   [--break SPEC]... [--symbols DIR] [--gdb-script FILE] [-- QEMU-ARGS...]
    fwinspect attach HOST:PORT --image IMAGE [--backend rsp|gdb] [--until PHASE] [--json] [--break SPEC]...

--break SPEC (0xADDR, MODULE, MODULE+OFFSET; MODULE an FFS UI name or file GUID; with --symbols also
FUNCTION or MODULE!FUNCTION) sets breakpoints
first; without --until the session continues to the first one and prints that stop. --symbols
names function and line at every stop from an edk2 build's .debug files; --gdb-script writes
`add-symbol-file` lines for the loaded images when the session ends.

With --until the session runs to that boot phase (inspector.live.session), prints the Stop (JSON
with --json: phase, mode, linear_rip, registers, disassembly and the decoded handoff tree) and
exits, ending the QEMU it started. Without it, the live screen opens (views.app.run_live) when it
exists, else the current stop is printed. Exit status (inspector.cli): 0 success, 1 the phase
was not reached or the target died, 2 usage errors, 3 an internal error; errors are reported by
the CLI's one handler (`inspector.cli.dispatch`).

Both read the handoffs the image has before anything starts (inspector.bootphases): --until a
phase the image does not have (pei-core or dxe-ipl of a PEI-less TDVF Config-B image) is a usage
error, exit 2, and QEMU is not started. A PEI-less image gets a one-line note saying so. Config-B
still boots under a QEMU without TDX: outside a TD its SEC and PeilessStartup take their non-TD path
(OvmfPkg/IntelTdx/Sec/SecMain.c measures and processes the TD HOB only when CcProbe() reports TDX;
OvmfPkg/Library/PeilessStartupLib/PeilessStartup.c builds its own HOB list when TdIsEnabled() is
FALSE; OvmfPkg/IntelTdx/README.md: "The final binary can run on TDX/normal OVMF").

inspector/cli.py's command table adds these with add_qemu_arguments and add_attach_arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from inspector.cli import EXIT_OK, EXIT_PROBLEMS, Parser, UsageError, dispatch, load_image_arg
from inspector.live.session_api import PHASES, Stop
from inspector.options import positive_seconds

# Run-to-phase budget: DXE core is ~2.5 s and BDS ~5 s into a TCG boot of OVMF 2022.11 under QEMU 7.2
# (measured here); a loaded 2-core machine, a TPM or a 4 MiB Secure Boot image take longer.
DEFAULT_UNTIL_TIMEOUT = 120.0


def add_qemu_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="firmware image (OVMF.fd, OVMF_CODE*.fd)")
    p.add_argument("--vars", help="VARS template for a split CODE image (a private copy is used)")
    p.add_argument("--memory", default="256M", help="guest RAM, QEMU's -m (default 256M)")
    p.add_argument("--tpm", action="store_true", help="attach a swtpm TPM 2.0 (tpm-crb)")
    p.add_argument("--smp", type=_vcpus, metavar="N", help="vCPUs (QEMU's -smp N; `-- -smp N` works too)")
    _common(p)
    # REMAINDER takes everything after IMAGE (argparse cannot mix a `--` tail with options that
    # follow a positional); run_qemu parses our options out of it and keeps what follows `--`.
    p.add_argument("qemu_args", nargs=argparse.REMAINDER, help="after --: extra qemu-system-x86_64 arguments")
    p.set_defaults(func=run_qemu)


_FLAGS = {"--tpm", "--json"}
_OUR_OPTIONS = _FLAGS | {"--vars", "--memory", "--smp", "--backend", "--until", "--timeout", "--record", "--break",
                         "--symbols", "--gdb-script"}
# QEMU's own bound on -smp for x86 machines is the machine's max_cpus; ours keeps the number sane.
MAX_SMP = 1024


def _vcpus(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of vCPUs") from None
    if not 1 <= n <= MAX_SMP:
        raise argparse.ArgumentTypeError(f"{n}: between 1 and {MAX_SMP} vCPUs")
    return n


def split_qemu_args(args: argparse.Namespace) -> argparse.Namespace:
    """Move our options that argparse left in the REMAINDER back into `args`; the rest after `--`
    becomes args.qemu_args. Raises ValueError on a bad option."""
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--vars")
        p.add_argument("--memory")
        p.add_argument("--smp", type=_vcpus)
        p.add_argument("--tpm", action="store_true")
        _common(p)
    return split_remainder(args, "fwinspect qemu", _OUR_OPTIONS, _FLAGS, options)


def split_remainder(args: argparse.Namespace, prog: str, names: set[str], flags: set[str],
                    add_options: Callable[[argparse.ArgumentParser], None]) -> argparse.Namespace:
    """For a command whose last positional is an argparse REMAINDER (`IMAGE [options] [-- QEMU-ARGS]`):
    the options `names` (of which `flags` take no value; `add_options` declares them) found in the
    remainder go into `args`, and what follows `--` becomes args.qemu_args."""
    rest = list(getattr(args, "qemu_args", None) or [])
    if "--" in rest:
        cut = rest.index("--")
        ours, extra = rest[:cut], rest[cut + 1:]
    else:
        # argparse drops a `--` that directly follows IMAGE: then our options come first and the
        # first token that is not one of them starts the QEMU arguments.
        cut, i = len(rest), 0
        while i < len(rest):
            name = rest[i].split("=", 1)[0]
            if name not in names:
                cut = i
                break
            i += 1 if name in flags or "=" in rest[i] else 2
        ours, extra = rest[:cut], rest[cut:]
    if ours:
        # SUPPRESS: an option not given stays out of the namespace, so no default overrides `args`.
        p = Parser(prog=prog, add_help=False, exit_on_error=False, argument_default=argparse.SUPPRESS)
        add_options(p)
        try:
            parsed, unknown = p.parse_known_args(ours)
        except argparse.ArgumentError as e:
            raise ValueError(str(e)) from None
        if unknown:
            raise ValueError(f"unrecognized arguments: {' '.join(unknown)} (QEMU arguments go after --)")
        for k, v in vars(parsed).items():
            if v is not None:
                setattr(args, k, v)
    args.qemu_args = extra
    return args


def add_attach_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="HOST:PORT of a gdbstub (QEMU -gdb tcp::PORT), or a unix socket path")
    p.add_argument("--image", required=True, help="the firmware image the guest runs (for the handoff points)")
    _common(p)
    p.set_defaults(func=run_attach)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("rsp", "gdb"), default="rsp", help="gdbstub client (default rsp)")
    names = [getattr(phase, "value", phase) for phase in PHASES]
    p.add_argument("--until", choices=names, metavar="PHASE",
                   help=f"run to this boot phase, print the stop and exit ({', '.join(names)})")
    p.add_argument("--timeout", type=positive_seconds, default=DEFAULT_UNTIL_TIMEOUT,
                   help="seconds allowed for --until")
    p.add_argument("--json", action="store_true", help="print the stop as JSON")
    p.add_argument("--record", metavar="FILE",
                   help="keep every stop (registers, decoded trees and their bytes) for `fwinspect replay FILE`")
    p.add_argument("--break", dest="breaks", action="append", metavar="SPEC",
                   help="breakpoint: 0xADDR, MODULE or MODULE+OFFSET (FFS UI name or file GUID), or with --symbols "
                        "FUNCTION or MODULE!FUNCTION (repeatable)")
    p.add_argument("--symbols", metavar="DIR",
                   help="the build's .debug files: an edk2 build folder (Build/<Platform>/<TARGET>_<TOOLCHAIN>), "
                        "its <ARCH>/ folder, or a flat folder of .debug files (DEBUG.tar.xz)")
    p.add_argument("--gdb-script", metavar="FILE", help="write add-symbol-file lines for the loaded images at exit")


def add_live_arguments(sub) -> None:
    """Add the `qemu` and `attach` subcommands to an argparse subparsers object (for callers that
    build their own parser; the CLI adds each from its command table)."""
    add_qemu_arguments(sub.add_parser("qemu", help="boot an image in QEMU paused at reset and debug it by phase"))
    add_attach_arguments(sub.add_parser("attach", help="debug a guest on a running gdbstub by phase"))


# ---- running ---------------------------------------------------------------------------------------

def _err(msg: str) -> None:
    print(f"fwinspect: {msg}", file=sys.stderr)


def run_qemu(args: argparse.Namespace) -> int:
    return dispatch(_run_qemu, args)


def check_image_phases(image, until: str | None, qemu: bool) -> None:
    """Before a session starts: --until must name a handoff the image has (else UsageError, so no
    QEMU is started for a phase that cannot come); a PEI-less image gets a note on stderr. `qemu`:
    the guest is ours (QEMU 7.2 here has no TDX, so it is not a TD)."""
    from inspector.bootphases import PEILESS_SEC_GUID, scan

    found = scan(image.root, len(image.data))
    phases = ", ".join(found.phases())
    name = Path(str(image.path)).name
    if found.peiless:
        what = ("TDVF Config-B (PEI-less: SEC's PeilessStartup hands off to the DXE core)"
                if found.sec.ffs.get("Name") == PEILESS_SEC_GUID else "PEI-less (no PEI_CORE file)")
    if until and until not in found.phases():
        raise UsageError(f"{name} has no {until} handoff" + (f": it is {what}" if found.peiless else "")
                         + f"; its handoffs: {phases}")
    if found.peiless:
        guest = "This QEMU has no TDX, so it boots as a normal guest" if qemu else "Outside a TD it boots as a normal guest"
        _err(f"note: {name} is {what}; its handoffs: {phases}. {guest}: SEC's non-TD path (no TD HOB, no "
             f"TDCALLs), and the DXE core loads NCCFV's drivers too")


def _run_qemu(args: argparse.Namespace) -> int:
    from inspector.live.qemu import QemuError, QemuProcess
    from inspector.live.target import TargetError
    try:
        split_qemu_args(args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    smp = getattr(args, "smp", None)
    if smp is not None and any(a in ("-smp", "--smp") for a in args.qemu_args):
        raise UsageError("--smp and `-- -smp` both given: use one")
    image = load_image_arg(args.image)
    check_image_phases(image, args.until, qemu=True)
    qemu = QemuProcess(args.image, vars=args.vars, memory=args.memory, tpm=args.tpm, extra_args=args.qemu_args,
                       smp=smp)
    try:
        qemu.start()
    except QemuError as e:
        _err(str(e))
        return EXIT_PROBLEMS
    try:
        target = qemu.attach(args.backend)
    except (TargetError, OSError) as e:
        qemu.close()
        _err(f"attaching to QEMU's gdbstub failed: {e}")
        return EXIT_PROBLEMS
    return _drive(target, image, qemu, args)


def parse_address(text: str) -> tuple[str, int] | str:
    """HOST:PORT (or :PORT for localhost) -> (host, port); anything else is a unix socket path."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return (host or "127.0.0.1", int(port))
    if "/" in text:
        return text
    raise ValueError(f"{text!r} is not HOST:PORT or a socket path")


def run_attach(args: argparse.Namespace) -> int:
    return dispatch(_run_attach, args)


def _run_attach(args: argparse.Namespace) -> int:
    from inspector.live import attach
    from inspector.live.target import TargetError
    try:
        address = parse_address(args.address)
    except ValueError as e:
        raise UsageError(str(e)) from None
    image = load_image_arg(args.image)
    check_image_phases(image, args.until, qemu=False)
    try:
        target = attach(address, args.backend)
    except (TargetError, OSError) as e:
        _err(f"attaching to {args.address} failed: {e}")
        return EXIT_PROBLEMS
    return _drive(target, image, None, args)


def _drive(target, image, qemu, args) -> int:
    from inspector.live.session import Session
    from inspector.live.target import TargetError
    symbols = None
    if getattr(args, "symbols", None):
        from inspector.live.symbols import SymbolIndex

        if not Path(args.symbols).is_dir():
            target.close()
            if qemu is not None:
                qemu.close()
            raise UsageError(f"--symbols {args.symbols}: not a directory")
        symbols = SymbolIndex(args.symbols)
    live = Session(target, image, qemu, symbols=symbols)
    session = live
    if getattr(args, "record", None):
        from inspector.live.record import Recorder

        session = Recorder(session, args.record)
    try:
        for spec in getattr(args, "breaks", None) or ():
            try:
                bp = live.add_breakpoint(spec)
            except ValueError as e:
                raise UsageError(str(e)) from None
            except TargetError as e:
                _err(f"breakpoint {spec}: the target refused it: {e}")
                return EXIT_PROBLEMS
            if bp.pending:
                print(f"breakpoint {spec}: pending until {bp.module} is loaded", file=sys.stderr)
        if getattr(args, "breaks", None) and not args.until:
            session.current()
            stop = session.cont(timeout=args.timeout)
            _print(stop, args.json)
            hit = stop.reason == "breakpoint" and not _dead(session)
            if not hit:
                _err("no breakpoint hit: " + ("; ".join(stop.problems) or f"stopped in {stop.phase}"))
            return EXIT_OK if hit else EXIT_PROBLEMS
        return _run(session, args)
    finally:
        if getattr(args, "gdb_script", None) and not live.dead:
            try:
                Path(args.gdb_script).write_text(live.gdb_script())
            except (OSError, TargetError) as e:
                _err(f"--gdb-script {args.gdb_script}: {e}")
        session.close()


def _run(session, args) -> int:
    if args.until and getattr(args, "record", None):
        # Recording: stop at every handoff on the way, so the replay walks the boot phase by phase.
        import time

        deadline = time.monotonic() + args.timeout
        stop = session.current()
        for _ in PHASES:
            if stop.handoff == args.until or stop.phase == args.until or stop.problems:
                break
            stop = session.next_handoff(timeout=max(1.0, deadline - time.monotonic()))
        if stop.handoff != args.until:
            stop = session.run_to(args.until, timeout=max(1.0, deadline - time.monotonic()))
        _print(stop, args.json)
        reached = stop.handoff == args.until and not _dead(session)
        if not reached:
            _err(f"{args.until} not reached: " + ("; ".join(stop.problems) or f"stopped in {stop.phase}"))
        return EXIT_OK if reached else EXIT_PROBLEMS
    if args.until:
        stop = session.run_to(args.until, timeout=args.timeout)
        _print(stop, args.json)
        reached = stop.handoff == args.until and not _dead(session)
        if not reached:
            _err(f"{args.until} not reached: " + ("; ".join(stop.problems) or f"stopped in {stop.phase}"))
        return EXIT_OK if reached else EXIT_PROBLEMS
    if args.json:  # a script: no app, just where the guest is
        _print(session.current(), True)
        return EXIT_PROBLEMS if _dead(session) else EXIT_OK
    from inspector.cli import start_app

    start_app("live", session, f"{Path(args.image).name if getattr(args, 'image', None) else 'guest'} (live)")
    return EXIT_PROBLEMS if _dead(session) else EXIT_OK


def _dead(session) -> bool:
    return bool(getattr(session, "dead", False) or getattr(getattr(session, "session", None), "dead", False))


def _print(stop: Stop, as_json: bool) -> None:
    if as_json:
        write_stop_json(stop)
        return
    from inspector.render import print_tree
    print(f"stop {stop.index} ({stop.reason}{f' on CPU {stop.cpu}' if len(stop.cpus) > 1 else ''}): "
          f"phase {stop.phase}, {stop.mode}, RIP 0x{stop.linear_rip:x}" + (f" in {stop.module}" if stop.module else ""))
    regs = stop.registers
    names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip", "eflags", "cr0", "cr3", "cr4", "efer",
             "cs", "cs_base"]
    print("  " + "  ".join(f"{n}={regs[n]:#x}" for n in names if n in regs))
    for addr, text in stop.disassembly:
        print(f"  {addr:#x}: {text}")
    if len(stop.cpus) > 1:
        for c in stop.cpus:
            mark = "*" if c.index == stop.cpu else " "
            print(f"  CPU {c.index}{mark} {c.state:<13} {c.mode:<7} RIP 0x{c.linear_rip:x} {c.phase}"
                  + (f" in {c.module}" if c.module else ""))
    for p in stop.problems:
        print(f"  problem: {p}")
    if stop.tree is not None:
        print_tree(stop.tree)


def write_stop_json(stop: Stop, sink=None) -> None:
    """One stop as one JSON line (Stop.to_json's shape), its tree streamed by the JSON writer
    (iterative: a recorded tree can nest deep). Into `sink` when given (the caller closes it)."""
    import dataclasses

    from inspector.render import Sink, write_json

    own = sink is None
    sink = sink or Sink()
    head = json.dumps(dataclasses.replace(stop, tree=None).to_json(), separators=(",", ":"))
    if stop.tree is None:
        sink.write(head + "\n")
    else:
        cut = head.rindex('"tree":null') + len('"tree":')  # to_json puts "problems" after "tree"
        if sink.write(head[:cut]):
            write_json(stop.tree, sink=sink, end=head[cut + len("null"):] + "\n")
    if own:
        sink.close()
