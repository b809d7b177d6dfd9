"""The TDX chapters of a tour that go one step below the offline ones: how the RTMRs of a CC event
log are built event by event ("rtmr0" to "rtmr3"), and how MRTD is built page by page
("mrtd-pages"). Every value comes from a node (inspector.tour.model): the event log's tree for the
RTMRs, the image's TDVF metadata and the MRTD nodes (decoders/mrtd.py) for MRTD.

Sources:
- RTMR extension: Intel TDX Module ABI, TDG.MR.RTMR.EXTEND (RTMR = SHA384(RTMR || 48-byte
  extension data), each RTMR reset to 48 zero bytes at TD build); Intel GHCI, TDG.MR.RTMR.EXTEND
  leaf; edk2 MdePkg/Library/TdxLib/Rtmr.c.
- Which firmware measurement goes to which RTMR: UEFI 2.10 section 38.4.1 (PCR 0 maps to MRTD, PCR
  1 and 7 to RTMR0, PCR 2-6 to RTMR1, PCR 8-15 to RTMR2; RTMR3 is left to the OS) as implemented in
  edk2 OvmfPkg/Library/TdxMeasurementLib and OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c.
- What TDVF measures first: edk2 OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c (the TD HOB as an
  EV_EFI_HANDOFF_TABLES2 "TdxTable" event, the CFV as an EV_EFI_PLATFORM_FIRMWARE_BLOB2 "Fv(...)"
  event, both into RTMR0); the Secure Boot variables as EV_EFI_VARIABLE_DRIVER_CONFIG (TCG PC Client
  PFP 1.05 section 10.4.4, PCR 7); EV_SEPARATOR ends the pre-OS part of each register (PFP section
  10.4.1 and 3.3.2.2).
- MRTD records: the header of decoders/mrtd.py (TDH.MEM.PAGE.ADD and TDH.MR.EXTEND, Intel TDX Module
  ABI; td-shim doc/tdshim_spec.md).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from decoders.model import Node
from inspector.tour.model import Chapter, Value, Writer

# A CC log of a grub boot has ~100 events, a GCE one ~40; the IMA-less firmware part seldom passes
# 200. Each listed event is one sentence with two 96-digit values, so a register lists this many
# and counts the rest (they are still replayed; the tree lists every one of them).
MAX_LISTED_EVENTS = 64
RTMR_COUNT = 4                         # RTMR0-3 (TDX Module ABI, TDREPORT_STRUCT.TDINFO)
RTMR_SIZE = 48                         # SHA-384
# The steps of the first MR.EXTEND page told one by one: its PAGE.ADD and the first MR.EXTENDs
# (the other 13 chunks of the page go the same way).
MRTD_STEPS_SHOWN = 4
PAGE_SIZE = 0x1000
CHUNK = 0x100                          # TDH.MR.EXTEND measures 256 bytes
CHUNKS_PER_PAGE = PAGE_SIZE // CHUNK
RECORD = 0x80                          # every MRTD record is a 128-byte buffer

EV_NO_ACTION = 0x00000003              # PFP section 10.4.1: not extended

# What each RTMR holds (UEFI 2.10 section 38.4.1: the PCRs each maps from).
RTMR_ROLES = {
    0: "the firmware's configuration (what a TPM puts in PCR 1 and 7): the TD HOB the VMM wrote, the "
       "configuration firmware volume with the variables, the Secure Boot variables and the boot variables",
    1: "the boot code (PCR 2-6): the UEFI applications the firmware starts (the boot loader, or the kernel "
       "of a direct boot) and the GPT of the boot disk",
    2: "the OS loader's measurements (PCR 8-15): the boot loader's commands, the kernel command line and "
       "the initrd",
    3: "the OS and its applications at run time; the firmware leaves it alone",
}


# ---- the CC event log -------------------------------------------------------------------------------

@dataclass
class CcLog:
    """A decoded CC event log, replayed, and compared with a quote's RTMRs when one is given. The
    comparison node (with the quote under it) is a child of `root`, as `fwinspect eventlog
    --expect-quote` builds it, so every value of the chapters is below the log's root."""

    root: Node
    comparison: object | None = None      # decoders.eventlog.replay.Comparison
    comparison_node: Node | None = None
    quote: Node | None = None
    name: str = "CCEL"


def load_cc_log(data: bytes, name: str, quote: bytes | None = None, quote_name: str = "quote") -> CcLog:
    """Decode `data` as a CC event log (decoders.eventlog), check its digests and, with `quote`,
    compare its replay with the quote's RTMR0-3 (decoders.eventlog.replay.compare)."""
    from decoders.eventlog import decode_event_log
    from decoders.eventlog.replay import check_digests, compare, replay

    root = decode_event_log(data, kind="cc", space_name=name)
    check_digests(root)
    out = CcLog(root, name=name)
    if quote is not None:
        from decoders.eventlog.quote import quote_expectation

        qnode, expected = quote_expectation(quote, quote_name)
        cmp = compare(replay(root), expected)
        node = root.append(cmp.to_node())
        node.append(qnode)
        out.comparison, out.comparison_node, out.quote = cmp, node, qnode
    return out


def _events(root: Node) -> list[Node]:
    return [c for c in root.children if c.kind == "event"]


def _extends(index: int, ev: Node) -> bool:
    """Whether the event extends an RTMR, as replay() decides: not the Spec ID header, not
    EV_NO_ACTION, and not an event cut short (no Event bytes)."""
    return index > 0 and ev.get("EventType") not in (None, EV_NO_ACTION) and ev.field("Event") is not None


def _serious(node: Node):
    return [p for p in node.problems if p.severity.value != "info"]


def _located(p) -> str:
    return f"{p.message} (at 0x{p.offset:x})" if p.offset is not None else p.message


def rtmr_chapters(log: CcLog, tree: Node | None = None) -> list[Chapter]:
    """One chapter per RTMR: every event that extends it (up to MAX_LISTED_EVENTS told one by one),
    with its digest and the register's value after it, the final value, and the quote's.

    The values' paths start at `tree`: the log's root, or a tree the log's root was put under (the
    image's, so that the tour app, which shows the image's tree, reaches the events)."""
    root = log.root
    events = _events(root)
    by_reg: dict[int, list[tuple[int, Node]]] = {i: [] for i in range(RTMR_COUNT)}
    cut: dict[int, list[tuple[int, Node]]] = {i: [] for i in range(RTMR_COUNT)}   # events cut short
    stray: list[str] = []                      # events no RTMR takes: told in the last chapter
    for index, ev in enumerate(events):
        mr = ev.get("MrIndex")
        if index == 0 or ev.get("EventType") == EV_NO_ACTION:
            continue
        if mr is None or not 1 <= mr <= RTMR_COUNT:
            # CC MR index 0 is MRTD, which only the TDX module extends (UEFI 2.10 section 38.4.1).
            stray.append(f"event #{index} at 0x{ev.offset:x} names MR index {mr}, which a log cannot extend "
                         f"(only 1-4, RTMR0-3); not replayed.")
            continue
        (by_reg if _extends(index, ev) else cut)[mr - 1].append((index, ev))
    chapters = []
    for reg in range(RTMR_COUNT):
        chapters.append(_rtmr_chapter(log, reg, by_reg[reg], cut[reg], last=reg == RTMR_COUNT - 1,
                                      stray=stray, tree=tree if tree is not None else root))
    return chapters


def _what(w: Writer, key: str, ev: Node) -> tuple[str, list[Value]]:
    """What an event measures, from its decoded data: a template fragment and its values."""
    data = ev.children[0] if ev.children else None
    if data is None:
        return "no event data", []
    if data.kind == "uefi-variable-data" and data.field("UnicodeName") is not None:
        name = data.get("UnicodeName")
        role = {"SecureBoot": " (Secure Boot on or off)", "PK": " (the platform key)",
                "KEK": " (the key exchange keys)", "db": " (the allowed signatures)",
                "dbx": " (the forbidden signatures)"}.get(name, "")
        return f"the variable {{{key}}}{role}", [w.field(key, data, "UnicodeName")]
    if data.field("TableDescription") is not None:
        desc = data.get("TableDescription")
        role = (" (the TD HOB the VMM wrote, measured by TDVF's SEC before it is used)"
                if desc == "TdxTable" else "")
        return f"the handoff table {{{key}}}{role}", [w.field(key, data, "TableDescription")]
    if data.field("BlobDescription") is not None:
        desc = str(data.get("BlobDescription"))
        role = (" (the configuration firmware volume: the variable store the VMM supplied, measured by "
                "TDVF's SEC)" if desc.startswith("Fv(") else "")
        return (f"the firmware blob {{{key}}} at {{{key}_base}}, {{{key}_len}} bytes{role}",
                [w.field(key, data, "BlobDescription"), w.field(f"{key}_base", data, "BlobBase"),
                 w.field(f"{key}_len", data, "BlobLength")])
    if data.field("DevicePath") is not None:
        return (f"the UEFI application loaded from {{{key}}}",
                [w.field(key, data, "DevicePath")])
    if ev.get("EventType") == 0x00000004 and data.field("Value") is not None:     # EV_SEPARATOR
        return f"the separator {{{key}}}, which closes the firmware's part", [w.field(key, data, "Value")]
    if data.field("String") is not None:
        return f"the text \"{{{key}}}\"", [w.field(key, data, "String")]
    return f"{{{key}}}", [w.value(key, data.title, data)]


def _rtmr_chapter(log: CcLog, reg: int, extend: list[tuple[int, Node]], cut: list[tuple[int, Node]],
                  last: bool, stray: list[str], tree: Node) -> Chapter:
    root = log.root
    name = f"RTMR{reg}"
    w = Writer(f"rtmr{reg}", "offline", f"{name}: the CC event log, event by event", tree)
    if reg == 0:
        w.say(f"The CC event log {log.name} holds {{events}} events ({{format}}). TDVF extends one of four "
              "RTMRs for each measurement: RTMR = SHA384(RTMR || digest), each starting at 48 zero bytes "
              "(TDG.MR.RTMR.EXTEND), and logs the digest with what it measured, so the log replays to the "
              "registers a quote reports.",
              w.field("events", root, "EventCount", text=str(root.get("EventCount"))),
              w.field("format", root, "Format"))
    w.say(f"{name} holds {RTMR_ROLES[reg]}.")
    value = bytes(RTMR_SIZE)
    last_node: Node | None = None
    listed = extend[:MAX_LISTED_EVENTS]
    if not extend:
        w.say(f"No event of this log extends {name}: it keeps its reset value, 48 zero bytes.")
    else:
        w.say(f"{{{name}_count}} events extend it, in log order:",
              w.value(f"{name}_count", len(extend), root, text=str(len(extend))))
    for n, (index, ev) in enumerate(extend):
        digest = ev.get("Digest.sha384")
        if digest is None:
            w.unexpected(f"event #{index} at 0x{ev.offset:x} has no SHA-384 digest; {name} cannot be "
                         f"replayed past it.")
            break
        value = hashlib.sha384(value + digest).digest()
        last_node = ev
        if n >= MAX_LISTED_EVENTS:
            continue
        key = f"e{index}"
        what, vals = _what(w, f"{key}_what", ev)
        w.say(f"Event {{{key}}}, {{{key}_type}}: {what}; digest {{{key}_digest}}; {name} is now "
              f"{{{key}_after}}.",
              w.value(key, index, ev, text=f"#{index}"), w.field(f"{key}_type", ev, "EventType"), *vals,
              w.field(f"{key}_digest", ev, "Digest.sha384", text=digest.hex()),
              w.value(f"{key}_after", value, ev, text=value.hex()))
        for p in _serious(ev) + [p for c in ev.walk() if c is not ev for p in _serious(c)]:
            w.unexpected(f"event #{index}: {_located(p)}.")
    if listed:
        w.try_this(f"/ #{listed[0][0]} {name}")
    if len(extend) > MAX_LISTED_EVENTS:
        first, end = extend[MAX_LISTED_EVENTS][0], extend[-1][0]
        w.say(f"{{{name}_more}} more events, #{first} to #{end}, extend it the same way; the tour lists the "
              f"first {MAX_LISTED_EVENTS} (the tree lists them all, each under the log).",
              w.value(f"{name}_more", len(extend) - MAX_LISTED_EVENTS, root,
                      text=str(len(extend) - MAX_LISTED_EVENTS)))
        for index, ev in extend[MAX_LISTED_EVENTS:]:
            for p in _serious(ev):
                w.unexpected(f"event #{index}: {_located(p)}.")
        w.try_this(f"/ #{first} {name}")
    for index, ev in cut:
        for p in _serious(ev) or []:
            w.unexpected(f"event #{index} ({name}) is cut short and not replayed: {_located(p)}.")
        if not _serious(ev):
            w.unexpected(f"event #{index} at 0x{ev.offset:x} ({name}) has no event data; not replayed.")
    final_node = last_node if last_node is not None else root
    w.say(f"The replay ends with {name} = {{{name}_final}}.",
          w.value(f"{name}_final", value, final_node, text=value.hex()))
    _quote(w, log, reg, name)
    if last:
        for text in stray:
            w.unexpected(text)
        for p in _serious(root):
            w.unexpected(f"the log: {_located(p)}.")
        if log.quote is not None:
            for node, p in log.quote.all_problems():
                if p.severity.value != "info":
                    w.unexpected(f"the quote: {_located(p)}.")
    return w.done(f"fwinspect eventlog {log.name} --replay"
                  + (f" --expect-quote {log.quote.space.name}" if log.quote is not None and log.quote.space
                     else ""))


def _quote(w: Writer, log: CcLog, reg: int, name: str) -> None:
    """The quote's RTMR and the comparison (decoders.eventlog.replay.compare), when a quote was given."""
    if log.comparison is None:
        return
    body = next(log.quote.find("td-quote-body"), None) if log.quote is not None else None
    r = next((r for r in log.comparison.registers if r.name == name), None)
    if body is None or r is None:
        return                             # the quote's own problem says why (told in the last chapter)
    q = w.field(f"quote_{name}", body, name, text=body.get(name).hex())
    verdict = w.field(f"{name}_compared", log.comparison_node, name, text="equal" if r.matches else "different")
    if r.matches:
        w.say(f"The quote's {name} is {{quote_{name}}}: {{{name}_compared}} to the replay.", q, verdict)
        return
    w.say(f"The quote's {name} is {{quote_{name}}}: {{{name}_compared}}.", q, verdict)
    if r.parted_after_event == -1:
        where = "the quote has the reset value: no event of the log should have extended it"
    elif r.parted_after_event is not None:
        where = (f"the quote's value is {name} after event #{r.parted_after_event}: the log has events the "
                 f"quote does not cover")
    elif r.diagnosis:
        where = r.diagnosis
    elif r.last_event_index is not None:
        where = (f"last extended by event #{r.last_event_index}; no value of the replay equals the quote's, "
                 f"so something extended {name} that this log does not hold (a later log, such as the "
                 f"kernel's IMA log), or the log was changed")
    else:
        where = "no event of the log extends it, yet the quote's value is not the reset value"
    w.unexpected(f"{name} differs from the quote's: {where}.")


# ---- MRTD page by page ------------------------------------------------------------------------------

def _records(data, s) -> Iterator[tuple[bytes, int, int | None]]:
    """The records one section feeds MRTD in the per-page order: (operation, GPA, image offset of the
    256 data bytes or None). Zero-padded past RawDataSize (decoders/mrtd.py)."""
    for page in range(s.pages):
        gpa = s.memory_address + page * PAGE_SIZE
        if not s.page_aug:
            yield b"MEM.PAGE.ADD", gpa, None
        if s.mr_extend:
            for c in range(CHUNKS_PER_PAGE):
                at = page * PAGE_SIZE + c * CHUNK
                src = s.file_offset + at if s.file_offset is not None and at < s.raw_data_size else None
                yield b"MR.EXTEND", gpa + c * CHUNK, src


def _feed(h, data, s, op: bytes, gpa: int, src: int | None) -> None:
    """One 128-byte record (operation in bytes 0-15, GPA as UINT64 LE in 16-23, zeros to 127; TDX
    Module ABI TDH.MEM.PAGE.ADD / TDH.MR.EXTEND), then for MR.EXTEND its 256 bytes."""
    h.update(op.ljust(16, b"\0") + gpa.to_bytes(8, "little") + bytes(RECORD - 24))
    if op == b"MR.EXTEND":
        chunk = b""
        if src is not None:
            end = min(src + CHUNK, s.file_offset + s.raw_data_size)
            chunk = bytes(data[src:end])
        h.update(chunk.ljust(CHUNK, b"\0"))


def mrtd_pages_chapter(image, meta: Node, name: str) -> Chapter:
    """MRTD told page by page: the first steps of the first measured section with each 128-byte
    record and the hash so far, then per section what it added, then MRTD in both orders."""
    from decoders.mrtd import mrtd_node
    from decoders.ovmf.metadata import tdx_sections

    w = Writer("mrtd-pages", "offline", "MRTD page by page: how the TDX module builds it", image.root)
    sections = tdx_sections(meta)
    nodes = [c for c in meta.children if c.kind == "tdx-section"]
    per_page, two_pass = (mrtd_node(r) for r in image.mrtds())
    if per_page.get("MRTD") is None:
        for p in per_page.problems:
            w.unexpected(f"MRTD not computed: {p.message}")
        return w.done(f"fwinspect mrtd {name} --order both")
    w.say("MRTD is one SHA-384 over everything the VMM adds before the TD starts, in the order it adds it. "
          "Each TDH.MEM.PAGE.ADD hashes a 128-byte buffer: the ASCII operation in bytes 0-15, the page's "
          "GPA in bytes 16-23, zeros after. Each TDH.MR.EXTEND hashes such a buffer for a 256-byte chunk, "
          "then the chunk's 256 bytes; a measured 4 KiB page takes 16 of them. TDH.MR.FINALIZE ends the "
          "hash and its digest is MRTD.")
    first = next((i for i, s in enumerate(sections) if s.mr_extend and not s.page_aug and s.pages), None)
    if first is None:
        w.unexpected("no section is both added and MR.EXTENDed: MRTD holds only page addresses.")
    else:
        s, snode = sections[first], nodes[first]
        h = hashlib.sha384()
        for earlier in sections[:first]:           # the records before it (per-page order)
            for op, gpa, src in _records(image.data, earlier):
                _feed(h, image.data, earlier, op, gpa, src)
        w.say(f"Page by page, the first measured section is section {{first}}, {{first_type}} at GPA "
              f"{{first_gpa}}. Its first steps, with the SHA-384 of everything hashed so far (the TDX module "
              f"keeps that running state; its digest after the last step is MRTD):",
              w.value("first", first, snode), w.field("first_type", snode, "Type"),
              w.field("first_gpa", snode, "MemoryAddress"))
        for k, (op, gpa, src) in enumerate(_records(image.data, s)):
            if k >= MRTD_STEPS_SHOWN:
                break
            _feed(h, image.data, s, op, gpa, src)
            running = h.copy().digest()
            vals = [w.value(f"step{k}_op", op.decode("ascii"), snode),
                    w.value(f"step{k}_gpa", gpa, snode, text=f"0x{gpa:x}")]
            text = f"step {k + 1}: {{step{k}_op}} with GPA {{step{k}_gpa}}"
            if op == b"MR.EXTEND":
                if src is not None:
                    vals.append(w.value(f"step{k}_src", src, snode, text=f"0x{src:x}"))
                    text += f", then the 256 bytes at image offset {{step{k}_src}}"
                else:
                    text += ", then 256 zero bytes (past the section's data)"
            vals.append(w.value(f"step{k}_hash", running, snode, text=running.hex()))
            w.say(text + f"; hashed so far: {{step{k}_hash}}.", *vals)
        shown_extends = MRTD_STEPS_SHOWN - (0 if s.page_aug else 1)
        w.say(f"The page's other {CHUNKS_PER_PAGE - shown_extends} MR.EXTENDs follow, then the next page's "
              "PAGE.ADD, and so on.")
    w.say("Per section, in the order the VMM adds them:")
    for i, step in enumerate(c for c in per_page.children if c.kind == "mrtd-section"):
        ext = step.get("PagesExtended") or 0
        vals = [w.field(f"m{i}_type", step, "Type"),
                w.field(f"m{i}_added", step, "PagesAdded", text=str(step.get("PagesAdded"))),
                w.field(f"m{i}_ext", step, "PagesExtended", text=str(ext)),
                w.value(f"m{i}_chunks", ext * CHUNKS_PER_PAGE, step, text=str(ext * CHUNKS_PER_PAGE))]
        if ext:
            w.say(f"section {i} ({{m{i}_type}}): {{m{i}_added}} pages added, {{m{i}_ext}} of them measured in "
                  f"{{m{i}_chunks}} 256-byte MR.EXTENDs;", *vals)
        else:
            w.say(f"section {i} ({{m{i}_type}}): {{m{i}_added}} pages added, {{m{i}_ext}} measured (its "
                  f"{{m{i}_chunks}} MR.EXTENDs: only the pages' GPAs count);", *vals)
    w.say("in all {pages_added} PAGE.ADDs and {pages_extended} measured pages.",
          w.field("pages_added", per_page, "PagesAdded", text=str(per_page.get("PagesAdded"))),
          w.field("pages_extended", per_page, "PagesExtended", text=str(per_page.get("PagesExtended"))))
    w.say("Page by page (td-shim, upstream QEMU and KVM) MRTD is {mrtd_per_page}; with all PAGE.ADDs of a "
          "section before its MR.EXTENDs (QEMU 8.x of Intel's TDX trees), the same records in another order "
          "give {mrtd_two_pass}.",
          w.field("mrtd_per_page", per_page, "MRTD"), w.field("mrtd_two_pass", two_pass, "MRTD"))
    w.try_this("/ TDX metadata")
    return w.done(f"fwinspect mrtd {name} --order both")


__all__ = ["CcLog", "load_cc_log", "rtmr_chapters", "mrtd_pages_chapter", "MAX_LISTED_EVENTS"]
