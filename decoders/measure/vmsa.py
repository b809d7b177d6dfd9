"""The initial VMSA page of a vCPU of a QEMU/KVM SEV-SNP guest, as SNP_LAUNCH_UPDATE measures it.

The VMSA is the SEV-ES save area: AMD64 APM vol. 2 (#24593), appendix B, "Table B-4. VMSA Layout,
State Save Area for SEV-ES" (Linux `struct sev_es_save_area`, arch/x86/include/asm/svm.h, asserts
the same offsets). Everything not set below is zero in the measured page.

The register values are the x86 reset state QEMU gives a vCPU (target/i386/cpu.c,
x86_cpu_reset_hold), as KVM copies it into the VMSA before encrypting it (arch/x86/kvm/svm/sev.c,
sev_es_sync_vmsa), plus what KVM itself sets (EFER.SVME, CR4.MCE). The BSP starts at the reset
vector 0xFFFFFFF0; an AP starts where the firmware's SEV-ES reset block says (QEMU
target/i386/sev.c, sev_es_set_reset_vector: CS base = address & 0xFFFF0000, IP = address & 0xFFFF).
"""
from __future__ import annotations

import struct

PAGE_SIZE = 0x1000
BSP_EIP = 0xFFFFFFF0          # the architectural reset vector (APM vol. 2, 14.1.3 "Processor Initialization State")

# A segment register in the save area: selector u16, attrib u16, limit u32, base u64 (APM vol. 2,
# Table B-4: "VMCB Segment" layout, 16 bytes).
_SEG = struct.Struct("<HHIQ")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")

# APM vol. 2, Table B-4 offsets.
ES, CS, SS, DS, FS, GS, GDTR, LDTR, IDTR, TR = (0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90)
EFER = 0x0D0
CR4 = 0x148
CR0 = 0x158
DR7 = 0x160
DR6 = 0x168
RFLAGS = 0x170
RIP = 0x178
G_PAT = 0x268
RDX = 0x310
SEV_FEATURES = 0x3B0
XCR0 = 0x3E8
MXCSR = 0x408
X87_FCW = 0x410

# Segment attributes in the VMCB's 12-bit packed form (descriptor bits 8-15 and 20-23, APM vol. 2,
# 15.5.1 "Basic Operation", segment state in the VMCB): 0x93 present, data, writable, accessed;
# 0x9B present, code, readable, accessed; 0x82 present LDT; 0x8B present busy 32-bit TSS. QEMU's
# x86_cpu_reset_hold loads exactly these (DESC_P|DESC_S|DESC_W|DESC_A and so on).
DATA_ATTRIB, CODE_ATTRIB, LDT_ATTRIB, TSS_ATTRIB = 0x93, 0x9B, 0x82, 0x8B

RESET_VALUES = (
    (EFER, 0x1000),                  # EFER.SVME: KVM sets it for every SVM guest (svm_set_efer)
    (CR4, 0x40),                     # CR4.MCE, set by KVM at vCPU reset
    (CR0, 0x10),                     # CR0.ET; KVM's svm_set_cr0 clears the reset CD/NW (KVM_X86_QUIRK_CD_NW_CLEARED)
    (DR7, 0x400),                    # reset values (APM vol. 2, 14.1.3 "Processor Initialization State")
    (DR6, 0xFFFF0FF0),
    (RFLAGS, 0x2),                   # bit 1 always reads as 1
    (G_PAT, 0x0007040600070406),     # the PAT MSR reset value (APM vol. 2, 7.8 "Page-Attribute Table Mechanism")
    (XCR0, 0x1),                     # x87 state only, XCR0's reset value (APM vol. 2, 11.5 "XSAVE/XRSTOR")
)


def cpu_signature(family: int, model: int, stepping: int) -> int:
    """CPUID Fn0000_0001_EAX for a family/model/stepping (AMD CPUID Specification #25481,
    "CPUID Fn0000_0001_EAX Family, Model, Stepping Identifiers"): a family above 0xF is written as
    base family 0xF plus an extended family; the model's high nibble is the extended model."""
    base_family, ext_family = (0xF, family - 0xF) if family > 0xF else (family, 0)
    return ((ext_family & 0xFF) << 20) | (((model >> 4) & 0xF) << 16) | (base_family << 8) \
        | ((model & 0xF) << 4) | (stepping & 0xF)


def vmsa_page(eip: int, sev_features: int, vcpu_sig: int) -> bytes:
    """The 4 KiB initial VMSA of a vCPU starting at linear address `eip` in real mode."""
    page = bytearray(PAGE_SIZE)
    for at in (ES, SS, DS, FS, GS):
        _SEG.pack_into(page, at, 0, DATA_ATTRIB, 0xFFFF, 0)
    # Real mode: CS selector 0xF000 with the base given separately (APM vol. 2, 14.1.3), so an AP
    # can start below 1 MiB+64 KiB with its own base (QEMU sev_es_set_reset_vector).
    _SEG.pack_into(page, CS, 0xF000, CODE_ATTRIB, 0xFFFF, eip & 0xFFFF0000)
    _SEG.pack_into(page, GDTR, 0, 0, 0xFFFF, 0)
    _SEG.pack_into(page, IDTR, 0, 0, 0xFFFF, 0)
    _SEG.pack_into(page, LDTR, 0, LDT_ATTRIB, 0xFFFF, 0)
    _SEG.pack_into(page, TR, 0, TSS_ATTRIB, 0xFFFF, 0)
    for at, value in RESET_VALUES:
        _U64.pack_into(page, at, value)
    _U64.pack_into(page, RIP, eip & 0xFFFF)
    # After reset EDX holds the processor signature (APM vol. 2, 14.1.3; QEMU x86_cpu_reset_hold:
    # env->regs[R_EDX] = env->cpuid_version).
    _U64.pack_into(page, RDX, vcpu_sig)
    _U64.pack_into(page, SEV_FEATURES, sev_features)
    # x87/SSE reset state as QEMU sets it (x86_cpu_reset_hold: env->fpuc = 0x37f, env->mxcsr = 0x1f80).
    _U32.pack_into(page, MXCSR, 0x1F80)
    _U16.pack_into(page, X87_FCW, 0x37F)
    return bytes(page)
