"""Pure decoders: bytes or a Memory in, a Node tree out (README, "Layout": decoders import nothing of ours outside this package, and do no I/O)."""
