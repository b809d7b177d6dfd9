"""The TDX chapters of `fwinspect tour` (inspector.tour.tdx): "rtmr0" to "rtmr3" told from the real CC
event logs of tests/data/ccel with the TDX quotes of the same TDs, and "mrtd-pages" on the TDVF
Config-B build and Debian's OVMF.fd. Every value is checked against the node it names; the
computed ones (the RTMR after each event, the hash after each MRTD step) against an independent
computation: the tpm2_eventlog 5.4 YAML of each log (its per-event digests and `pcrs:`), the quote's
RTMRs read with struct, and the MRTD records built here with struct and hashlib."""
from __future__ import annotations

import hashlib
import json
import re
import struct

import pytest
import yaml

from decoders.eventlog.replay import replay
from inspector.cli import main
from inspector.image import load_image
from inspector.tour.model import chapters_json
from inspector.tour.tdx import MAX_LISTED_EVENTS, load_cc_log, mrtd_pages_chapter, rtmr_chapters
from tests.inspector.test_tour_offline import (BOOKWORM_MRTD_PER_PAGE, CONFIG_B_MRTD_PER_PAGE, node_at,
                                                tdvf_sections_by_struct)
from tests.realdata import bookworm, firmware, fixture

# Each real CC event log, the quote of the same TD, the tpm2_eventlog 5.4 YAML of its PCRIndex-0
# copy (tests/data/README.md, "Cross-checked oracles" 3) and which RTMRs the quote matches: all of
# them for GCE COS-113; for cc-trusted-api RTMR2 only after the IMA boot_aggregate, which is not in
# the CCEL (README oracle 1), so RTMR2 differs.
LOGS = {
    "cc-trusted-api": ("ccel/cc-trusted-api/ccel_data.bin", "ccel/cc-trusted-api/quote.bin",
                       "ccel/cc-trusted-api/ccel_data.DERIVED-hdr-pcr0-trimmed.bin.tpm2_eventlog-5.4.yaml",
                       [True, True, False, True]),
    "go-tdx-guest": ("ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.bin",
                     "ccel/go-tdx-guest/cos-113-tdx-quote.dat",
                     "ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.DERIVED-hdr-pcr0.bin"
                     ".tpm2_eventlog-5.4.yaml",
                     [True, True, True, True]),
}
# tests/data/README.md, "Cross-checked oracles": the replayed RTMRs (first and last bytes).
README_RTMRS = {
    "cc-trusted-api": [("c15727ca", "adb3a6"), ("61e958c6", "136569"), ("58bc48d5", "16dd7d"), ("0" * 8, "0" * 6)],
    "go-tdx-guest": [("3fa2f61f", "fd17f6"), ("f62dbc07", "b122c1"), ("4969684d", "fbe7c1"), ("0" * 8, "0" * 6)],
}
QUOTE_RTMR0 = 48 + 328      # TD quote body at 48 (after the v4 header); RTMR0 at body offset 328
TAMPERED = "ccel/go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin"
TAMPERED_YAML = "ccel/go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.DERIVED-hdr-pcr0.bin.tpm2_eventlog-5.4.yaml"


def quote_rtmrs_by_struct(quote: bytes) -> list[bytes]:
    return [quote[QUOTE_RTMR0 + 48 * i:QUOTE_RTMR0 + 48 * (i + 1)] for i in range(4)]


def reference(yaml_rel: str) -> tuple[list[dict], dict[int, str]]:
    """tpm2_eventlog's events and its `pcrs: sha384:` (index 1-3 = RTMR0-2) as hex."""
    doc = yaml.safe_load(fixture(yaml_rel).read_text())
    pcrs = {int(k): (f"{v:096x}" if isinstance(v, int) else str(v).removeprefix("0x"))
            for k, v in doc["pcrs"]["sha384"].items()}
    return doc["events"], pcrs


def chapters_of(log_rel: str, quote: bytes | None, quote_name: str = "quote"):
    data = fixture(log_rel).read_bytes()
    cc = load_cc_log(data, log_rel.rsplit("/", 1)[-1], quote, quote_name)
    return cc, rtmr_chapters(cc)


def running_values(root) -> dict[int, bytes]:
    """Event index -> its RTMR after it: RTMR = SHA384(RTMR || digest) from 48 zero bytes, computed
    here from each event's MrIndex and SHA-384 digest (TDX Module ABI, TDG.MR.RTMR.EXTEND)."""
    regs = [bytes(48)] * 4
    out = {}
    for i, ev in enumerate(c for c in root.children if c.kind == "event"):
        if i == 0 or ev.get("EventType") == 3 or ev.field("Event") is None:
            continue
        r = ev.get("MrIndex") - 1
        regs[r] = hashlib.sha384(regs[r] + ev.get("Digest.sha384")).digest()
        out[i] = regs[r]
    return out


def check_values(cc, chapters) -> None:
    """Every value: its path leads to its node; a field's value is the node's field; a computed value
    is what it says (checked by name against this test's own computation)."""
    root = cc.root
    events = [c for c in root.children if c.kind == "event"]
    after = running_values(root)
    rp = replay(root)
    for c in chapters:
        reg = int(c.chapter[-1])
        for v in c.values:
            assert v.node is not None, v.name
            assert v.path is not None and node_at(root, v.path) is v.node, v.name
            assert v.text in c.text
            if v.field is not None:
                assert v.value == v.node.get(v.field), v.name
                continue
            m = re.fullmatch(r"e(\d+)(_after|_what)?", v.name)
            if m and m.group(2) is None:
                assert events[v.value] is v.node and v.value == int(m.group(1))
            elif m and m.group(2) == "_after":
                assert v.node is events[int(m.group(1))] and v.value == after[int(m.group(1))]
                assert v.text == v.value.hex()
            elif m:
                assert v.value == v.node.title
            elif v.name == f"RTMR{reg}_final":
                assert v.value == rp.rtmrs()[reg]
            elif v.name == f"RTMR{reg}_count":
                assert v.value == len(rp.events_for("sha384", reg))
            elif v.name == f"RTMR{reg}_more":
                assert v.value == len(rp.events_for("sha384", reg)) - MAX_LISTED_EVENTS
            else:
                pytest.fail(f"value {v.name} of {c.chapter} is not checked")


@pytest.mark.parametrize("which", sorted(LOGS))
def test_rtmr_chapters_tell_every_event_with_the_reference_digests_and_values(which):
    log_rel, quote_rel, yaml_rel, matches = LOGS[which]
    quote = fixture(quote_rel).read_bytes()
    cc, chapters = chapters_of(log_rel, quote)
    assert [c.chapter for c in chapters] == ["rtmr0", "rtmr1", "rtmr2", "rtmr3"]
    check_values(cc, chapters)
    ref_events, ref_pcrs = reference(yaml_rel)
    quote_rtmrs = quote_rtmrs_by_struct(quote)
    for reg, c in enumerate(chapters):
        vals = {v.name: v for v in c.values}
        listed = [int(m.group(1)) for m in (re.fullmatch(r"e(\d+)", n) for n in vals) if m]
        # tpm2_eventlog's PCRIndex is MrIndex (RTMRn is index n + 1); every event of this register, in order.
        expected = [e["EventNum"] for e in ref_events[1:] if e["PCRIndex"] == reg + 1]
        assert listed == expected[:MAX_LISTED_EVENTS]
        for n in listed:
            ref = ref_events[n]
            assert vals[f"e{n}_digest"].text == ref["Digests"][0]["Digest"]
            assert vals[f"e{n}_type"].text == ref["EventType"]
            assert f"Event #{n}, {ref['EventType']}: " in c.text
        final = vals[f"RTMR{reg}_final"].value
        first, last = README_RTMRS[which][reg]
        assert final.hex().startswith(first) and final.hex().endswith(last)
        assert final.hex() == ref_pcrs.get(reg + 1, "0" * 96)
        if expected:                  # the running values end at the final value
            assert vals[f"e{expected[min(len(expected), MAX_LISTED_EVENTS) - 1]}_after"].value == (
                final if len(expected) <= MAX_LISTED_EVENTS else vals[f"e{expected[MAX_LISTED_EVENTS - 1]}_after"].value)
        assert vals[f"quote_RTMR{reg}"].value == quote_rtmrs[reg]
        assert (final == quote_rtmrs[reg]) is matches[reg]
        assert vals[f"RTMR{reg}_compared"].value is matches[reg]
        if matches[reg]:
            assert c.unexpected == []
            assert f"The quote's RTMR{reg} is {quote_rtmrs[reg].hex()}: equal to the replay." in c.text
        else:
            assert len(c.unexpected) == 1 and c.unexpected[0].startswith(f"RTMR{reg} differs from the quote's: ")


def test_cc_trusted_api_rtmr2_lists_64_events_and_counts_the_rest():
    log_rel, quote_rel, _yaml, _m = LOGS["cc-trusted-api"]
    cc, chapters = chapters_of(log_rel, fixture(quote_rel).read_bytes())
    c = chapters[2]
    vals = {v.name: v for v in c.values}
    assert len([n for n in vals if re.fullmatch(r"e\d+", n)]) == MAX_LISTED_EVENTS == 64
    assert vals["RTMR2_count"].value == 73 and vals["RTMR2_more"].value == 9
    assert "9 more events, #88 to #96, extend it the same way" in c.text
    assert "/ #88 RTMR2" in c.try_this
    # The quote's RTMR2 includes the IMA boot_aggregate (README oracle 1); the tour says where they part.
    assert c.unexpected == ["RTMR2 differs from the quote's: last extended by event #96; no value of the replay "
                            "equals the quote's, so something extended RTMR2 that this log does not hold (a later "
                            "log, such as the kernel's IMA log), or the log was changed."]


def test_rtmr_chapter_names_what_tdvf_measures_first():
    log_rel, quote_rel, _yaml, _m = LOGS["go-tdx-guest"]
    _cc, chapters = chapters_of(log_rel, fixture(quote_rel).read_bytes())
    text = chapters[0].text
    assert ("Event #1, EV_EFI_HANDOFF_TABLES2: the handoff table TdxTable (the TD HOB the VMM wrote, measured "
            "by TDVF's SEC before it is used); digest 458994daa60deac8dea19dba79748f6ff93fd0aebb8e3e0be5a65eb1"
            "2309d342c3ce31cc67af7bbd22af1a44e7d9fe21; RTMR0 is now ") in text
    assert ("Event #2, EV_EFI_PLATFORM_FIRMWARE_BLOB2: the firmware blob Fv(48DB5E17-707C-472D-91CD-1613E7EF51B0) "
            "at 0xffe00000, 0x20000 bytes (the configuration firmware volume") in text
    assert "Event #3, EV_EFI_VARIABLE_DRIVER_CONFIG: the variable SecureBoot (Secure Boot on or off)" in text
    assert "Event #8, EV_SEPARATOR: the separator 0x00000000 (normal), which closes the firmware's part" in text


def test_a_quote_with_one_byte_flipped_gives_an_unexpected_line_naming_that_rtmr():
    log_rel, quote_rel, _yaml, _m = LOGS["go-tdx-guest"]
    quote = bytearray(fixture(quote_rel).read_bytes())
    quote[QUOTE_RTMR0 + 48 + 7] ^= 0x01                  # a byte of RTMR1
    cc, chapters = chapters_of(log_rel, bytes(quote))
    check_values(cc, chapters)
    assert [c.unexpected for c in chapters[:1] + chapters[2:]] == [[], [], []]
    assert len(chapters[1].unexpected) == 1
    assert chapters[1].unexpected[0].startswith("RTMR1 differs from the quote's: ")
    assert {v.name: v for v in chapters[1].values}["RTMR1_compared"].text == "different"


def test_the_tampered_log_parts_from_the_quote_at_rtmr0_and_rtmr1():
    _log, quote_rel, _yaml, _m = LOGS["go-tdx-guest"]
    cc, chapters = chapters_of(TAMPERED, fixture(quote_rel).read_bytes())
    check_values(cc, chapters)
    _events, pcrs = reference(TAMPERED_YAML)
    finals = [{v.name: v for v in c.values}[f"RTMR{i}_final"].value.hex() for i, c in enumerate(chapters)]
    assert finals[0].startswith("a4de2df2") and finals[1].startswith("0ee9366c")     # README oracle 2
    assert finals[:3] == [pcrs[1], pcrs[2], pcrs[3]]
    assert [bool(c.unexpected) for c in chapters] == [True, True, False, False]
    assert chapters[0].unexpected[0].startswith("RTMR0 differs from the quote's: ")
    assert chapters[1].unexpected[0].startswith("RTMR1 differs from the quote's: ")


def test_a_cut_log_is_told_up_to_the_cut_with_the_located_problem():
    log_rel, _q, yaml_rel, _m = LOGS["go-tdx-guest"]
    data = fixture(log_rel).read_bytes()
    cut = 0x2320 + 0x80                   # inside event #13 (RTMR0, Boot0001: 0xd2 bytes at 0x2320)
    cc = load_cc_log(data[:cut], "cut.bin")
    chapters = rtmr_chapters(cc)
    check_values(cc, chapters)
    ref_events, _pcrs = reference(yaml_rel)
    vals = {v.name: v for v in chapters[0].values}
    assert [int(n[1:]) for n in vals if re.fullmatch(r"e\d+", n)] == list(range(1, 13))
    assert vals["e12_digest"].text == ref_events[12]["Digests"][0]["Digest"]
    assert vals["RTMR0_final"].value == vals["e12_after"].value
    event13 = next(c for c in cc.root.children if c.kind == "event" and c.offset == 0x2320)
    size_at = 0x2320 + 12 + 2 + 48                        # EventSize after the header and the one digest
    assert chapters[0].unexpected == [
        f"event #13 (RTMR0) is cut short and not replayed: EventSize 144 runs past the end of the log "
        f"({cut - size_at - 4} bytes left); log truncated here (at 0x{size_at:x})."]
    assert event13.problems[0].offset == size_at
    assert [c.chapter for c in chapters] == ["rtmr0", "rtmr1", "rtmr2", "rtmr3"]
    for c in chapters[1:]:
        assert "No event of this log extends" in c.text and c.unexpected == []


# ---- mrtd-pages ------------------------------------------------------------------------------------

def mrtd_images():
    return {"inteltdx-configB": (lambda: firmware("inteltdx/OVMF.fd"), CONFIG_B_MRTD_PER_PAGE),
            "bookworm-OVMF.fd": (lambda: bookworm("OVMF.fd"), BOOKWORM_MRTD_PER_PAGE)}


def records_by_struct(data: bytes, sections, first: int, steps: int) -> list[tuple[str, int, int | None, bytes]]:
    """(operation, GPA, data offset, SHA-384 so far) of the first `steps` records of section `first`, after
    the records of the sections before it, page by page: a 128-byte buffer, the operation's ASCII
    then the GPA as UINT64 at 16, zeros to 127; MR.EXTEND adds its 256 bytes (TDX Module ABI)."""
    h = hashlib.sha384()
    out = []

    def feed(op: bytes, gpa: int, chunk: bytes | None):
        h.update(struct.pack("<16sQ104x", op, gpa))
        if chunk is not None:
            h.update(chunk.ljust(256, b"\0"))

    for i, (off, raw, gpa0, size, _type, attrs) in enumerate(sections[:first + 1]):
        for page in range(size // 4096):
            gpa = gpa0 + page * 4096
            if not attrs & 2:
                feed(b"MEM.PAGE.ADD", gpa, None)
                if i == first:
                    out.append(("MEM.PAGE.ADD", gpa, None, h.copy().digest()))
            if attrs & 1:
                for c in range(16):
                    at = page * 4096 + c * 256
                    src = off + at if at < raw else None
                    feed(b"MR.EXTEND", gpa + c * 256, data[src:min(src + 256, off + raw)] if src is not None else b"")
                    if i == first:
                        out.append(("MR.EXTEND", gpa + c * 256, src, h.copy().digest()))
                    if len(out) >= steps:
                        return out
    return out


@pytest.mark.parametrize("which", sorted(mrtd_images()))
def test_mrtd_pages_steps_equal_a_struct_and_hashlib_computation(which, capsys):
    get, per_page = mrtd_images()[which]
    path = get()
    img = load_image(path)
    meta = img.tdx_metadata()
    c = mrtd_pages_chapter(img, meta, path.name)
    vals = {v.name: v for v in c.values}
    sections = tdvf_sections_by_struct(img.data)
    first = next(i for i, s in enumerate(sections) if s[5] & 1 and not s[5] & 2)
    assert vals["first"].value == first == 0
    steps = records_by_struct(img.data, sections, first, 4)
    assert len(steps) == 4
    for k, (op, gpa, src, running) in enumerate(steps):
        assert vals[f"step{k}_op"].value == op
        assert vals[f"step{k}_gpa"].value == gpa
        assert vals.get(f"step{k}_src") is None if src is None else vals[f"step{k}_src"].value == src
        assert vals[f"step{k}_hash"].value == running
        assert f"{running.hex()}" in c.text
    assert [s[0] for s in steps] == ["MEM.PAGE.ADD", "MR.EXTEND", "MR.EXTEND", "MR.EXTEND"]
    for i, s in enumerate(sections):
        pages = s[3] // 4096
        assert vals[f"m{i}_added"].value == (0 if s[5] & 2 else pages)
        assert vals[f"m{i}_ext"].value == (pages if s[5] & 1 else 0)
        assert vals[f"m{i}_chunks"].value == 16 * vals[f"m{i}_ext"].value
    # The final values: `fwinspect mrtd --order both` and td-shim's per-page value.
    capsys.readouterr()
    assert main(["mrtd", str(path), "--order", "both", "--json"]) == 0
    out = capsys.readouterr().out
    cli = {n["fields"][1]["value"]: n["fields"][0]["value"] for n in json.loads(out)["children"]}
    assert vals["mrtd_per_page"].value.hex() == cli["per-page"] == per_page
    assert vals["mrtd_two_pass"].value.hex() == cli["two-pass"]
    # Every value: a field equals its node's field; the computed ones were checked above.
    for v in c.values:
        if v.field is not None:
            assert v.value == v.node.get(v.field), v.name
        else:
            assert re.fullmatch(r"first|step\d_(op|gpa|src|hash)|m\d+_chunks", v.name), v.name
        if v.path is not None:
            assert node_at(img.root, v.path) is v.node
    step_nodes = {v.node for v in c.values if v.name.startswith("step")}
    assert step_nodes == {[n for n in meta.children if n.kind == "tdx-section"][first]}


# ---- the CLI ---------------------------------------------------------------------------------------

def test_cli_offline_with_a_cc_log_and_its_quote(capsys):
    log_rel, quote_rel, _yaml, _m = LOGS["go-tdx-guest"]
    image = firmware("inteltdx/OVMF.fd")
    assert main(["tour", str(image), "--offline", "--cc-eventlog", str(fixture(log_rel)), "--quote",
                 str(fixture(quote_rel)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["chapter"] for c in out] == ["flash-image", "reset-vector-table", "tdx-metadata", "mrtd", "mrtd-pages",
                                           "rtmr0", "rtmr1", "rtmr2", "rtmr3", "sev-metadata",
                                           "application-processors", "config-a-vs-b"]
    cc, chapters = chapters_of(log_rel, fixture(quote_rel).read_bytes(), fixture(quote_rel).name)
    # The tour app shows the image's tree: the log is put under the image's root (its last child), and
    # the values' paths start there, otherwise the same chapters.
    img = load_image(image)
    at = len(img.root.children)
    for c in out[5:9]:
        for v in c["values"]:
            assert v["path"][0] == at
            v["path"] = v["path"][1:]
    assert out[5:9] == chapters_json(chapters)
    img.root.append(cc.root)
    for c in rtmr_chapters(cc, img.root):
        for v in c.values:
            assert node_at(img.root, v.path) is v.node and v.path[0] == at
    assert out[8]["command"] == ("fwinspect eventlog ccel_data.DERIVED-first-18101-bytes.bin --replay "
                                 "--expect-quote cos-113-tdx-quote.dat")


def test_cli_a_quote_that_differs_is_exit_1_and_quote_alone_is_a_usage_error(capsys):
    log_rel, quote_rel, _yaml, _m = LOGS["cc-trusted-api"]
    image = bookworm("OVMF.fd")
    assert main(["tour", str(image), "--offline", "--cc-eventlog", str(fixture(log_rel)), "--quote",
                 str(fixture(quote_rel)), "--json"]) == 1                # RTMR2 differs (the IMA extension)
    out = json.loads(capsys.readouterr().out)
    assert [c["unexpected"] != [] for c in out if c["chapter"].startswith("rtmr")] == [False, False, True, False]
    assert main(["tour", str(image), "--offline", "--quote", str(fixture(quote_rel)), "--json"]) == 2
    assert "give --cc-eventlog too" in capsys.readouterr().err


def test_cli_replay_takes_a_cc_log_too(tmp_path, capsys):
    from tests.inspector.test_tour_offline import fake_stops, record

    log_rel, quote_rel, _yaml, _m = LOGS["go-tdx-guest"]
    image = bookworm("OVMF.fd")
    path = record(tmp_path, load_image(image), fake_stops("bds"))
    assert main(["tour", "--replay", str(path), str(image), "--cc-eventlog", str(fixture(log_rel)), "--quote",
                 str(fixture(quote_rel)), "--json"]) == 0
    names = [c["chapter"] for c in json.loads(capsys.readouterr().out)]
    assert names[3:9] == ["mrtd", "mrtd-pages", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]


def test_a_cut_quote_compares_nothing_and_the_last_chapter_says_why():
    log_rel, quote_rel, _yaml, _m = LOGS["go-tdx-guest"]
    cc, chapters = chapters_of(log_rel, fixture(quote_rel).read_bytes()[:100])
    check_values(cc, chapters)
    assert not any(v.name.startswith("quote_") for c in chapters for v in c.values)
    assert [c.unexpected for c in chapters[:3]] == [[], [], []]
    assert chapters[3].unexpected == ["the quote: TD quote body: needs 584 bytes, 52 left (at 0x30).",
                                      "the quote: RTMR0-3 not compared: it ends at 0x64, before the TD quote body's "
                                      "end (0x278) (at 0x64)."]
