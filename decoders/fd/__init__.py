"""Flash layout: firmware volumes, FFS files, sections and their decompression (FACTS A.1-A.3, A.5, A.11)."""
from decoders.fd.compression import CompressionError, bcj_x86_decode  # noqa: F401
from decoders.fd.decode import decode_fv, decode_image  # noqa: F401
from decoders.fd.sections import decode_sections  # noqa: F401
