"""Every malformed image of our generator (sample_images/out/malformed, each fault described in
MANIFEST.json by the writer, not by the decoder) gives a tree with a located problem, and exit
status 1 from the CLI within 256 MiB; never a traceback. (Times: benchmarks/hostile.py.)"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sample_images
from inspector.image import load_image
from inspector.render import has_problems

MALFORMED = sample_images.OUT / "malformed"


def cases():
    manifest = MALFORMED / "MANIFEST.json"
    if not manifest.exists():
        subprocess.run([sys.executable, "-m", "sample_images.generate"], check=True, timeout=300)
    return [pytest.param(e, id=e["file"]) for e in json.loads(manifest.read_text())]


@pytest.mark.parametrize("entry", cases())
def test_malformed_image_gives_located_problem(entry):
    path = MALFORMED / entry["file"]
    img = load_image(path)
    assert has_problems(img.root), entry
    offsets = [p.offset for _, p in img.root.all_problems() if p.offset is not None]
    want = int(entry["offset"], 16)
    # The problem sits on the structure the manifest names: at the field, or at the start of the
    # header that holds it (a volume / file / section header is at most 0x48 bytes before it).
    assert any(want - 0x48 <= o <= want + 0x48 for o in offsets) or entry["field"] in ("(nesting)",), \
        (entry, sorted(set(offsets))[:20])


def test_cli_exit_status_and_memory_on_the_lzma_bomb():
    bomb = MALFORMED / "lzma-bomb.fd"
    if not bomb.exists():
        cases()
    # VmHWM, not ru_maxrss: the latter keeps the peak of the (large) pytest process across fork+exec.
    code = ("import re,sys; from inspector.cli import main; rc = main(['fd', sys.argv[1], '--json']); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "sys.stderr.write('RSS %s\\n' % hwm); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    rss_kib = int(r.stderr.rsplit("RSS ", 1)[1].split()[0])
    assert rss_kib < 256 * 1024
    json.loads(r.stdout)
