"""OVMF/TDVF specifics: the reset-vector GUIDed table and the TDX, SEV and IGVM metadata it leads to."""
from decoders.ovmf.metadata import (TdxSection, decode_igvm_metadata, decode_sev_metadata,
                                    decode_tdx_metadata, tdx_sections)
from decoders.ovmf.resetvector import decode_reset_vector_table, find_metadata, reset_vector_text

__all__ = [
    "TdxSection", "decode_igvm_metadata", "decode_reset_vector_table", "decode_sev_metadata",
    "decode_tdx_metadata", "find_metadata", "reset_vector_text", "tdx_sections",
]
