"""Aggregate message reports (LINE, R-Mail): import, record from the insight API, display with withheld values."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.errors import InputError
from crm_core.pipeline import import_files
from crm_core.results import engagement as EN
from tests.fixtures import write_csv

REPORT_HEADER = ["配信元", "配信名", "配信日", "配信数", "開封数", "クリック数", "クリック人数"]
REPORT_MAP = {"配信元": "channel", "配信名": "message_name", "配信日": "sent_on", "配信数": "delivered",
              "開封数": "opens", "クリック数": "clicks", "クリック人数": "unique_clicks"}


def _import(store, tmp_path, rows):
    path = write_csv(tmp_path / "report.csv", REPORT_HEADER, rows, "utf-8")
    return import_files(store, [path], fmt="generic", mapping=REPORT_MAP, rebuild_model=False)


def test_report_import_keeps_withheld_values_apart_from_zero(store, tmp_path):
    rep = _import(store, tmp_path, [
        {"配信元": "LINE", "配信名": "冬のセール予告", "配信日": "2025/12/01", "配信数": "1200", "開封数": "480", "クリック数": "", "クリック人数": ""},
        {"配信元": "R-Mail", "配信名": "冬のセール予告", "配信日": "2025-12-01", "配信数": "800", "開封数": "0", "クリック数": "-", "クリック人数": ""},
    ])
    assert rep.files[0].kind == "message_stats" and rep.files[0].contacts == 2
    rows = store.fetchall("SELECT source, sent_on, delivered, opens, clicks, unique_clicks, withheld FROM message_stats ORDER BY source")
    assert rows == [
        ("line", dt.date(2025, 12, 1), 1200, 480, None, None, "clicks,unique_clicks"),
        ("rmail", dt.date(2025, 12, 1), 800, 0, None, None, "clicks"),
    ]
    # The same report again replaces, never doubles.
    _import(store, tmp_path, [{"配信元": "LINE", "配信名": "冬のセール予告", "配信日": "2025/12/01", "配信数": "1210", "開封数": "481"}])
    assert store.fetchall("SELECT delivered FROM message_stats WHERE source = 'line'") == [(1210,)]


def test_record_from_line_insight_api_and_table(store):
    # Shape of GET /v2/bot/insight/message/event/aggregation (line-openapi/insight.yml): null = under 20.
    api = {"customAggregationUnit": "winter_sale", "sent_on": "20251201",
           "overview": {"uniqueImpression": 40, "uniqueClick": None, "uniqueMediaPlayed": None},
           "clicks": [{"url": "https://example.jp/a", "click": 35}, {"url": "https://example.jp/b", "click": None}]}
    assert EN.record_message_stats(store, 7, "line_api", api) == 1
    EN.record_message_stats(store, 7, "rmail", {"message_name": "R-Mail 12/1", "sent_on": dt.date(2025, 12, 1),
                                                  "delivered": 800, "opens": 200, "clicks": 50, "unique_clicks": 40})
    table = EN.engagement_table(store, 7)
    assert table.to_dict("records") == [
        {"配信元": "R-Mail", "メッセージ": "R-Mail 12/1", "配信日": "2025年12月1日", "配信数": "800", "開封数": "200",
         "クリック数": "50", "クリックした人数": "40", "開封率": "25.0%", "クリック率": "5.0%", "概算": ""},
        {"配信元": "LINE（API）", "メッセージ": "winter_sale", "配信日": "2025年12月1日", "配信数": "—", "開封数": "40",
         "クリック数": EN.WITHHELD_LABEL, "クリックした人数": EN.WITHHELD_LABEL, "開封率": "—", "クリック率": "—", "概算": "≈ 概算"},
    ]  # the latest recorded first within a day
    assert "0" not in set(table["クリックした人数"])
    # A later fetch of the same unit updates in place.
    EN.record_message_stats(store, 7, "line_api", {**api, "overview": {"uniqueImpression": 45, "uniqueClick": 21}})
    assert store.fetchall("SELECT opens, unique_clicks, withheld FROM message_stats WHERE source = 'line_api'") == [(45, 21, "clicks")]


def test_link_unlinked_report_and_errors(store):
    EN.record_message_stats(store, None, "rmail", {"message_name": "m", "sent_on": "2025-12-01", "delivered": 10})
    unlinked = EN.message_stats(store, unlinked=True)
    assert len(unlinked) == 1 and EN.message_stats(store, 3).empty
    EN.link_report(store, int(unlinked.iloc[0]["stats_id"]), 3)
    assert len(EN.message_stats(store, 3)) == 1 and EN.message_stats(store, unlinked=True).empty
    with pytest.raises(InputError):
        EN.record_message_stats(store, 3, "fax", {"delivered": 1})
    with pytest.raises(InputError):
        EN.record_message_stats(store, 3, "rmail", {"delivered": -1})
    with pytest.raises(InputError):
        EN.link_report(store, 999, 3)
