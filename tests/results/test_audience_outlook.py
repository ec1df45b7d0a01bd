"""What a campaign's audience can detect, computed in DuckDB from the rule (no list of ids through Python).

:func:`campaigns.audience_outlook` must give exactly what the id path gives
(:func:`campaigns.audience_ids` then :func:`campaigns.detectable_effect` on the ids): the same audience
after the global holdout, the same base rates, the same detectable effects.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pytest

from crm_core import pipeline
from crm_core.db import mark_refresh_due
from crm_core.model import build
from crm_core.results import campaigns as C
from tests.model import test_model_incremental as shop

RULES = ({"all": []}, {"all": [{"field": "orders", "op": "gte", "value": 2}]},
         {"all": [{"field": "recency_days", "op": "gte", "value": 90}]})


def test_the_global_holdout_in_sql_is_the_one_in_python():
    ids = [f"C{i:06d}" for i in range(30_000)] + ["", "顧客-1", "a|b", "x" * 40]
    con = duckdb.connect()
    for share in (0.0, 0.01, 0.05, 0.1, 0.2):
        got = con.execute(
            "SELECT list(customer_id ORDER BY customer_id) FILTER (WHERE " + C.GLOBAL_HOLDOUT_SQL.format(col="customer_id")
            + ") FROM unnest($ids) AS t(customer_id)", {"ids": ids, **C.global_holdout_params(share)}).fetchone()[0] or []
        assert got == sorted(c for c in ids if C.in_global_holdout(c, share)), share


@pytest.fixture(scope="module")
def store():
    s = shop._shop(9)
    mp = pytest.MonkeyPatch()
    mp.setattr(build, "_now_jst", lambda: dt.datetime(2026, 7, 1, 9, 0))
    mark_refresh_due(s)
    pipeline.refresh(s)
    # reach: most customers opted in to e-mail (R-Mail: their first order is Rakuten), a third on LINE
    s.execute("UPDATE customer_model SET email_opt_in = hash(customer_id) % 5 <> 0, has_line = hash(customer_id) % 3 = 0")
    yield s
    mp.undo()
    s.close()


def _same(a, b) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], float) and isinstance(b[k], float):
            assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k], rel=1e-9), k
        elif isinstance(a[k], dict):
            _same(a[k], b[k])
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("share", [0.0, 0.1])
def test_the_outlook_from_the_rule_equals_the_one_from_the_ids(store, share):
    C.set_global_holdout(store, share)
    seen = 0
    for rule in RULES:
        for channel in C.CHANNELS:
            for days, holdout in ((7, 0.1), (30, 0.25), (1, 0.05), (60, 0.5)):
                audience = C.audience_ids(store, rule, channel)
                got = C.audience_outlook(store, rule, channel, holdout, days)
                assert got["n"] == len(audience["ids"]) and got["global_holdout"] == len(audience["global_holdout"])
                if audience["ids"]:
                    want = C.detectable_effect(store, audience["ids"], holdout, days)
                    want["global_holdout"] = len(audience["global_holdout"])
                    _same(got, want)
                    seen += 1
    assert seen >= 8
    if share:
        assert C.audience_outlook(store, RULES[0], "rmail", 0.1)["global_holdout"] > 0
