"""pages.ui.altair_chart: a kept chart (an Altair chart, or a spec with its datasets) is drawn exactly as
st.altair_chart / st.vega_lite_chart draw it."""

from __future__ import annotations

import altair as alt
import pandas as pd
from streamlit.testing.v1 import AppTest


def bars(frame: pd.DataFrame) -> alt.Chart:
    """An Altair chart built as the analytics pages build theirs."""
    return alt.Chart(frame).mark_bar().encode(x=alt.X("day:T"), y=alt.Y("revenue:Q"), tooltip=["revenue:Q"])


def _script() -> None:
    import datetime as dt

    import pandas as pd
    import streamlit as st

    from crm_core.events import calendar as cal
    from crm_core.planning import calendar_views as views
    from pages import ui
    from tests.pages.test_ui_charts import bars

    start, end = dt.date(2025, 11, 1), dt.date(2025, 12, 31)
    days = pd.date_range(start, end, freq="D")
    daily = pd.DataFrame({"date": days, "revenue": [1000.0 * (i % 7) for i in range(len(days))], "orders": 3})
    events = cal.list_events(None, start, end)
    st.altair_chart(bars(daily.rename(columns={"date": "day"})), width="stretch")
    ui.altair_chart(bars, daily.rename(columns={"date": "day"}))
    st.vega_lite_chart(spec=views.sales_overlay_chart(daily, events), width="stretch")
    ui.altair_chart(views.sales_overlay_chart, daily, events)
    st.vega_lite_chart(spec=views.calendar_chart(events, cal.holidays(start, end), None, start, end), width="stretch")
    ui.altair_chart(views.calendar_chart, events, cal.holidays(start, end), None, start, end)
    ui.altair_chart(views.sales_overlay_chart, daily.assign(revenue=0.0), events)  # nothing to draw: no element
    st.write("drawn twice")


def test_a_kept_chart_is_drawn_exactly_as_streamlit_draws_it():
    """Same spec, same Arrow datasets, same width: what a marketer sees does not change (also on the rerun,
    when the spec comes from the cache)."""
    at = AppTest.from_function(_script, default_timeout=60)
    for _ in range(2):
        at.run()
        assert not at.exception, at.exception
        charts = [el.proto for el in at.get("vega_lite_chart")]
        assert len(charts) == 6
        for direct, kept in (charts[0:2], charts[2:4], charts[4:6]):
            assert kept == direct
        assert charts[0] != charts[2] != charts[4]
