"""Every vCPU of a real dump: Debian bookworm's OVMF.fd booted with -smp 2 under QEMU (q35, TCG) to the
UEFI shell, stopped over QMP, `info registers -a` taken, then `dump-guest-memory`. QEMU's monitor is
the oracle for each CPU's RIP, CR0, CR3, CR4 and CS; the image's own loaded-image table names the
module the AP sits in. One boot for the dump; QEMU is killed by PID when the fixture ends.

And the tour's application-processor chapter on a real -smp 4 boot of our DEBUG OVMF to BDS: what it
tells against the recorded stops and the firmware's own debug log (the modules it loaded where)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.dump import distinct_cr3s, open_dump
from inspector.locate import dump_overview
from tests.realdata import bookworm, tool

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parents[2]
SMP = 2


def monitor_cpus(text: str) -> list[dict[str, int]]:
    """Per CPU of `info registers -a` (QEMU target/i386/cpu-dump.c x86_cpu_dump_state): RIP, CR0, CR3,
    CR4, the CS selector and base, and the HLT flag."""
    out = []
    for block in re.split(r"^CPU#\d+\s*$", text, flags=re.M)[1:]:
        cs = re.search(r"^CS =([0-9a-f]+) ([0-9a-f]+)", block, re.M)
        out.append({"rip": int(re.search(r"RIP=([0-9a-f]+)", block).group(1), 16),
                    **{c: int(re.search(c.upper() + r"=([0-9a-f]+)", block).group(1), 16)
                       for c in ("cr0", "cr3", "cr4")},
                    "cs": int(cs.group(1), 16), "cs_base": int(cs.group(2), 16),
                    "hlt": int(re.search(r"HLT=(\d)", block).group(1))})
    return out


@pytest.fixture(scope="module")
def smp_guest(tmp_path_factory):
    tool("qemu-system-x86_64", "qemu-system-x86")
    from tests.live.qemu_harness import QemuGuest

    image = bookworm("OVMF.fd")
    out = tmp_path_factory.mktemp("smpdump")
    with QemuGuest(image, memory="256M", extra=["-smp", str(SMP)]) as g:
        g.wait_for_shell()
        g.stop()
        regs = g.hmp("info registers -a")
        g.dump_elf(out / "guest.elf")
    return {"image": image, "elf": out / "guest.elf", "regs": regs}


def test_every_cpu_equals_info_registers_a(smp_guest):
    theirs = monitor_cpus(smp_guest["regs"])
    assert len(theirs) == SMP
    with open_dump(smp_guest["elf"]) as d:
        assert not [p for p in d.problems if p.severity != "info"]
        ours = [{"rip": c.rip, "cr0": c.cr0, "cr3": c.cr3, "cr4": c.cr4, "cs": c.segments["cs"].selector,
                 "cs_base": c.segments["cs"].base} for c in d.cpus]
        assert ours == [{k: v for k, v in t.items() if k != "hlt"} for t in theirs]
        # QEMU numbers its PRSTATUS notes with pid = cpu_index + 1 (dump/dump.c cpu_index())
        assert [c.pid for c in d.cpus] == list(range(1, SMP + 1))
        assert all(c.mode == "long64" for c in d.cpus)
        # one address space, walked once for all CPUs
        assert [(cr3, [c.index for c in cpus]) for cr3, cpus in distinct_cr3s(d)] == [(theirs[0]["cr3"],
                                                                                       list(range(SMP)))]


def test_the_ap_is_parked_after_a_hlt_in_the_module_the_image_names(smp_guest):
    theirs = monitor_cpus(smp_guest["regs"])
    with open_dump(smp_guest["elf"], image=smp_guest["image"]) as d:
        o = dump_overview(d)
        aps = next(o.find("aps"))
        images = next(o.find("efi-debug-image-info-table")).children
    ap = next(c for c in aps.children if c.kind == "ap")
    assert theirs[1]["hlt"] == 1                 # QEMU: the AP is halted
    assert ap.get("Rip") == theirs[1]["rip"] and ap.get("State") == "parked"
    # the module: the loaded image whose range holds the AP's RIP, as the debug image info table says
    holder = [i for i in images if i.get("ImageBase") <= theirs[1]["rip"] < i.get("ImageBase") + i.get("ImageSize")]
    assert len(holder) == 1 and ap.get("Module") == holder[0].get("Name") == "CpuDxe"
    assert ap.get("SameCr3AsBsp") is True
    variants = {(m.get("Name"), m.get("Variant")) for m in aps.children if m.kind == "mp-module"}
    assert {("CpuMpPei", "MpInitLib"), ("CpuMpPei", "MpInitLibUp"), ("CpuDxe", "MpInitLib"),
            ("CpuDxe", "MpInitLibUp")} == variants
    assert ap.get("ModuleFile") in {m.get("FileGuid") for m in aps.children if m.kind == "mp-module"
                                    and m.get("Variant") == "MpInitLib"}


def test_cli_dump_json_has_a_cpu_node_per_vcpu(smp_guest):
    r = subprocess.run([sys.executable, "-m", "inspector.cli", "dump", str(smp_guest["elf"]), "--json"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    tree = json.loads(r.stdout)
    cpus = [c for n in tree["children"] if n["kind"] == "dump" for c in n["children"] if c["kind"] == "cpu"]
    fields = [{f["name"]: f["value"] for f in c["fields"]} for c in cpus]
    theirs = monitor_cpus(smp_guest["regs"])
    assert [(f["Index"], f["Mode"], f["Rip"], f["Cr0"], f["Cr3"], f["Cr4"]) for f in fields] == [
        (i, "long64", t["rip"], t["cr0"], t["cr3"], t["cr4"]) for i, t in enumerate(theirs)]
    assert any(n["kind"] == "aps" for n in tree["children"])


@pytest.fixture(scope="module")
def smp4_tour(tmp_path_factory):
    tool("qemu-system-x86_64", "qemu-system-x86")
    from tests.realdata import firmware

    image = firmware("ovmf-debug/OVMF.fd")
    rec = tmp_path_factory.mktemp("smp4tour") / "tour.rec"
    r = subprocess.run([sys.executable, "-m", "inspector.cli", "tour", str(image), "--json", "--record", str(rec),
                        "--timeout", "300", "--", "-smp", "4"], capture_output=True, text=True, timeout=400, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    from inspector.live.record import iter_recording

    return json.loads(r.stdout), list(iter_recording(rec))


def test_tour_tells_each_ap_at_each_handoff_as_the_stops_and_the_debug_log_say(smp4_tour):
    import re as _re

    chapters, stops = smp4_tour
    names = [c["chapter"] for c in chapters]
    assert "application-processors" in names and names[-1] == "application-processors-boot"
    c = chapters[-1]
    assert "This guest has 4 vCPUs: the boot CPU and 3 application processors." in c["text"]
    by_handoff = {s.handoff: s for s in stops if s.handoff}
    # reset: the APs wait for a SIPI at the reset state, as the recorded registers say
    for ap in by_handoff["reset"].cpus[1:]:
        assert (ap.registers["cs"], ap.registers["cs_base"], ap.registers["rip"], ap.state) == \
            (0xF000, 0xFFFF0000, 0xFFF0, "wait-for-sipi")
    assert "At the reset handoff (stop 0): APs 1, 2, 3 waiting for INIT-SIPI-SIPI" in c["text"]
    # bds: halted in CpuDxe, where the firmware's log says it loaded CpuDxe
    bds = by_handoff["bds"]
    loaded = _re.search(r"Loading driver at 0x([0-9A-F]+) EntryPoint=0x[0-9A-F]+ CpuDxe\.efi", bds.log)
    base = int(loaded.group(1), 16)
    size = next(m.get("ImageSize") for m in bds.tree.walk() if m.kind == "log-module" and m.get("Name") == "CpuDxe")
    rips = {ap.linear_rip for ap in bds.cpus[1:]}
    assert all(base <= rip < base + size for rip in rips) and {ap.state for ap in bds.cpus[1:]} == {"halted"}
    assert f"At the bds handoff (stop {bds.index}): APs 1, 2, 3 halted at 0x{rips.pop():x} in CpuDxe." in c["text"]
    # the wake-up buffers are the ones MpInitLib logged, each after its module's load line
    logged = [int(a, 16) for a in _re.findall(r"WakeupBufferStart = ([0-9A-F]+),", bds.log)]
    told = [v["value"] for v in c["values"] if v["name"].startswith("buf") and not v["name"].startswith("buf_")]
    assert told == list(dict.fromkeys(logged)) and len(told) == 2 and all(t < 0x100000 for t in told)
