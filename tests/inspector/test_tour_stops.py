"""The handoff chapters (inspector/tour/stops.py) over real recorded boots.

Four boots are recorded once per session (tests/inspector/tour_recordings.py): Debian 12's OVMF.fd
with a swtpm TPM and its Ia32X64 OVMF_CODE_4M.fd, our DEBUG build with its debug log, and the
same on `-cpu max` (5-level paging before SEC). Each chapter's values are followed back
to the recorded tree (or register) they name and recomputed here, each value's text is looked for
in the chapter's text, and the values known for these images are checked exactly. Altered copies
of real stops check that a disagreement with the debug log, or a missing handoff, is said.
"""
from __future__ import annotations

import copy
import json
import re

import pytest

from decoders.model import Node
from inspector.live.session_api import Stop
from inspector.tour.model import chapters_json
from inspector.tour.stops import stop_chapters
from tests.inspector.tour_recordings import bookworm_boot, code4m_boot, debug_boot, debug_la57_boot  # noqa: F401

BOOT_ORDER = ["reset", "sec", "pei", "dxe-ipl", "dxe-core", "bds"]


def resolve(root: Node, path: tuple[int, ...]) -> Node:
    node = root
    for i in path:
        node = node.children[i]
    return node


def _hobs_of(node: Node, hob_type: int) -> list[Node]:
    return [h for h in node.children if h.kind == "hob" and h.get("HobType") == hob_type]


def _ranges(node: Node) -> list[Node]:
    return [c for c in node.children if c.kind == "page-range"]


# Values computed from a node (no field): recomputed here from the node the path leads to.
COMPUTED = {
    "ranges": lambda n: len(_ranges(n)),
    "nx_ranges": lambda n: sum(1 for r in _ranges(n) if r.get("NX") is True),
    "ro_ranges": lambda n: sum(1 for r in _ranges(n) if r.get("Writable") is False),
    "free_memory": lambda n: n.get("EfiFreeMemoryTop") - n.get("EfiFreeMemoryBottom"),
    "resource_count": lambda n: len(_hobs_of(n, 3)),
    "ram_count": lambda n: sum(1 for h in _hobs_of(n, 3) if h.get("ResourceType") == 0),
    "system_memory": lambda n: sum(h.get("ResourceLength") for h in _hobs_of(n, 3) if h.get("ResourceType") == 0),
    "allocation_count": lambda n: len(_hobs_of(n, 2)),
    "acpi_count": lambda n: sum(1 for c in n.children if c.kind == "acpi-table"),
    "image_count": lambda n: sum(1 for c in n.children if c.kind == "loaded-image"),
    "failed_count": lambda n: sum(1 for c in n.children if "start failed" in c.title and "(DXE" in c.title),
    "log_pcrs": lambda n: sorted({e.get("PCRIndex") for e in n.children if e.kind == "event"
                                  and e.get("EventType") != 3}),
}


def check_value(stop: Stop, image, v) -> None:
    if v.path is None:
        if v.name.startswith("reg_"):
            # The stop's registers node (outside its tree): the register is its field.
            assert v.kind == "cpu-registers" and v.field == v.name[4:], v
            assert stop.registers[v.field] == v.value == v.node.get(v.field), v
            assert v.node.get("rip") == stop.registers.get("rip"), v
        elif v.name == "stop_disasm":
            assert v.value == stop.disassembly[0][1]
        elif v.name == "stop_mode":
            assert v.value == stop.mode
        elif v.name.startswith("image_"):
            # From the image's tree, not the stop's: one of its top-level volumes.
            assert any(v.node is c for c in image.root.children), v
            assert v.node.kind == v.kind and v.node.get(v.field) == v.value
        else:
            pytest.fail(f"value {v.name} names no node, register or stop attribute")
        return
    node = resolve(stop.tree, v.path)
    assert node is v.node and node.kind == v.kind, v
    assert v.address == node.address
    if v.field is not None:
        assert node.get(v.field) == v.value, v
    else:
        name = re.sub(r"_\d+$", "", v.name)
        assert name in COMPUTED, f"no recomputation for {v.name}"
        assert COMPUTED[name](node) == v.value, v


@pytest.fixture(params=["bookworm", "code4m", "debug", "debug_la57"])
def boot(request):
    return request.getfixturevalue(f"{request.param}_boot")


def chapters_of(boot) -> tuple[list, dict[int, Stop]]:
    stops, image = boot
    return stop_chapters(stops, image), {s.index: s for s in stops}


class TestRealBoots:
    def test_one_chapter_per_handoff_in_boot_order(self, boot):
        chapters, by_index = chapters_of(boot)
        assert [c.chapter for c in chapters] == BOOT_ORDER
        assert [str(by_index[c.stop].handoff) for c in chapters] == ["reset", "sec", "pei-core", "dxe-ipl",
                                                                       "dxe-core", "bds"]

    def test_every_value_leads_back_to_its_node_and_is_in_the_text(self, boot):
        chapters, by_index = chapters_of(boot)
        for c in chapters:
            assert c.values, c.chapter
            for v in c.values:
                check_value(by_index[c.stop], boot[1], v)
                assert v.text in c.text, (c.chapter, v.name, v.text)

    def test_chapters_are_json(self, boot):
        chapters, _ = chapters_of(boot)
        out = json.loads(json.dumps(chapters_json(chapters)))
        assert [c["chapter"] for c in out] == BOOT_ORDER
        assert [c["command"] for c in out] == [f"fwinspect qemu IMAGE --until {p} --json" for p in
                                               ("reset", "sec", "pei-core", "dxe-ipl", "dxe-core", "bds")]
        assert all(v["path"] is not None or v["name"].startswith(("reg_", "stop_", "image_"))
                   for c in out for v in c["values"])

    def test_no_hole_is_left_unfilled(self, boot):
        chapters, _ = chapters_of(boot)
        for c in chapters:
            assert not re.search(r"\{[a-z_0-9]+\}", c.text), c.text

    def test_the_usual_story_holds_for_these_boots(self, boot):
        chapters, _ = chapters_of(boot)
        assert {c.chapter: c.unexpected for c in chapters} == {name: [] for name in BOOT_ORDER}


def values(chapter) -> dict:
    return {v.name: v.value for v in chapter.values}


class TestBookworm:
    def test_reset_starts_real_mode_at_0xfffffff0_with_cs_base_0xffff0000(self, bookworm_boot):
        reset = stop_chapters(*bookworm_boot)[0]
        got = values(reset)
        assert (got["mode"], got["reg_cs"], got["reg_cs_base"], got["reg_rip"], got["linear"]) == \
               ("real", 0xF000, 0xFFFF0000, 0xFFF0, 0xFFFFFFF0)
        assert bytes.fromhex(got["vector"]) == bookworm_boot[1].data[-16:]
        assert got["stop_disasm"] == "mov eax, cr0"
        assert "The first instruction is `mov eax, cr0`" in reset.text

    def test_sec_pei_handoff_is_debian_12s_temporary_ram_and_stack(self, bookworm_boot):
        pei = stop_chapters(*bookworm_boot)[2]
        got = values(pei)
        assert (got["temp_base"], got["temp_size"], got["stack_base"], got["stack_size"]) == \
               (0x810000, 0x10000, 0x818000, 0x8000)
        assert (got["bfv_base"], got["bfv_size"], got["ppi_count"]) == (0x820000, 0xE0000, 2)
        assert "temporary RAM: 0x810000 + 0x10000" in pei.text
        assert "the stack 0x818000 + 0x8000" in pei.text
        assert "gEfiTemporaryRamSupportPpiGuid, gEfiPeiMpInitLibMpDepPpiGuid" in pei.text

    def test_sec_is_long_mode_on_the_reset_vectors_page_tables(self, bookworm_boot):
        sec = stop_chapters(*bookworm_boot)[1]
        got = values(sec)
        assert (got["bfv"], got["image_fv_size"], got["mode"]) == (0xFFFCC000, 0x34000, "long64")
        assert (got["cr3"], got["levels"], got["leaves"], got["mapped"]) == (0x800000, 4, 2048, 1 << 32)
        assert "LME set (long mode enabled), LMA set (long mode active)" in sec.text
        assert "LA57 clear (4-level paging)" in sec.text

    def test_bds_finds_the_tpm_event_log_with_pcr0_and_pcr7(self, bookworm_boot):
        bds = stop_chapters(*bookworm_boot)[-1]
        got = values(bds)
        assert got["log_pcrs_0"] == [0, 7]
        assert "measurements went to PCR0, PCR7" in bds.text
        assert "No ACPI tables are installed yet" in bds.text
        assert "gEfiTcg2FinalEventsTableGuid" in bds.text


class TestAcpiPresent:
    def test_acpi_tables_at_the_stop_are_named_by_signature(self, bookworm_boot):
        """No real boot has ACPI at BdsDxe's entry (OVMF installs QEMU's tables later in BDS): the
        real BDS stop with real tables (tests/data/acpi/fwts, decoded) added as inspector.locate adds them."""
        from decoders.acpi.decode import decode_table
        from tests.realdata import fixture

        stops, image = bookworm_boot
        stops = copy.deepcopy(stops)
        bds_stop = next(s for s in stops if s.handoff == "bds")
        acpi = bds_stop.tree.append(Node("acpi", "ACPI tables"))
        for rel in ("tpm2-0001/extracted/facp.dat", "tpm2-0001/extracted/tpm2.dat", "madt-0001/extracted/apic1.dat"):
            acpi.append(decode_table(fixture(f"acpi/fwts/{rel}").read_bytes()))
        bds = stop_chapters(stops, image)[-1]
        assert "ACPI is there already: 3 tables: FACP, TPM2, APIC." in bds.text
        assert "QEMU built them" not in bds.text          # their OEM IDs are INTEL and PTLTD, not BOCHS
        assert "No ACPI tables are installed yet" not in bds.text
        for v in bds.values:
            check_value(bds_stop, image, v)
        for t in acpi.children:
            t.field("OemId").value = "BOCHS "
        bds = stop_chapters(stops, image)[-1]
        assert "All carry QEMU's OEM ID BOCHS: QEMU built them" in bds.text


class TestIa32X64:
    def test_ia32_reset_vector_sec_and_pei_are_32_bit(self, code4m_boot):
        reset, sec, pei, ipl, core = stop_chapters(*code4m_boot)[:5]
        assert values(reset)["stop_disasm"] == "nop"
        assert "an IA32 build pads with two NOPs" in reset.text
        assert (values(sec)["mode"], sec.title) == ("prot32", "SEC: the boot firmware volume, in 32-bit protected mode")
        assert "PG clear (paging off)" in sec.text and "(OvmfPkg/Sec/Ia32/SecEntry.nasm)" in sec.text
        assert "cr3" not in values(sec) and "cr3" not in values(ipl)
        got = values(pei)
        assert (got["temp_base"], got["temp_size"], got["stack_base"], got["stack_size"]) == \
               (0x810000, 0x10000, 0x818000, 0x8000)
        assert "SEC calls PeiCore(SecCoreData, PpiList) on the stack (IA32 cdecl)" in pei.text
        assert values(core)["reg_efer"] & 0x400 and values(core)["levels"] == 4


class TestLa57:
    def test_sec_runs_on_5_level_tables_and_the_dxe_core_on_4(self, debug_la57_boot):
        chapters = stop_chapters(*debug_la57_boot)
        sec, core = chapters[1], chapters[4]
        assert (values(sec)["levels"], values(sec)["reg_cr4"] & 0x1000) == (5, 0x1000)
        assert "LA57 set (5-level paging)" in sec.text and ": 5-level tables mapping 4 GiB" in sec.text
        # The DXE IPL builds 4-level tables here and the DXE core runs with LA57 clear.
        assert (values(core)["levels"], values(core)["reg_cr4"] & 0x1000) == (4, 0)
        assert "LA57 clear (4-level paging)" in core.text


class TestDebugBuild:
    def test_chapters_check_against_the_log(self, debug_boot):
        chapters = {c.chapter: c for c in stop_chapters(*debug_boot)}
        stops = {s.index: s for s in debug_boot[0]}
        core = chapters["dxe-core"]
        log = next(stops[core.stop].tree.find("log-dxe-core-load"))
        assert "The debug log's `Loading DXE CORE at` line" in core.text
        assert values(core)["log_line"] == log.get("Line")
        assert (log.get("ImageBase"), log.get("EntryPoint")) == (values(core)["base"], values(core)["entry"])
        assert "The debug log agrees" in chapters["dxe-ipl"].text
        bds = chapters["bds"]
        tree = stops[bds.stop].tree
        dxe = [m for m in next(tree.find("log-modules")).children if "(DXE" in m.title]
        failed = [m for m in dxe if "start failed" in m.title]
        got = values(bds)
        assert got["drivers_loaded"] == len(dxe) == next(tree.find("debug-log")).get("DriversLoaded")
        # Each driver that started is a loaded image, the DXE core is the one more.
        assert got["image_count"] == len(dxe) - len(failed) + 1
        assert "Every driver the log started is in the debug image info table" in bds.text

    def test_a_dxe_core_base_changed_in_the_tree_is_said_to_disagree_with_the_log(self, debug_boot):
        stops, image = debug_boot
        stops = copy.deepcopy(stops)
        entry = next(s for s in stops if s.handoff == "dxe-core").tree
        base, ep = entry.get("ImageBase"), entry.get("EntryPoint")
        entry.field("ImageBase").value += 0x1000
        line = next(entry.find("log-dxe-core-load")).get("Line")
        core = next(c for c in stop_chapters(stops, image) if c.chapter == "dxe-core")
        assert core.unexpected == [
            f"the module HOB puts the DXE core at 0x{base:x}; the session has 0x{base + 0x1000:x}",
            f"the debug log loads the DXE core at 0x{base:x} entry 0x{ep:x} (line {line}); this chapter has "
            f"0x{base + 0x1000:x} entry 0x{ep:x}"]
        assert "Not as usual: the debug log loads the DXE core at" in core.text
        assert "gives the same base and entry" not in core.text

    def test_a_log_that_loads_the_dxe_core_elsewhere_is_said(self, debug_boot):
        stops, image = debug_boot
        stops = copy.deepcopy(stops)
        entry = next(s for s in stops if s.handoff == "dxe-core").tree
        next(entry.find("log-dxe-core-load")).field("EntryPoint").value += 4
        core = next(c for c in stop_chapters(stops, image) if c.chapter == "dxe-core")
        assert len(core.unexpected) == 1 and core.unexpected[0].startswith("the debug log loads the DXE core at ")

    def test_a_loaded_image_missing_from_the_table_is_said(self, debug_boot):
        stops, image = debug_boot
        stops = copy.deepcopy(stops)
        table = next(next(s for s in stops if s.handoff == "bds").tree.find("efi-debug-image-info-table"))
        gone = table.children.pop(1)
        bds = stop_chapters(stops, image)[-1]
        assert bds.unexpected == [f"the log loaded {gone.get('Name')} at 0x{gone.get('ImageBase'):x}, which is not "
                                  "in the debug image info table"]

    def test_no_tpm_no_final_events_table_no_event_log(self, debug_boot):
        bds = stop_chapters(*debug_boot)[-1]
        assert "No event log: neither a TCG2 nor a CC final-events configuration table is installed" in bds.text

    def test_an_acpi_config_table_without_decoded_tables_is_said(self, bookworm_boot):
        stops, image = bookworm_boot
        stops = copy.deepcopy(stops)
        st = next(next(s for s in stops if s.handoff == "bds").tree.find("efi-system-table"))
        st.children[0].field("VendorGuid").value = "8868e871-e4f1-11d3-bc22-0080c73c8881"   # EFI_ACPI_20_TABLE_GUID
        bds = stop_chapters(stops, image)[-1]
        assert bds.unexpected == ["an ACPI configuration table is installed but no ACPI tables were decoded from it"]
        assert "No ACPI tables are installed yet" not in bds.text

    def test_a_final_events_table_without_a_log_is_said(self, bookworm_boot):
        stops, image = bookworm_boot
        stops = copy.deepcopy(stops)
        tree = next(s for s in stops if s.handoff == "bds").tree
        tree.children = [c for c in tree.children if c.kind != "event-log"]
        bds = stop_chapters(stops, image)[-1]
        assert bds.unexpected == ["gEfiTcg2FinalEventsTableGuid is installed, so something measures this boot, "
                                  "but no event log was found in RAM"]

    def test_a_disagreement_the_cross_check_found_is_said(self, debug_boot):
        stops, image = debug_boot
        stops = copy.deepcopy(stops)
        check = next(next(s for s in stops if s.handoff == "bds").tree.find("debug-log-cross-check"))
        check.problem(None, "line 7: the log loads X at 0x1000; the session has Y there")
        bds = stop_chapters(stops, image)[-1]
        assert bds.unexpected == ["the debug log disagrees with the session: line 7: the log loads X at 0x1000; "
                                  "the session has Y there"]

    def test_dxe_ipl_at_another_base_than_the_log_is_said(self, debug_boot):
        stops, image = debug_boot
        stops = copy.deepcopy(stops)
        entry = next(s for s in stops if s.handoff == "dxe-ipl").tree
        entry.field("EntryPoint").value += 1
        ipl = stop_chapters(stops, image)[3]
        assert len(ipl.unexpected) == 1 and ipl.unexpected[0].startswith("the debug log loads DxeIpl at ")


class TestMissingHandoffs:
    def test_config_b_style_stops_without_pei_tell_the_rest_and_say_so(self, bookworm_boot):
        stops, _ = bookworm_boot
        kept = [s for s in stops if s.handoff not in ("pei-core", "dxe-ipl")]
        chapters = stop_chapters(kept, None)
        assert [c.chapter for c in chapters] == ["reset", "sec", "dxe-core", "bds"]
        assert chapters[2].unexpected == [
            "the session did not stop at the pei-core handoff, so that chapter is not told",
            "the session did not stop at the dxe-ipl handoff, so that chapter is not told"]
        assert [c.unexpected for c in chapters[:2] + chapters[3:]] == [[], [], []]

    def test_with_a_config_b_image_the_chapter_says_the_image_has_no_pei(self, bookworm_boot):
        from inspector.image import load_image
        from tests.realdata import firmware

        stops, _ = bookworm_boot
        kept = [s for s in stops if s.handoff not in ("pei-core", "dxe-ipl")]
        chapters = stop_chapters(kept, load_image(firmware("inteltdx/OVMF.fd")))
        assert chapters[2].unexpected == [
            f"there is no {p} handoff: the image has none (its handoffs: reset, sec, dxe-core, bds); a PEI-less "
            "image's SEC hands off to the DXE core itself" for p in ("pei-core", "dxe-ipl")]

    def test_a_session_that_ended_early_gets_a_final_note(self, bookworm_boot):
        stops, image = bookworm_boot
        chapters = stop_chapters(stops[:2], image)
        assert [c.chapter for c in chapters] == ["reset", "sec", "end"]
        assert chapters[-1].unexpected == [f"the session ended before the {p} handoff: the chapters stop here"
                                           for p in ("pei-core", "dxe-ipl", "dxe-core", "bds")]

    def test_the_final_note_says_why_the_last_stop_ended(self, bookworm_boot):
        stops, image = bookworm_boot
        dead = Stop(9, "interrupt", "unknown", "unknown", 0, {}, problems=["the guest exited (shutdown)"])
        chapters = stop_chapters(stops[:3] + [dead], image)
        assert [c.chapter for c in chapters] == ["reset", "sec", "pei", "end"]
        assert chapters[-1].unexpected[-1] == "the last stop (#9) says: the guest exited (shutdown)"

    @pytest.mark.parametrize("damage", ["no fields", "no values", "no children", "shallow"])
    def test_damaged_real_trees_give_chapters_not_exceptions(self, boot, damage):
        """Every node of every real stop stripped of its fields (or their values, or its children):
        the chapters are still told, saying where the story stops short."""
        stops, image = boot
        stops = copy.deepcopy(stops)
        for s in stops:
            if s.tree is None:
                continue
            if damage == "no children":
                s.tree.children = []
            elif damage == "shallow":
                for c in s.tree.children:
                    c.children = []
            else:
                for n in s.tree.walk():
                    if damage == "no fields":
                        n.fields = []
                    else:
                        for f in n.fields:
                            f.value = None
        chapters = stop_chapters(stops, image)
        assert [c.chapter for c in chapters] == BOOT_ORDER
        assert any(c.unexpected for c in chapters)

    def test_stops_without_trees_and_no_stops_give_chapters_not_exceptions(self, bookworm_boot):
        stops, _ = bookworm_boot
        bare = [Stop(s.index, s.reason, s.phase, s.mode, s.linear_rip, {}, handoff=s.handoff) for s in stops]
        chapters = stop_chapters(bare, None)
        assert [c.chapter for c in chapters] == BOOT_ORDER
        assert all(c.unexpected for c in chapters)
        assert [c.chapter for c in stop_chapters([], None)] == ["end"]

    def test_a_reset_vector_that_is_not_the_images_is_said(self, bookworm_boot):
        stops, image = bookworm_boot
        stops = copy.deepcopy(stops)
        f = stops[0].tree.field("ResetVectorBytes")
        f.value = "90" * 16 if isinstance(f.value, str) else b"\x90" * 16
        reset = stop_chapters(stops, image)[0]
        assert reset.unexpected == ["the 16 bytes at the reset vector are not this image's last 16: another image runs"]
