"""The console's Streamlit settings (.streamlit/config.toml) as a deployment needs them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_does_not_watch_its_source_folder():
    """The watcher walked the whole checkout (.venv included): first page visits were 0.4–0.5 s slower."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["fileWatcherType"] == "none"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] >= 2048  # real RMS exports of big shops run to hundreds of MB
