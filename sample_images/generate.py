"""Build our own sample images into sample_images/out/ (see README.md there for each file).

    python -m sample_images.generate [--out DIR] [--force]

Deterministic (same bytes on every run), and idempotent: nothing is rebuilt when every output
is newer than the generator's sources. Independent of `decoders/` on purpose, so that decoding
these images is a real cross-check.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from sample_images import OUT
from sample_images.build import images, malformed, paging5, tdhob

SOURCES = [Path(__file__)] + sorted((Path(__file__).parent / "build").glob("*.py"))
GOOD = ["demo-tdvf.fd", "ffsv3-large.fd", "compressed-sections.fd", "nested-fv.fd", "td-hob.bin",
        "erase-polarity-0.fd", "la57-pages.bin", "la57-pages.json"]
MALFORMED_DIR = "malformed"
MANIFEST = "MANIFEST.json"
SPARSE_BLOCK = 1 << 16  # runs of this many zero bytes become holes in the output file


def _write(path: Path, data: bytes) -> None:
    """Write atomically (temp file + rename) and leave all-zero 64 KiB blocks as holes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    zero = bytes(SPARSE_BLOCK)
    try:
        with os.fdopen(fd, "wb") as f:
            view = memoryview(data)
            for at in range(0, len(data), SPARSE_BLOCK):
                block = view[at:at + SPARSE_BLOCK]
                if len(block) == SPARSE_BLOCK and block == zero:
                    f.seek(SPARSE_BLOCK, os.SEEK_CUR)
                else:
                    f.write(block)
            f.truncate(len(data))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def expected_outputs(out: Path) -> list[Path]:
    names = [out / n for n in GOOD] + [out / MALFORMED_DIR / MANIFEST]
    manifest = out / MALFORMED_DIR / MANIFEST
    if manifest.is_file():
        try:
            names += [out / MALFORMED_DIR / e["file"] for e in json.loads(manifest.read_text())]
        except (ValueError, KeyError, TypeError):
            names.append(out / MALFORMED_DIR / "(unreadable manifest)")
    return names


def up_to_date(out: Path) -> bool:
    newest_source = max(p.stat().st_mtime for p in SOURCES)
    outputs = expected_outputs(out)
    return all(p.is_file() for p in outputs) and min(p.stat().st_mtime for p in outputs) > newest_source


def build_all(out: Path) -> list[Path]:
    bomb = malformed.BombBuilder()
    bomb.start()
    main_fv = images.fvmain_compact()
    good = {
        "demo-tdvf.fd": images.demo_tdvf(main=main_fv),
        "ffsv3-large.fd": images.ffsv3_large(),
        "compressed-sections.fd": images.compressed_sections(),
        "nested-fv.fd": images.nested_fv(),
        "td-hob.bin": tdhob.td_hob(),
        "erase-polarity-0.fd": images.erase_polarity_0(),
    }
    la57_memory, la57_facts = paging5.build()
    good["la57-pages.bin"] = la57_memory
    good["la57-pages.json"] = (json.dumps(la57_facts, indent=1) + "\n").encode()
    written = []
    for name, data in good.items():
        _write(out / name, data)
        written.append(out / name)
    bad, faults = malformed.build(main_fv, bomb)
    for name, data in bad.items():
        _write(out / MALFORMED_DIR / name, data)
        written.append(out / MALFORMED_DIR / name)
    # one JSON object per line, inside one array
    text = "[\n" + ",\n".join(json.dumps(f.to_json()) for f in faults) + "\n]\n"
    _write(out / MALFORMED_DIR / MANIFEST, text.encode())
    written.append(out / MALFORMED_DIR / MANIFEST)
    return written


def main(out_dir: str | os.PathLike | None = None, force: bool = False) -> list[Path]:
    """Build everything into `out_dir` (default sample_images/out/); return the paths written
    (empty when everything was already up to date)."""
    out = Path(out_dir) if out_dir is not None else OUT
    if not force and up_to_date(out):
        return []
    return build_all(out)


def _cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sample_images.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help=f"output directory (default {OUT})")
    ap.add_argument("--force", action="store_true", help="rebuild even when outputs are up to date")
    args = ap.parse_args(argv)
    written = main(args.out, force=args.force)
    out = Path(args.out) if args.out else OUT
    print(f"{len(written)} files written to {out}" if written else f"{out}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
