"""The engine: sources (image, dump, live), locating structures, the CLI and JSON export."""
