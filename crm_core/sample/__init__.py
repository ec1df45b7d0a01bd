"""The fictional sample shop: seeded export files, loading them through the real importer, past campaigns."""

__all__ = ["campaigns", "catalog", "generate", "load", "simulate", "timing", "writers"]
