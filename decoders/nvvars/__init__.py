"""The NV variable store FV of OVMF_VARS (FACTS A.10)."""
from decoders.nvvars.decode import decode_nv_body  # noqa: F401
