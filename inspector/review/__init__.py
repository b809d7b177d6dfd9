"""Review a decoded firmware image as a platform reviewer would: findings with evidence.

`review(image_root, vars_root=None, profile="generic")` runs every rule of RULES over the image's
Node tree (inspector.image.load_image(...).root) and, when given, a VARS file's tree, and returns
one Node of kind `review`: a field per rule saying what it concluded, and a `finding` child per
finding (fields Rule, Severity, Summary) whose `evidence` children point at the nodes it rests on.
Severities: `info` (a fact, or a rule that cannot decide and says why), `warning`, `risk`.

One module per rule family: platform (platform-config), smm (secure-boot-without-smm), varstore
(emulated-variable-store, varstore-health), confidential (cc-unneeded-driver), dispatch
(measurement-driver-arbitration, multiple-iommu-producers); module GUIDs in catalogue.
"""
from __future__ import annotations

from decoders.model import Node, Severity
from inspector.review import confidential, dispatch, platform, smm, varstore
from inspector.review.base import SEVERITIES, Context, evidence, finding

PROFILES = ("generic", "tdx", "sev")
# The decoded image has problems of its own: findings resting on the module list may be short.
IMAGE_DECODE = "image-decode"
MAX_DECODE_EVIDENCE = 16

# rule id: (what it checks, function(Context) -> [finding Node])
RULES = {
    "platform-config": ("PEI or PEI-less, architecture, CC technologies built in", platform.platform_config),
    "secure-boot-without-smm": ("Secure Boot offered with the variable store writable outside SMM",
                                smm.secure_boot_without_smm),
    "emulated-variable-store": ("variables kept in RAM (EmuVariableFvbRuntimeDxe)", varstore.emulated_variable_store),
    "cc-unneeded-driver": ("drivers a confidential guest does not use (--profile tdx|sev)",
                           confidential.cc_unneeded_driver),
    "measurement-driver-arbitration": ("TPM and CC measurement drivers side by side, and their DEPEXes",
                                       dispatch.measurement_driver_arbitration),
    "multiple-iommu-producers": ("more than one IOMMU protocol producer", dispatch.multiple_iommu_producers),
    "varstore-health": ("variable store and FTW block: damage, room, deleted records", varstore.varstore_health),
}
_ORDER = {"risk": 0, "warning": 1, "info": 2}


def review(image_root: Node, vars_root: Node | None = None, profile: str = "generic") -> Node:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    ctx = Context(image_root, vars_root, profile)
    root = Node("review", "Review", image_root.space, 0, 0)
    root.add("Profile", profile)
    findings: list[Node] = []
    if ctx.image_problems:
        ev = [evidence(n, "decode problem", Problem=str(p)) for n, p in ctx.image_problems[:MAX_DECODE_EVIDENCE]]
        findings.append(finding(IMAGE_DECODE, "warning",
                                f"the image did not decode cleanly ({len(ctx.image_problems)} problem(s), first: "
                                f"{ctx.image_problems[0][1].message}); rules that rest on the module list say so",
                                ev, Problems=len(ctx.image_problems)))
    for rule, (_, check) in RULES.items():
        found = check(ctx)
        findings.extend(found)
        if found:
            counts = {s: sum(1 for f in found if f.get("Severity") == s) for s in SEVERITIES}
            text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            root.add(f"Rule.{rule}", text)
        else:
            root.add(f"Rule.{rule}", "no finding", display=f"no finding: {ctx.outcomes.get(rule, 'nothing to report')}")
    findings.sort(key=lambda f: _ORDER.get(f.get("Severity"), 3))    # stable: rule order within a severity
    root.children = findings
    counts = {s: sum(1 for f in findings if f.get("Severity") == s) for s in SEVERITIES}
    root.add("Findings", len(findings), display=", ".join(f"{counts[s]} {s}" for s in ("risk", "warning", "info")))
    name = image_root.space.name if image_root.space is not None else image_root.title
    root.title = (f"Review of {name}" + (f" with {vars_root.space.name}" if vars_root is not None and vars_root.space
                                        else "") + f" (profile {profile}): {counts['risk']} risk, "
                  f"{counts['warning']} warning, {counts['info']} info")
    return root


def gate(review_node: Node) -> bool:
    """True when the review holds a `warning` or `risk` finding (scripts gate on it)."""
    return any(f.kind == "finding" and f.get("Severity") in ("warning", "risk") for f in review_node.children)


__all__ = ["PROFILES", "RULES", "review", "gate", "Severity"]
