"""Stage 6 — messaging: templates, compliance lint, coupons, channels (LINE, e-mail) and test sends."""

__all__ = ["channels", "compliance", "context", "coupons", "placeholders", "preview", "sends", "templates"]
