"""crm_core — the CRM console's library (never imports Streamlit).

Packages follow the pipeline, bottom-up: ingest → events → model → analytics →
audience → messaging → planning → results; ``pipeline`` decides what is rebuilt
after what, ``cli`` holds every command of ``python -m crm_core``.  A layers
contract (import-linter, see ``pyproject.toml``) keeps imports pointing down.
"""

__all__ = [
    "analytics", "audience", "cli", "clock", "db", "errors", "events", "export", "ingest",
    "messaging", "model", "pipeline", "planning", "purchases", "results", "sample",
]
