"""decoders.measure.tpm.predict_tpm against real boots: Debian 12 and 13 OVMF images with their VARS
under QEMU 7.2 (q35, TCG) and swtpm, each booted once until ReadyToBoot has passed and the PCRs
stay still (watched through the relay), then stopped over QMP.

Three values per PCR and bank, from three independent places:
- swtpm's own PCRs, read back with TPM2_PCR_Read through inspector.live.tpmrelay;
- the replay of the TCG2 event log found in the guest's RAM (`dump-guest-memory`, paging off);
- the prediction from the image and VARS bytes alone.
The first two must agree on PCR0-7 (the log explains the TPM); the prediction must equal them on
PCR0 and PCR7, in SHA-1 and SHA-256. When it does not, the failure lists the predicted and the
logged events of that PCR side by side, so the differing event is named. PCR7 is exact on every
boot; PCR0 is exact but for PEIFV's digest (PEIFV_XFAIL below), and exact with
`predict_tpm(peifv_ram=...)` given PEIFV's bytes from the guest's RAM.

Pairings (Debian's ovmf README.Debian): OVMF_VARS_4M.ms.fd goes with OVMF_CODE_4M.ms.fd and
OVMF_VARS_4M.snakeoil.fd with OVMF_CODE_4M.snakeoil.fd, both links to OVMF_CODE_4M.secboot.fd,
which stops without SMM; QEMU 7.2 takes the SMM settings as
extra arguments (`-machine q35,smm=on` merges with QemuProcess's `-machine q35`, and the
pflash must be `secure` so only SMM code writes the variables).
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from tests.live.test_tpm_relay_live import run_to_ready_to_boot
from tests.realdata import bookworm, tool, trixie

pytestmark = pytest.mark.live

BANKS = ("sha1", "sha256")
EV_NO_ACTION, EV_SEPARATOR = 0x3, 0x4
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008          # TCG PC Client PFP §10.4.1
# The one PCR0 event whose prediction cannot be exact yet: PEIFV runs in place in RAM, and the PEIMs
# dispatched before Tcg2Pei (PlatformPei, PeiCore) write their globals into the very bytes
# Tcg2Pei then hashes (measured here: Debian 12's OVMF.fd differs from its decompressed PEIFV in
# 22 bytes at 0x82efd8-0x82f04b, the first two 0x29c0, q35's host bridge device id). The test
# below checks that cause on every boot: the logged digest is that of PEIFV's bytes in RAM.
MAX_KEPT_BLOB = 4 << 20     # PEIFV is 0xE0000 bytes; DXEFV (14.5 MiB) is only hashed
PEIFV_XFAIL = pytest.mark.xfail(strict=True, reason="PCR0: the PEIFV blob digest is of PEIFV after the "
                                "PEIMs before Tcg2Pei wrote their globals into it; predict_tpm hashes it as built")
SMM = ("-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on")


def bookworm_snakeoil_vars() -> Path:
    return bookworm("OVMF_VARS_4M.snakeoil.fd")


# id: (CODE or unified image, VARS or None, extra QEMU arguments)
CONFIGS = {
    "bookworm-OVMF.fd": (lambda: bookworm("OVMF.fd"), None, ()),
    "bookworm-4M": (lambda: bookworm("OVMF_CODE_4M.fd"), lambda: bookworm("OVMF_VARS_4M.fd"), ()),
    "bookworm-4M.ms": (lambda: bookworm("OVMF_CODE_4M.secboot.fd"), lambda: bookworm("OVMF_VARS_4M.ms.fd"), SMM),
    "bookworm-4M.snakeoil": (lambda: bookworm("OVMF_CODE_4M.secboot.fd"), bookworm_snakeoil_vars, SMM),
    "trixie-4M": (lambda: trixie("OVMF_CODE_4M.fd"), lambda: trixie("OVMF_VARS_4M.fd"), ()),
    "trixie-4M.ms": (lambda: trixie("OVMF_CODE_4M.ms.fd"), lambda: trixie("OVMF_VARS_4M.ms.fd"), SMM),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def boot(request, tmp_path_factory):
    """One boot of one image + VARS: swtpm's PCRs at the stop and the log from the RAM dump."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    tool("swtpm", "swtpm")
    from inspector.live.qemu import QemuProcess
    from inspector.dump import open_dump
    from inspector.locate import dump_overview

    code_of, vars_of, extra = CONFIGS[request.param]
    code, vars_ = code_of(), (vars_of() if vars_of else None)
    out = tmp_path_factory.mktemp(request.param)
    with QemuProcess(code, vars=vars_, tpm=True, extra_args=extra) as q:
        if vars_ is None:
            assert q.vars is None, "a unified image boots with -bios and its own varstore"
        run_to_ready_to_boot(q)
        pcrs = q.read_pcrs(BANKS, range(8))
        q.qmp.execute("dump-guest-memory", paging=False, protocol=f"file:{out / 'guest.elf'}")
    with open_dump(out / "guest.elf") as d:           # the log's bytes are copied into its node
        logs = [n for n in dump_overview(d).walk() if n.kind == "event-log"]
        assert len(logs) == 1, f"{request.param}: {len(logs)} TCG2 logs found in RAM"
        blobs, small = {}, {}
        for _type, _digests, data in logged(logs[0], 0):
            if _type == EV_EFI_PLATFORM_FIRMWARE_BLOB and len(data) == 16:
                base, length = struct.unpack("<QQ", data)     # UEFI_PLATFORM_FIRMWARE_BLOB
                ram = d.memory.read(base, length)
                blobs[(base, length)] = {bank: hashlib.new(bank, ram).digest() for bank in BANKS}
                if length <= MAX_KEPT_BLOB:
                    small[(base, length)] = ram
    (out / "guest.elf").unlink()         # 256 MiB each: keep the disk free for the next boot
    return {"id": request.param, "code": code, "vars": vars_, "pcrs": pcrs, "log": logs[0], "ram_blobs": blobs,
            "ram_bytes": small}


def logged(log, pcr: int) -> list:
    """The events of one PCR the TPM extended (EV_NO_ACTION is not extended, PFP §10.4.1)."""
    from decoders.eventlog.decode import event_digests, log_events

    out = []
    for i, e in enumerate(log_events(log)):
        if i == 0 or e.get("PCRIndex") != pcr or e.get("EventType") == EV_NO_ACTION:
            continue
        out.append((e.get("EventType"), dict(event_digests(e)), e.get("Event") or b""))
    return out


def test_swtpm_pcrs_equal_the_replay_of_the_log_in_ram(boot):
    from decoders.eventlog.replay import replay

    for n in (0, 7):
        assert any(t == EV_SEPARATOR for t, _d, _e in logged(boot["log"], n)), \
            f"{boot['id']}: no EV_SEPARATOR in PCR{n}: the boot had not reached ReadyToBoot, settle longer"
    rp = replay(boot["log"])
    for bank in BANKS:
        for n in range(8):
            assert boot["pcrs"][bank][n] == rp.value(bank, n), f"{boot['id']} {bank} PCR{n}"


@pytest.fixture(scope="module")
def predictions():
    return {}


def prediction(boot, cache, peifv_ram: bytes | None = None):
    key = (boot["id"], peifv_ram is not None)
    if key not in cache:
        try:
            from decoders.measure.tpm import load_vars, predict_tpm
        except ImportError as e:
            pytest.skip(f"decoders.measure.tpm.predict_tpm is not there yet: {e}")
        from inspector.cli import load_image_arg

        image_root = load_image_arg(str(boot["code"])).root
        vars_root = load_vars(boot["vars"].read_bytes(), boot["vars"].name) if boot["vars"] else None
        extra = {"peifv_ram": peifv_ram} if peifv_ram is not None else {}
        cache[key] = predict_tpm(image_root, vars_root, banks=BANKS, **extra)
    return cache[key]


def side_by_side(pred, log, pcr: int, bank: str) -> str:
    """Predicted and logged events of one PCR, position by position, `!=` where they differ."""
    ours = [(e.event_type, e.digests.get(bank), e.data, e.source) for e in pred.events if e.index == pcr]
    real = logged(log, pcr)
    lines = [f"PCR{pcr} {bank}: {len(ours)} predicted events, {len(real)} logged"]
    for i in range(max(len(ours), len(real))):
        p = ours[i] if i < len(ours) else None
        r = real[i] if i < len(real) else None
        same = p is not None and r is not None and p[0] == r[0] and p[1] == r[1].get(bank)
        mark = "==" if same else "!="
        lines.append(f"  #{i} {mark} predicted " + (f"type 0x{p[0]:x} {p[1].hex() if p[1] else None} "
                                                      f"data {p[2][:24].hex()} ({p[3]})" if p else "-"))
        lines.append("          logged    " + (f"type 0x{r[0]:x} {r[1].get(bank, b'').hex()} "
                                               f"data {r[2][:24].hex()}" if r else "-"))
    return "\n".join(lines)


def test_firmware_blob_digests_are_the_hashes_of_the_volumes_in_ram(boot):
    """Tcg2Pei hashes PEIFV and DXEFV where they are in RAM (FvBase, FvLength in the event data):
    the logged digests equal the hashes of those bytes in the dump, taken after the boot."""
    blobs = [(d, data) for t, d, data in logged(boot["log"], 0) if t == EV_EFI_PLATFORM_FIRMWARE_BLOB]
    assert len(blobs) == 2, f"{boot['id']}: {len(blobs)} firmware blob events in PCR0 (PEIFV, DXEFV expected)"
    for digests, data in blobs:
        base, length = struct.unpack("<QQ", data)
        for bank in BANKS:
            assert digests[bank] == boot["ram_blobs"][(base, length)][bank], f"{bank} blob 0x{base:x}+0x{length:x}"


def test_predicted_pcr0_events_equal_the_log_but_for_the_peifv_digest(boot, predictions):
    """S-CRTM version, the PEIFV blob's base and length, DXEFV's digest and the separator are
    exact; PEIFV's digest is the one event PEIFV_XFAIL excuses."""
    pred = prediction(boot, predictions)
    ours = [e for e in pred.events if e.index == 0]
    real = logged(boot["log"], 0)
    assert [(e.event_type, e.data) for e in ours] == [(t, data) for t, _d, data in real], \
        side_by_side(pred, boot["log"], 0, "sha256")
    for bank in BANKS:
        differ = [i for i, (e, r) in enumerate(zip(ours, real)) if e.digests[bank] != r[1][bank]]
        peifv = [i for i, e in enumerate(ours) if e.event_type == EV_EFI_PLATFORM_FIRMWARE_BLOB
                 and e.description.startswith("PEIFV")]
        assert set(differ) <= set(peifv), side_by_side(pred, boot["log"], 0, bank)


@pytest.mark.parametrize("pcr", [pytest.param(0, marks=PEIFV_XFAIL), 7])
@pytest.mark.parametrize("bank", BANKS)
def test_prediction_equals_the_pcr_swtpm_reached(boot, predictions, bank, pcr):
    pred = prediction(boot, predictions)
    values = pred.registers().get(bank, {})
    assert pcr in values, (f"{boot['id']}: PCR{pcr} not predicted: "
                           + "; ".join(p.message for p in pred.problems))
    assert values[pcr] == boot["pcrs"][bank][pcr], (
        f"{boot['id']}: predicted {bank} PCR{pcr} {values[pcr].hex()}, swtpm {boot['pcrs'][bank][pcr].hex()}\n"
        + side_by_side(pred, boot["log"], pcr, bank))


@pytest.mark.parametrize("bank", BANKS)
def test_prediction_with_peifv_as_read_from_ram_equals_pcr0(boot, predictions, bank):
    """predict_tpm(peifv_ram=...) with PEIFV's bytes from this guest's RAM (where the predicted
    PEIFV event says it lies): every other PCR0 event still comes from the image alone."""
    plain = prediction(boot, predictions)
    peifv = [e for e in plain.events if e.index == 0 and e.event_type == EV_EFI_PLATFORM_FIRMWARE_BLOB
             and e.description.startswith("PEIFV")]
    assert len(peifv) == 1, f"{boot['id']}: {len(peifv)} predicted PEIFV events"
    where = struct.unpack("<QQ", peifv[0].data)
    assert where in boot["ram_bytes"], f"{boot['id']}: no logged blob at 0x{where[0]:x}+0x{where[1]:x}"
    pred = prediction(boot, predictions, peifv_ram=boot["ram_bytes"][where])
    value = pred.registers().get(bank, {}).get(0)
    assert value == boot["pcrs"][bank][0], (
        f"{boot['id']}: predicted {bank} PCR0 {value and value.hex()}, swtpm {boot['pcrs'][bank][0].hex()}\n"
        + side_by_side(pred, boot["log"], 0, bank))
