"""The tour's "application processors" chapters: what the image carries to start the APs, and where
each AP was at each handoff stop, told with the values inspector/aps.py finds.

- "application-processors" (offline): the builds of MpInitLib's two modules in the image, CpuMpPei
  (PEI) and CpuDxe (DXE), each built twice in OVMF (OvmfPkg/OvmfPkgX64.dsc UP_CPU_PEI_GUID,
  UP_CPU_DXE_GUID): with MpInitLib, which wakes the APs with INIT-SIPI-SIPI and a reset vector in a
  page below 1 MiB, and with MpInitLibUp, which manages one CPU. Each file's depex says which one is
  dispatched: OvmfPkg/Sec/SecMain.c installs gEfiPeiMpInitLibMpDepPpiGuid, or
  gEfiPeiMpInitLibUpDepPpiGuid in a TDX guest, whose APs wait on the mailbox OvmfPkg/TdxDxe publishes
  in the ACPI MADT (ACPI 6.4 §5.2.12.19).
- "application-processors-boot": from the stops' `cpus` (inspector.live.session_api.CpuView): how many
  vCPUs, at each handoff stop where each AP was (wait-for-SIPI at the reset state, Intel SDM vol. 3A
  9.4.4; halted in the HLT loop of the module that woke it last, UefiCpuPkg/Library/MpInitLib/MpLib.c
  ApWakeupFunction), the wake-up buffer MpInitLib's debug lines name, and a MADT Multiprocessor
  Wakeup mailbox when a stop's tree holds one. The "aps" node of each stop told is appended to that
  stop's tree, so every value points at a node the tour screen can show.
"""
from __future__ import annotations

from typing import Any

from decoders.model import Node
from inspector.aps import MP_MODULES, stop_aps_node
from inspector.tour.model import Chapter, Writer

CHAPTER = "application-processors"
BOOT_CHAPTER = "application-processors-boot"
# APs named one by one in a sentence; more are counted (a -smp 64 guest would be a page of text).
MAX_NAMED = 8


# ---- offline --------------------------------------------------------------------------------------------
def _mp_files(image) -> list[tuple[Node, Node | None]]:
    """(FFS file, its depex node) for each build of the MpInitLib modules in the image."""
    out = []
    for f in image.root.find("ffs"):
        if f.get("UI") in MP_MODULES:
            out.append((f, next((d for d in f.walk() if d.kind == "depex"), None)))
    return out


def aps_offline_chapter(image) -> Chapter:
    """What the image carries to start its APs."""
    w = Writer(CHAPTER, "offline", "Application processors: what the image carries to start them", image.root)
    files = _mp_files(image)
    if not files:
        w.say("OVMF starts its application processors with MpInitLib, linked into CpuMpPei (PEI) and CpuDxe (DXE).")
        w.unexpected("this image has no CpuMpPei or CpuDxe file: nothing here starts the APs.")
        return w.done(f"fwinspect fd {image.path.name}")
    w.say("OVMF starts its application processors (APs) with MpInitLib, linked into CpuMpPei in PEI and CpuDxe in "
          "DXE. This image has {count} such files.", w.value("count", len(files), None, text=str(len(files))))
    for k, (f, dep) in enumerate(files):
        values = [w.field(f"name{k}", f, "UI"), w.value(f"guid{k}", f.get("Name"), f,
                                                         text=str(f.get("Name")).upper()),
                  w.value(f"size{k}", f.size, f, text=f"0x{f.size:x}")]
        if dep is not None and dep.get("Expression"):
            values.append(w.field(f"dep{k}", dep, "Expression"))
            w.say("{name%d} {guid%d} ({size%d} bytes) is dispatched when {dep%d}." % (k, k, k, k), *values)
        else:
            w.say("{name%d} {guid%d} ({size%d} bytes) has no depex." % (k, k, k), *values)
    ups = [f for f, dep in files if dep is not None and "UpDep" in str(dep.get("Expression"))]
    mps = [f for f, dep in files if dep is not None and "MpDep" in str(dep.get("Expression"))]
    if mps:
        w.say("The builds that wait for an MpDep PPI or protocol link MpInitLib: the boot CPU copies a 16-bit "
              "start-up routine to a page below 1 MiB and sends each AP INIT-SIPI-SIPI with that page as the "
              "vector; between calls the APs park in a HLT loop in the module's code (UefiCpuPkg/Library/MpInitLib).")
    if ups:
        w.say("The builds that wait for an UpDep PPI or protocol link MpInitLibUp and manage one CPU. In a TDX "
              "guest SEC installs the UpDep PPI (OvmfPkg/Sec/SecMain.c) and TdxDxe the UpDep protocol "
              "(OvmfPkg/TdxDxe/TdxDxe.c), elsewhere the MpDep ones: in a TD every vCPU starts at the reset "
              "vector together and the APs wait on a mailbox that the OS finds through the ACPI MADT's "
              "Multiprocessor Wakeup structure.")
    tdx = next((f for f in image.root.find("ffs") if f.get("UI") == "TdxDxe"), None)
    if tdx is not None:
        w.say("That mailbox entry is added to the MADT by {tdxdxe} {tdx_guid} (OvmfPkg/TdxDxe).",
              w.field("tdxdxe", tdx, "UI"),
              w.value("tdx_guid", tdx.get("Name"), tdx, text=str(tdx.get("Name")).upper()))
    w.try_this("/ CpuMpPei", "/ CpuDxe")
    return w.done(f"fwinspect fd {image.path.name}")


# ---- from the stops --------------------------------------------------------------------------------------
def _aps_of(stop, image=None) -> Node:
    """The stop's "aps" node, appended to its tree (once) so the values' paths reach it."""
    if stop.tree is not None:
        have = next((c for c in stop.tree.children if c.kind == "aps"), None)
        if have is not None:
            return have
    node = stop_aps_node(stop, image)
    if stop.tree is not None:
        stop.tree.append(node)
    return node


def _hx(v: int | None) -> str:
    return f"0x{v:x}" if v is not None else "?"


def _groups(aps: list[Node]) -> list[tuple[tuple, list[Node]]]:
    """APs with the same state, module and linear RIP together, in AP order."""
    out: dict[tuple, list[Node]] = {}
    for a in aps:
        rip = a.get("LinearRip") if a.get("LinearRip") is not None else a.get("Rip")
        out.setdefault((a.get("State"), a.get("Module"), rip), []).append(a)
    return list(out.items())


def _names(nodes: list[Node]) -> str:
    idx = [str(n.get("Index")) for n in nodes]
    shown = ", ".join(idx[:MAX_NAMED]) + (f" and {len(idx) - MAX_NAMED} more" if len(idx) > MAX_NAMED else "")
    return ("AP " if len(idx) == 1 else "APs ") + shown


STATE_WORDS = {
    "wait-for-sipi": "waiting for INIT-SIPI-SIPI at the reset state",
    "halted": "halted",
    "parked": "parked after a HLT",
    "running": "running",
    "unknown": "in an unknown state",
}


def aps_boot_chapter(stops: list, image: Any = None) -> Chapter | None:
    """Where each AP was at each handoff stop. None when no stop read more than one vCPU (a guest with
    one CPU, or a recording from before per-CPU stops): the tour of such a boot is unchanged."""
    told = [s for s in stops if s.cpus and (s.handoff is not None or s is stops[-1])]
    if not any(len(s.cpus) > 1 for s in told):
        return None         # no stop read the vCPUs, or one CPU: no AP to follow
    last = told[-1]
    w = Writer(BOOT_CHAPTER, str(last.phase), "Application processors: where each AP was at each handoff",
               root=last.tree, stop=last.index)
    first = _aps_of(told[0], image)
    w.say("This guest has {cpus} vCPUs: the boot CPU and {aps} application processors.",
          w.field("cpus", first, "CpuCount"), w.field("aps", first, "ApCount"))
    seen_sipi = False
    woken_in: set[str] = set()
    for k, stop in enumerate(told):
        node = _aps_of(stop, image)
        aps = [c for c in node.children if c.kind == "ap"]
        parts, values = [], []
        for g, ((state, module, rip), members) in enumerate(_groups(aps)):
            a = members[0]
            va = w.value(f"s{k}_{g}_aps", [m.get("Index") for m in members], a, text=_names(members))
            vs = w.value(f"s{k}_{g}_state", state, a, text=STATE_WORDS.get(state, state))
            vr = w.value(f"s{k}_{g}_rip", rip, a, text=_hx(rip))
            values += [va, vs, vr]
            text = f"{{s{k}_{g}_aps}} {{s{k}_{g}_state}} at {{s{k}_{g}_rip}}"
            if module:
                values.append(w.field(f"s{k}_{g}_module", a, "Module"))
                text += f" in {{s{k}_{g}_module}}"
                if state in ("halted", "parked"):
                    woken_in.add(str(module))
            parts.append(text)
            seen_sipi |= state == "wait-for-sipi"
        where = (f"At the {stop.handoff} handoff (stop {{s{k}_index}})" if stop.handoff is not None
                 else f"At the last stop ({{s{k}_index}}, {stop.phase})")
        values.append(w.value(f"s{k}_index", stop.index, node, text=str(stop.index)))
        w.say(where + ": " + "; ".join(parts) + ".", *values)
    last_node = _aps_of(last, image)
    last_states = {c.get("State") for c in last_node.children if c.kind == "ap"}
    if seen_sipi and woken_in:
        w.say("So between those stops MpInitLib woke the APs: an INIT-SIPI-SIPI with a reset vector in a page "
              "below 1 MiB, then its code in the module that woke them, which leaves them in its HLT loop "
              "between calls (UefiCpuPkg/Library/MpInitLib/MpLib.c ApWakeupFunction).")
    if last_states == {"wait-for-sipi"} and last.phase in ("dxe-core", "bds"):
        w.unexpected(f"at {last.phase} every AP still waits for a SIPI: no MpInitLib woke them (one CPU's "
                     "MpInitLibUp ran, as in a TDX guest, or CpuMpPei/CpuDxe did not run).")
    for j, b in enumerate(c for c in last_node.children if c.kind == "ap-wakeup-buffer"):
        values = [w.field(f"buf{j}", b, "Address"), w.field(f"vector{j}", b, "SipiVector")]
        text = ("{mod%d}'s MpInitLib put" % j if b.get("Module") else "MpInitLib put") + \
            " its wake-up buffer, the page the SIPI names, at {buf%d} (vector {vector%d})" % (j, j)
        if b.get("Module"):
            values.append(w.value(f"mod{j}", b.get("Module"), b, text=b.get("Module")))
        if b.get("Size") is not None:
            values.append(w.field(f"buf_size{j}", b, "Size"))
            text += ", {buf_size%d} bytes of start-up code and exchange data" % j
        w.say(text + "; from " + b.get("Source").replace("{", "{{").replace("}", "}}") + ".", *values)
    if not any(c.kind == "ap-wakeup-buffer" for c in last_node.children):
        w.say("MpInitLib restores the low-RAM page it borrowed after each wake-up (MpLib.c FreeResetVector), so "
              "the wake-up buffer shows only while an AP runs in real mode, or in a DEBUG build's log "
              "(\"WakeupBufferStart\").")
    mp = next((c for s in reversed(told) for c in _aps_of(s, image).children if c.kind == "mp-wakeup"), None)
    if mp is not None:
        values = [w.field("mailbox", mp, "MailBoxAddress")]
        text = "The ACPI MADT's Multiprocessor Wakeup entry gives the OS the APs' mailbox at {mailbox}"
        if mp.field("Command") is not None:
            values.append(w.field("command", mp, "Command"))
            text += ", Command {command}"
        w.say(text + ": the OS writes an APIC ID and a wakeup vector there to start an AP (ACPI 6.4 §5.2.12.19).",
              *values)
    w.try_this("/ aps")
    return w.done()


__all__ = ["aps_offline_chapter", "aps_boot_chapter", "CHAPTER", "BOOT_CHAPTER"]
