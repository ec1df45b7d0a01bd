"""Stage 8 — results: campaigns frozen at send (holdout, A/B), attribution, lift, ROI, and their charts."""

__all__ = ["attribution", "campaigns", "charts"]
