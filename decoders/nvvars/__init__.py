"""The NV variable store FV of OVMF_VARS (FACTS A.10): variables, signature lists, FTW blocks."""
from decoders.nvvars.decode import decode_nv_body, working_block_crc  # noqa: F401
