"""PE32/PE32+ and TE images (PE/COFF spec; edk2 MdePkg/Include/IndustryStandard/PeImage.h)."""
from decoders.pe.decode import decode_pe, decode_te  # noqa: F401
