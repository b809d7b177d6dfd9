"""Every vCPU at the handoffs of a real multi-CPU boot, against QEMU's own view of its CPUs.

QEMU 7.2 boots Debian's OVMF (and our DEBUG build) at -smp 2 and -smp 4 under TCG; at the PEI-core
and DXE-core handoffs each Stop.cpus entry must equal what QEMU itself says about that CPU through
QMP, a channel the session does not use: `human-monitor-command info registers -a` (RIP, CR0, CR3,
CR4, EFER, the CS selector and base, HLT; parsed here with this file's own regular expressions from
the layout of target/i386/cpu-dump.c) and `query-cpus-fast` (the cpu-index of every vCPU, qapi/machine.json).
The state follows from those facts alone: HLT=0 is running; HLT=1 at the reset state (CS f000 base
ffff0000, IP fff0: Intel SDM vol. 3A 9.1.4) is wait-for-SIPI; HLT=1 elsewhere is halted.

What OVMF does with its APs (UefiCpuPkg/Library/MpInitLib): none has been started at the PEI core's
entry (CpuMpPei runs later), and by the DXE core's entry CpuMpPei has woken them all and parked them.

One QEMU per case, ended by PID; every wait bounded.
"""
from __future__ import annotations

import re

import pytest

from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.session import Session
from tests.realdata import bookworm, firmware, tool, trixie

HANDOFF_TIMEOUT = 90.0
# (image, -smp, backend): Debian 12 and 13 and the DEBUG build, two and four vCPUs, both backends.
CASES = [("bookworm", 2, "rsp"), ("bookworm", 4, "gdb"), ("trixie", 4, "rsp"), ("trixie", 2, "gdb"),
         ("debug", 4, "rsp")]

_SECTION = re.compile(r"^CPU#(\d+)\s*$", re.M)
_FIELD = re.compile(r"\b(RIP|EIP|CR0|CR3|CR4|EFER|HLT)=([0-9a-f]+)")
_CS = re.compile(r"^CS =([0-9a-f]{4}) ([0-9a-f]+) ", re.M)


def qemu_cpus(qemu: QemuProcess) -> dict[int, dict[str, int]]:
    """{cpu-index: fields} from QMP's `info registers -a` (QEMU's own monitor, not the gdbstub's)."""
    text = qemu.hmp("info registers -a")
    heads = list(_SECTION.finditer(text))
    out = {}
    for i, m in enumerate(heads):
        body = text[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        fields = {k.lower(): int(v, 16) for k, v in _FIELD.findall(body)}
        fields["rip"] = fields.pop("eip", fields.get("rip"))
        cs = _CS.search(body)
        fields["cs"], fields["cs_base"] = int(cs[1], 16), int(cs[2], 16)
        out[int(m[1])] = fields
    return out


def expected_state(f: dict[str, int]) -> str:
    if not f["hlt"]:
        return "running"
    if f["cs"] == 0xF000 and f["cs_base"] == 0xFFFF0000 and f["rip"] == 0xFFF0:
        return "wait-for-sipi"
    return "halted"


def image_for(which: str):
    if which == "debug":
        return firmware("ovmf-debug/OVMF.fd")
    return (bookworm if which == "bookworm" else trixie)("OVMF_CODE_4M.fd")


def check_against_qemu(stop, qemu: QemuProcess, smp: int) -> dict[int, dict[str, int]]:
    oracle = qemu_cpus(qemu)
    indexes = sorted(c["cpu-index"] for c in qemu.qmp.execute("query-cpus-fast"))
    assert indexes == list(range(smp))
    assert [c.index for c in stop.cpus] == indexes == sorted(oracle)
    for c in stop.cpus:
        f = oracle[c.index]
        mine = {k: c.registers[k] for k in ("rip", "cr0", "cr3", "cr4", "efer", "cs", "cs_base")}
        want = {k: f[k] for k in ("rip", "cr0", "cr3", "cr4", "efer", "cs", "cs_base")}
        # QEMU prints EIP (32 bits) outside long mode; the stub reports RIP, whose upper half is 0 there.
        assert mine == want, f"CPU {c.index}"
        assert c.state == expected_state(f), f"CPU {c.index}: {c.state_source}"
        assert c.linear_rip == (f["cs_base"] + f["rip"]) & (0xFFFFFFFF if c.mode != "long64" else (1 << 64) - 1)
    return oracle


@pytest.mark.live
@pytest.mark.parametrize("which,smp,backend", CASES, ids=[f"{w}-smp{n}-{b}" for w, n, b in CASES])
def test_every_vcpu_at_the_handoffs_equals_qemus_own_view(which, smp, backend):
    tool("qemu-system-x86_64", "qemu-system-x86")
    if backend == "gdb":
        tool("gdb", "gdb")
    path = image_for(which)
    qemu = QemuProcess(path, smp=smp).start()
    session = None
    try:
        session = Session(qemu.attach(backend), load_image(path), qemu)
        pei = session.run_to("pei-core", timeout=HANDOFF_TIMEOUT)
        assert pei.handoff == "pei-core", pei.problems
        assert pei.cpu == 0 and not pei.problems
        oracle = check_against_qemu(pei, qemu, smp)
        # No AP has been started yet: every one waits for its SIPI at the reset vector.
        assert [expected_state(oracle[i]) for i in range(1, smp)] == ["wait-for-sipi"] * (smp - 1)
        assert pei.cpus[0].module == pei.module == "PeiCore"

        dxe = session.run_to("dxe-core", timeout=HANDOFF_TIMEOUT)
        assert dxe.handoff == "dxe-core", dxe.problems
        oracle = check_against_qemu(dxe, qemu, smp)
        # CpuMpPei has run: every AP left its reset state (started, then parked).
        assert all(expected_state(oracle[i]) != "wait-for-sipi" for i in range(1, smp))

        # Selecting an AP shows its registers and code; a halted AP is not stepped.
        ap = session.select_cpu(smp - 1)
        f = oracle[smp - 1]
        assert (ap.cpu, ap.registers["rip"], ap.registers["cr3"]) == (smp - 1, f["rip"], f["cr3"])
        assert ap.linear_rip == dxe.cpus[smp - 1].linear_rip and ap.disassembly
        if dxe.cpus[smp - 1].state == "halted":
            refused = session.step()
            assert refused.index == dxe.index and f"CPU {smp - 1} is halted" in refused.problems[-1]
        # Back on the boot CPU, a step moves it and nothing else.
        session.select_cpu(0)
        stepped = session.step()
        assert stepped.reason == "step" and stepped.cpu == 0
        assert stepped.linear_rip != dxe.linear_rip
        check_against_qemu(stepped, qemu, smp)
    finally:
        if session is not None:
            session.close()
        qemu.close()
