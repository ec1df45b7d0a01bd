"""Stage 5 — audiences: segment fields and operators, rules compiled to bound SQL + a Japanese sentence, presets, saved segments, and the channel table (who each channel reaches)."""

__all__ = ["channels", "editor", "fields", "library", "presets", "reach", "references", "rules", "segments"]
