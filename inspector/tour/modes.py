"""The "to-long-mode" chapter: the reset vector's CR0, CR4 and EFER writes watched on a live boot.

`walk_mode_switches(session, timeout)` runs from the reset stop: each switch that
inspector/tour/resetcode.py finds in the image (and the reset vector's exit, the indirect jump to
SEC) gets a breakpoint (linear addresses: QEMU's TCG matches breakpoints on CS.base + EIP, so the
16-bit ones are set at their flash address too); the stop there (before) and one step (after) are
kept. `mode_chapter(stops, image)` tells each switch from the registers of those two stops alone,
so a replay tells the same. Mode switching: Intel SDM vol. 3A (253668-032US) 9.9.1 "Switching to
Protected Mode" and 9.8.5 "Initializing IA-32e Mode" (chapter 10 in editions from 2023); control
register and EFER bits: 2.5 "Control Registers" and 2.2.1 "Extended Feature Enable Register".
"""
from __future__ import annotations

import re
import time
from typing import Any

from inspector.live.session_api import Mode, Stop
from inspector.tour.model import Chapter, Value, Writer
from inspector.tour.resetcode import (BITS_OF, CR0_PE, CR0_PG, CR4_LA57, CR4_PAE, EFER_LMA, EFER_LME,  # noqa: F401
                                      IA32_EFER, Flow, Switch, find_mode_switches, follow_reset_vector)
from inspector.tour.stopparts import registers_node

# How a stop's mode reads in prose (the value stays the Mode name).
MODE_TEXT = {Mode.REAL: "real-address mode", Mode.PROT16: "16-bit protected mode", Mode.PROT32: "32-bit protected mode",
             Mode.LONG64: "64-bit mode"}


# ---- live ----------------------------------------------------------------------------------------

class Walk(list):
    """The stops of walk_mode_switches (before/after pairs, then the exit's stop), and what went wrong."""

    def __init__(self, *args):
        super().__init__(*args)
        self.problems: list[str] = []
        self.switches: list[Switch] = []


# Wrappers (a Recorder, run.py's TourRecorder) hold the Session as `.session`: a few levels at most.
MAX_WRAPPERS = 4


def _session_image(session):
    for _ in range(MAX_WRAPPERS + 1):
        if session is None:
            break
        image = getattr(session, "image", None)
        if image is not None and hasattr(image, "root"):
            return image
        session = getattr(session, "session", None)
    return None


def walk_mode_switches(session, timeout: float = 30.0, image=None) -> Walk:
    """From the reset stop: a breakpoint on every switch and on the reset vector's exits, continue to
    each one hit, keep the stop there (before) and one step further (after); the exit's stop ends
    the walk (the instruction that jumps to SEC). Switches on paths not taken (SEV, TDX) are absent.
    Failures are `problems`, never exceptions."""
    walk = Walk()
    deadline = time.monotonic() + timeout
    image = image if image is not None else _session_image(session)
    if image is None:
        walk.problems.append("the session has no image to find the reset vector's switches in")
        return walk
    flow = follow_reset_vector(image)
    walk.switches = flow.switches
    walk.problems += flow.problems
    if not flow.switches:
        walk.problems.append("no CR0/CR4/EFER write found in the reset vector")
        return walk
    try:
        here = session.current()
    except Exception as e:      # noqa: BLE001 - a session's own failure is reported, not raised
        walk.problems.append(f"the session failed: {e}")
        return walk
    if here.mode != Mode.REAL or here.problems:
        walk.problems.append(f"not at the reset stop (at 0x{here.linear_rip:x} in {here.mode} mode"
                             f"{': ' + '; '.join(here.problems) if here.problems else ''})")
        return walk
    by_address = {s.address: s for s in flow.switches}
    exits = {a for a, _t, _b in flow.exits}
    existing = set(getattr(session, "breakpoints", {}) or {})
    ours: list[str] = []
    try:
        for address in sorted(set(by_address) | exits):
            spec = f"0x{address:x}"
            if spec in existing:
                continue
            session.add_breakpoint(spec)
            ours.append(spec)
        pending = set(by_address)
        # Until the exit (the jump to SEC) is hit, or, for code without one found, every switch.
        while pending or exits:
            left = deadline - time.monotonic()
            if left <= 0:
                walk.problems.append(f"timed out after {timeout} s with {len(pending)} switches not reached")
                break
            stop = session.cont(left)
            walk.append(stop)
            if stop.problems or stop.linear_rip not in by_address:
                if stop.linear_rip not in exits or stop.problems:
                    walk.problems.append(f"stopped at 0x{stop.linear_rip:x} ({stop.reason})"
                                         + (": " + "; ".join(stop.problems) if stop.problems else ""))
                break
            pending.discard(stop.linear_rip)
            spec = f"0x{stop.linear_rip:x}"
            if spec in ours:
                session.remove_breakpoint(spec)
                ours.remove(spec)
            after = session.step()
            walk.append(after)
            if after.problems:
                walk.problems.append(f"stepping at 0x{stop.linear_rip:x}: " + "; ".join(after.problems))
                break
    except Exception as e:      # noqa: BLE001 - ValueError/TargetError from a breakpoint: a problem
        walk.problems.append(f"{type(e).__name__}: {e}")
    finally:
        for spec in ours:
            try:
                session.remove_breakpoint(spec)
            except Exception as e:     # noqa: BLE001 - best effort, said
                walk.problems.append(f"removing breakpoint {spec}: {e}")
    return walk


# ---- the chapter ---------------------------------------------------------------------------------

def bit_names(mask: int, names: dict[int, str]) -> list[str]:
    return [names.get(i, f"bit {i}") for i in range(64) if mask >> i & 1]


def _register_of(text: str, rcx: int | None) -> str | None:
    m = re.match(r"mov (cr[04]), ", text)
    if m:
        return m.group(1).upper()
    if text == "wrmsr" and rcx is not None and rcx & 0xFFFFFFFF == IA32_EFER:
        return "EFER"
    return None


def _reg_key(register: str) -> str:
    return register.lower()


def mode_pairs(stops: list[Stop], image=None) -> list[tuple[Stop, Stop, str]]:
    """(before, after, register) for each switch the stops show: a stop whose instruction writes
    CR0/CR4/EFER (from its disassembly and RCX; at a switch of the image when one is given)
    followed by the step that executed it."""
    known = {s.address for s in find_mode_switches(image)} if image is not None else None
    out = []
    for before, after in zip(stops, stops[1:]):
        if after.reason != "step" or not before.disassembly:
            continue
        address, text = before.disassembly[0]
        if address != before.linear_rip or (known is not None and address not in known):
            continue
        register = _register_of(text, before.registers.get("rcx"))
        if register is not None:
            out.append((before, after, register))
    return out


def mode_chapter(stops: list[Stop], image=None) -> Chapter | None:
    """"to-long-mode": each CR0/CR4/EFER write the stops show, with the bits it changed, from the
    registers of the stop before and after it. None when there are no stops at all."""
    if not stops:
        return None
    pairs = mode_pairs(stops, image)
    first = pairs[0][0].index if pairs else stops[0].index
    w = Writer("to-long-mode", "reset", "From real mode to long mode", stop=first)
    if not pairs:
        # The problems of the stops before the first handoff after reset: why the walk saw nothing.
        early = []
        for s in stops:
            if s.handoff not in (None, "reset"):
                break
            early += s.problems
        w.unexpected("no stop shows the reset vector writing CR0, CR4 or EFER"
                     + ("; " + "; ".join(early) if early else "") + ": the mode switches cannot be told for this boot")
        return w.done()
    n = w.value("count", len(pairs))
    w.say("On the way from the reset vector to SEC the firmware changes the CPU's mode with {count} "
          "register writes, each watched here: the stop before it and one step after.", n)
    long_mode = False
    for k, (before, after, register) in enumerate(pairs):
        nxt = pairs[k + 1][0] if k + 1 < len(pairs) else None
        long_mode |= _tell(w, k, before, after, register, nxt)
    if not any(r == "CR0" and (b.registers.get("cr0", 0) ^ a.registers.get("cr0", 0)) & CR0_PE
               for b, a, r in pairs):
        w.unexpected("no CR0 write turned on protected mode (CR0.PE) at the stops shown")
    if not long_mode:
        w.unexpected("the CPU never entered long mode here (EFER.LMA stays 0): an IA32 build runs SEC in "
                     "32-bit protected mode")
    exit_stop = _exit_stop(stops, pairs[-1][1])
    if exit_stop is not None:
        text = exit_stop.disassembly[0][1]
        reg = text.split()[1]
        target = exit_stop.registers.get("r" + reg[1:])
        if target is not None:
            if reg.startswith("e"):
                target &= 0xFFFFFFFF
            vs = (w.value("exit", exit_stop.linear_rip), w.value("exit_insn", text),
                  w.value("sec_entry", target), _mode_value(w, "exit_mode", exit_stop.mode))
            w.say("At {exit}, `{exit_insn}` leaves the reset vector for SEC's entry at {sec_entry}, "
                  "in {exit_mode}.", *vs)
    w.try_this("r sec")
    # The same stops by hand: a breakpoint on each switch the boot hit, then `s` at each.
    name = getattr(getattr(image, "path", None), "name", None) or "IMAGE"
    return w.done(f"fwinspect qemu {name} " + " ".join(f"--break 0x{b.linear_rip:x}" for b, _a, _r in pairs))


def _exit_stop(stops: list[Stop], last_after: Stop) -> Stop | None:
    """The stop right after the last switch's step, when it is at an indirect `jmp reg` (the walk's
    stop at the reset vector's exit; OvmfPkg/ResetVector/Main.asm `jmp rsi`, `jmp esi` for IA32)."""
    at = next((i for i, s in enumerate(stops) if s is last_after), None)
    if at is None or at + 1 >= len(stops):
        return None
    stop = stops[at + 1]
    if stop.reason == "step" or not stop.disassembly or stop.disassembly[0][0] != stop.linear_rip:
        return None
    return stop if re.fullmatch(r"jmp [re](?:ax|bx|cx|dx|si|di|bp|sp)", stop.disassembly[0][1]) else None


def _bits_text(mask: int, register: str) -> str:
    names = bit_names(mask, BITS_OF[register])
    return ", ".join(names) if names else "none"


def _tell(w: Writer, k: int, before: Stop, after: Stop, register: str, nxt: Stop | None) -> bool:
    """The sentences for one switch; True when IA-32e mode is active after it."""
    key = _reg_key(register)
    old, new = before.registers.get(key, 0), after.registers.get(key, 0)
    bits = {Mode.REAL: 16, Mode.PROT16: 16, Mode.PROT32: 32, Mode.LONG64: 64}.get(before.mode, 0)
    s = f"_{k}"
    addr = w.value("at" + s, before.linear_rip)
    insn = w.value("insn" + s, before.disassembly[0][1])
    code = w.value("bits" + s, bits, text=f"{bits}-bit" if bits else str(before.mode))
    # Linked to the stops' registers nodes when the register is there (a replayed stop of an
    # older recording may lack it: then the value stands alone).
    o = (w.field("old" + s, registers_node(before), key, text=f"0x{old:x}") if key in before.registers
         else w.value("old" + s, old, text=f"0x{old:x}"))
    nv = (w.field("new" + s, registers_node(after), key, text=f"0x{new:x}") if key in after.registers
          else w.value("new" + s, new, text=f"0x{new:x}"))
    set_mask, clear_mask = new & ~old, old & ~new
    sets = w.value("set" + s, set_mask, text=_bits_text(set_mask, register))
    head = f"At {{at{s}}} `{{insn{s}}}` ({{bits{s}}} code) writes {register}"
    if clear_mask:
        cleared = w.value("cleared" + s, clear_mask, text=_bits_text(clear_mask, register))
        w.say(head + f": {{old{s}}} -> {{new{s}}}, setting {{set{s}}} and clearing {{cleared{s}}}.",
              addr, insn, code, o, nv, sets, cleared)
    elif set_mask:
        w.say(head + f": {{old{s}}} -> {{new{s}}}, setting {{set{s}}}.", addr, insn, code, o, nv, sets)
    else:
        w.say(head + f", which stays {{old{s}}}.", addr, insn, code, o)
    efer_after = after.registers.get("efer", 0)
    mode_after = _mode_value(w, "mode" + s, after.mode)
    if register == "CR0" and set_mask & CR0_PE:
        w.say(("CR0.PE=1 is protected mode (Intel SDM vol. 3A 9.9.1, Switching to Protected Mode); CS still "
               "holds its real-mode segment, so right after it the CPU is in {mode%s}" % s), mode_after)
        if nxt is not None:
            cs = w.value("cs" + s, nxt.registers.get("cs"), text=f"0x{nxt.registers.get('cs', 0):x}")
            nmode = _mode_value(w, "next_mode" + s, nxt.mode)
            w.say(("and the far jump that follows loads code selector {cs%s}: the next stop is in {next_mode%s}."
                   % (s, s)), cs, nmode)
    if register == "CR4" and set_mask & CR4_PAE:
        w.say("CR4.PAE=1: physical-address extension, which IA-32e mode needs before paging is turned on "
              "(Intel SDM vol. 3A 9.8.5, Initializing IA-32e Mode).")
    if register == "CR4" and set_mask & CR4_LA57:
        w.say("CR4.LA57=1: the page tables will be walked from a PML5 table, 5-level paging (57-bit linear "
              "addresses).")
    if register == "EFER" and set_mask & EFER_LME:
        lma = w.value("lma" + s, bool(efer_after & EFER_LMA))
        w.say(("EFER.LME=1 enables IA-32e mode; it is not active yet (EFER.LMA: {lma%s}) until paging is on."
               % s), lma)
    active = bool(efer_after & EFER_LMA)
    if register == "CR0" and set_mask & CR0_PG:
        eo = before.registers.get("efer", 0)
        ev = (w.value("lme" + s, bool(eo & EFER_LME)),
              w.value("pae" + s, bool(before.registers.get("cr4", 0) & CR4_PAE)),
              w.value("efer_old" + s, eo, text=f"0x{eo:x}"),
              w.value("efer_new" + s, efer_after, text=f"0x{efer_after:x}"),
              w.value("lma" + s, active))
        if active:
            w.say(("CR0.PG=1 with EFER.LME ({lme%s}) and CR4.PAE ({pae%s}) set: the CPU sets EFER.LMA itself (EFER "
                   "{efer_old%s} -> {efer_new%s}, LMA: {lma%s}), IA-32e mode is active (Intel SDM vol. 3A 9.8.5)."
                   % (s, s, s, s, s)), *ev)
            cr4 = after.registers.get("cr4", 0)
            cr3 = after.registers.get("cr3", 0)
            levels = 5 if cr4 & CR4_LA57 else 4
            pv = (w.value("cr3" + s, cr3, text=f"0x{cr3:x}"), w.value("levels" + s, levels),
                  w.value("la57" + s, bool(cr4 & CR4_LA57)))
            w.say(("Paging now runs on the tables the reset vector built: CR3 {cr3%s}, {levels%s}-level (CR4.LA57: "
                   "{la57%s})." % (s, s, s)), *pv)
            w.say(("CS is still the 32-bit code segment (CS.L=0; the stop after it reads as {mode%s}), so in IA-32e "
                   "mode the CPU runs in compatibility mode until the far jump to the 64-bit code segment." % s),
                  mode_after)
            w.try_this(f"g 0x{cr3:x}")
        else:
            w.unexpected(f"CR0.PG was set at 0x{before.linear_rip:x} but EFER.LMA is 0 (EFER 0x{efer_after:x}): "
                         "paging without IA-32e mode")
    return active


def _mode_value(w: Writer, name: str, mode) -> Value:
    return w.value(name, str(mode), text=MODE_TEXT.get(Mode.of(str(mode)), str(mode)))


def switches_json(switches: list[Switch]) -> list[dict[str, Any]]:
    return [{"address": s.address, "text": s.text, "register": s.register, "bits": s.bits, "size": s.size,
             "sets": s.sets, "value": s.value} for s in switches]


__all__ = ["Switch", "Flow", "Walk", "find_mode_switches", "follow_reset_vector", "walk_mode_switches",
           "mode_chapter", "mode_pairs"]
