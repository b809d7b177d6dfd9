"""Where variables live and what state their store is in: `emulated-variable-store` and
`varstore-health`.

OvmfPkg/EmuVariableFvbRuntimeDxe/Fvb.c FvbInitialize: the driver steps aside ("Disabling EMU
Variable FVB since flash variables appear to be supported") when PcdFlashNvStorageVariableBase64
is set, which QemuFlashFvbServicesRuntimeDxe (FwBlockService.c) does once it finds a writable
pflash; otherwise it keeps the store in a RAM buffer: nothing persists across a power cycle and
nothing in the firmware guards it.
"""
from __future__ import annotations

from inspector.review import catalogue
from inspector.review.base import Context, evidence, file_evidence, finding, is_deleted, undecided

# OvmfPkg/OvmfPkgX64.dsc: PcdMaxAuthVariableSize 0x2800 with the 2 MiB layout (PcdVariableStoreSize
# 0xe000), 0x8400 with the 4 MiB one (0x40000). A store whose free space plus reclaimable (deleted)
# records cannot take one more variable of that size cannot take a db/dbx update either.
MAX_AUTH_VARIABLE_SIZE_SMALL = 0x2800
MAX_AUTH_VARIABLE_SIZE_4M = 0x8400
SECURE_BOOT_NAMES = ("PK", "KEK", "db", "dbx", "dbt", "dbr")


def emulated_variable_store(ctx: Context) -> list:
    rule = "emulated-variable-store"
    emu = ctx.find([catalogue.EMU_VARIABLE_FVB])
    gap = ctx.module_list_gap()
    if not emu:
        if gap:
            return [undecided(rule, f"no EmuVariableFvbRuntimeDxe found, but {gap}")]
        ctx.outcomes[rule] = "no EmuVariableFvbRuntimeDxe"
        return []
    flash = ctx.find(catalogue.FLASH_FVB)
    ev = [e for f in emu for e in file_evidence(f, "RAM variable store driver")]
    ev += [e for f in flash for e in file_evidence(f, "flash variable store driver")]
    if flash:
        summary = (f"EmuVariableFvbRuntimeDxe is present beside {flash[0].ui or 'the flash FVB driver'}: when the "
                   "VMM gives no writable pflash, variables silently live in RAM, with no persistence and no "
                   "protection")
    else:
        summary = ("EmuVariableFvbRuntimeDxe is present and no flash FVB driver: variables always live in RAM, "
                   "with no persistence across boots and no protection")
    return [finding(rule, "warning", summary, ev, FlashDriver=bool(flash))]


def varstore_health(ctx: Context) -> list:
    rule = "varstore-health"
    stores = ctx.stores()
    where = ctx.stores_label()
    if not stores.stores and not stores.ftw:
        if ctx.vars is not None:
            ev = [evidence(ctx.vars, "VARS file")]
            probs = "; ".join(p.message for _, p in _problems(ctx.vars))[:300]
            return [finding(rule, "warning", f"no variable store found in {where}" + (f": {probs}" if probs else ""),
                            ev)]
        return [undecided(rule, "the image has no variable store of its own (a CODE-only image?): "
                                "give its VARS file with --vars")]
    out = []
    for store in stores.stores:
        damaged = [(n, p) for n, p in _problems(store) if p.severity.value in ("error", "warning")]
        if damaged:
            ev = [evidence(store, "variable store")] + [evidence(n, "problem", Problem=str(p)) for n, p in damaged]
            out.append(finding(rule, "warning", f"{where}: the variable store at 0x{store.offset:x} is damaged: "
                               f"{len(damaged)} problem(s), first: {damaged[0][1].message}", ev))
        variables = [c for c in store.children if c.kind == "variable"]
        deleted = [v for v in variables if is_deleted(v)]
        free = sum(c.size for c in store.children if c.kind == "free-space")
        reclaimable = sum(v.size for v in deleted)
        need = MAX_AUTH_VARIABLE_SIZE_4M if store.size >= 0x40000 - 0x100 else MAX_AUTH_VARIABLE_SIZE_SMALL
        if free + reclaimable < need:
            out.append(finding(rule, "warning",
                               f"{where}: the variable store is full: 0x{free:x} bytes free and 0x{reclaimable:x} in "
                               f"deleted records, less than one variable of PcdMaxAuthVariableSize 0x{need:x}",
                               [evidence(store, "variable store", Free=free, Reclaimable=reclaimable)],
                               Free=free, Reclaimable=reclaimable))
        if deleted:
            keys = sorted({v.get("Name") for v in deleted if v.get("Name") in SECURE_BOOT_NAMES})
            text = (f"{where}: {len(deleted)} deleted variable record(s), 0x{reclaimable:x} bytes, still in the "
                    f"file (until the store is reclaimed their old contents can be read)")
            if keys:
                text += f"; old copies of Secure Boot variables among them: {', '.join(keys)}"
            ev = [evidence(v, "deleted variable", Name=v.get("Name"), VendorGuid=v.get("VendorGuid"),
                           State=v.get("State")) for v in deleted]
            out.append(finding(rule, "info", text, ev, Deleted=len(deleted), DeletedBytes=reclaimable))
    for ftw in stores.ftw:
        damaged = [(n, p) for n, p in _problems(ftw) if p.severity.value in ("error", "warning")]
        pending = [w for w in ftw.children if w.kind == "ftw-write" and w.get("Complete") == 1]
        if damaged:
            ev = [evidence(ftw, "FTW working block")] + [evidence(n, "problem", Problem=str(p)) for n, p in damaged]
            out.append(finding(rule, "warning", f"{where}: the FTW working block is corrupt: "
                               f"{damaged[0][1].message}", ev))
        if pending:
            out.append(finding(rule, "warning", f"{where}: {len(pending)} fault-tolerant write(s) were interrupted "
                               "(in progress): the next boot replays them onto the store",
                               [evidence(w, "interrupted FTW write") for w in pending]))
    if not out:
        ctx.outcomes[rule] = (f"{where}: {len(stores.stores)} store(s), {len(stores.variables)} variables, "
                              "no damage, room left, no deleted records")
    return out


def _problems(root):
    return [(n, p) for n in root.walk() for p in n.problems]
