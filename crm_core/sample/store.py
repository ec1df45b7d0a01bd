"""Where the fictional sample shop lives: its own DuckDB file, never the shop's own store.

The sample's Shopify orders are numbered #1001…, Shopify's default, and the
importer updates orders by (source, order_id): loaded into a store holding a
real Shopify export, the sample would replace real orders.  So the sample is
kept in a second file beside the store (``crm.duckdb`` → ``crm.sample.duckdb``)
and the console *shows* one or the other:

* first start with an empty store: the sample is generated into its own file
  and shown (``show_sample`` in the real store's settings);
* the first real import goes into the real store and ends the showing
  (:func:`real_data_arrived`); the sample is gone from every page unless the
  marketer asks to see it again, which never touches the real store;
* :func:`crm_core.sample.load.load_sample` refuses a store that holds
  anything but the sample.

The sample's own settings (its fictional shop profile, test recipients,
segments) stay in the sample's file too.
"""

from __future__ import annotations

from pathlib import Path

from crm_core.db import Store

SHOW_SAMPLE = "show_sample"
"""Setting of the real store: True while the console shows the sample shop instead."""
DISMISSED = "sample_dismissed"
"""Setting of the real store: the marketer has real data or turned the sample off (no automatic load)."""
LOADED = "sample_loaded"
"""Setting of a store that holds the sample shop (written by ``load_sample``)."""


def sample_path(real_path: str | Path) -> Path | None:
    """The sample's own file beside the store (None for an in-memory store)."""
    if str(real_path) == ":memory:":
        return None
    real = Path(real_path)
    return real.with_name(real.stem + ".sample" + (real.suffix or ".duckdb"))


def showing_sample(real: Store) -> bool:
    """True while the console shows the sample shop instead of the real store."""
    return bool(real.get_setting(SHOW_SAMPLE, False))


def is_sample_store(store: Store) -> bool:
    """True when ``store`` holds the sample shop (and nothing else)."""
    return bool(store.get_setting(LOADED, False))


def wants_first_sample(real: Store) -> bool:
    """True on a first start: an empty store whose marketer never turned the sample off."""
    return real.is_empty() and not real.get_setting(DISMISSED, False) and not is_sample_store(real)


def show_sample(real: Store, show: bool = True) -> None:
    """Switch the console to the sample shop (or back); the real store's data is not touched."""
    real.set_setting(SHOW_SAMPLE, bool(show))
    if not show:
        real.set_setting(DISMISSED, True)


def real_data_arrived(real: Store) -> None:
    """After the first real import: the console shows the real store; no automatic sample any more."""
    real.set_setting(SHOW_SAMPLE, False)
    real.set_setting(DISMISSED, True)

