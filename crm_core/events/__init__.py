"""Stage 2 — sale events: the Rakuten sale calendar (confirmed + predicted), the marketer's own events, sale windows.

Low in the stack because the customer model reads sale windows (acquisition event, sale-only buyers).
"""

__all__ = ["calendar", "rakuten"]
