"""`fwinspect review IMAGE [--vars VARS] [--profile tdx|sev|generic] [--json]`.

Exit status: 0 no `warning` or `risk` finding; 1 at least one (scripts gate on it); 2 usage errors
and inputs that cannot be read at all.
"""
from __future__ import annotations

from pathlib import Path

EXIT_OK, EXIT_FINDINGS = 0, 1
# A VARS file is 128 KiB to 4 MiB (OVMF_VARS*.fd); anything much larger is not one.
MAX_VARS_FILE = 64 << 20


def add_review_arguments(p) -> None:
    p.add_argument("image", help="the firmware image (OVMF.fd, OVMF_CODE*.fd, a TDVF image)")
    p.add_argument("--vars", metavar="VARS", help="the VARS file the guest boots with (OVMF_VARS*.fd); "
                   "default: the image's own variable store")
    p.add_argument("--profile", choices=("generic", "tdx", "sev"), default="generic",
                   help="the guest the image is for: tdx or sev add the confidential-guest rules")
    p.epilog = ("exit status: 0 no warning or risk finding; 1 at least one (a damaged image is an image-decode "
                "warning); 2 usage errors or unreadable input; 3 an internal error")
    p.set_defaults(func=cmd_review)


def load_vars_arg(path: str):
    """The VARS file, decoded as a flash image (variable store, FTW working block and spare)."""
    from inspector.cli import UsageError, load_image_arg

    p = Path(path)
    if not p.exists():
        raise UsageError(f"VARS {p}: no such file")
    if not p.is_file():
        raise UsageError(f"VARS {p}: not a regular file")
    if p.stat().st_size > MAX_VARS_FILE:
        raise UsageError(f"VARS {p}: larger than {MAX_VARS_FILE:,} bytes: not a VARS file")
    return load_image_arg(path).root


def cmd_review(args) -> int:
    from inspector.cli import load_image_arg
    from inspector.render import print_tree, write_json
    from inspector.review import gate, review

    img = load_image_arg(args.image)
    vars_root = load_vars_arg(args.vars) if args.vars else None
    root = review(img.root, vars_root, args.profile)
    if args.json:
        write_json(root)
    else:
        print_tree(root, fields=True)
    return EXIT_FINDINGS if gate(root) else EXIT_OK
