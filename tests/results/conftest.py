"""Shared fixtures of the live-send tests: a store of 1,100 LINE friends and 40 e-mail addresses, and the LINE stand-in."""

from __future__ import annotations

import pytest

from crm_core.results import live
from tests.live_support import LIVE_TOKEN, make_store
from tests.servers.line_mock import LineMock


@pytest.fixture()
def env(tmp_path):
    store = make_store(tmp_path / "crm.duckdb", line_users=1100, emails=40, rakuten=3)
    ops = live.open_ops(store)
    yield store, ops
    ops.close()
    store.close()


@pytest.fixture()
def line():
    with LineMock(LIVE_TOKEN) as mock:
        mock.keep_requests = True
        yield mock
