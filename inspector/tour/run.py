"""`fwinspect tour`: a guided walkthrough of a boot, told with this machine's own values.

    fwinspect tour IMAGE [--vars VARS] [--memory M] [--tpm] [--backend rsp|gdb] [--timeout S]
                         [--record FILE] [--json | --export FILE.md] [-- QEMU-ARGS...]
    fwinspect tour IMAGE --offline [--cc-eventlog CCEL [--quote QUOTE]] [--json | --export FILE.md]
    fwinspect tour --replay FILE [IMAGE] [--cc-eventlog CCEL [--quote QUOTE]] [--json | --export FILE.md]

Live: boots IMAGE in QEMU as `fwinspect qemu` does (inspector/live/script.py), takes the reset
stop, walks the reset vector's mode switches (inspector.tour.modes), then runs to each handoff the
image has, in boot order, up to BDS. The chapters: the offline ones (inspector.tour.offline), the
mode switches and one per handoff stop (inspector.tour.stops). A chapter module that is not there
(or lacks its function) gives one line saying that chapter is not available.

--record FILE keeps every stop for `fwinspect tour --replay FILE` (and `fwinspect replay FILE`);
the recording's header also names the image and its SHA-256, so the replay tells the offline
chapters too when the same image is still there. A replay gives the same chapters as the boot
it recorded, without QEMU.

A TDVF image also gets "mrtd-pages" (MRTD built page by page) after its "mrtd" chapter;
--cc-eventlog CCEL adds "rtmr0" to "rtmr3" (the CC event log replayed event by event,
inspector.tour.tdx) after them, and --quote QUOTE compares each RTMR with a TDX quote's.

Output: --json prints the chapters (Chapter.to_json); --export FILE.md writes a Markdown handout;
otherwise the app's tour screen opens (views.tour_app), or the chapters are printed as text when
the app has no tour screen.

Exit status: 0 the tour reached BDS (offline: the image decoded cleanly); 1 it stopped before (a
timeout, the guest died, a handoff not reached: the last chapter, "stopped", says why), a
recording cut short or from another version (the chapters up to where it is readable), or the
image had problems; 2 usage errors and a file that is not a recording at all.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from inspector.cli import EXIT_OK, EXIT_PROBLEMS, Parser, UsageError, load_image_arg
from inspector.options import positive_seconds
from inspector.tour.model import Chapter, Writer, chapters_json

# The whole tour's budget, reset to BDS: `fwinspect qemu --until bds` allows the same
# (inspector/live/script.py DEFAULT_UNTIL_TIMEOUT: BDS is ~5 s into a TCG boot, more when loaded).
DEFAULT_TIMEOUT = 120.0
# Where the tour ends: BdsDxe's entry, the last handoff of every image (inspector.bootphases).
LAST = "bds"
# The recording header's key for the tour's own facts (the image it booted); the recording
# reader ignores keys it does not know (inspector/live/record.py _Reader._header).
HEADER_KEY = "tour"
# The header is one short JSON line; more than this is not a header this module wrote.
MAX_HEADER_BYTES = 64 << 10

_FLAGS = {"--tpm", "--json", "--offline"}
_OPTIONS = _FLAGS | {"--vars", "--memory", "--backend", "--timeout", "--record", "--replay", "--export",
                     "--cc-eventlog", "--quote"}
# A CC event log is a few KiB to 64 KiB (TDVF reserves 64 KiB, edk2 PcdTcgLogAreaMinLen; GCE 256 KiB); a
# TDX quote v4 with its certification chain about 5-8 KiB. Larger files are not what these options take.
MAX_CC_EVENTLOG = 16 << 20
MAX_QUOTE = 1 << 20


def add_tour_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="?", help="firmware image (OVMF.fd, OVMF_CODE*.fd); with --replay, optional")
    _options(p)
    # As `fwinspect qemu`: REMAINDER takes everything after IMAGE; our options are parsed out of it
    # and what follows `--` goes to QEMU (inspector/live/script.py split_qemu_args).
    p.add_argument("qemu_args", nargs=argparse.REMAINDER, help="after --: extra qemu-system-x86_64 arguments")
    p.set_defaults(func=cmd_tour)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offline", action="store_true", help="only the chapters told from the image: no QEMU")
    p.add_argument("--replay", metavar="FILE", help="tell the tour of a recorded session (--record), no QEMU")
    p.add_argument("--record", metavar="FILE", help="record the boot for `fwinspect tour --replay FILE`")
    p.add_argument("--json", action="store_true", help="print the chapters as JSON")
    p.add_argument("--export", metavar="FILE.md", help="write the chapters as a Markdown handout")
    p.add_argument("--cc-eventlog", metavar="CCEL", help="a CC event log (TDX): tell RTMR0-3 event by event")
    p.add_argument("--quote", metavar="QUOTE", help="with --cc-eventlog: compare each RTMR with a TDX quote v4's")
    p.add_argument("--vars", help="VARS template for a split CODE image (a private copy is used)")
    p.add_argument("--memory", default="256M", help="guest RAM, QEMU's -m (default 256M)")
    p.add_argument("--tpm", action="store_true", help="attach a swtpm TPM 2.0 (tpm-crb)")
    p.add_argument("--backend", choices=("rsp", "gdb"), default="rsp", help="gdbstub client (default rsp)")
    p.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT,
                   help=f"seconds allowed for the boot to BDS (default {DEFAULT_TIMEOUT:g})")


def split_args(args: argparse.Namespace) -> argparse.Namespace:
    """Our options that argparse left in the REMAINDER back into `args`; what follows `--` becomes
    args.qemu_args. Raises ValueError on a bad option."""
    from inspector.live.script import split_remainder

    return split_remainder(args, "fwinspect tour", _OPTIONS, _FLAGS, _options)


# ---- the command -----------------------------------------------------------------------------------

def cmd_tour(args: argparse.Namespace) -> int:
    try:
        split_args(args)
    except ValueError as e:
        raise UsageError(f"tour: {e}") from None
    if args.json and args.export:
        raise UsageError("tour: --json and --export are two outputs; give one")
    cc, cc_code = _cc_log(args)
    if args.replay:
        if args.offline or args.record:
            raise UsageError("tour: --replay reads a recording; --offline and --record do not go with it")
        if args.qemu_args:
            raise UsageError(f"tour: {' '.join(args.qemu_args)}: an unknown option, or QEMU arguments, which "
                             f"--replay does not take (it starts no QEMU)")
        chapters, stops, image, code = replay_tour(args.replay, args.image, cc)
    elif not args.image:
        raise UsageError("tour: give an IMAGE (or --replay FILE)")
    elif args.offline:
        if args.record:
            raise UsageError("tour: --offline starts no QEMU: there is no boot to --record")
        if args.qemu_args:
            raise UsageError(f"tour: {' '.join(args.qemu_args)}: an unknown option, or QEMU arguments, which "
                             f"--offline does not take (it starts no QEMU)")
        from inspector.render import has_problems
        image = load_image_arg(args.image)
        chapters, stops = tour_offline_chapters(image, cc), []
        code = EXIT_PROBLEMS if has_problems(image.root) else EXIT_OK
    else:
        chapters, stops, image, code = live_tour(args, cc)
    return output(chapters, stops, image, args, max(code, cc_code))


def _cc_log(args):
    """The CC event log of --cc-eventlog (with --quote compared), and the exit status it adds: 1 when
    the log or the quote has problems or the quote's RTMRs differ from the replay."""
    if getattr(args, "quote", None) and not getattr(args, "cc_eventlog", None):
        raise UsageError("tour: --quote compares the RTMRs of a CC event log: give --cc-eventlog too")
    if not getattr(args, "cc_eventlog", None):
        return None, EXIT_OK
    from inspector.cli import _read_file
    from inspector.render import has_problems
    from inspector.tour.tdx import load_cc_log

    data = _read_file(args.cc_eventlog, MAX_CC_EVENTLOG, "--cc-eventlog")
    quote = _read_file(args.quote, MAX_QUOTE, "--quote") if args.quote else None
    cc = load_cc_log(data, Path(args.cc_eventlog).name, quote, Path(args.quote).name if args.quote else "quote")
    bad = has_problems(cc.root) or (cc.comparison is not None and not cc.comparison.matches)
    return cc, EXIT_PROBLEMS if bad else EXIT_OK


def tour_offline_chapters(image, cc=None) -> list[Chapter]:
    """The offline chapters (inspector.tour.offline), then for a TDVF image "mrtd-pages" after "mrtd",
    then with a CC event log the RTMR chapters (inspector.tour.tdx) after those."""
    from inspector.tour.offline import offline_chapters

    chapters = offline_chapters(image) if image is not None else []
    if image is not None:
        # "application-processors" (inspector.tour.aps) before the closing "config-a-vs-b"
        fn = _function("inspector.tour.aps", "aps_offline_chapter")
        aps = fn(image) if callable(fn) else unavailable(
            "application-processors", "offline", "The chapter on the application processors", fn)
        names = [c.chapter for c in chapters]
        chapters.insert(names.index("config-a-vs-b") if "config-a-vs-b" in names else len(chapters), aps)
    return insert_tdx_chapters(chapters, image, cc)


def insert_tdx_chapters(chapters: list[Chapter], image, cc=None) -> list[Chapter]:
    """`chapters` with "mrtd-pages" after "mrtd" (when `image` has TDX metadata) and the RTMR chapters
    of `cc` after the TDX ones, else after the last offline chapter."""
    names = [c.chapter for c in chapters]
    meta = image.tdx_metadata() if image is not None else None
    if meta is not None and "mrtd" in names:
        fn = _function("inspector.tour.tdx", "mrtd_pages_chapter")
        extra = fn(image, meta, image.path.name) if callable(fn) else unavailable(
            "mrtd-pages", "offline", "The chapter on MRTD page by page", fn)
        chapters.insert(names.index("mrtd") + 1, extra)
        names = [c.chapter for c in chapters]
    if cc is not None:
        fn = _function("inspector.tour.tdx", "rtmr_chapters")
        tree = None
        if image is not None and callable(fn):
            # The tour app shows the image's tree for the offline chapters: the log goes under it, so a
            # value's path (from the image's root) reaches its event there, and `/` finds every event.
            if cc.root not in image.root.children:
                image.root.append(cc.root)
            tree = image.root
        rtmr = list(fn(cc, tree)) if callable(fn) else [unavailable("rtmr", "offline", "The chapters on the RTMRs", fn)]
        at = next((i + 1 for i in range(len(names) - 1, -1, -1)
                   if names[i] in ("tdx-metadata", "mrtd", "mrtd-pages")), None)
        if at is None:
            at = next((i for i, c in enumerate(chapters) if c.phase != "offline"), len(chapters))
        chapters[at:at] = rtmr
    return chapters


def output(chapters: list[Chapter], stops: list, image, args, code: int) -> int:
    if args.json:
        print(json.dumps(chapters_json(chapters), indent=1))
        return code
    if args.export:
        try:
            Path(args.export).write_text(markdown(chapters), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--export {args.export}: {e.strerror or e}") from None
        print(f"{len(chapters)} chapters written to {args.export}")
        return code
    from inspector.cli import start_app

    # The app needs a terminal; printed to a pipe or a file, the tour is its chapters as text.
    app_code = start_app("tour", chapters, stops, image) if sys.stdout.isatty() else None
    if app_code is None:
        print(text(chapters), end="")
        return code
    return max(code, app_code)


# ---- live ------------------------------------------------------------------------------------------

def live_tour(args, cc=None) -> tuple[list[Chapter], list, object, int]:
    from inspector.live.qemu import QemuError, QemuProcess
    from inspector.live.script import check_image_phases
    from inspector.live.session import Session
    from inspector.live.target import TargetError
    image = load_image_arg(args.image)
    check_image_phases(image, None, qemu=True)   # a PEI-less image gets its note on stderr
    chapters = tour_offline_chapters(image, cc)
    if args.record:
        try:                                 # before QEMU starts: a path that cannot be written is a usage error
            Path(args.record).open("w").close()
        except OSError as e:
            raise UsageError(f"--record {args.record}: {e.strerror or e}") from None
    qemu = QemuProcess(args.image, vars=args.vars, memory=args.memory, tpm=args.tpm, extra_args=args.qemu_args)
    try:
        qemu.start()
    except QemuError as e:
        return chapters + [stopped_chapter(None, f"QEMU did not start: {e}")], [], image, EXIT_PROBLEMS
    try:
        target = qemu.attach(args.backend)
    except (TargetError, OSError) as e:
        qemu.close()
        return (chapters + [stopped_chapter(None, f"attaching to QEMU's gdbstub failed: {e}")], [], image,
                EXIT_PROBLEMS)
    live = Session(target, image, qemu)
    session = TourRecorder(live, args.record, image) if args.record else live
    try:
        stops = boot_stops(session, args.timeout)
    finally:
        session.close()
    boot, code = boot_chapters(stops, image)
    return chapters + boot, stops, image, code


def boot_stops(session, timeout: float) -> list:
    """The reset stop, the mode-switch stops, then one stop per handoff up to BDS (or the stop where
    the boot went no further)."""
    deadline = time.monotonic() + timeout
    stops = [session.current()]
    walk = _function("inspector.tour.modes", "walk_mode_switches")
    if callable(walk):
        walked = walk(session, max(1.0, deadline - time.monotonic())) or []
        for problem in getattr(walked, "problems", None) or []:
            print(f"fwinspect tour: note: mode switches: {problem}", file=sys.stderr)
        for stop in walked:
            record = getattr(session, "record", None)
            if record is not None:
                record(stop)                 # whatever way the walk ran the guest, the recording keeps it
            if all(stop.index != s.index for s in stops):
                stops.append(stop)
    phases = list(session_phases(session))
    for phase in phases[phases.index("reset") + 1 if "reset" in phases else 0:]:
        last = stops[-1]
        if _dead(session) or last.problems and last.handoff is None:
            break
        stop = session.next_handoff(timeout=max(1.0, deadline - time.monotonic()))
        stops.append(stop)
        if stop.handoff != phase:
            break
    return stops


def session_phases(session) -> list[str]:
    inner = getattr(session, "session", session)
    return [str(p) for p in inner.handoffs.phases()]


def _dead(session) -> bool:
    return bool(getattr(session, "dead", False) or getattr(getattr(session, "session", None), "dead", False))


# ---- replay ----------------------------------------------------------------------------------------

def replay_tour(path: str, image_arg: str | None, cc=None) -> tuple[list[Chapter], list, object, int]:
    from inspector.live.record import RecordingError, iter_recording

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file")
    stops: list = []
    broken: RecordingError | None = None
    try:
        for stop in iter_recording(p):
            stops.append(stop)
    except RecordingError as e:
        if e.line <= 1 and not _is_recording(_header(p)):
            raise UsageError(f"tour --replay: {e}") from None   # not a recording at all
        broken = e          # cut short, malformed later, or a recording of another version
        print(f"fwinspect tour: {e}", file=sys.stderr)
    chapters: list[Chapter] = []
    image, note = _replay_image(p, image_arg)
    if image is not None:
        chapters = tour_offline_chapters(image, cc)
    else:
        chapters = insert_tdx_chapters([unavailable("offline", "offline", "The chapters on the flash image", note)],
                                       None, cc)
    if not stops:
        chapters.append(stopped_chapter(None, f"{broken}" if broken else "the recording holds no stops"))
        return chapters, stops, image, EXIT_PROBLEMS
    boot, code = boot_chapters(stops, image, cut=str(broken) if broken else None)
    return chapters + boot, stops, image, EXIT_PROBLEMS if broken else code


def _header(path: Path) -> dict | None:
    """The recording's first line as a dict, or None."""
    with path.open("rb") as f:
        raw = f.readline(MAX_HEADER_BYTES + 1)
    try:
        header = json.loads(raw) if len(raw) <= MAX_HEADER_BYTES else None
    except (ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _is_recording(header: dict | None) -> bool:
    """A recording's header, whatever its version (inspector/live/record.py FORMAT)."""
    from inspector.live.record import FORMAT

    return header is not None and header.get("format") == FORMAT


def _replay_image(path: Path, image_arg: str | None):
    """The image the recording was made with: IMAGE when given, else the one its header names when it
    is still there with the same SHA-256. (image, None) or (None, why not)."""
    if image_arg:
        return load_image_arg(image_arg), None
    tour = None
    header = _header(path)
    if isinstance(header, dict) and isinstance(header.get(HEADER_KEY), dict):
        tour = header[HEADER_KEY]
    where, digest = (tour or {}).get("image"), (tour or {}).get("sha256")
    if not isinstance(where, str) or not isinstance(digest, str):
        return None, ("the recording does not name its image (give it: fwinspect tour --replay FILE IMAGE)")
    ip = Path(where)
    if not ip.is_file():
        return None, f"the recorded image {where} is not there (give it: fwinspect tour --replay FILE IMAGE)"
    from inspector.imagefile import ImageError, read_image

    try:
        data = read_image(ip)
    except ImageError as e:
        return None, f"the recorded image cannot be read: {e}"
    if hashlib.sha256(data).hexdigest() != digest:
        return None, f"{where} has changed since the recording (its SHA-256 differs)"
    from inspector.image import load_image

    return load_image(ip, data), None


def TourRecorder(session, path: str, image):
    """A Recorder (inspector.live.record) whose header also names the image and its SHA-256."""
    from inspector.live.record import Recorder

    extra = {HEADER_KEY: {"image": str(Path(image.path).resolve()), "sha256": hashlib.sha256(image.data).hexdigest()}}

    class _TourRecorder(Recorder):
        def _write(self, obj: dict) -> None:
            if "format" in obj and HEADER_KEY not in obj:
                obj = {**obj, **extra}
            super()._write(obj)

    return _TourRecorder(session, path)


# ---- chapters from stops ---------------------------------------------------------------------------

def _function(module: str, name: str):
    """`module.name`, or a one-line reason it is not there."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        return f"{module} cannot be imported ({e})"
    fn = getattr(mod, name, None)
    return fn if callable(fn) else f"{module} has no {name}"


def _literal(text: str) -> str:
    """`text` as a literal part of a Writer.say template (no holes)."""
    return text.replace("{", "{{").replace("}", "}}")


def unavailable(chapter: str, phase: str, what: str, why: str) -> Chapter:
    w = Writer(chapter, phase, f"{what}: not available")
    w.say(_literal(f"{what}: not available: {why.rstrip('.')}."))
    return w.done()


def boot_chapters(stops: list, image, cut: str | None = None) -> tuple[list[Chapter], int]:
    """The mode-switch chapter and one chapter per handoff stop, then "stopped" when the stops end
    before BDS (or `cut` says the recording was cut short). Told the same live and replayed."""
    out: list[Chapter] = []
    stop_fn = _function("inspector.tour.stops", "stop_chapters")
    mode_fn = _function("inspector.tour.modes", "mode_chapter")
    if callable(stop_fn):
        out = list(stop_fn(stops, image))
    else:
        out = [unavailable("boot", "reset", "The chapters on the handoffs", stop_fn)]
    mode = mode_fn(stops, image) if callable(mode_fn) else unavailable(
        "to-long-mode", "reset", "The chapter on the mode switches", mode_fn)
    if mode is not None:
        at = next((i + 1 for i, c in enumerate(out) if c.phase == "reset"), 0)
        out.insert(at, mode)
    aps_fn = _function("inspector.tour.aps", "aps_boot_chapter")
    aps = aps_fn(stops, image) if callable(aps_fn) else unavailable(
        "application-processors-boot", "bds", "The chapter on the application processors at the handoffs", aps_fn)
    if aps is not None:
        # after the handoff chapters, before stop_chapters' "end" (which the closing chapter absorbs)
        at = len(out) - 1 if out and out[-1].chapter == "end" else len(out)
        out.insert(at, aps)
    last = stops[-1] if stops else None
    reached = last is not None and last.handoff == LAST
    if cut is None and reached:
        return out, EXIT_OK
    if cut is not None:
        why = f"the recording is cut short: {cut}"
    else:
        why = "; ".join(last.problems) if last is not None and last.problems else (
            f"the boot stopped in {last.phase} at 0x{last.linear_rip:x} before {LAST}" if last is not None
            else "no stop")
    # stop_chapters ends a short session with an "end" chapter naming the handoffs not reached:
    # one closing chapter says both why the tour stopped and what it did not reach.
    end = out.pop() if out and out[-1].chapter == "end" else None
    closing = stopped_chapter(last, why)
    if end is not None:
        shift = len(closing.text) + 1
        closing.text = f"{closing.text} {end.text}"
        for s, e, i in end.spans:
            v = end.values[i]
            if v not in closing.values:
                closing.values.append(v)
            closing.spans.append((s + shift, e + shift, closing.values.index(v)))
        closing.values.extend(v for v in end.values if v not in closing.values)
        closing.unexpected.extend(end.unexpected)
    out.append(closing)
    return out, EXIT_PROBLEMS


def stopped_chapter(last, why: str) -> Chapter:
    """The tour's last chapter when it ends before BDS: where the guest was and why."""
    if last is None:
        w = Writer("stopped", "unknown", "The tour stopped")
        w.say(_literal(f"The tour tells no boot: {why.rstrip('.')}."))
        return w.done()
    w = Writer("stopped", str(last.phase), "The tour stopped", root=last.tree, stop=last.index)
    w.say("The tour stopped at stop {stop_index}, in {stop_phase} at {stop_rip}: " + _literal(why.rstrip(".")) + ".", w.value("stop_index", last.index, last.tree, text=str(last.index)),
          w.value("stop_phase", str(last.phase), last.tree), w.value("stop_rip", last.linear_rip, last.tree,
                                                                     text=f"0x{last.linear_rip:x}"))
    w.out.unexpected.append(why)
    return w.done()


# ---- text and Markdown -----------------------------------------------------------------------------

def text(chapters: list[Chapter]) -> str:
    import textwrap

    lines = []
    for c in chapters:
        where = c.phase + (f", stop {c.stop}" if c.stop is not None else "")
        lines += [f"== {c.title} ({c.chapter}; {where})", *textwrap.wrap(c.text, 100)]
        if c.command:
            lines.append(f"   reproduce: {c.command}")
        if c.try_this:
            lines.append(f"   in the app: {', '.join(c.try_this)}")
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown(chapters: list[Chapter]) -> str:
    """A handout: per chapter its title, text, a table of its values with where each came from, the
    command that shows the same values and what to try in the app."""
    out = ["# fwinspect tour", ""]
    for c in chapters:
        where = c.phase + (f", stop {c.stop}" if c.stop is not None else "")
        out += [f"## {c.title}", "", f"*{c.chapter}, {where}*", "", c.text, ""]
        if c.values:
            out += ["| value | reads | node kind | address | path | field |", "|---|---|---|---|---|---|"]
            for v in c.values:
                address = f"0x{v.address:x}" if v.address is not None else ""
                path = "/".join(str(i) for i in v.path) if v.path is not None else ""
                out.append("| " + " | ".join(_cell(x) for x in (v.name, v.text, v.kind or "", address, path,
                                                                v.field or "")) + " |")
            out.append("")
        if c.command:
            out += [f"Reproduce: `{c.command}`", ""]
        if c.try_this:
            out += ["In the app: " + ", ".join(f"`{t}`" for t in c.try_this), ""]
    return "\n".join(out)


__all__ = ["add_tour_arguments", "cmd_tour", "boot_chapters", "markdown", "replay_tour", "live_tour"]
