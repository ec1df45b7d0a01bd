"""One segment reference type and one resolver (preset / saved / inline rule), used by templates, planner and results."""

from __future__ import annotations

import pytest

from crm_core.audience import library as L
from crm_core.audience import references as refs
from crm_core.audience import segments as S
from crm_core.errors import InputError
from crm_core.messaging import templates as T
from crm_core.planning import planner
from tests.segment_shop import segment_store

DORMANT = {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}


@pytest.fixture
def store():
    s = segment_store()
    yield s
    s.close()


@pytest.mark.parametrize(
    "value, kind",
    [("all", "all"), (None, "all"), ("preset:dormant_90", "preset"), ("saved:3", "saved"),
     ({"segment_id": 3, "name": "休眠"}, "saved"), ({"rule": DORMANT}, "rule"), (DORMANT, "rule")],
    ids=["all", "none", "preset", "saved-text", "saved-dict", "rule-wrapped", "rule"],
)
def test_parse_reads_every_spelling(value, kind):
    assert refs.SegmentRef.parse(value).kind == kind


def test_resolve_gives_the_rule(store):
    sid = L.save_segment(store, "休眠", DORMANT)
    assert refs.resolve(store, "all") is None
    assert refs.resolve(store, "preset:dormant_90") == S.preset_rule("dormant_90")
    assert refs.resolve(store, f"saved:{sid}") == S.validate(DORMANT)
    assert refs.resolve(store, {"rule": DORMANT}) == S.validate(DORMANT)


def test_a_deleted_saved_segment_is_a_clear_japanese_error_everywhere(store):
    sid = L.save_segment(store, "冬の休眠", DORMANT)
    L.delete_segment(store, sid)
    with pytest.raises(InputError) as err:
        refs.resolve(store, {"segment_id": sid, "name": "冬の休眠"})
    assert "「冬の休眠」" in err.value.message and "削除" in err.value.message
    with pytest.raises(InputError, match="削除"):
        T.segment_rule(store, f"saved:{sid}")
    with pytest.raises(InputError, match="「冬の休眠」"):
        planner.audience_sql(store, planner.saved_segment(sid, "冬の休眠"), "line")


def test_unknown_references_say_what_to_do(store):
    with pytest.raises(InputError, match="選び直して"):
        refs.resolve(store, "preset:nope")
    with pytest.raises(InputError, match="選び直して"):
        refs.SegmentRef.parse("saved:abc")


def test_the_stored_json_spelling_resolves_like_the_object(store):
    """planner.segment_json text (what the calendar's segment choices and planned sends hold) is a reference too."""
    sid = L.save_segment(store, "休眠", DORMANT)
    for obj in (planner.saved_segment(sid, "休眠"), planner.named_segment("休眠", DORMANT), DORMANT):
        text = planner.segment_json(obj)
        assert refs.SegmentRef.parse(text) == refs.SegmentRef.parse(obj)
        assert refs.resolve(store, text) == refs.resolve(store, obj)
    with pytest.raises(InputError, match="読めません"):
        refs.SegmentRef.parse("{not json")
