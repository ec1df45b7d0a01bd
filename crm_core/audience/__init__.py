"""Stage 5 — audiences: segment fields and operators, rules compiled to bound SQL + a Japanese sentence, presets, saved segments."""

__all__ = ["editor", "fields", "library", "presets", "references", "rules", "segments"]
