"""Every vCPU of a real dump: Debian bookworm's OVMF.fd booted with -smp 2 under QEMU (q35, TCG) to the
UEFI shell, stopped over QMP, `info registers -a` taken, then `dump-guest-memory`. QEMU's monitor is
the oracle for each CPU's RIP, CR0, CR3, CR4 and CS; the image's own loaded-image table names the
module the AP sits in. One boot for the module; QEMU is killed by PID when the fixture ends."""
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
