"""predict_tpm (decoders/measure/tpm.py) against real boots of Debian's OVMF and against virt-fw-measure.

Evidence: tests/data/ovmf-boots/ (TCG logs of real boots under QEMU + swtpm, README there)
and `virt-fw-measure` (PyPI virt-firmware) on the same images. Crafted VARS are built here with
struct.pack from edk2's VariableFormat.h and PiFirmwareVolume.h.
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.realdata import bookworm as _bookworm
from tests.realdata import firmware, fixture, missing, trixie

BANKS = ("sha1", "sha256", "sha384", "sha512")
BOOTS = "ovmf-boots"
GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
IMAGE_SECURITY = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
SB_ENABLE = uuid.UUID("f0a30bc7-af08-4556-99c4-001009c93a44")
NV_FV = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")        # gEfiSystemNvDataFvGuid
AUTH_STORE = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")   # gEfiAuthenticatedVariableGuid


def bookworm(name: str) -> Path:
    """A Debian 12 `ovmf` file by name (sample_images lists only some; the rest are beside them)."""
    import sample_images
    if sample_images.bookworm(name) is None and (Path("/usr/share/OVMF") / name).is_file():
        return Path("/usr/share/OVMF") / name
    return _bookworm(name)


@functools.lru_cache(maxsize=None)
def _image(path: Path):
    from inspector.image import load_image
    return load_image(path).root


@functools.lru_cache(maxsize=None)
def _vars(path: Path):
    from decoders.measure.tpm import load_vars
    return load_vars(path.read_bytes(), path.name)


def _predict(image: Path, vars_: Path | None = None, **kw):
    from decoders.measure.tpm import predict_tpm
    return predict_tpm(_image(image), _vars(vars_) if vars_ else None, banks=kw.pop("banks", BANKS), **kw)


def _real(log: str):
    """The PCR0/PCR7 events of a real log (not EV_NO_ACTION): (pcr, type, data, {bank: digest})."""
    from decoders.eventlog.decode import decode_event_log, event_digests, log_events
    out = []
    for ev in log_events(decode_event_log(fixture(f"{BOOTS}/{log}").read_bytes())):
        if ev.get("PCRIndex") in (0, 7) and ev.get("EventType") != 3:
            out.append((ev.get("PCRIndex"), ev.get("EventType"), bytes(ev.get("Event")), dict(event_digests(ev))))
    return out


CASES = [  # (id, image, vars, log)
    ("bookworm-OVMF.fd", lambda: bookworm("OVMF.fd"), None, "bookworm-OVMF.fd.tcglog"),
    ("bookworm-CODE_4M", lambda: bookworm("OVMF_CODE_4M.fd"), lambda: bookworm("OVMF_VARS_4M.fd"),
     "bookworm-OVMF_CODE_4M.fd+OVMF_VARS_4M.fd.tcglog"),
    ("bookworm-CODE_4M.ms", lambda: bookworm("OVMF_CODE_4M.ms.fd"), lambda: bookworm("OVMF_VARS_4M.ms.fd"),
     "bookworm-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog"),
    ("bookworm-snakeoil", lambda: bookworm("OVMF_CODE_4M.snakeoil.fd"),
     lambda: bookworm("OVMF_VARS_4M.snakeoil.fd"), "bookworm-OVMF_CODE_4M.snakeoil.fd+OVMF_VARS_4M.snakeoil.fd.tcglog"),
    ("trixie-OVMF.fd", lambda: trixie("OVMF.fd"), None, "trixie-OVMF.fd.tcglog"),
    ("trixie-CODE_4M.ms", lambda: trixie("OVMF_CODE_4M.ms.fd"), lambda: trixie("OVMF_VARS_4M.ms.fd"),
     "trixie-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog"),
    ("ovmf-debug", lambda: firmware("ovmf-debug/OVMF.fd"), None, "ovmf-debug-OVMF.fd.tcglog"),
]


@pytest.mark.parametrize("name,image,vars_,log", CASES, ids=[c[0] for c in CASES])
def test_every_predicted_event_matches_the_real_boot(name, image, vars_, log):
    """Same events in the same order, same event data, same digest in all four banks; PEIFV's
    digest is the one exception (the boot writes into it), checked below."""
    pred = _predict(image(), vars_() if vars_ else None)
    real = _real(log)
    assert [(e.index, e.event_type, e.data) for e in pred.events] == [(p, t, d) for p, t, d, _ in real]
    for ev, (_, _, _, digests) in zip(pred.events, real):
        if ev.description.startswith("PEIFV"):
            continue
        assert {b: ev.digests[b] for b in BANKS} == {b: digests[b] for b in BANKS}, ev.source


WRITES = {  # log -> the image booted (tests/data/ovmf-boots/peifv-ram-writes.json)
    "bookworm-OVMF.fd.tcglog": lambda: bookworm("OVMF.fd"),
    "bookworm-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog": lambda: bookworm("OVMF_CODE_4M.ms.fd"),
    "trixie-OVMF.fd.tcglog": lambda: trixie("OVMF.fd"),
    "trixie-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog": lambda: trixie("OVMF_CODE_4M.ms.fd"),
    "ovmf-debug-OVMF.fd.tcglog": lambda: firmware("ovmf-debug/OVMF.fd"),
}


@pytest.mark.parametrize("log", list(WRITES))
def test_peifv_digest_is_the_decompressed_volume_plus_the_peims_writes(log):
    """The predicted PEIFV bytes (space/offset/size of the event) with the bytes the boot's PEIMs wrote
    into RAM put in hash to the logged digest: the prediction has the right volume and extent."""
    image = WRITES[log]()
    pred = _predict(image, banks=("sha256",))
    ev = next(e for e in pred.events if e.description.startswith("PEIFV"))
    assert ev.data == struct.pack("<QQ", 0x820000, 0xE0000)
    blob = bytearray(ev.space.data[ev.offset:ev.offset + ev.size])
    assert hashlib.sha256(blob).digest() == ev.digests["sha256"]
    writes = json.loads(fixture(f"{BOOTS}/peifv-ram-writes.json").read_text())[log]
    for off, hexbytes in writes:
        blob[off:off + len(hexbytes) // 2] = bytes.fromhex(hexbytes)
    real = next(d for p, t, data, d in _real(log) if t == 0x80000008 and data == ev.data)
    assert hashlib.sha256(blob).digest() == real["sha256"]
    assert any("PEIFV digest" in p.message for p in pred.problems)


def test_version_string_found_in_trixie_and_absent_in_bookworm():
    t = _predict(trixie("OVMF_CODE_4M.ms.fd"), banks=("sha256",))
    assert t.events[0].data == "2025.02-8+deb13u1".encode("utf-16-le") + b"\0\0"
    assert t.version_source.startswith("found in the image at Tcg2Pei")
    assert "SMBIOS type 0" in t.version_source
    assert bytes(t.events[0].space.data[t.events[0].offset:t.events[0].offset + t.events[0].size]) == t.events[0].data
    b = _predict(bookworm("OVMF.fd"), banks=("sha256",))
    assert b.events[0].data == b"\0\0" and b.version_source.startswith("not found")
    d = _predict(firmware("ovmf-debug/OVMF.fd"), banks=("sha256",))
    assert d.events[0].data == b"\0\0"


def test_given_version_overrides_the_image():
    p = _predict(trixie("OVMF.fd"), banks=("sha256",), fw_version="x1")
    assert p.version_source == "given"
    assert p.events[0].data == b"x\x001\x00\x00\x00"
    assert p.events[0].digests["sha256"] == hashlib.sha256(b"x\x001\x00\x00\x00").digest()


# -- virt-fw-measure -------------------------------------------------------------------------

def _virt_fw_measure(*args) -> dict[tuple[int, str], str]:
    exe = Path(sys.executable).with_name("virt-fw-measure")
    path = str(exe) if exe.is_file() else shutil.which("virt-fw-measure")
    if path is None:
        missing("`virt-fw-measure` not found: pip install virt-firmware")
    out = subprocess.run([path, *args, "--digests", "--bank", "sha256", "--bank", "sha1"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return {(v["pcr"], v["hashAlg"]): v["digest"] for v in json.loads(out)["values"]}


PCR0_IMAGES = [
    ("bookworm-OVMF.fd", lambda: bookworm("OVMF.fd")),
    ("bookworm-CODE_4M", lambda: bookworm("OVMF_CODE_4M.fd")),
    ("bookworm-CODE_4M.ms", lambda: bookworm("OVMF_CODE_4M.ms.fd")),
    ("bookworm-snakeoil", lambda: bookworm("OVMF_CODE_4M.snakeoil.fd")),
    ("trixie-OVMF.fd", lambda: trixie("OVMF.fd")),
    ("trixie-CODE_4M", lambda: trixie("OVMF_CODE_4M.fd")),
    ("trixie-CODE_4M.ms", lambda: trixie("OVMF_CODE_4M.ms.fd")),
]


@pytest.mark.parametrize("name,image", PCR0_IMAGES, ids=[c[0] for c in PCR0_IMAGES])
def test_pcr0_equals_virt_fw_measure_with_the_same_version(name, image):
    """With a non-empty version both log the same CRTM event, PEIFV, DXEFV and separator."""
    img = image()
    pred = _predict(img, banks=("sha256", "sha1"), fw_version="2022.11-6+deb12u2")
    ref = _virt_fw_measure("--image", str(img), "--version", "2022.11-6+deb12u2")
    regs = pred.registers()
    assert regs["sha256"][0].hex() == ref[(0, "sha256")]
    assert regs["sha1"][0].hex() == ref[(0, "sha1")]


def test_virt_fw_measure_omits_the_crtm_event_of_an_empty_version():
    """`--version ''` is false in Python: virt-fw-measure logs no EV_S_CRTM_VERSION, while edk2 logs
    the two bytes 00 00 (real boot). Without that event the rest of PCR0 agrees."""
    from decoders.measure.model import Prediction
    img = bookworm("OVMF.fd")
    pred = _predict(img, banks=("sha256", "sha1"))
    ref = _virt_fw_measure("--image", str(img), "--version", "")
    assert pred.registers()["sha256"][0].hex() != ref[(0, "sha256")]
    rest = Prediction([e for e in pred.events if e.event_type != 0x8], ("sha256", "sha1"))
    assert rest.registers()["sha256"][0].hex() == ref[(0, "sha256")]


ENROLLED = [("bookworm", "OVMF_VARS_4M.ms.fd"), ("bookworm", "OVMF_VARS.ms.fd"), ("bookworm", "OVMF_VARS_4M.snakeoil.fd"),
            ("trixie", "OVMF_VARS_4M.ms.fd"), ("trixie", "OVMF_VARS_4M.snakeoil.fd")]


@pytest.mark.parametrize("release,name", ENROLLED, ids=[f"{r}-{n}" for r, n in ENROLLED])
def test_pcr7_equals_virt_fw_measure_where_every_policy_variable_exists(release, name):
    """These VARS enroll PK, KEK, db, dbx: SecureBoot is 1 and virt-fw-measure (which assumes
    SecureBoot 1 and skips absent variables) agrees with us (and with the real boots above)."""
    vars_ = bookworm(name) if release == "bookworm" else trixie(name)
    pred = _predict(bookworm("OVMF_CODE_4M.ms.fd"), vars_, banks=("sha256", "sha1"))
    assert next(e for e in pred.events if e.index == 7).description == "SecureBoot = 01"
    ref = _virt_fw_measure("--vars", str(vars_))
    assert pred.registers()["sha256"][7].hex() == ref[(7, "sha256")]
    assert pred.registers()["sha1"][7].hex() == ref[(7, "sha1")]


@pytest.mark.parametrize("name", ["OVMF_VARS_4M.fd", "OVMF_VARS.fd"])
def test_pcr7_of_an_empty_vars_differs_from_virt_fw_measure(name):
    """No PK: edk2 measures SecureBoot 0 and four empty variables; virt-fw-measure SecureBoot 1 only."""
    pred = _predict(bookworm("OVMF_CODE_4M.fd"), bookworm(name), banks=("sha256",))
    ref = _virt_fw_measure("--vars", str(bookworm(name)))
    assert pred.registers()["sha256"][7].hex() != ref[(7, "sha256")]


def test_pcr7_differs_from_virt_fw_measure_without_enrolled_keys():
    """An empty store: edk2 measures SecureBoot=0 and the absent PK/KEK/db/dbx with no data;
    virt-fw-measure logs SecureBoot=1 and skips them. The real boot agrees with us."""
    img = bookworm("OVMF.fd")
    pred = _predict(img, banks=("sha256", "sha1"))
    ref = _virt_fw_measure("--image", str(img))
    ours = pred.registers()["sha256"][7]
    assert ours.hex() != ref[(7, "sha256")]
    from decoders.measure.model import extend
    real = _real("bookworm-OVMF.fd.tcglog")
    events = [type("E", (), {"index": p, "digests": d})() for p, t, _, d in real if p == 7]
    assert extend(events, ("sha256",))["sha256"][7] == ours


def test_secure_boot_support_follows_the_image():
    """trixie's OVMF.fd is built without SECURE_BOOT_ENABLE (no SecureBoot variable: measured with no
    data); bookworm's has it (SecureBoot 0 with no PK)."""
    t = _predict(trixie("OVMF.fd"), banks=("sha256",))
    sb = next(e for e in t.events if e.index == 7)
    assert sb.data[16:24] == struct.pack("<Q", 10) and sb.data[24:32] == struct.pack("<Q", 0)
    b = _predict(bookworm("OVMF.fd"), banks=("sha256",))
    sb = next(e for e in b.events if e.index == 7)
    assert sb.data[24:32] == struct.pack("<Q", 1) and sb.data[-1:] == b"\x00"


def test_prediction_node_shape():
    p = _predict(bookworm("OVMF_CODE_4M.ms.fd"), bookworm("OVMF_VARS_4M.ms.fd"), banks=("sha256",))
    node = p.node()
    assert node.kind == "tpm-prediction"
    kinds = [c.kind for c in node.children]
    assert kinds.count("predicted-event") == 10 and kinds.count("predicted-register") == 2
    assert kinds[-1] == "tpm-depends"
    assert {c.get("PCRIndex") for c in node.children[-1].children} >= {0, 1, 2, 4, 5, 7}
    pk = next(e for e in p.events if e.description.startswith("PK"))
    # UEFI_VARIABLE_DATA: GUID, two u64, then "PK" (4 bytes), then the variable's data
    assert pk.space is not None and bytes(pk.space.data[pk.offset:pk.offset + pk.size]) == pk.data[32 + 4:]


# -- crafted VARS (struct.pack from VariableFormat.h / PiFirmwareVolume.h) ----------------------

def _var(name: str, vendor: uuid.UUID, data: bytes, state: int = 0x3F, attrs: int = 0x27) -> bytes:
    """AUTHENTICATED_VARIABLE_HEADER (60 bytes) + UCS-2 name with NUL + data, 4-byte aligned."""
    n = (name + "\0").encode("utf-16-le")
    # StartId, State, Reserved, Attributes, MonotonicCount, TimeStamp, PubKeyIndex, NameSize, DataSize, VendorGuid
    hdr = struct.pack("<HBBIQ16sIII16s", 0x55AA, state, 0, attrs, 0, bytes(16), 0, len(n), len(data),
                      vendor.bytes_le)
    rec = hdr + n + data
    return rec + b"\xff" * (-len(rec) % 4)


def _plain_var(name: str, vendor: uuid.UUID, data: bytes, state: int = 0x3F, attrs: int = 7) -> bytes:
    """VARIABLE_HEADER (32 bytes, a gEfiVariableGuid store) + UCS-2 name with NUL + data, 4-byte aligned."""
    n = (name + "\0").encode("utf-16-le")
    # StartId, State, Reserved, Attributes, NameSize, DataSize, VendorGuid
    rec = struct.pack("<HBBIII16s", 0x55AA, state, 0, attrs, len(n), len(data), vendor.bytes_le) + n + data
    return rec + b"\xff" * (-len(rec) % 4)


def crafted_vars(*records: bytes, fv_length: int = 0x4000, signature: uuid.UUID = AUTH_STORE) -> bytes:
    body = b"".join(records)
    store_size = fv_length - 0x48
    store = struct.pack("<16sIBBHI", signature.bytes_le, store_size, 0x5A, 0xFE, 0, 0) + body
    store += b"\xff" * (store_size - len(store))
    hdr = bytearray(struct.pack("<16s16sQ4sIHHHBB", bytes(16), NV_FV.bytes_le, fv_length, b"_FVH", 0x4FEFF,
                                0x48, 0, 0, 0, 2) + struct.pack("<IIII", fv_length // 0x1000, 0x1000, 0, 0))
    csum = (-sum(struct.unpack("<36H", bytes(hdr)))) & 0xFFFF
    hdr[50:52] = struct.pack("<H", csum)
    return bytes(hdr) + store


def _with_vars(data: bytes, banks=("sha256",)):
    from decoders.measure.tpm import load_vars, predict_tpm
    return predict_tpm(_image(bookworm("OVMF_CODE_4M.ms.fd")), load_vars(data, "crafted.fd"), banks=banks)


def _uvd(name: str, vendor: uuid.UUID, data: bytes) -> bytes:
    return vendor.bytes_le + struct.pack("<QQ", len(name), len(data)) + name.encode("utf-16-le") + data


def test_crafted_pk_with_secure_boot_enable_0_gives_secure_boot_0():
    p = _with_vars(crafted_vars(_var("PK", GLOBAL, b"pk-bytes"), _var("SecureBootEnable", SB_ENABLE, b"\x00", attrs=3)))
    sb, pk = [e for e in p.events if e.index == 7][:2]
    assert sb.data == _uvd("SecureBoot", GLOBAL, b"\x00")
    assert pk.data == _uvd("PK", GLOBAL, b"pk-bytes")
    assert pk.digests["sha256"] == hashlib.sha256(_uvd("PK", GLOBAL, b"pk-bytes")).digest()


def test_crafted_pk_without_secure_boot_enable_gives_secure_boot_1():
    p = _with_vars(crafted_vars(_var("PK", GLOBAL, b"pk")))
    assert p.events[3].data == _uvd("SecureBoot", GLOBAL, b"\x01")


def test_crafted_lookup_prefers_added_over_in_deleted_transition_and_skips_deleted():
    p = _with_vars(crafted_vars(_var("KEK", GLOBAL, b"old", state=0x3E), _var("KEK", GLOBAL, b"new"),
                                _var("db", IMAGE_SECURITY, b"gone", state=0x3C),
                                _var("dbx", IMAGE_SECURITY, b"moving", state=0x3E)))
    by = {e.description.split(" ")[0]: e for e in p.events if e.index == 7}
    assert by["KEK"].data == _uvd("KEK", GLOBAL, b"new")
    assert by["db"].data == _uvd("db", IMAGE_SECURITY, b"")
    assert by["dbx"].data == _uvd("dbx", IMAGE_SECURITY, b"moving")


def test_crafted_dbt_is_measured_after_dbx_and_dbr_is_not():
    p = _with_vars(crafted_vars(_var("dbt", IMAGE_SECURITY, b"T"), _var("dbr", IMAGE_SECURITY, b"R")))
    seven = [e for e in p.events if e.index == 7]
    names = [e.description.split(" ")[0] for e in seven]
    assert names == ["SecureBoot", "PK", "KEK", "db", "dbx", "dbt", "separator"]
    assert seven[5].data == _uvd("dbt", IMAGE_SECURITY, b"T")


def test_split_code_without_vars_says_pcr7_is_not_predictable():
    from decoders.measure.tpm import predict_tpm
    p = predict_tpm(_image(bookworm("OVMF_CODE_4M.fd")), None)
    assert 7 in p.unpredictable and 7 not in p.registers()["sha256"]
    assert any("no VARS given" in x.message for x in p.problems)
    assert 0 in p.registers()["sha256"]


VARS_FILES = [("bookworm", n) for n in ("OVMF_VARS.fd", "OVMF_VARS.ms.fd", "OVMF_VARS_4M.fd", "OVMF_VARS_4M.ms.fd",
                                        "OVMF_VARS_4M.snakeoil.fd")] + \
             [("trixie", n) for n in ("OVMF_VARS_4M.fd", "OVMF_VARS_4M.ms.fd", "OVMF_VARS_4M.snakeoil.fd")]


@pytest.mark.parametrize("release,name", VARS_FILES, ids=[f"{r}-{n}" for r, n in VARS_FILES])
def test_light_vars_reader_agrees_with_the_full_decoder(release, name):
    """load_vars' reader gives the same variables (name, vendor, state, data, where) as decoders.nvvars
    through decoders.fd, and predict_tpm the same PCR7 from either."""
    from decoders.fd import decode_image
    from decoders.measure.tpm import load_vars, predict_tpm
    path = bookworm(name) if release == "bookworm" else trixie(name)
    data = path.read_bytes()

    def rows(root):
        return [(v.get("Name"), v.get("VendorGuid"), v.get("State"), bytes(v.get("Data")), v.field("Data").offset)
                for v in next(root.find("variable-store")).children if v.kind == "variable"]
    light, full = load_vars(data, path.name), decode_image(data, name=path.name)
    assert rows(light) == rows(full)
    assert rows(light) or ".ms." not in name and "snakeoil" not in name
    img = _image(bookworm("OVMF_CODE_4M.fd"))
    a = predict_tpm(img, light, banks=("sha256",)).registers()["sha256"][7]
    b = predict_tpm(img, full, banks=("sha256",)).registers()["sha256"][7]
    assert a == b


@pytest.mark.parametrize("log", list(WRITES))
def test_peifv_read_from_ram_gives_the_real_pcr0(log):
    """With PEIFV as the guest's RAM held it (the image's bytes plus the recorded writes), every
    PCR0 event and the final PCR0 equal the real boot's, in all four banks."""
    from decoders.measure.model import extend
    from decoders.measure.tpm import predict_tpm
    image = WRITES[log]()
    plain = _predict(image, banks=("sha256",))
    ev = next(e for e in plain.events if e.description.startswith("PEIFV"))
    ram = bytearray(ev.space.data[ev.offset:ev.offset + ev.size])
    writes = json.loads(fixture(f"{BOOTS}/peifv-ram-writes.json").read_text())[log]
    for off, hexbytes in writes:
        ram[off:off + len(hexbytes) // 2] = bytes.fromhex(hexbytes)
    pred = predict_tpm(_image(image), None, banks=BANKS, peifv_ram=bytes(ram))
    real = [(p, d) for p, t, _, d in _real(log) if p == 0]
    assert [e.digests for e in pred.events if e.index == 0] == [{b: d[b] for b in BANKS} for _, d in real]
    events = [type("E", (), {"index": 0, "digests": d})() for _, d in real]
    assert pred.registers() and all(pred.registers()[b][0] == extend(events, BANKS)[b][0] for b in BANKS)
    peifv = next(e for e in pred.events if e.description.startswith("PEIFV"))
    assert "read from the guest's RAM" in peifv.source and peifv.space.name == "PEIFV in RAM"
    assert not any("PEIFV digest" in p.message for p in pred.problems)


def test_crafted_plain_store_is_read_with_the_32_byte_header():
    """A store signed gEfiVariableGuid (no authenticated header): the light reader and the full
    decoder read the same PK and KEK."""
    from decoders.fd import decode_image
    from decoders.measure.tpm import load_vars, predict_tpm
    plain = uuid.UUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
    data = crafted_vars(_plain_var("PK", GLOBAL, b"p" * 9), _plain_var("KEK", GLOBAL, b"k" * 5), signature=plain)
    img = _image(bookworm("OVMF_CODE_4M.fd"))
    for root in (load_vars(data, "plain.fd"), decode_image(data, name="plain.fd")):
        p = predict_tpm(img, root)
        by = {e.description.split(" ")[0]: e for e in p.events if e.index == 7}
        assert by["PK"].data == _uvd("PK", GLOBAL, b"p" * 9)
        assert by["KEK"].data == _uvd("KEK", GLOBAL, b"k" * 5)
        assert by["SecureBoot"].data == _uvd("SecureBoot", GLOBAL, b"\x01")


def _module(data: bytes):
    """A stand-in for an FFS file holding one PE image: the two nodes find_version looks at."""
    from decoders.model import Node, Space
    ffs = Node("ffs", "module")
    ffs.append(Node("pe", "pe", Space("module.efi", data), 0, len(data)))
    return ffs


def test_version_candidates_are_aligned_utf16_strings_of_three_or_more_characters():
    from decoders.measure.tpm_image import ImageFacts, find_version
    u = lambda s: s.encode("utf-16-le") + b"\0\0"   # noqa: E731
    # code bytes, a 2-char string (ignored), the version at an even offset, code
    data = b"\x55\x89\xe5\x90" + u("ab") + b"\x90\x90" + u("1.2-3") + b"\xc3\x00"
    v = find_version(_module(data), None, ImageFacts())
    assert v.text == "1.2-3" and v.offset == data.index(u("1.2-3")) and v.size == 12
    # the same string at an odd offset is not a UINT16 array: nothing found
    odd = b"\x55" + u("1.2-3") + b"\xc3"
    assert find_version(_module(odd), None, ImageFacts()).text == ""
    # two candidates: SmbiosPlatformDxe's copy decides; without it the empty string and a warning
    two = u("Xyz1") + b"\x90\x90" + u("9.8.7")
    facts = ImageFacts()
    assert find_version(_module(two), _module(b"\x90\x90" + u("9.8.7")), facts).text == "9.8.7"
    facts = ImageFacts()
    assert find_version(_module(two), None, facts).text == "" and facts.problems
    # a UTF-16 text longer than 256 characters is no version, and neither is its tail
    assert find_version(_module(b"\x90\x90" + u("x" * 300)), None, ImageFacts()).text == ""


def test_vars_larger_than_any_vars_file_is_a_problem_not_read():
    from decoders.measure.tpm import MAX_VARS_FILE, load_vars
    root = load_vars(bytearray(MAX_VARS_FILE + 1), "huge.fd")
    assert root.kind == "vars-file" and root.children == []
    assert [p.message for p in root.problems] == [f"huge.fd is larger than {MAX_VARS_FILE:,} bytes: not a VARS file"]
    assert load_vars(bytes(0x1000), "small.fd").problems != root.problems
