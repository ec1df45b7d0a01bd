"""Stage 4 — analyses on purchases: customer value (RFM, ranks, CLV views), repeat, cohorts, subscription, cycles, baskets, charts."""

__all__ = ["basket", "charts", "cohorts", "cycles", "overview", "repeat", "subscription", "value"]
