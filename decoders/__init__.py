"""Pure decoders: bytes or a Memory in, a Node tree out (DESIGN.md, "Layers")."""
