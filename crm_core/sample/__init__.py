"""The fictional sample shop: seeded export files, loading them through the real importer, past campaigns; the sample lives in its own store file (``store``)."""

__all__ = ["campaigns", "generate", "load", "store"]
