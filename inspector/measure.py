"""`fwinspect measure IMAGE`: the launch and boot measurements an image will produce, predicted
before it runs (decoders/measure/), and a real log explained against them.

One or more of:
- `--tpm`: the TCG events edk2 measures into PCR0 and PCR7 from the image and its VARS alone, the
  final PCR0/PCR7 per bank, and the PCRs that depend on the VM's configuration;
  `--against LOG` names where a real log (a file, a memory dump, a `--record` recording) parts from
  the prediction and why.
- `--snp`: the SEV-SNP launch digest as QEMU launches the image (SEV metadata, VMSAs per vCPU,
  the kernel hashes table).
- `--tdx`: the MRTD in both page orders, the RTMR0 events TDVF extends and the TD HOB QEMU builds.

`--snp` and `--tdx` read only the OVMF GUIDed table, the metadata and the bytes they measure;
`--tpm` decodes the flash layout (it hashes the decompressed PEIFV and DXEFV).
"""
from __future__ import annotations

import argparse
import os
import sys

from inspector.cli import EXIT_OK, EXIT_PROBLEMS, UsageError, _read_file
from inspector.options import number

BANKS = ("sha1", "sha256", "sha384", "sha512")
# A kernel or initrd is hashed whole (SEV hashes table: SHA-256 of each file); bound what is read.
MAX_KERNEL_FILE = 2 << 30


def _banks(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(b.strip().lower() for b in text.split(",") if b.strip()))
    bad = [b for b in names if b not in BANKS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown bank {', '.join(bad) or repr(text)} "
                                         f"(use a comma-separated list of {', '.join(BANKS)})")
    return names


def _size(text: str) -> int:
    """A memory size: bytes, or with a K/M/G/T suffix (QEMU's -m style, powers of two)."""
    units = {"k": 10, "m": 20, "g": 30, "t": 40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    shift = units.get(t[-1:], None)
    try:
        value = int(t[:-1], 0) << shift if shift is not None else number(t)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 2G, 512M, 0x80000000)") from None
    if not 0 < value < 1 << 52:
        raise argparse.ArgumentTypeError(f"{text}: a memory size from 1 byte to 4 PiB")
    return value


def _vcpus(text: str) -> int:
    value = number(text)
    if not 1 <= value <= 512:
        raise argparse.ArgumentTypeError(f"{text}: from 1 to 512 vCPUs")
    return value


def add_measure_arguments(p) -> None:
    p.add_argument("image", help="the firmware image (OVMF.fd, OVMF_CODE*.fd, a TDVF image)")
    p.add_argument("--vars", metavar="VARS", help="the VARS file the guest boots with (OVMF_VARS*.fd)")
    tpm = p.add_argument_group("TPM (PCR0, PCR7)")
    tpm.add_argument("--tpm", action="store_true", help="predict the TCG events and PCR0/PCR7")
    tpm.add_argument("--bank", type=_banks, default=("sha256",), metavar="BANKS",
                     help="PCR banks, comma-separated: sha1,sha256,sha384,sha512 (default sha256)")
    tpm.add_argument("--fw-version", metavar="TEXT",
                     help="the firmware version string (PcdFirmwareVersionString) when the image "
                          "does not carry it")
    tpm.add_argument("--against", metavar="LOG",
                     help="explain a real TCG log against the prediction: an event log file, a "
                          "memory dump (ELF) or a `fwinspect qemu --record` recording")
    snp = p.add_argument_group("SEV-SNP launch digest")
    snp.add_argument("--snp", action="store_true", help="predict the SEV-SNP launch digest")
    snp.add_argument("--vcpus", type=_vcpus, default=None, metavar="N", help="number of vCPUs (default 1)")
    snp.add_argument("--vcpu-type", metavar="TYPE", help="QEMU CPU model (EPYC, EPYC-v4, EPYC-Milan, ...)")
    snp.add_argument("--vcpu-sig", type=number, metavar="VALUE", help="CPUID(1).EAX signature instead of a type")
    snp.add_argument("--kernel", metavar="FILE", help="direct kernel boot: the kernel (its hash is measured)")
    snp.add_argument("--initrd", metavar="FILE", help="with --kernel: the initrd")
    snp.add_argument("--append", metavar="TEXT", help="with --kernel: the kernel command line")
    snp.add_argument("--guest-features", type=number, default=None, metavar="VALUE",
                     help="SEV_FEATURES of the VMSAs (default 0x1, SNP active)")
    tdx = p.add_argument_group("TDX")
    tdx.add_argument("--tdx", action="store_true", help="predict the MRTD, RTMR0 events and TD HOB")
    tdx.add_argument("--memory", type=_size, default=None, metavar="SIZE",
                     help="guest RAM for the TD HOB QEMU builds (default 2G)")
    tdx.add_argument("--secure-boot-build", choices=("yes", "no", "detect"), default=None,
                     help="whether the image was built with Secure Boot support, which decides the "
                          "Secure Boot policy events in RTMR0 (detect: decode the DXE volume, slower); "
                          "unset, those events are named, not predicted")
    p.set_defaults(func=run_measure)


def _check_usage(args) -> None:
    if not (args.tpm or args.snp or args.tdx):
        raise UsageError("measure: say what to predict: --tpm, --snp and/or --tdx")
    needs = {"--fw-version": (args.fw_version, "tpm"), "--against": (args.against, "tpm"),
             "--vcpus": (args.vcpus, "snp"), "--vcpu-type": (args.vcpu_type, "snp"),
             "--vcpu-sig": (args.vcpu_sig, "snp"), "--kernel": (args.kernel, "snp"),
             "--initrd": (args.initrd, "snp"), "--append": (args.append, "snp"),
             "--guest-features": (args.guest_features, "snp"), "--memory": (args.memory, "tdx"),
             "--secure-boot-build": (args.secure_boot_build, "tdx")}
    for option, (value, mode) in needs.items():
        if value is not None and not getattr(args, mode):
            raise UsageError(f"measure: {option} goes with --{mode}")
    if (args.initrd is not None or args.append is not None) and args.kernel is None:
        raise UsageError("measure: --initrd and --append go with --kernel")
    if args.vcpu_type is not None and args.vcpu_sig is not None:
        raise UsageError("measure: give --vcpu-type or --vcpu-sig, not both")
    if args.snp and args.vcpu_type is None and args.vcpu_sig is None:
        raise UsageError("measure: --snp needs --vcpu-type TYPE or --vcpu-sig VALUE (each VMSA holds the "
                         "vCPU's CPUID signature)")
    if args.vcpu_type is not None:
        from decoders.measure.snp import VCPU_TYPES

        if args.vcpu_type not in VCPU_TYPES:
            raise UsageError(f"measure: unknown --vcpu-type {args.vcpu_type!r}; one of {', '.join(VCPU_TYPES)}")


def run_measure(args) -> int:
    _check_usage(args)
    from decoders.model import Node

    name = os.path.basename(args.image)
    root = Node("measure", f"measurements of {name}")
    failed = False          # a mode that could not predict (no metadata, unreadable input)
    data = None
    if args.snp or args.tdx:
        data = _read_image(args.image)
    if args.tdx:
        failed |= _tdx(root, data, name, args)
    if args.snp:
        failed |= _snp(root, data, name, args)
    if args.tpm:
        failed |= _tpm(root, args)
    from inspector.render import has_problems, print_problems, print_tree, write_json

    if args.json:
        complete = write_json(root)
        print_problems(root)
    else:
        complete = print_tree(root)
    if failed or not complete or has_problems(root) or _diverged(root):
        return EXIT_PROBLEMS
    return EXIT_OK


def _diverged(root) -> bool:
    """A real log that parts from the prediction (--against) is a failed comparison: exit 1."""
    for node in root.find("measure-against"):
        if node.get("FirstDivergence") is not None:
            return True
        if any(c.kind == "against-register" and c.get("Equal") is False for c in node.children):
            return True
    return False


def _read_image(path: str) -> bytes:
    from inspector.imagefile import ImageError, read_image

    try:
        return read_image(path)
    except ImageError as e:
        raise UsageError(str(e)) from None


def _refuse(root, kind: str, message: str) -> bool:
    """A mode that cannot run on this input: one line on stderr, a problem in the tree, exit 1."""
    from decoders.model import Node

    print(f"fwinspect measure: {message}", file=sys.stderr)
    node = root.append(Node(kind, message))
    node.problem(None, message)
    return True


def _tdx(root, data: bytes, name: str, args) -> bool:
    from decoders.measure.tdx import predict_tdx

    vars_data = _read_file(args.vars, what="VARS") if args.vars else None
    kwargs = {"vars_data": vars_data}
    if args.memory is not None:
        kwargs["memory"] = args.memory
    if args.secure_boot_build == "detect":
        from decoders.measure.tdx import detect_secure_boot_build

        kwargs["secure_boot_build"] = detect_secure_boot_build(data, name)
    elif args.secure_boot_build is not None:
        kwargs["secure_boot_build"] = args.secure_boot_build == "yes"
    from inspector.hashing import side_by_side

    p = predict_tdx(data, name, new_hash=side_by_side(("per-page", "two-pass")), **kwargs)
    if not p.mrtd:
        return _refuse(root, "tdx-prediction", f"{args.image}: no TDX metadata (not a TDVF image); "
                       "nothing to predict for --tdx")
    root.append(p.node())
    return False


def _snp(root, data: bytes, name: str, args) -> bool:
    from decoders.measure.snp import predict_snp

    kernel = _read_file(args.kernel, MAX_KERNEL_FILE, "kernel") if args.kernel else None
    initrd = _read_file(args.initrd, MAX_KERNEL_FILE, "initrd") if args.initrd else None
    kwargs = {}
    if args.guest_features is not None:
        kwargs["guest_features"] = args.guest_features
    p = predict_snp(data, name, vcpus=args.vcpus or 1, vcpu_type=args.vcpu_type, vcpu_sig=args.vcpu_sig,
                    kernel=kernel, initrd=initrd, append=args.append, **kwargs)
    from decoders.measure.snp import snp_node

    if p.digest is None:
        why = "; ".join(x.message for x in p.problems if x.severity.value == "error") or "no SEV metadata"
        print(f"fwinspect measure: {args.image}: no SEV-SNP launch digest: {why}", file=sys.stderr)
        root.append(snp_node(p))       # what was decoded, with its located problems
        return True
    root.append(snp_node(p))
    return False


def _tpm(root, args) -> bool:
    from inspector.cli import load_image_arg
    from decoders.measure.tpm import load_vars, predict_tpm

    img = load_image_arg(args.image)
    vars_root = None
    if args.vars:
        vars_root = load_vars(_read_file(args.vars, what="VARS"), os.path.basename(args.vars))
    p = predict_tpm(img.root, vars_root, banks=args.bank, fw_version=args.fw_version)
    log = read_phys = None
    if args.against:
        log, read_phys = load_log(args.against)
        where = getattr(p, "peifv_range", None)
        if read_phys is not None and where is not None:
            # A dump holds the guest's PEIFV as it was measured (the PEIMs that ran before Tcg2Pei
            # wrote their globals into it): with it, PCR0 is that boot's.
            ram = read_phys(*where)
            if len(ram) == where[1]:
                p = predict_tpm(img.root, vars_root, banks=args.bank, fw_version=args.fw_version, peifv_ram=ram)
    node = root.append(p.node())
    if log is not None:
        from decoders.measure.against import explain_against

        node.append(explain_against(p, log, banks=args.bank))
    return False


def load_log(path: str):
    """The TCG event log in a file (the log itself, a memory dump, where it is found as `fwinspect
    dump` finds it, or a live-session recording: the last stop that holds one), and for a dump a
    reader of its physical memory (address, size) -> bytes, else None."""
    from decoders.eventlog import decode_event_log

    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--against {path}: no such file")
    with p.open("rb") as f:
        head = f.read(64)
    if head[:4] == b"\x7fELF":
        from inspector.dump import open_dump
        from inspector.locate import dump_overview

        dump = open_dump(p)
        log = _tcg_log(dump_overview(dump))
        if log is None:
            raise UsageError(f"--against {path}: no TCG event log found in the dump")
        # The reader holds the Dump: the memory reads through its open file.
        return decode_event_log(log.bytes, space_name=p.name), lambda address, size: dump.memory.read(address, size)
    if head[:1] == b"{":
        from inspector.live.record import RecordingError, iter_recording

        found = None
        try:
            for stop in iter_recording(p):
                log = _tcg_log(stop.tree) if stop.tree is not None else None
                if log is not None:
                    found = log.bytes
        except RecordingError as e:
            raise UsageError(f"--against {path}: {e}") from None
        if found is None:
            raise UsageError(f"--against {path}: no stop of the recording holds a TCG event log")
        return decode_event_log(found, space_name=p.name), None
    return decode_event_log(_read_file(path, 64 << 20, "--against"), space_name=p.name), None


def _tcg_log(tree):
    for node in tree.walk():
        if node.kind == "event-log" and node.get("Format", "tcg") != "cc" and node.bytes:
            return node
    return None
