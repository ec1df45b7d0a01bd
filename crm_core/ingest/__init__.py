"""Stage 1 — ingest: export layouts as data, reading and decoding files, preview, import, saved mappings, customer identity."""

__all__ = ["formats", "identity", "importer", "mappings", "preview", "reader"]
