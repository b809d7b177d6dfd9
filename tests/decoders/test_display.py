"""decoders/display.py: enum names and flag lists, the one way every decoder shows them."""
from __future__ import annotations

from decoders.display import enum_name, enum_text, flag_names, flags_text

COLOUR = {1: "RED", 2: "GREEN"}
BITS = {0x1: "A", 0x4: "B", 0x10: "16_BIT", 0x300: "PAIR"}


def test_enum_names_from_mappings():
    assert enum_name(COLOUR, 2) == "GREEN" and enum_name(COLOUR, 9) is None
    assert enum_text(COLOUR, 1) == "RED (0x1)" and enum_text(COLOUR, 0x1C) == "unknown (0x1c)"


def test_flag_names_unknown_bits_and_multi_bit_masks():
    # PAIR is named only when both its bits are set
    assert flag_names(0x15, BITS) == ["A", "B", "16_BIT"]
    assert flags_text(0x100, BITS) == "0x100 (0x100)"  # half of PAIR: shown raw, not dropped
    assert flags_text(0x301, BITS) == "0x301 (A | PAIR)"
    assert flags_text(0x20001, BITS) == "0x20001 (A | 0x20000)"
    assert flags_text(0, BITS) == "0x0"


def test_mapping_and_bit_ordered_name_lists():
    assert flags_text(0x9, {0x1: "ONE", 0x8: "EIGHT"}) == "0x9 (ONE | EIGHT)"
    # ACPI lists flag bits in order: bit 0 first
    assert flags_text(0b1010, ["B0", "B1", "B2", "B3"]) == "0xa (B1 | B3)"
    assert flags_text(0b10001, ["B0", "B1"]) == "0x11 (B0 | 0x10)"


def test_extra_names_for_bits_the_caller_decodes():
    assert flags_text(0x105, {0x1: "ACTIVE", 0x4: "X"}, extra=["CATEGORY_APP"], handled=0x1F00) == \
        "0x105 (ACTIVE | X | CATEGORY_APP)"
    assert flags_text(0x2001, {0x1: "ACTIVE"}, handled=0x1F00) == "0x2001 (ACTIVE | 0x2000)"
