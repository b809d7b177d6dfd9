"""The edk2 DEBUG log as data: the text a DEBUG build writes to the debug console (OVMF: I/O port
0x402, OvmfPkg/Library/PlatformDebugLibIoPort) parsed into events that name every loaded module
and the memory facts the PEI and DXE cores and OvmfPkg's PlatformPei print.

The lines recognised, with the edk2 (2025.02) file and function whose DEBUG format string they are:

- `Loading PEIM %g` and `Loading PEIM at 0x%11p EntryPoint=0x%11p ` + the PDB name with .efi
  (MdeModulePkg/Core/Pei/Image/Image.c, PeiLoadImageLoadImage): a PEIM loaded, at its XIP address
  in PEIFV or shadowed to RAM after memory discovery; DxeIpl loads DxeCore through the same code;
- `Loading DXE CORE at 0x%11p EntryPoint=0x%11p` (MdeModulePkg/Core/DxeIplPeim/DxeLoad.c, DxeLoadCore);
- `Loading driver %g` (MdeModulePkg/Core/Dxe/Dispatcher/Dispatcher.c, CoreDispatcher) and
  `Loading driver at 0x%11p EntryPoint=0x%11p ` + name (MdeModulePkg/Core/Dxe/Image/Image.c,
  CoreLoadPeImage);
- `Error: Image at %11p start failed: %r` (Image.c, CoreStartImage; the image is then unloaded);
- `ProtectUefiImageCommon - 0x%x` then `  - 0x%016lx - 0x%016lx`, an image's base and size
  (MdeModulePkg/Core/Dxe/Misc/MemoryProtection.c, ProtectUefiImageCommon);
- `PeiInstallPeiMemory MemoryBegin 0x%LX, MemoryLength 0x%LX` (MdeModulePkg/Core/Pei/Memory/
  MemoryServices.c, PeiInstallPeiMemory): the PHIT's EfiMemoryBottom and EfiMemoryTop once the core
  switched to it (PeiMain.c, PeiCore);
- `Memory Allocation 0x%08x 0x%0lx - 0x%0lx` (Pei/Dispatcher/Dispatcher.c, PeiCheckAndSwitchStack,
  and Dxe/DxeMain/DxeMain.c, DxeMain): a memory allocation HOB, type and inclusive range;
- `FV Hob            0x%0lx - 0x%0lx` (DxeMain.c, DxeMain);
- `HOBLIST address in DXE = 0x%p` (DxeMain.c, DxeMain);
- `Stack Hob: BaseAddress=0x%lX Length=0x%lX` (Pei/Dispatcher/Dispatcher.c, PeiCheckAndSwitchStack);
- `The %dth FV start address is 0x%11p, size is 0x%08x, handle is 0x%p` (Pei/FwVol/FwVol.c);
- `%a: PhysMemAddressWidth=%d PeiMemoryCap=%u KB` (OvmfPkg/PlatformPei/MemDetect.c, PublishPeiMemory);
- `%a: LowMemory=0x%Lx`, `%a: HighMemory [0x%Lx, 0x%Lx)`, `%a: Reserved [0x%Lx, 0x%Lx)`
  (OvmfPkg/Library/PlatformInitLib/MemDetect.c, PlatformGetLowMemoryCB and PlatformAddHobCB):
  the top of RAM below 4 GiB and the resource descriptor HOBs PlatformPei builds;
- `Reserved variable store memory: 0x%p; size: %dkb` (PlatformInitLib/Platform.c);
- `Install PPI: %g` (MdeModulePkg/Core/Pei/Ppi/Ppi.c, InternalPeiInstallPpi);
- MpInitLib's, printed by CpuMpPei and again by CpuDxe (UefiCpuPkg/Library/MpInitLib/MpLib.c unless
  said): `%a: ProcessorIndex=%u CpuCount=%u` (MpInitLibInitialize, one per MP hand-off HOB),
  `AP Loop Mode is %d` (MpInitLibInitialize: PcdCpuApLoopMode, 1 HLT, 2 MWAIT, 3 run loop),
  `AP Vector: non-16-bit = %p/%x` (MpInitLibInitialize: the code above 1 MiB the APs switch to),
  `WakeupBufferStart = %x, WakeupBufferSize = %x` (PeiMpLib.c and DxeMpLib.c, GetWakeupBuffer: the
  page below 1 MiB the SIPI points at; DxeMpLib.c prints (UINTN)-1 when AllocatePages failed),
  `AP Vector: 16-bit = %p/%x, ExchangeInfo = %p/%x` (AllocateResetVector: that buffer, the 16-bit
  code's size, MP_CPU_EXCHANGE_INFO and its size), `APIC MODE is %d` and `MpInitLib: Find %d processors
  in system.` (CollectProcessorCount), and `Detect CPU count: %d` (UefiCpuPkg/CpuDxe/CpuMp.c,
  InitializeMpSupport). %p and %x print hex digits without 0x (MdePkg/Library/BasePrintLib), at most
  16 for a UINTN: a longer value is a malformed line.

Every other line is counted, not kept. The input is untrusted: a line with bytes outside printable
ASCII (NUL, garbage), a line longer than MAX_LINE_BYTES, a recognised line that does not match its
format (cut in half), and a last line without its newline each give a located problem (byte offset,
line number) and are skipped; events kept are capped (MAX_EVENTS), nodes by decoders/budget.py.

`LogParser` is incremental (feed() the bytes as they come, a live session feeds what the guest
wrote since the last stop); `decode_log(data)` is the offline decoder: bytes in, a Node tree out.
"""
from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import budget as budget_mod
from . import guids
from .model import Node, Severity, Space

# The longest line of a real DEBUG OVMF boot is ~130 bytes; the PEI core caps a module's name at
# 512 bytes (Image.c, EfiFileName[512]). Longer lines are skipped, not held.
MAX_LINE_BYTES = 4096
# Events kept: a boot to the shell makes ~500. Past this they are counted only (and a 64 MiB log of
# nothing but events stays well inside the 256 MiB whole-process budget).
MAX_EVENTS = 16_384
# Module loads kept: a boot to the shell loads ~110 images.
MAX_MODULES = 4096
# Problems kept per decode (one per bad line): a person reads the first few; the rest are counted.
MAX_NOTES = 256

HEX = r"0x([0-9A-Fa-f]+)"
# %p / %x of a UINTN without the 0x (PrintLib), and %d / %u of a UINT32 (at most 10 digits)
XDIGITS = r"([0-9A-Fa-f]{1,16})"
UDIGITS = r"(\d{1,10})"
GUID = r"([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
NAME = r"(?: (\S+))?"

# prefix -> (event kind, pattern of the whole line, names of its groups). The prefix says which
# format a line claims; a line with the prefix that does not match the pattern is malformed.
FORMATS: list[tuple[str, str, re.Pattern, tuple[str, ...]]] = [
    ("Loading PEIM at ", "peim-load",
     re.compile(rf"Loading PEIM at {HEX} EntryPoint={HEX} ?(\S*)"), ("ImageBase", "EntryPoint", "Name")),
    ("Loading PEIM ", "peim-guid", re.compile(rf"Loading PEIM {GUID}"), ("FileName",)),
    ("Loading DXE CORE at ", "dxe-core-load",
     re.compile(rf"Loading DXE CORE at {HEX} EntryPoint={HEX}"), ("ImageBase", "EntryPoint")),
    ("Loading driver at ", "driver-load",
     re.compile(rf"Loading driver at {HEX} EntryPoint={HEX} ?(\S*)"), ("ImageBase", "EntryPoint", "Name")),
    ("Loading driver ", "driver-guid", re.compile(rf"Loading driver {GUID}"), ("FileName",)),
    ("Error: Image at ", "image-start-failed",
     re.compile(r"Error: Image at ([0-9A-Fa-f]+) start failed: (.+)"), ("ImageBase", "Status")),
    ("ProtectUefiImageCommon - ", "image-protect", re.compile(rf"ProtectUefiImageCommon - {HEX}"),
     ("LoadedImage",)),
    ("  - 0x", "image-range", re.compile(rf"  - {HEX} - {HEX}"), ("ImageBase", "ImageSize")),
    ("PeiInstallPeiMemory ", "pei-memory",
     re.compile(rf"PeiInstallPeiMemory MemoryBegin {HEX}, MemoryLength {HEX}"), ("MemoryBegin", "MemoryLength")),
    ("Memory Allocation ", "memory-allocation",
     re.compile(rf"Memory Allocation {HEX} {HEX} - {HEX}"), ("MemoryType", "MemoryBaseAddress", "MemoryEnd")),
    ("FV Hob ", "fv-hob", re.compile(rf"FV Hob +{HEX} - {HEX}"), ("BaseAddress", "End")),
    ("HOBLIST address in DXE = ", "hob-list", re.compile(rf"HOBLIST address in DXE = {HEX}"), ("HobList",)),
    ("Stack Hob: ", "stack-hob", re.compile(rf"Stack Hob: BaseAddress={HEX} Length={HEX}"),
     ("BaseAddress", "Length")),
    ("The ", "fv", re.compile(rf"The (\d+)th FV start address is {HEX}, size is {HEX}, handle is {HEX}"),
     ("Index", "BaseAddress", "Length", "Handle")),
    ("PublishPeiMemory: ", "publish-pei-memory",
     re.compile(r"PublishPeiMemory: PhysMemAddressWidth=(\d+) PeiMemoryCap=(\d+) KB"),
     ("PhysMemAddressWidth", "PeiMemoryCapKB")),
    ("PlatformGetLowMemoryCB: LowMemory=", "low-memory",
     re.compile(rf"PlatformGetLowMemoryCB: LowMemory={HEX}"), ("LowMemory",)),
    ("PlatformAddHobCB: HighMemory ", "high-memory",
     re.compile(rf"PlatformAddHobCB: HighMemory \[{HEX}, {HEX}\)"), ("Base", "End")),
    ("PlatformAddHobCB: Reserved ", "reserved-memory",
     re.compile(rf"PlatformAddHobCB: Reserved \[{HEX}, {HEX}\)"), ("Base", "End")),
    ("Reserved variable store memory: ", "variable-store",
     re.compile(rf"Reserved variable store memory: {HEX}; size: (\d+)kb"), ("Base", "SizeKB")),
    ("Install PPI: ", "ppi-install", re.compile(rf"Install PPI: {GUID}"), ("Guid",)),
    ("MpInitLibInitialize: ProcessorIndex=", "mp-hand-off",
     re.compile(rf"MpInitLibInitialize: ProcessorIndex={UDIGITS} CpuCount={UDIGITS}"), ("ProcessorIndex", "CpuCount")),
    ("AP Loop Mode is ", "mp-loop-mode", re.compile(rf"AP Loop Mode is {UDIGITS}"), ("ApLoopMode",)),
    ("AP Vector: non-16-bit = ", "mp-vector-high", re.compile(rf"AP Vector: non-16-bit = {XDIGITS}/{XDIGITS}"),
     ("WakeupBufferHigh", "Size")),
    ("WakeupBufferStart = ", "mp-wakeup-buffer",
     re.compile(rf"WakeupBufferStart = {XDIGITS}, WakeupBufferSize = {XDIGITS}"),
     ("WakeupBufferStart", "WakeupBufferSize")),
    ("AP Vector: 16-bit = ", "mp-vector",
     re.compile(rf"AP Vector: 16-bit = {XDIGITS}/{XDIGITS}, ExchangeInfo = {XDIGITS}/{XDIGITS}"),
     ("WakeupBuffer", "ModeTransitionOffset", "ExchangeInfo", "ExchangeInfoSize")),
    ("APIC MODE is ", "mp-apic-mode", re.compile(rf"APIC MODE is {UDIGITS}"), ("ApicMode",)),
    ("MpInitLib: Find ", "mp-processors", re.compile(rf"MpInitLib: Find {UDIGITS} processors in system\."),
     ("CpuCount",)),
    ("Detect CPU count: ", "cpu-count", re.compile(rf"Detect CPU count: {UDIGITS}"), ("CpuCount",)),
]
_PREFIXES = tuple(p for p, *_ in FORMATS)
# The formats a line may be, by its first character (most lines start with none of these prefixes).
_BY_FIRST: dict[str, list] = {}
for _f in FORMATS:
    _BY_FIRST.setdefault(_f[0][0], []).append(_f)
# Formats whose prefix is common text: a line that starts so but does not match is just another line.
_LOOSE = {"fv", "image-range"}
_DECIMAL = {"Index", "PhysMemAddressWidth", "PeiMemoryCapKB", "SizeKB", "ProcessorIndex", "CpuCount", "ApLoopMode",
            "ApicMode"}
_TEXT = {"Name", "Status"}
_GUIDS = {"FileName", "Guid"}
_PRINTABLE = re.compile(rb"[^\x20-\x7e\t]")

# What each kind is called in titles and counts.
LABELS = {
    "peim-load": "PEIM loaded", "peim-guid": "PEIM named", "dxe-core-load": "DXE core loaded",
    "driver-load": "driver loaded", "driver-guid": "driver named", "image-start-failed": "image start failed",
    "image-protect": "image protected", "image-range": "image range", "pei-memory": "PEI memory installed",
    "memory-allocation": "memory allocation HOB", "fv-hob": "FV HOB", "hob-list": "DXE HOB list",
    "stack-hob": "stack HOB", "fv": "firmware volume", "publish-pei-memory": "PEI memory published",
    "low-memory": "low memory top", "high-memory": "high memory", "reserved-memory": "reserved memory",
    "variable-store": "variable store", "ppi-install": "PPI installed",
    "mp-hand-off": "MP hand-off", "mp-loop-mode": "AP loop mode", "mp-vector-high": "AP code above 1 MiB",
    "mp-wakeup-buffer": "AP wake-up buffer", "mp-vector": "AP reset vector", "mp-apic-mode": "APIC mode",
    "mp-processors": "MpInitLib CPU count", "cpu-count": "CpuDxe CPU count",
}
# MpInitLib's kinds (inspector/aps.py reads them)
MP_KINDS = ("mp-hand-off", "mp-loop-mode", "mp-vector-high", "mp-wakeup-buffer", "mp-vector", "mp-apic-mode",
            "mp-processors", "cpu-count")
AP_LOOP_MODES = {1: "HLT loop", 2: "MWAIT loop", 3: "run loop"}   # UefiCpuPkg.dec PcdCpuApLoopMode
MODULE_LOADS = ("peim-load", "driver-load")
# Kinds that change no parser state: past MAX_EVENTS they are only counted.
_STATELESS = {"memory-allocation", "fv-hob", "hob-list", "stack-hob", "fv", "publish-pei-memory", "low-memory",
              "high-memory", "reserved-memory", "variable-store", "ppi-install", *MP_KINDS}


@dataclass
class Event:
    kind: str
    line: int                 # 1-based line number
    offset: int               # byte offset of the line in the log
    size: int                 # bytes of the line, without its newline
    values: dict[str, Any]
    text: str

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


@dataclass
class Module:
    """One image load the log names: a PEIM (XIP or shadowed) or a DXE driver."""

    name: str                 # the PDB name without .efi ("DxeCore"), "" when the build had none
    base: int
    entry: int
    phase: str                # "pei" or "dxe"
    line: int
    offset: int
    guid: uuid.UUID | None = None   # from the `Loading PEIM/driver %g` line just before
    size: int | None = None         # from ProtectUefiImageCommon (DXE images)
    failed: str | None = None       # `start failed: <status>`: the image was unloaded
    after_memory: bool = False      # loaded after PeiInstallPeiMemory (shadowed or DXE)
    line_size: int = 0              # bytes of its `Loading ... at` line


@dataclass
class LogParser:
    """Incremental parser: feed() bytes as they come, finish() at the end of a complete log."""

    events: list[Event] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)       # kind -> events seen (kept or not)
    lines: int = 0
    bytes: int = 0
    unrecognised: int = 0
    garbage: int = 0
    overlong: int = 0
    malformed: int = 0
    events_dropped: int = 0
    modules_dropped: int = 0
    notes: list[tuple[int, int, Severity, str]] = field(default_factory=list)   # (offset, line, sev, message)
    notes_dropped: int = 0
    modules: list[Module] = field(default_factory=list)
    cut_short: bool = False
    _partial: bytearray = field(default_factory=bytearray)
    _skipping: int = 0          # bytes of an overlong line skipped so far
    _guid: tuple[str, uuid.UUID] | None = None    # the last `Loading PEIM/driver %g` not yet followed
    _after_memory: bool = False
    _protect: bool = False      # the previous line was `ProtectUefiImageCommon - ...`

    @property
    def pending(self) -> int:
        """Bytes of a line not ended yet (a live guest stopped mid-line)."""
        return len(self._partial) + self._skipping

    def note(self, offset: int, line: int, message: str, severity: Severity = Severity.WARNING) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append((offset, line, severity, message))
        else:
            self.notes_dropped += 1

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            if nl >= 0 and not self._partial and not self._skipping and end - pos <= MAX_LINE_BYTES:
                self._complete(data[pos:end])          # the common case: a whole line in this piece
                pos = nl + 1
                continue
            if self._skipping or len(self._partial) + (end - pos) > MAX_LINE_BYTES:
                if not self._skipping:
                    self._skipping = len(self._partial)
                    self._partial.clear()
                self._skipping += end - pos
            else:
                self._partial += data[pos:end]
            if nl < 0:
                break
            self._end_line(1)
            pos = nl + 1

    def finish(self) -> None:
        """The log is complete: a last line without its newline was cut short."""
        if self._partial or self._skipping:
            self.cut_short = True
            self.note(self.bytes, self.lines + 1, f"line {self.lines + 1}: the log ends inside a line "
                                                  f"({self.pending:,} bytes without a newline): cut short")
            self._end_line(0)

    def _end_line(self, newline: int) -> None:
        if self._skipping:
            offset, self.lines, size = self.bytes, self.lines + 1, self._skipping
            self.bytes += size + newline
            self._skipping = 0
            self.overlong += 1
            self.note(offset, self.lines, f"line {self.lines}: {size:,} bytes, longer than any edk2 DEBUG line "
                                          f"({MAX_LINE_BYTES:,}): skipped")
            return
        raw = bytes(self._partial)
        self._partial.clear()
        self._complete(raw, newline)

    def _complete(self, raw: bytes, newline: int = 1) -> None:
        """One whole line (`raw`, without its newline) that starts at self.bytes."""
        offset, self.lines = self.bytes, self.lines + 1
        self.bytes += len(raw) + newline
        if raw.endswith(b"\r"):
            raw = raw[:-1]           # a serial console's CRLF
        bad = _PRINTABLE.search(raw)
        if bad is not None:
            self.garbage += 1
            self.note(offset + bad.start(), self.lines,
                      f"line {self.lines}: byte 0x{raw[bad.start()]:02x} at column {bad.start() + 1} is not "
                      f"printable ASCII (garbage or a binary file): line skipped")
            self._protect = False
            return
        self._line(raw.decode("ascii"), offset, len(raw))

    def _line(self, text: str, offset: int, size: int) -> None:
        protect, self._protect = self._protect, False
        candidates = _BY_FIRST.get(text[:1])
        if candidates is None or not text.startswith(_PREFIXES):
            self.unrecognised += 1
            return
        for prefix, kind, pattern, names in candidates:
            if not text.startswith(prefix):
                continue
            m = pattern.fullmatch(text)
            if m is None:
                if kind in _LOOSE:
                    continue
                self.malformed += 1
                self.note(offset, self.lines, f"line {self.lines}: starts as {prefix.strip()!r} "
                                              f"({LABELS[kind]}) but does not match its format: cut in half?")
                return
            if kind == "image-range" and not protect:
                continue
            self._event(kind, m, names, text, offset, size)
            return
        self.unrecognised += 1

    def _event(self, kind: str, m: re.Match, names: tuple[str, ...], text: str, offset: int, size: int) -> None:
        self.counts[kind] += 1
        if len(self.events) >= MAX_EVENTS and (kind in _STATELESS or
                                                (kind in MODULE_LOADS and len(self.modules) >= MAX_MODULES)):
            self.events_dropped += 1          # counted only: nothing later depends on it
            if kind in MODULE_LOADS:
                self.modules_dropped += 1
                self._guid = None
            return
        values: dict[str, Any] = {}
        for name, raw in zip(names, m.groups()):
            if raw is None:
                continue
            if name in _TEXT:
                values[name] = raw
            elif name in _GUIDS:
                values[name] = uuid.UUID(raw)
            else:
                values[name] = int(raw, 10 if name in _DECIMAL else 16)
        ev = Event(kind, self.lines, offset, size, values, text)
        if kind in ("peim-guid", "driver-guid"):
            self._guid = (kind, values["FileName"])
        elif kind in MODULE_LOADS:
            name = values.get("Name", "")
            name = name[:-4] if name.lower().endswith(".efi") else name
            values["Name"] = name
            guid = None
            if self._guid is not None and self._guid[0] == kind.replace("-load", "-guid"):
                guid = values["FileName"] = self._guid[1]
            if len(self.modules) >= MAX_MODULES:
                self.modules_dropped += 1
            else:
                self.modules.append(Module(name, values["ImageBase"], values["EntryPoint"],
                                           "pei" if kind == "peim-load" else "dxe", self.lines, offset, guid,
                                           after_memory=self._after_memory or kind == "driver-load",
                                           line_size=size))
            self._guid = None
        elif kind == "dxe-core-load":
            prior = next((mod for mod in reversed(self.modules) if mod.base == values["ImageBase"]), None)
            if prior is not None and prior.name:
                values["Name"] = prior.name
        elif kind == "pei-memory":
            self._after_memory = True
        elif kind == "image-protect":
            self._protect = True
        elif kind == "image-range":
            mod = self.module_at(values["ImageBase"])
            if mod is not None and mod.phase == "dxe":
                mod.size = values["ImageSize"]
        elif kind == "image-start-failed":
            mod = self.module_at(values["ImageBase"])
            if mod is not None:
                mod.failed = values["Status"]
        if len(self.events) < MAX_EVENTS:
            self.events.append(ev)
        else:
            self.events_dropped += 1

    def module_at(self, base: int) -> Module | None:
        """The latest image loaded at `base` that is still loaded."""
        for mod in reversed(self.modules):
            if mod.base == base:
                return None if mod.failed else mod
        return None

    def loaded(self) -> list[Module]:
        """The images loaded now, by the log: the latest load at each base, unless it failed to start."""
        latest: dict[int, Module] = {}
        for mod in self.modules:
            latest[mod.base] = mod
        return [m for m in latest.values() if not m.failed]

    def last(self, kind: str) -> Event | None:
        return next((e for e in reversed(self.events) if e.kind == kind), None)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


# ---- Nodes ------------------------------------------------------------------------------------

def _hex(v: int) -> str:
    return f"0x{v:x}"


def event_title(ev: Event) -> str:
    v = ev.values
    k = ev.kind
    if k in MODULE_LOADS:
        what = "PEIM" if k == "peim-load" else "driver"
        return f"{what} {v.get('Name') or '(no name)'} at 0x{v['ImageBase']:x}, entry 0x{v['EntryPoint']:x}"
    if k == "dxe-core-load":
        return f"DXE core at 0x{v['ImageBase']:x}, entry 0x{v['EntryPoint']:x}"
    if k in ("peim-guid", "driver-guid"):
        return f"{LABELS[k]} {guids.describe(v['FileName'])}"
    if k == "ppi-install":
        return f"PPI installed {guids.describe(v['Guid'])}"
    if k == "memory-allocation":
        return (f"memory allocation HOB type {v['MemoryType']} "
                f"[0x{v['MemoryBaseAddress']:x}, 0x{v['MemoryEnd'] + 1:x})")
    if k == "pei-memory":
        return (f"PEI memory [0x{v['MemoryBegin']:x}, 0x{v['MemoryBegin'] + v['MemoryLength']:x}) "
                f"(PeiInstallPeiMemory)")
    if k == "low-memory":
        return f"RAM below 4 GiB ends at 0x{v['LowMemory']:x}"
    if k == "image-start-failed":
        return f"image at 0x{v['ImageBase']:x} failed to start: {v['Status']}"
    if k == "image-range":
        return f"image at 0x{v['ImageBase']:x}, 0x{v['ImageSize']:x} bytes"
    if k == "hob-list":
        return f"DXE HOB list at 0x{v['HobList']:x}"
    if k == "mp-wakeup-buffer":
        return f"AP wake-up buffer at 0x{v['WakeupBufferStart']:x}, 0x{v['WakeupBufferSize']:x} bytes (SIPI page)"
    if k == "mp-vector":
        return (f"AP reset vector at 0x{v['WakeupBuffer']:x} (0x{v['ModeTransitionOffset']:x} bytes of 16-bit "
                f"code), MP_CPU_EXCHANGE_INFO at 0x{v['ExchangeInfo']:x}")
    if k == "mp-vector-high":
        return f"AP code above 1 MiB at 0x{v['WakeupBufferHigh']:x}, 0x{v['Size']:x} bytes"
    if k == "mp-loop-mode":
        return f"AP loop mode {v['ApLoopMode']} ({AP_LOOP_MODES.get(v['ApLoopMode'], 'unknown')})"
    if k in ("mp-processors", "cpu-count"):
        return f"{v['CpuCount']} CPUs ({'MpInitLib' if k == 'mp-processors' else 'CpuDxe'})"
    if k == "mp-hand-off":
        return f"MP hand-off HOB: CPUs {v['ProcessorIndex']}.. ({v['CpuCount']} of them)"
    return f"{LABELS[k]}: {ev.text.strip()}"


def event_node(ev: Event, space: Space | None) -> Node:
    node = Node(f"log-{ev.kind}", f"line {ev.line}: {event_title(ev)}", space, ev.offset, ev.size)
    node.add("Line", ev.line)
    for name, value in ev.values.items():
        display = None
        if isinstance(value, uuid.UUID):
            display = guids.describe(value)
        elif isinstance(value, int) and name not in _DECIMAL:
            display = _hex(value)
        node.add(name, value, display=display)
    node.add("Text", ev.text)
    return node


def summary_fields(node: Node, p: LogParser) -> None:
    def count(name: str, n: int) -> None:
        node.add(name, n, display=f"{n:,}")

    count("Lines", p.lines)
    count("Bytes", p.bytes)
    count("Events", sum(p.counts.values()))
    count("PeimsLoaded", p.counts["peim-load"])
    count("DriversLoaded", p.counts["driver-load"])
    count("UnrecognisedLines", p.unrecognised)
    if p.garbage or p.overlong or p.malformed:
        node.add("SkippedLines", p.garbage + p.overlong + p.malformed,
                 display=f"{p.garbage} garbage, {p.overlong} overlong, {p.malformed} malformed")
    node.add("EventCounts", dict(p.counts), display=", ".join(f"{LABELS[k]} {n}" for k, n in p.counts.items()))


def attach_notes(node: Node, p: LogParser) -> None:
    b = budget_mod.current()
    for offset, _line, severity, message in p.notes:
        if b.take_problem():
            node.problem(offset, message, severity)
    if p.notes_dropped:
        node.warn(None, f"{p.notes_dropped:,} more bad lines not listed (the first {MAX_NOTES} are)")
    if p.modules_dropped:
        node.warn(None, f"{p.modules_dropped:,} more module loads not kept; MAX_MODULES is {MAX_MODULES:,}")
    if p.events_dropped:
        node.warn(None, f"{p.events_dropped:,} more events not kept; MAX_EVENTS is {MAX_EVENTS:,}")


def modules_node(p: LogParser, space: Space | None) -> Node:
    mods = p.modules
    node = Node("log-modules", f"modules the log names: {sum(m.phase == 'pei' for m in mods)} PEIM loads, "
                               f"{sum(m.phase == 'dxe' for m in mods)} driver loads")
    b = budget_mod.current()
    granted = b.take_nodes(len(mods))
    for m in mods[:granted]:
        size = f", 0x{m.size:x} bytes" if m.size else ""
        failed = f", start failed: {m.failed}" if m.failed else ""
        where = "RAM" if m.after_memory else "before memory (XIP)"
        child = node.append(Node("log-module", f"{m.name or '(no name)'} at 0x{m.base:x}{size}, entry "
                                               f"0x{m.entry:x} ({m.phase.upper()}, {where}{failed})",
                                 space, m.offset, m.line_size))
        child.add("Name", m.name)
        child.add("ImageBase", m.base, display=_hex(m.base))
        child.add("EntryPoint", m.entry, display=_hex(m.entry))
        if m.size is not None:
            child.add("ImageSize", m.size, display=_hex(m.size))
        if m.guid is not None:
            child.add("FileName", m.guid, display=guids.describe(m.guid))
        child.add("Line", m.line)
    b.left_out(node, None, len(mods) - granted, "modules", "nodes")
    return node


def parse_log(data: bytes | bytearray | memoryview | str) -> LogParser:
    """The parser after a whole log (text is encoded as UTF-8: a character outside ASCII makes its line
    garbage, as the bytes would)."""
    p = LogParser()
    p.feed(data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data))
    p.finish()
    return p


def decode_log(data: bytes | bytearray | memoryview, name: str = "debug log") -> Node:
    """An edk2 DEBUG log, whole: a root `edk2-log` with the modules it names and one node per
    event (located by byte offset in the log, its line number a field), the bad lines as problems."""
    with budget_mod.scope() as b:
        p = LogParser()
        p.feed(bytes(data))
        p.finish()
        space = Space(name, data, None)
        root = Node("edk2-log", f"edk2 debug log {name}: {p.lines:,} lines, {p.counts['peim-load']:,} PEIM "
                                f"and {p.counts['driver-load']:,} driver loads", space, 0, len(data))
        summary_fields(root, p)
        attach_notes(root, p)
        root.append(modules_node(p, space))
        events = root.append(Node("log-events", f"{sum(p.counts.values()):,} events", space, 0, len(data)))
        granted = b.take_nodes(len(p.events))
        for ev in p.events[:granted]:
            events.append(event_node(ev, space))
        b.left_out(events, None, len(p.events) - granted, "events", "nodes")
        b.summarize(root)
        return root


__all__ = ["Event", "LogParser", "Module", "decode_log", "parse_log", "MP_KINDS", "AP_LOOP_MODES", "event_node",
           "event_title", "modules_node", "summary_fields", "attach_notes", "MAX_LINE_BYTES", "MAX_EVENTS"]
