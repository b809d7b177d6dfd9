"""Flash layout: firmware volumes, FFS files, sections and their decompression.

Layouts from PI 1.8 vol. 3 chapter 3 and edk2 MdePkg/Include/Pi/PiFirmwareVolume.h and
PiFirmwareFile.h; OVMF's flash layout from OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc and
OvmfPkg/OvmfPkgX64.fdf. Decompression uses the standard library's lzma (FORMAT_ALONE), brotli,
and uefi-firmware's efi_compressor for Tiano and EFI compression.
"""
from decoders.fd.compression import CompressionError, bcj_x86_decode  # noqa: F401
from decoders.fd.decode import decode_fv, decode_image  # noqa: F401
from decoders.fd.sections import decode_sections  # noqa: F401
