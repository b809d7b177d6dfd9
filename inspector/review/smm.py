"""`secure-boot-without-smm`: Secure Boot offered while the variable store is writable by the OS.

Secure Boot's keys (PK, KEK, db, dbx) are authenticated variables: the variable driver checks each
write's signature (SecurityPkg/Library/AuthVariableLib). That check protects anything only when
the driver that performs it is the only way to the flash. In OVMF, that holds when the variable
driver runs in SMM (VariableSmm, with PiSmmCore; OvmfPkg/README "SMM_REQUIRE", and
OvmfPkgX64.dsc `!if $(SMM_REQUIRE) == TRUE` choosing VariableSmm + FvbServicesSmm). Built without
SMM, VariableRuntimeDxe and the flash FVB driver run as ordinary runtime code and the pflash
device is writable by any guest code, so the OS (or anything with ring 0) can rewrite db or
PK directly, bypassing the signature checks.
"""
from __future__ import annotations

from inspector.review import catalogue
from inspector.review.base import Context, evidence, file_evidence, finding, undecided

SECURE_BOOT_KEYS = ("PK", "KEK", "db")


def secure_boot_without_smm(ctx: Context) -> list:
    rule = "secure-boot-without-smm"
    config = ctx.find([catalogue.SECURE_BOOT_CONFIG_DXE])
    stores = ctx.stores()
    keys = [v for name in SECURE_BOOT_KEYS for v in stores.live(name)]
    offered_by = []
    if config:
        offered_by.append("SecureBootConfigDxe")
    if keys:
        offered_by.append(f"{', '.join(dict.fromkeys(v.get('Name') for v in keys))} in {ctx.stores_label()}")
    gap = ctx.module_list_gap()
    if not ctx.files:
        return [undecided(rule, f"{gap}: which variable driver runs is not in this file",
                          [evidence(v, "Secure Boot key", Name=v.get("Name"), VendorGuid=v.get("VendorGuid"))
                           for v in keys])]
    if not offered_by:
        if gap:
            return [undecided(rule, f"no SecureBootConfigDxe and no PK/KEK/db found, but {gap}")]
        ctx.outcomes[rule] = "Secure Boot not offered (no SecureBootConfigDxe, no PK/KEK/db)"
        return []
    cores = ctx.find(catalogue.SMM_CORES)
    smm_vars = ctx.find(catalogue.SMM_VARIABLE_DRIVERS)
    if cores and smm_vars:
        ctx.outcomes[rule] = (f"Secure Boot offered ({'; '.join(offered_by)}); variables are written in SMM "
                              f"({cores[0].label}, {smm_vars[0].label})")
        return []
    if gap:
        return [undecided(rule, f"Secure Boot is offered ({'; '.join(offered_by)}) and no SMM variable stack "
                                f"was found, but {gap}")]
    ev = [e for f in config for e in file_evidence(f, "Secure Boot offered by")]
    ev += [evidence(v, "Secure Boot key", Name=v.get("Name"), VendorGuid=v.get("VendorGuid")) for v in keys]
    writers = ctx.find([catalogue.VARIABLE_RUNTIME_DXE, *catalogue.FLASH_FVB, catalogue.EMU_VARIABLE_FVB])
    ev += [e for f in writers for e in file_evidence(f, "variable store written outside SMM by")]
    ev += [e for f in cores + smm_vars for e in file_evidence(f, "SMM module present")]
    if cores:
        why = f"an SMM core ({cores[0].label}) is present but no SMM variable driver"
    elif smm_vars:
        why = f"an SMM variable driver ({smm_vars[0].label}) is present but no SMM core to run it"
    else:
        why = "there is no SMM core and no SMM variable driver"
    return [finding(rule, "risk",
                    f"Secure Boot is offered ({'; '.join(offered_by)}) but {why}: the variable store is "
                    "written by code the OS can bypass, so the OS can rewrite PK/KEK/db on the flash directly",
                    ev, OfferedBy="; ".join(offered_by))]
