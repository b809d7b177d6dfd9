"""decoders.fixed reads a fixed-size construct Struct with one struct.unpack_from: its values and
fields must be exactly what construct's parse and fields.add_fields give, for every struct the hot
paths read that way, on random bytes; short input and a wrong Const are DecodeErrors."""
from __future__ import annotations

import random

import construct
import pytest

from decoders.errors import DecodeError, parse_at
from decoders.fd import structs as F
from decoders.fields import add_fields
from decoders.fixed import Fixed
from decoders.model import Node
from decoders.pe import structs as P

STRUCTS = {
    name: st
    for module in (P, F)
    for name, st in vars(module).items()
    if isinstance(st, construct.Struct)
}


def _fixed_or_none(st):
    try:
        return Fixed(st)
    except TypeError:
        return None


def _plain(value):
    """construct's Containers and ListContainers as plain dicts and lists, without its `_io`."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _flat(parsed, prefix=""):
    out = {}
    for k, v in parsed.items():
        if k.startswith("_"):
            continue
        if isinstance(v, construct.Container):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = _plain(v)
    return out


def _field_tuples(node):
    return [(f.name, f.value, f.offset, f.size, f.display) for f in node.fields]


def test_hot_structs_are_all_derivable():
    for name in ("EFI_IMAGE_DOS_HEADER", "EFI_IMAGE_FILE_HEADER", "EFI_IMAGE_OPTIONAL_HEADER32",
                 "EFI_IMAGE_OPTIONAL_HEADER64", "EFI_IMAGE_SECTION_HEADER", "EFI_TE_IMAGE_HEADER",
                 "EFI_IMAGE_DEBUG_DIRECTORY_ENTRY", "EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY",
                 "EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY", "EFI_IMAGE_DEBUG_CODEVIEW_MTOC_ENTRY",
                 "EFI_FIRMWARE_VOLUME_HEADER", "EFI_FFS_FILE_HEADER", "EFI_FFS_FILE_HEADER2",
                 "EFI_COMMON_SECTION_HEADER", "EFI_GUID_DEFINED_SECTION_TAIL", "EFI_COMPRESSION_SECTION_TAIL"):
        assert Fixed(STRUCTS[name]).size == STRUCTS[name].sizeof(), name


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_fixed_parse_and_fields_match_construct(name):
    st = STRUCTS[name]
    fx = _fixed_or_none(st)
    if fx is None:
        pytest.skip(f"{name} is not a fixed layout decoders.fixed reads")
    rng = random.Random(name)
    for trial in range(40):
        raw = bytes(rng.randrange(256) for _ in range(fx.size + 8))
        for m in fx.members:   # Consts as declared, so construct parses too
            if m[5] is not None and isinstance(m[5], bytes):
                raw = raw[:4 + m[1]] + m[5] + raw[4 + m[1] + len(m[5]):]
        parsed = parse_at(st, raw, 4)
        values = fx.parse(raw, 4)
        assert values == _flat(parsed)
        only = None if trial % 2 else tuple(n for n in fx.names if fx.members[fx.names.index(n)][3] != 4)
        displays = {fx.names[0]: "shown"} if trial % 3 == 0 else None
        a, b = Node("x", "x"), Node("x", "x")
        if any(m[3] == 4 for m in fx.members):  # arrays of Structs: read, never added as fields
            only = only or tuple(n for n in fx.names if fx.members[fx.names.index(n)][3] != 4)
        end_a = add_fields(a, st, parsed, 0x100, only=only, displays=displays)
        end_b = fx.add_fields(b, values, 0x100, only=only, displays=displays)
        assert _field_tuples(b) == _field_tuples(a)
        assert end_a == end_b


@pytest.mark.parametrize("name", ["EFI_IMAGE_OPTIONAL_HEADER64", "EFI_FFS_FILE_HEADER", "EFI_TE_IMAGE_HEADER"])
def test_short_input_is_the_same_located_error(name):
    st, fx = STRUCTS[name], Fixed(STRUCTS[name])
    data = bytes(fx.size + 3)
    for offset in (4, 5, fx.size + 3, fx.size + 4, -1):
        with pytest.raises(DecodeError) as want:
            parse_at(st, data, offset, name)
        with pytest.raises(DecodeError) as got:
            fx.parse(data, offset, name)
        assert (got.value.offset, str(got.value)) == (want.value.offset, str(want.value))


def test_wrong_const_is_a_decode_error():
    fx = Fixed(P.EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY)
    with pytest.raises(DecodeError) as e:
        fx.parse(b"XXXX" + bytes(20), 0)
    assert e.value.offset == 0 and "ConstError" in str(e.value)
