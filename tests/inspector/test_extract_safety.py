"""Names from an image can never make extraction write outside the folder it was given."""
from __future__ import annotations

import os

from decoders.model import Node, Space
from inspector.extract import ExtractError, extract, safe_component


def test_safe_component_strips_traversal_and_separators():
    for hostile in ["../../etc/passwd", "/etc/shadow", "..", ".", "a/../../b", "\x00\n", "C:\\windows"]:
        name = safe_component(hostile)
        assert "/" not in name and "\\" not in name and name not in ("", ".", "..")
        assert not name.startswith(".")


def test_hostile_titles_and_space_names_stay_inside(tmp_path):
    data = bytes(range(256)) * 4
    space = Space("../../../../tmp/evil", data, 0)
    root = Node("image", "../../evil", space, 0, len(data))
    fv = root.append(Node("fv", "/etc/passwd", space, 0, 512))
    ffs = fv.append(Node("ffs", "..\\..\\x", space, 16, 64))
    sec = ffs.append(Node("section", "../" * 50, space, 24, 8))
    blob = Space("/abs/evil", b"payload", None, parent=sec)
    sec.append(Node("fv", "..", blob, 0, 7))
    out = tmp_path / "out"
    manifest = extract(root, out)
    for m in manifest:
        assert (out / m["path"]).resolve().is_relative_to(out.resolve())
    written = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs]
    assert all(w.startswith(str(out)) for w in written)
    assert any(m["kind"] == "decompressed" for m in manifest)


def test_link_planted_in_dir_is_not_followed(tmp_path):
    data = b"\x11" * 64
    space = Space("img", data, 0)
    root = Node("image", "img", space, 0, 64)
    root.append(Node("fv", "vol", space, 0, 64))
    out = tmp_path / "out"
    (out / "000_image_img").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.symlink(victim, out / "000_image_img" / "000_fv_vol.bin")   # where the leaf volume goes
    try:
        extract(root, out)
    except (OSError, ExtractError):
        pass  # O_NOFOLLOW refuses the link
    else:
        raise AssertionError("extract wrote through a planted link")
    assert victim.read_bytes() == b"keep"


def test_directory_link_planted_in_dir_is_refused(tmp_path):
    """A link to a folder outside, planted where extraction will make a directory, is not followed."""
    import pytest
    data = b"\x11" * 64
    space = Space("img", data, 0)
    root = Node("image", "img", space, 0, 64)
    root.append(Node("fv", "vol", space, 0, 64))
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, out / "000_image_img")
    with pytest.raises(ExtractError, match="not a directory of ours"):
        extract(root, out)
    assert list(victim.iterdir()) == []
