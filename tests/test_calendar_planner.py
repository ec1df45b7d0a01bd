"""Campaign planner (crm_core.planning.planner): phase proposals, stored plans, recipient counts, frequency conflicts."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.events import calendar as cal
from crm_core.planning import frequency, plan_editor, planner

JUNE_SS = "super_sale-2026-06-04"


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "crm.duckdb")
    yield s
    s.close()


# -- send slots ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-06-04 12:00", True),   # Thursday lunch
        ("2026-06-04 13:00", True),
        ("2026-06-04 12:30", True),
        ("2026-06-04 18:45", True),
        ("2026-06-04 15:00", False),  # weekday afternoon
        ("2026-06-04 20:00", False),
        ("2026-06-06 15:00", True),   # Saturday afternoon
        ("2026-06-06 12:00", False),  # Saturday lunch is not a recommended slot
        ("2026-05-04 14:00", True),   # みどりの日 (Monday) counts as a day off
        ("2026-05-04 18:00", False),
    ],
)
def test_recommended_slots(when, expected):
    assert planner.in_recommended_slot(pd.Timestamp(when)) is expected


def test_nearest_slot_and_last_full_day():
    assert planner.nearest_slot(dt.date(2026, 6, 4), dt.time(20, 0)) == dt.datetime(2026, 6, 4, 18, 0)
    assert planner.nearest_slot(dt.date(2026, 6, 4), dt.time(0, 0)) == dt.datetime(2026, 6, 4, 12, 0)
    assert planner.nearest_slot(dt.date(2026, 6, 6), dt.time(20, 0)) == dt.datetime(2026, 6, 6, 14, 0)
    assert planner.last_full_day(dt.datetime(2026, 6, 11, 1, 59, 59)) == dt.date(2026, 6, 10)
    assert planner.last_full_day(dt.datetime(2026, 6, 11, 23, 59, 59)) == dt.date(2026, 6, 11)


# -- phase proposals ---------------------------------------------------------------------


def test_phases_for_the_june_2026_super_sale():
    event = cal.get_event(None, JUNE_SS)
    phases = planner.propose_phases(event, channel="line", coupon="SS10", now=dt.datetime(2026, 5, 1))
    got = [(p.phase, p.label, p.send_at, p.channel, p.template, p.coupon, p.in_slot, p.past) for p in phases.itertuples()]
    assert got == [
        # 2026-06-04 is a Thursday; two weeks before is Thursday 5/21
        ("announce", "予告", pd.Timestamp("2026-05-21 18:00"), "line", "sale_notice", "SS10", True, False),
        ("coupon_eve", "前日クーポン", pd.Timestamp("2026-06-03 18:00"), "line", "sale_eve_coupon", "SS10", True, False),
        # the sale starts at 20:00, after the evening slot: 開始 goes out when it opens, with the start
        # template (issue 11, item 15: it used to be 18:00 with the セール予告 template, before the sale)
        ("start", "開始", pd.Timestamp("2026-06-04 20:00"), "line", "sale_start", "SS10", False, False),
        # it ends 6/11 01:59: the last full day is Wednesday 6/10
        ("last_day", "最終日", pd.Timestamp("2026-06-10 18:00"), "line", "sale_last_day", "SS10", True, False),
    ]


@pytest.mark.parametrize(
    ("starts_at", "expected"),
    [
        ("2026-06-04 20:00:00", "2026-06-04 20:00"),  # Thursday, after the 18:00-19:00 slot: at the start
        ("2026-12-04 20:00:00", "2026-12-04 20:00"),  # the December スーパーSALE (Friday)
        ("2026-06-04 10:00:00", "2026-06-04 12:00"),  # weekday morning: the next slot, 12:00
        ("2026-06-04 12:30:00", "2026-06-04 12:30"),  # inside the lunch slot: at the start
        ("2026-06-04 13:30:00", "2026-06-04 18:00"),  # between slots: the evening slot
        ("2026-06-06 10:00:00", "2026-06-06 14:00"),  # Saturday morning: the afternoon slot
        ("2026-06-06 20:00:00", "2026-06-06 20:00"),  # Saturday evening: at the start
        ("2026-06-04 19:59:30", "2026-06-04 20:00"),  # seconds round up, never before the start
    ],
)
def test_the_start_message_is_never_sent_before_the_event_starts(starts_at, expected):
    start = pd.Timestamp(starts_at).to_pydatetime()
    assert planner.start_send_time(start) == pd.Timestamp(expected).to_pydatetime()
    event = {"starts_at": pd.Timestamp(starts_at), "ends_at": pd.Timestamp(starts_at) + pd.Timedelta(days=3)}
    row = planner.propose_phases(event).set_index("phase").loc["start"]
    assert row.send_at >= pd.Timestamp(starts_at) and row.template == "sale_start"


def test_phases_on_days_off_use_the_afternoon_slot():
    # an own event starting on Saturday 2026-05-02 (Golden Week) and ending on Wednesday 5/6 (a substitute holiday)
    event = {"starts_at": pd.Timestamp("2026-05-02 10:00"), "ends_at": pd.Timestamp("2026-05-06 23:59:59")}
    phases = planner.propose_phases(event, channel="rmail")
    assert [(p.phase, p.send_at) for p in phases.itertuples()] == [
        ("announce", pd.Timestamp("2026-04-18 14:00")),    # Saturday
        ("coupon_eve", pd.Timestamp("2026-05-01 18:00")),  # Friday
        ("start", pd.Timestamp("2026-05-02 14:00")),       # Saturday
        ("last_day", pd.Timestamp("2026-05-06 14:00")),    # 振替休日
    ]
    assert phases.in_slot.all()


def test_one_day_event_has_no_last_day_phase_and_past_sends_are_flagged():
    event = {"starts_at": pd.Timestamp("2026-06-01 00:00"), "ends_at": pd.Timestamp("2026-06-01 23:59:59")}
    phases = planner.propose_phases(event, now=dt.datetime(2026, 5, 25))
    assert list(phases.phase) == ["announce", "coupon_eve", "start"]
    assert list(phases.past) == [True, False, False]


def test_line_presale_is_one_to_two_weeks_before():
    event = cal.get_event(None, JUNE_SS)
    one = planner.propose_line_presale(event, 7).iloc[0]
    assert (one.phase, one.channel, one.send_at, one.template) == ("line_presale", "line", pd.Timestamp("2026-05-28 18:00"), "vip_early")
    assert planner.propose_line_presale(event, 14).iloc[0].send_at == pd.Timestamp("2026-05-21 18:00")
    for bad in (6, 15):
        with pytest.raises(InputError, match="7〜14日前"):
            planner.propose_line_presale(event, bad)


def test_unknown_channel_is_refused():
    with pytest.raises(InputError, match="配信チャネル"):
        planner.propose_phases(cal.get_event(None, JUNE_SS), channel="fax")


# -- stored plans --------------------------------------------------------------------------


def test_save_list_edit_and_delete_a_plan(store):
    event = cal.get_event(store, JUNE_SS)
    proposal = planner.propose_phases(event, channel="line", coupon="SS10", store=store)
    proposal.loc[0, "coupon"] = ""  # the announcement goes out without the coupon
    pid = planner.save_plan(store, "6月スーパーSALE", proposal, event_id=JUNE_SS, channel="line", coupon="SS10")
    plans = planner.list_plans(store)
    assert list(plans.name) == ["6月スーパーSALE"] and int(plans.sends.iloc[0]) == 4
    sends = planner.planned_sends(store, plan_id=pid)
    assert list(sends.phase_label) == ["予告", "前日クーポン", "開始", "最終日"]
    assert list(sends.coupon) == ["", "SS10", "SS10", "SS10"] and set(sends.channel_label) == {"LINE"}
    # edit: move the announcement, keep the send ids
    edited = sends.copy()
    edited.loc[0, "send_at"] = pd.Timestamp("2026-05-22 12:15")
    planner.save_plan(store, "6月スーパーSALE", edited, event_id=JUNE_SS, channel="line", plan_id=pid)
    again = planner.planned_sends(store, plan_id=pid)
    assert list(again.send_id) == list(sends.send_id)
    assert again.send_at.iloc[0] == pd.Timestamp("2026-05-22 12:15")
    # range filter (JST days, inclusive)
    assert len(planner.planned_sends(store, dt.date(2026, 6, 3), dt.date(2026, 6, 4))) == 2
    planner.delete_plan(store, pid)
    assert planner.list_plans(store).empty and planner.planned_sends(store).empty


@pytest.mark.parametrize(
    ("name", "rows", "message"),
    [
        ("", [{"send_at": "2026-06-01 12:00", "template": "sale_notice"}], "キャンペーン名"),
        ("x", [], "配信が1件もありません"),
        ("x", [{"send_at": None, "template": "sale_notice"}], "配信日時が空"),
        ("x", [{"send_at": "2026-06-01 12:00", "template": ""}], "テンプレート"),
        ("x", [{"send_at": "2026-06-01 12:00", "template": "t", "channel": "fax"}], "配信チャネル"),
        ("x", [{"send_at": "someday", "template": "t"}], "読めません"),
    ],
    ids=["no-name", "no-sends", "no-time", "no-template", "bad-channel", "bad-time"],
)
def test_save_plan_rejects_bad_input(store, name, rows, message):
    with pytest.raises(InputError, match=message):
        planner.save_plan(store, name, rows)
    assert planner.list_plans(store).empty


def test_editing_a_stored_plan_keeps_send_ids_and_exclusions(store):
    pid = planner.save_plan(store, "x", planner.propose_phases(cal.get_event(None, JUNE_SS)), channel="line")
    sends = planner.planned_sends(store, plan_id=pid)
    planner.set_exclude_conflicts(store, sends.send_id.iloc[1], True)
    table = plan_editor.to_editor(planner.planned_sends(store, plan_id=pid))
    table.loc[0, "時刻"] = dt.time(12, 30)
    table = table.drop(index=3)  # no last-day message after all
    plan = planner.get_plan(store, pid)
    planner.save_plan(store, plan["name"], plan_editor.from_editor(table, plan["segment"]), event_id=plan["event_id"],
                      channel=plan["channel"], plan_id=pid)
    again = planner.planned_sends(store, plan_id=pid)
    assert list(again.send_id) == list(sends.send_id[:3])
    assert list(again.exclude_conflicts) == [False, True, False]
    assert again.send_at.iloc[0] == pd.Timestamp("2026-05-21 12:30")


def test_line_presale_one_click_adds_an_event_and_a_plan(store):
    pid = planner.add_line_presale(store, JUNE_SS, days_before=10)
    sends = planner.planned_sends(store, plan_id=pid)
    assert list(zip(sends.phase, sends.channel, sends.send_at)) == [("line_presale", "line", pd.Timestamp("2026-05-25 18:00"))]
    evts = cal.list_events(store, dt.date(2026, 5, 20), dt.date(2026, 6, 5))
    pre = evts[evts.kind == "line_presale"].iloc[0]
    assert pre["name"] == "LINE友だち先行セール（楽天スーパーSALE 2026年6月）"
    assert pre.starts_at == pd.Timestamp("2026-05-25 18:00") and pre.ends_at == pd.Timestamp("2026-06-04 19:59:59")
    assert pre.status == "user"


def test_editor_round_trip():
    proposal = planner.propose_phases(cal.get_event(None, JUNE_SS), coupon="C1")
    table = plan_editor.to_editor(proposal)
    assert list(table.columns) == list(plan_editor.EDITOR_COLUMNS)
    assert table["チャネル"].iloc[0] == "LINE" and table["日付"].iloc[0] == dt.date(2026, 5, 21)
    table.loc[len(table)] = ["おまけ", dt.date(2026, 6, 7), None, "R-Mail", "sale_notice", "", None, None, False]
    back = plan_editor.from_editor(table)
    assert back.send_id.isna().all() and not back.exclude_conflicts.any()
    assert list(back.phase) == ["announce", "coupon_eve", "start", "last_day", "custom"]
    assert back.send_at.iloc[-1] == pd.Timestamp("2026-06-07 12:00") and back.channel.iloc[-1] == "rmail"
    notes = plan_editor.send_warnings(back.assign(send_at=back.send_at.where(back.phase != "start", pd.Timestamp("2026-06-04 20:00"))),
                                  now=dt.datetime(2026, 5, 22))
    assert notes == [
        "「予告」（2026年5月21日(木) 18:00）は過去の日時です。",
        # 開始 at the sale's 20:00 start is intended, not outside a slot by mistake (issue 11, item 15)
        "「おまけ」（2026年6月7日(日) 12:00）は推奨の時間帯（14:00〜16:00）の外です。",
    ]


# -- recipients and frequency conflicts ---------------------------------------------------------


def _model(store: Store) -> Store:
    """Five customers: C1-C3 LINE friends; C1, C4 Rakuten mail opt-in; C5 Shopify opt-in."""
    store.execute(
        """
        CREATE TABLE customer_model AS SELECT * FROM (VALUES
            ('C1', TRUE,  TRUE,  'rakuten', 'c1@pc.fw.rakuten.ne.jp', 200, 10000.0, DATE '2026-05-31'),
            ('C2', TRUE,  FALSE, 'rakuten', 'c2@pc.fw.rakuten.ne.jp', 10,  5000.0,  DATE '2026-05-31'),
            ('C3', TRUE,  FALSE, 'shopify', 'c3@example.jp',          120, 3000.0,  DATE '2026-05-31'),
            ('C4', FALSE, TRUE,  'rakuten', 'c4@pc.fw.rakuten.ne.jp', 30,  8000.0,  DATE '2026-05-31'),
            ('C5', FALSE, TRUE,  'shopify', 'c5@example.jp',          400, 1000.0,  DATE '2026-05-31')
        ) AS t(customer_id, has_line, email_opt_in, first_source, email, recency_days, revenue, as_of)
        """
    )
    return store


def test_recipients_per_channel_and_segment(store):
    assert planner.recipients(store, None, "line") is None  # no customer model yet
    _model(store)
    assert planner.recipients(store, None, "line") == 3
    assert planner.recipients(store, None, "rmail") == 2
    assert planner.recipients(store, None, "shopify_email") == 1
    assert planner.recipients(store, None, "email") == 1  # never Rakuten relay addresses outside R-Mail
    dormant = {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}
    assert planner.recipients(store, dormant, "line") == 2
    assert planner.recipients(store, planner.named_segment("休眠", dormant), "line") == 2
    assert planner.segment_text(planner.named_segment("休眠", dormant), "line") == "休眠（LINEで届くお客様）"
    assert planner.segment_text(None, "rmail") == "全員（R-Mailで届くお客様）"
    assert "90" in planner.segment_text(dormant, "line")


def test_hostile_segment_values_are_bound(store):
    _model(store)
    rule = {"all": [{"field": "first_source", "op": "eq", "value": "rakuten'; DROP TABLE customer_model; --"}]}
    try:
        n = planner.recipients(store, rule, "line")
    except InputError:
        n = 0
    assert n == 0
    assert store.scalar("SELECT count(*) FROM customer_model") == 5
    with pytest.raises(InputError):
        planner.recipients(store, {"all": [{"field": "1; DROP TABLE x", "op": "eq", "value": 1}]}, "line")


def _sends(*rows) -> pd.DataFrame:
    return pd.DataFrame(
        [{"send_id": sid, "send_at": pd.Timestamp(at), "channel": ch, "segment": seg, "exclude_conflicts": ex}
         for sid, at, ch, seg, ex in rows]
    )


FIXTURE = (
    ("S1", "2026-06-01 18:00", "line", None, False),   # Mon: C1 C2 C3
    ("S2", "2026-06-03 18:00", "line", None, False),   # Wed: C1 C2 C3
    ("S3", "2026-06-04 18:00", "rmail", None, False),  # Thu: C1 C4  -> C1 gets a 3rd message in 7 days
    ("S4", "2026-06-08 18:00", "line", None, False),   # Mon: S1 is exactly 7 days back: outside the window
)


def test_frequency_conflicts_on_a_small_fixture(store):
    _model(store)
    report = frequency.send_counts(store, _sends(*FIXTURE), limit=2)
    got = report.sends.set_index("send_id")[["audience", "over_limit", "excluded", "recipients"]].to_dict("index")
    assert got == {
        "S1": {"audience": 3, "over_limit": 0, "excluded": 0, "recipients": 3},
        "S2": {"audience": 3, "over_limit": 0, "excluded": 0, "recipients": 3},
        "S3": {"audience": 2, "over_limit": 1, "excluded": 0, "recipients": 2},  # C1: S1 S2 S3
        "S4": {"audience": 3, "over_limit": 1, "excluded": 0, "recipients": 3},  # C1: S2 S3 S4
    }
    assert report.customers == 1
    assert [(w.date(), c, s) for w, c, s in zip(report.weeks.week_start, report.weeks.customers, report.weeks.sends)] == [
        (dt.date(2026, 6, 1), 1, 1), (dt.date(2026, 6, 8), 1, 1)]
    # a higher limit: nobody is over
    assert frequency.send_counts(store, _sends(*FIXTURE), limit=3).customers == 0
    # limit 1: every repeat within 7 days counts
    strict = frequency.send_counts(store, _sends(*FIXTURE), limit=1).sends.set_index("send_id").over_limit.to_dict()
    assert strict == {"S1": 0, "S2": 3, "S3": 1, "S4": 3}


def test_excluding_conflicts_from_the_later_send(store):
    _model(store)
    rows = list(FIXTURE)
    rows[2] = ("S3", "2026-06-04 18:00", "rmail", None, True)  # leave C1 out of S3
    report = frequency.send_counts(store, _sends(*rows), limit=2)
    got = report.sends.set_index("send_id")[["over_limit", "excluded", "recipients"]].to_dict("index")
    assert got["S3"] == {"over_limit": 1, "excluded": 1, "recipients": 1}
    # C1 did not get S3, so S4 is only their 2nd message in 7 days
    assert got["S4"] == {"over_limit": 0, "excluded": 0, "recipients": 3}
    assert report.customers == 1
    assert list(report.weeks.customers) == [1]


def test_frequency_with_stored_sends_and_setting(store):
    _model(store)
    assert frequency.max_per_week(store) == planner.DEFAULT_MAX_PER_WEEK
    frequency.set_max_per_week(store, 2)
    with pytest.raises(InputError):
        frequency.set_max_per_week(store, 0)
    rows = [{"phase": "custom", "label": sid, "send_at": at, "channel": ch, "template": "sale_notice"} for sid, at, ch, _, _ in FIXTURE]
    pid = planner.save_plan(store, "テスト", rows)
    sends = planner.planned_sends(store)
    s3 = sends[sends.label == "S3"].send_id.iloc[0]
    planner.set_exclude_conflicts(store, s3, True)
    report = frequency.send_counts(store, planner.planned_sends(store))
    counted = frequency.with_counts(planner.planned_sends(store), report).set_index("label")
    assert counted.loc["S3", "recipients"] == 1 and counted.loc["S4", "over_limit"] == 0
    table = frequency.plan_table(counted.reset_index(), store)
    assert list(table.columns) == ["キャンペーン", "配信", "配信日時", "推奨時間帯", "チャネル", "テンプレート", "対象", "クーポン",
                                   "対象者数", "頻度上限超え", "除外", "配信数"]
    assert table["テンプレート"].iloc[0] == "セール予告"
    exported = frequency.sends_for_export(store, dt.date(2026, 6, 4), dt.date(2026, 6, 30))
    # counted with the sends of the week before the range
    assert dict(zip(exported.label, exported.recipients)) == {"S3": 1, "S4": 3}
    assert pid


def test_rows_without_channel_coupon_or_segment_take_the_plans(store):
    pid = planner.save_plan(store, "x", [{"send_at": "2026-06-01 12:00", "template": "sale_notice"}], channel="rmail",
                            coupon="C9", segment={"all": [{"field": "recency_days", "op": "gte", "value": 90}]})
    s = planner.planned_sends(store, plan_id=pid).iloc[0]
    assert (s.channel, s.coupon, s.phase, s.label) == ("rmail", "C9", "custom", "追加配信")
    assert json.loads(s.segment) == {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}


def test_counts_without_a_customer_model(store):
    report = frequency.send_counts(store, _sends(*FIXTURE), limit=2)
    assert not report.model_ready and set(report.sends.recipients) == {0}


def test_segment_choices_include_presets():
    choices = plan_editor.segment_choices()
    assert choices[0][1] is None
    labels = [label for label, _ in choices]
    assert "プリセット: 休眠（90日以上購入なし）" in labels
    stored = dict(choices)["プリセット: 休眠（90日以上購入なし）"]
    assert json.loads(stored)["rule"] == {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}


def test_saved_segments_are_followed_and_a_deleted_one_counts_zero(store):
    from crm_core.audience import library as segment_library

    _model(store)
    sid = segment_library.save_segment(store, "長期休眠", {"all": [{"field": "recency_days", "op": "gte", "value": 150}]})
    label, ref = next(c for c in plan_editor.segment_choices(store) if c[0] == "保存済み: 長期休眠")
    assert planner.recipients(store, ref, "line") == 1  # C1 (200 days)
    assert planner.segment_text(ref, "line", store) == "長期休眠（LINEで届くお客様）"
    # the plan follows an edit of the saved segment
    segment_library.save_segment(store, "長期休眠", {"all": [{"field": "recency_days", "op": "gte", "value": 100}]}, segment_id=sid)
    assert planner.recipients(store, ref, "line") == 2
    pid = planner.save_plan(store, "休眠向け", [{"send_at": "2026-06-01 12:00", "template": "winback"}], segment=ref)
    segment_library.delete_segment(store, sid)
    report = frequency.send_counts(store, planner.planned_sends(store, plan_id=pid), limit=2)
    row = report.sends.iloc[0]
    assert row.recipients == 0 and "見つかりません" in row.problem
    assert planner.segment_text(ref, "line", store).startswith("削除されたセグメント「長期休眠」")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_frequency_counts_match_a_per_customer_simulation(store, seed):
    """The pattern-grouped computation equals a plain customer-by-customer walk on random plans."""
    import random

    rng = random.Random(seed)
    customers = [(f"K{i}", rng.random() < 0.5, rng.random() < 0.6, rng.choice(["rakuten", "shopify"]), rng.randrange(400))
                 for i in range(120)]
    store.execute("CREATE TABLE customer_model (customer_id VARCHAR, has_line BOOLEAN, email_opt_in BOOLEAN, first_source VARCHAR, "
                  "recency_days INTEGER, email VARCHAR, revenue DOUBLE, as_of DATE)")
    for c in customers:
        store.execute("INSERT INTO customer_model VALUES (?, ?, ?, ?, ?, 'x@example.jp', 1.0, DATE '2026-05-31')", list(c))
    base = pd.Timestamp("2026-06-01 12:00")
    rows = []
    for k in range(10):
        cut = rng.choice([None, 60, 180])
        rows.append((f"S{k:02d}", str(base + pd.Timedelta(hours=rng.randrange(0, 24 * 20, 6))), rng.choice(list(planner.CHANNELS)),
                     None if cut is None else json.dumps({"all": [{"field": "recency_days", "op": "gte", "value": cut}]}),
                     rng.random() < 0.4))
    sends = _sends(*rows)
    limit = rng.choice([1, 2, 3])
    report = frequency.send_counts(store, sends, limit=limit)

    reach = {
        "line": lambda c: c[1],
        "rmail": lambda c: c[2] and c[3] == "rakuten",
        "shopify_email": lambda c: c[2] and c[3] == "shopify",
        "email": lambda c: c[2] and c[3] != "rakuten",
    }
    order = sends.sort_values(["send_at", "send_id"]).to_dict("records")
    expected = {s["send_id"]: {"audience": 0, "over_limit": 0, "excluded": 0} for s in order}
    over_customers = set()
    for c in customers:
        got: list[pd.Timestamp] = []
        for s in order:
            seg = json.loads(s["segment"]) if isinstance(s["segment"], str) else None
            if not reach[s["channel"]](c) or (seg and c[4] < seg["all"][0]["value"]):
                continue
            e = expected[s["send_id"]]
            e["audience"] += 1
            n = 1 + sum(1 for r in got if s["send_at"] - pd.Timedelta(days=7) < r <= s["send_at"])
            if n > limit:
                e["over_limit"] += 1
                over_customers.add(c[0])
                if s["exclude_conflicts"]:
                    e["excluded"] += 1
                    continue
            got.append(s["send_at"])
    got_counts = report.sends.set_index("send_id")[["audience", "over_limit", "excluded"]].to_dict("index")
    assert got_counts == expected
    assert report.customers == len(over_customers)
