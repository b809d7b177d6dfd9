"""`cc-unneeded-driver`: drivers a confidential guest (TDX or SEV) does not use, with the bytes
they add. Each driver is attack surface facing a host the guest does not trust and is measured
(MRTD/RTMR, launch digest) for nothing. The catalogue (catalogue.CC_UNNEEDED) names its reason and
source per category; the bytes are each file's size once its volume is decompressed.
"""
from __future__ import annotations

from inspector.review import catalogue
from inspector.review.base import Context, file_evidence, finding, names, undecided


def cc_unneeded_driver(ctx: Context) -> list:
    rule = "cc-unneeded-driver"
    if ctx.profile not in ("tdx", "sev"):
        ctx.outcomes[rule] = f"not run: profile {ctx.profile} (use --profile tdx or sev)"
        return []
    out = []
    seen = set()
    for cat_id, what, why, profiles, modules in catalogue.CC_UNNEEDED:
        if ctx.profile not in profiles:
            continue
        found = [f for f in ctx.find(modules) if id(f) not in seen]
        if not found:
            continue
        seen.update(id(f) for f in found)
        total = sum(f.bytes for f in found)
        ev = [e for f in found for e in file_evidence(f, f"{what} driver")]
        out.append(finding(rule, "warning",
                           f"{what}: {len(found)} module(s) {'a TDX' if ctx.profile == 'tdx' else 'an SEV'} guest does not use, "
                           f"{total:,} bytes decompressed ({names(found)})",
                           ev, Category=cat_id, Modules=len(found), Bytes=total, Reason=why))
        out[-1].field("Bytes").display = f"{total:,} bytes decompressed"
    gap = ctx.module_list_gap()
    if gap:
        out.append(undecided(rule, f"the list above may be short: {gap}"))
    if not out:
        ctx.outcomes[rule] = f"none of the catalogue's drivers for {ctx.profile.upper()} is present"
    return out
