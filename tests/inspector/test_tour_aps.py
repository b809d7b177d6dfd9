"""The tour's application-processor chapters (inspector/tour/aps.py): offline from Debian's real images
(the CpuMpPei/CpuDxe builds and their depex, as the image's own FFS files and DEPEX sections say), and
from hand-made Stops whose `cpus` follow what QEMU 7.2 showed for OVMF at -smp 4: the APs wait for a
SIPI at the reset state up to the PEI core, then sit halted in MpInitLib's HLT loop. Every number in
the text must be one of the chapter's values."""
from __future__ import annotations

import re

import pytest

from decoders.model import Node
from inspector.live.session_api import CpuView, Stop
from inspector.tour.aps import aps_boot_chapter, aps_offline_chapter
from inspector.tour.run import boot_chapters, tour_offline_chapters
from tests.realdata import bookworm

RESET = {"rip": 0xFFF0, "cs": 0xF000, "cs_base": 0xFFFF0000, "cr0": 0x60000010, "cr3": 0, "cr4": 0}


def numbers_are_values(chapter) -> None:
    """Every number and GUID in the text stands inside one of the chapter's value spans, except in the
    spec's own phrases (blanked here to the same length)."""
    covered = [(s, e) for s, e, _i in chapter.spans]
    text = chapter.text
    for phrase in ("1 MiB", "16-bit", "ACPI 6.4 §5.2.12.19"):
        text = text.replace(phrase, " " * len(phrase))
    for m in re.finditer(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}|0x[0-9a-f]+|\b\d+\b", text):
        assert any(s <= m.start() and m.end() <= e for s, e in covered), (m.group(0), chapter.text)


@pytest.fixture(scope="module")
def image():
    from inspector.image import load_image

    return load_image(bookworm("OVMF.fd"))


def test_offline_chapter_names_each_mpinitlib_build_and_its_depex(image):
    c = aps_offline_chapter(image)
    assert c.chapter == "application-processors" and c.phase == "offline" and not c.unexpected
    files = [f for f in image.root.find("ffs") if f.get("UI") in ("CpuMpPei", "CpuDxe")]
    assert len(files) == 4
    for f in files:
        assert str(f.get("Name")).upper() in c.text and f"0x{f.size:x} bytes" in c.text
    assert "gEfiPeiMpInitLibMpDepPpiGuid" in c.text and "gEfiMpInitLibUpDepProtocolGuid" in c.text
    assert "TdxDxe E750224E-7BCE-40AF-B5BB-47E3611EB5C2" in c.text
    numbers_are_values(c)
    by_name = {v.name: v for v in c.values}
    assert by_name["count"].value == 4 and by_name["name0"].kind == "ffs"


def test_offline_tour_lists_the_chapter_before_config_a_vs_b(image):
    names = [c.chapter for c in tour_offline_chapters(image)]
    assert names[-2:] == ["application-processors", "config-a-vs-b"]


def stop(index: int, handoff: str | None, phase: str, cpus: list[CpuView], log: str = "") -> Stop:
    return Stop(index, "handoff" if handoff else "step", phase, "long64", 0x1000, {}, handoff=handoff,
                tree=Node("stop-tree", f"stop {index}"), log=log, cpus=cpus)


def cpu(index: int, state: str, module: str | None = None, rip: int | None = None, **regs) -> CpuView:
    if state == "wait-for-sipi":
        return CpuView(index, str(index + 1), "real", 0xFFFFFFF0, "reset", None, state, dict(RESET),
                       "info registers -a: HLT=1 at the reset state")
    r = {"rip": rip, "cs": 0x38, "cs_base": 0, "cr0": 0x80010033, "cr3": 0xF801000, "cr4": 0x660, **regs}
    return CpuView(index, str(index + 1), "long64", rip, "bds", module, state, r, "info registers -a: HLT=1")


def smp4_stops() -> list[Stop]:
    bsp = lambda rip, mod: cpu(0, "running", mod, rip)  # noqa: E731
    sipi = [cpu(i, "wait-for-sipi") for i in (1, 2, 3)]
    return [stop(0, "reset", "reset", [cpu(0, "running", None, 0xFFFFFFF0)] + sipi),
            stop(3, "pei-core", "pei-core", [bsp(0x820000, "PeiCore")] + sipi),
            stop(4, "dxe-core", "dxe-core", [bsp(0xF000000, "DxeCore")] +
                 [cpu(i, "halted", "CpuMpPei", 0xFEC9F91) for i in (1, 2, 3)]),
            stop(5, "bds", "bds",
                 [bsp(0xF100000, "BdsDxe")] + [cpu(i, "halted", "CpuDxe", 0xECC0F91) for i in (1, 2, 3)],
                 log="WakeupBufferStart = 87000, WakeupBufferSize = DD\nAP Vector: 16-bit = 87000/39, "
                     "ExchangeInfo = 87039/A4\n")]


def test_boot_chapter_follows_the_aps_from_wait_for_sipi_to_the_hlt_loop():
    stops = smp4_stops()
    c = aps_boot_chapter(stops)
    assert c.chapter == "application-processors-boot" and c.stop == 5 and not c.unexpected
    assert "This guest has 4 vCPUs: the boot CPU and 3 application processors." in c.text
    assert "At the reset handoff (stop 0): APs 1, 2, 3 waiting for INIT-SIPI-SIPI at the reset state at " \
           "0xfffffff0." in c.text
    assert "At the dxe-core handoff (stop 4): APs 1, 2, 3 halted at 0xfec9f91 in CpuMpPei." in c.text
    assert "At the bds handoff (stop 5): APs 1, 2, 3 halted at 0xecc0f91 in CpuDxe." in c.text
    assert "MpInitLib woke the APs" in c.text
    assert "MpInitLib put its wake-up buffer, the page the SIPI names, at 0x87000 (vector 0x87), 0xdd bytes" in c.text
    numbers_are_values(c)
    # the values point into the stop's tree: the "aps" node was appended to it
    aps = [n for n in stops[-1].tree.children if n.kind == "aps"]
    assert len(aps) == 1
    v = next(v for v in c.values if v.name == "buf0")
    assert v.kind == "ap-wakeup-buffer" and v.path == (0, [i for i, n in enumerate(aps[0].children)
                                                           if n.kind == "ap-wakeup-buffer"][0])


def test_aps_still_waiting_at_bds_is_unexpected():
    sipi = [cpu(i, "wait-for-sipi") for i in (1, 2)]
    c = aps_boot_chapter([stop(0, "reset", "reset", [cpu(0, "running", None, 0xFFFFFFF0)] + sipi),
                          stop(5, "bds", "bds", [cpu(0, "running", "BdsDxe", 0xF100000)] + sipi)])
    assert c.unexpected and "every AP still waits for a SIPI" in c.unexpected[0]
    assert "MpInitLib woke the APs" not in c.text


def test_one_cpu_and_no_cpus():
    assert aps_boot_chapter([stop(0, "reset", "reset", [cpu(0, "running", None, 0xFFFFFFF0)])]) is None
    assert aps_boot_chapter([stop(0, "reset", "reset", [])]) is None


def test_boot_chapters_place_it_after_the_handoffs():
    chapters, _code = boot_chapters(smp4_stops(), None)
    names = [c.chapter for c in chapters]
    assert "application-processors-boot" in names
    assert names.index("application-processors-boot") > names.index("bds")


def test_an_image_without_mpinitlib_modules_says_so():
    from pathlib import Path
    from types import SimpleNamespace

    bare = SimpleNamespace(root=Node("image", "no volumes"), path=Path("bare.fd"))
    c = aps_offline_chapter(bare)
    assert c.unexpected == ["this image has no CpuMpPei or CpuDxe file: nothing here starts the APs."]
