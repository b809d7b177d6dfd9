"""The TPM event log an edk2 OVMF image + VARS will write to PCR0 and PCR7, and the final values.

Only what the image and the VARS decide is predicted (TCG PC Client Platform Firmware Profile
1.05, "PCR Usage", for which PCR holds what; the edk2 2025.02 code that does it is cited in the modules below):

- PCR0 (decoders.measure.tpm_image): EV_S_CRTM_VERSION (PcdFirmwareVersionString), then
  EV_EFI_PLATFORM_FIRMWARE_BLOB for PEIFV and for DXEFV as decompressed in RAM, then at
  ReadyToBoot EV_SEPARATOR (`SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c` OnReadyToBoot, PCRs 0-6).
- PCR7 (decoders.measure.tpm_vars): SecureBoot, PK, KEK, db, dbx (measured even when absent),
  dbt when present, then EV_SEPARATOR (Tcg2Dxe.c MeasureSecureBootPolicy).

Log order: the PCR0 firmware events (Tcg2Pei), the PCR7 policy and its separator (when the
variable write protocol appears in DXE), then at ReadyToBoot PCR1's boot variables, PCR4's
"Calling EFI Application from Boot Option" and the separators of PCR0-6. `depends` names what
the other PCRs depend on, which no image or VARS decides.
"""
from __future__ import annotations

import struct

from decoders.measure.model import DIGEST_SIZES, PredictedEvent, Prediction, digests, extend
from decoders.model import Node, Problem, Severity, Space

EV_SEPARATOR = 0x4
EV_S_CRTM_VERSION = 0x8
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
SEPARATOR = b"\x00\x00\x00\x00"     # Tcg2Dxe.c MeasureSeparatorEvent: EventData 0 (1 = error)
# Seen on Debian's images (RAM dumps of real boots against the decompressed PEIFV): bookworm's
# PlatformPei wrote 22 bytes of its platform-info global, trixie's PeiCore 2 bytes (0x0608).
PEIFV_WRITES = ("PCR0: the PEIFV digest is that of the volume as decompressed (as virt-fw-measure computes it); "
                "a real boot hashes PEIFV after the PEIMs that ran in place before Tcg2Pei wrote their globals "
                "into it, values that depend on the VM (machine type, memory size), so a real PCR0 differs")
MAX_VARS_FILE = 64 << 20            # a VARS is 128 KiB-540 KiB; a unified image 4 MiB

# What the other PCRs depend on (Tcg2Dxe.c OnReadyToBoot and the drivers named).
DEPENDS: tuple[tuple[int, str], ...] = (
    (0, "the PEIFV blob's digest: PEIFV runs in place in RAM, so the PEIMs dispatched before Tcg2Pei "
        "(PeiCore, PlatformPei, …) write their global variables into the very bytes Tcg2Pei then hashes; "
        "their values come from the VM (machine type, memory, CPUs), e.g. the ACPI PM timer port PeiCore's "
        "AcpiTimerLib caches (0x608 on q35) or PlatformPei's platform info (host bridge 0x29C0, memory layout)"),
    (1, "EV_PLATFORM_CONFIG_FLAGS \"ACPI DATA\": the ACPI tables QEMU builds and passes over fw_cfg "
        "(OvmfPkg/Library/AcpiPlatformLib/QemuFwCfgAcpi.c), so the machine type, devices, memory and CPUs"),
    (1, "EV_EFI_VARIABLE_BOOT BootOrder and every Boot#### it lists, as BDS leaves them at ReadyToBoot: "
        "the VARS' boot options refreshed by OVMF's PlatformBootManagerLib from QEMU's devices and bootindex"),
    (1, "EV_TABLE_OF_DEVICES (the CPUs' locations) only with PcdTpmPlatformClass = server "
        "(Tcg2Dxe.c MeasureHandoffTables; OVMF keeps the client default, so not on OVMF)"),
    (2, "option ROMs and drivers loaded from outside the image (PCI option ROMs of the VM's devices)"),
    (3, "configuration of those option ROMs (nothing on OVMF)"),
    (4, "EV_EFI_ACTION \"Calling EFI Application from Boot Option\" at ReadyToBoot, then the PE/COFF "
        "Authenticode hash of every boot application started (UiApp, shell, the OS loader on the disk)"),
    (5, "EV_EFI_GPT_EVENT of the boot disk's partition table, EV_EFI_ACTION at ExitBootServices"),
    (6, "platform-specific events (nothing on OVMF)"),
    (7, "after its separator: EV_EFI_VARIABLE_AUTHORITY for each db entry that verifies an image "
        "when Secure Boot is on (which certificate signs the boot path), and shim's own variables"),
)


class TpmPrediction(Prediction):
    """The PCR0 and PCR7 events in log order, with what they could not decide."""

    def __init__(self, events: list | None = None, banks: tuple[str, ...] = ("sha256",),
                 initial: dict[int, bytes] | None = None, depends: list[tuple[int, str]] | None = None):
        super().__init__(events, banks, initial)
        self.depends = [] if depends is None else depends
        self.problems: list[Problem] = []
        self.version_source = ""
        self.unpredictable: set[int] = set()       # PCRs some of whose events are unknown

    def registers(self) -> dict[str, dict[int, bytes]]:
        """Final values of the PCRs all of whose events are known."""
        values = extend(self.events, self.banks, self.initial)
        return {bank: {i: v for i, v in regs.items() if i not in self.unpredictable}
                for bank, regs in values.items()}

    def node(self) -> Node:
        root = Node("tpm-prediction", f"TPM PCR0/PCR7 prediction: {len(self.events)} events, banks "
                                      + ", ".join(self.banks))
        root.add("Banks", list(self.banks))
        root.add("VersionSource", self.version_source)
        for p in self.problems:
            root.problems.append(p)
        for n in self.event_nodes():
            root.append(n)
        for n in self.register_nodes():
            root.append(n)
        for i in sorted(self.unpredictable):
            root.problem(None, f"PCR{i} is not predicted: some of its events depend on bytes that could not "
                               "be decoded (see the problems above)")
        dep = Node("tpm-depends", f"{len(self.depends)} measurements the VM configuration decides")
        for index, what in self.depends:
            item = Node("tpm-depend", f"PCR{index}: {what}")
            item.add("PCRIndex", index)
            item.add("DependsOn", what)
            dep.append(item)
        root.append(dep)
        return root


def load_vars(data: bytes | bytearray, name: str = "VARS") -> Node:
    """A VARS file's bytes into the Node tree predict_tpm reads: its variable store
    (decoders.measure.tpm_vars.read_vars; a full decode with decoders.fd works as well). Bytes past
    MAX_VARS_FILE are not a VARS file: a node with that problem."""
    from decoders.measure.tpm_vars import read_vars

    if len(data) > MAX_VARS_FILE:
        root = Node("vars-file", f"{name}: larger than {MAX_VARS_FILE:,} bytes, not read")
        root.problem(None, f"{name} is larger than {MAX_VARS_FILE:,} bytes: not a VARS file")
        return root
    return read_vars(bytes(data), name)


def _problem(problems: list[Problem], severity: str, message: str) -> None:
    sev = {"error": Severity.ERROR, "warning": Severity.WARNING}.get(severity, Severity.INFO)
    problems.append(Problem(None, sev, message))


def predict_tpm(image_root: Node, vars_root: Node | None = None, *, banks=("sha256",),
                fw_version: str | None = None, peifv_ram: bytes | None = None) -> TpmPrediction:
    """PCR0 and PCR7 events and values of an OVMF image (inspector.image.load_image(...).root) with
    a decoded VARS (load_vars), or the image's own varstore when `vars_root` is None.

    `peifv_ram`: PEIFV as read from a guest's RAM at its base (the PEIFV event's BlobBase, FvLength
    bytes), for a prediction of one VM's boot: its digest replaces that of the decompressed PEIFV,
    whose bytes the PEIMs dispatched before Tcg2Pei change at run time."""
    from decoders.measure import tpm_image, tpm_vars

    banks = tuple(banks)
    for b in banks:
        if b not in DIGEST_SIZES:
            raise ValueError(f"unknown bank {b!r}: one of {', '.join(DIGEST_SIZES)}")
    pred = TpmPrediction(banks=banks, depends=list(DEPENDS))
    facts = tpm_image.scan_image(image_root)
    for sev, msg in facts.problems:
        _problem(pred.problems, sev, msg)

    # -- PCR0, Tcg2Pei ----------------------------------------------------------------------
    if fw_version is not None:
        version = tpm_image.Version(fw_version, "given")
    else:
        version = facts.version
    pred.version_source = version.source
    crtm = version.text.encode("utf-16-le") + b"\x00\x00"    # StrSize: with the terminator
    shown = repr(version.text) if version.text else "empty"
    pred.events.append(PredictedEvent(
        0, EV_S_CRTM_VERSION, digests(banks, crtm), crtm,
        f"PcdFirmwareVersionString {shown} ({version.source}), UTF-16 with its NUL, {len(crtm)} bytes",
        f"S-CRTM version {shown}", version.space, version.offset, version.size))
    pcr0_ok = True
    # Where PEIFV sits in RAM, for a caller that can read it there (a dump, a live guest) and
    # predict again with peifv_ram: the one PCR0 input the image alone does not decide.
    pred.peifv_range = ((facts.peifv.base, facts.peifv.length)
                        if facts.peifv is not None and facts.peifv.base is not None else None)
    if facts.peifv is not None and peifv_ram is None:
        _problem(pred.problems, "info", PEIFV_WRITES)
    for vol in (facts.peifv, facts.dxefv):
        if vol is None:
            pcr0_ok = False
            continue
        ev = _blob_event(vol, banks, pred.problems, peifv_ram if vol is facts.peifv else None)
        if ev is None:
            pcr0_ok = False
        else:
            pred.events.append(ev)
    if not pcr0_ok:
        pred.unpredictable.add(0)

    # -- PCR7, Tcg2Dxe MeasureSecureBootPolicy ----------------------------------------------
    store = _store(facts, vars_root, pred.problems)
    if store is None:
        pred.unpredictable.add(7)
    else:
        _pcr7_events(pred, store, facts.secure_boot, facts.secure_boot_rule, banks)

    # -- ReadyToBoot: the PCR0 separator ---------------------------------------------------
    pred.events.append(PredictedEvent(0, EV_SEPARATOR, digests(banks, SEPARATOR), SEPARATOR,
                                      "EV_SEPARATOR at ReadyToBoot (Tcg2Dxe.c OnReadyToBoot, PCRs 0-6), "
                                      "4 zero bytes", "separator"))
    return pred


def _blob_event(vol, banks, problems: list[Problem], ram: bytes | None = None) -> PredictedEvent | None:
    fv = vol.node
    data = fv.space.data if fv.space is not None else None
    have = len(data) - fv.offset if data is not None else 0
    if data is None or have < vol.length:
        _problem(problems, "error", f"{vol.name} at 0x{fv.offset:x} of {fv.space.name if fv.space else '?'} is "
                                    f"0x{vol.length:x} bytes long (FvLength) but only 0x{max(have, 0):x} bytes "
                                    "are there: its digest cannot be computed")
        return None
    blob = memoryview(data)[fv.offset:fv.offset + vol.length]
    base = vol.base if vol.base is not None else 0
    event_data = struct.pack("<QQ", base, vol.length)     # UEFI_PLATFORM_FIRMWARE_BLOB
    where = f"0x{vol.base:x}" if vol.base is not None else "an unknown base"
    fv_name = fv.get("FvName")
    fs = fv.get("FileSystemGuid")
    source = (f"{vol.name} {str(fv_name) if fv_name else '(no FvName)'} decompressed ({fv.space.name}), "
              f"at {where} + 0x{vol.length:x}; filesystem {fs}; base: {vol.base_rule}")
    if ram is not None and len(ram) != vol.length:
        _problem(problems, "error", f"the PEIFV bytes read from RAM are 0x{len(ram):x} long, not FvLength "
                                    f"0x{vol.length:x}: the image's decompressed PEIFV is used")
    elif ram is not None:
        changed = _changed(bytes(blob), ram)
        where = ", ".join(f"+0x{a:x}..0x{b:x}" for a, b in changed[:8]) + (" …" if len(changed) > 8 else "")
        source = (f"{vol.name} as read from the guest's RAM at 0x{base:x} + 0x{vol.length:x} (given); it differs "
                  f"from the image's decompressed {vol.name} in {len(changed)} place(s){': ' + where if where else ''}")
        space = Space(f"{vol.name} in RAM", ram, base if vol.base is not None else None)
        return PredictedEvent(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, digests(banks, ram), event_data, source,
                              f"{vol.name} 0x{base:x} + 0x{vol.length:x} (RAM)", space, 0, vol.length)
    if vol.name == "PEIFV":
        source += "; a real boot hashes it after the PEIMs run before Tcg2Pei wrote their globals into it"
    return PredictedEvent(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, digests(banks, blob), event_data, source,
                          f"{vol.name} {where} + 0x{vol.length:x}", fv.space, fv.offset, vol.length)


def _changed(a: bytes, b: bytes, gap: int = 16) -> list[tuple[int, int]]:
    """Ranges [start, end) where two equal-length buffers differ (runs closer than `gap` merged),
    compared in 4 KiB blocks so equal blocks cost one comparison."""
    out: list[tuple[int, int]] = []
    for block in range(0, len(a), 4096):
        if a[block:block + 4096] == b[block:block + 4096]:
            continue
        for i in range(block, min(block + 4096, len(a))):
            if a[i] != b[i]:
                if out and i - out[-1][1] < gap:
                    out[-1] = (out[-1][0], i + 1)
                else:
                    out.append((i, i + 1))
    return out


def _store(facts, vars_root: Node | None, problems: list[Problem]):
    from decoders.measure import tpm_vars

    if vars_root is not None:
        label = vars_root.space.name if vars_root.space is not None else "the VARS"
        store = vars_root if vars_root.kind == "variable-store" else next(vars_root.find("variable-store"), None)
        if store is None:
            msgs = [p.message for _, p in vars_root.all_problems()][:2]
            _problem(problems, "error", f"{label} holds no variable store (no gEfiSystemNvDataFvGuid volume with a "
                                        "VARIABLE_STORE_HEADER)" + (": " + "; ".join(msgs) if msgs else "")
                     + "; the PCR7 variable events cannot be predicted")
            return None
        return tpm_vars.Store(store, label)
    if facts.nv_store is not None:
        label = facts.nv_store.space.name if facts.nv_store.space else "the image"
        return tpm_vars.Store(facts.nv_store, f"{label} (the image's own varstore)")
    _problem(problems, "error", "no VARS given and the image has no varstore of its own (a split OVMF_CODE): "
                                "the PCR7 variable events cannot be predicted")
    return None


def _pcr7_events(pred: TpmPrediction, store, supported: bool, rule: str, banks) -> None:
    from decoders.measure import tpm_vars

    sb, why = tpm_vars.secure_boot_value(store, supported)
    found = [sb] + [store.lookup(n, g) for n, g in tpm_vars.POLICY[1:]]
    dbt = store.lookup(*tpm_vars.DBT)
    if dbt.data is not None or dbt.unknown:
        found.append(dbt)
    for f in found:
        if f.unknown:
            pred.unpredictable.add(7)
            _problem(pred.problems, "error", f"PCR7: variable {f.name} ({f.vendor}) is not predictable: {f.unknown}")
            continue
        payload = tpm_vars.variable_data(f.name, f.vendor, f.data)
        space, off, size = tpm_vars.data_location(f)
        if f.name == "SecureBoot" and supported:
            what = f"volatile, set at boot by AuthVariableLib: {why}; {rule}"
        elif f.data is None:
            what = f"absent from {store.label}: measured with VariableDataLength 0"
        else:
            what = f"from {store.label}, {len(f.data):,} bytes"
            if f.name == "SecureBoot":
                what += f"; {why}"
        pred.events.append(PredictedEvent(
            7, EV_EFI_VARIABLE_DRIVER_CONFIG, digests(banks, payload), payload,
            f"variable {f.name} ({f.vendor}) {what}",
            f"{f.name} = " + ("(absent)" if f.data is None else
                              (f.data.hex() if len(f.data) <= 4 else f"{len(f.data):,} bytes")),
            space, off, size))
    pred.events.append(PredictedEvent(7, EV_SEPARATOR, digests(banks, SEPARATOR), SEPARATOR,
                                      "EV_SEPARATOR after the Secure Boot policy (Tcg2Dxe.c "
                                      "MeasureSecureBootPolicy), 4 zero bytes", "separator"))
