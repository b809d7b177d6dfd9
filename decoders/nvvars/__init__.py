"""The NV variable store FV of OVMF_VARS (edk2 OvmfPkg/Include/Fdf/VarStore.fdf.inc): variables,
signature lists, FTW blocks."""
from decoders.nvvars.decode import decode_nv_body, working_block_crc  # noqa: F401
