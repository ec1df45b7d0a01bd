"""Stage 3 — the customer model: one row per customer (RFM, ranks, events, predictions), its settings, CLV math, export."""

__all__ = ["build", "clv"]
