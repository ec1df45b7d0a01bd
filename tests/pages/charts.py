"""What a page drew as Vega-Lite charts (AppTest), for tests of the kept chart specs."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest


def drawn(at: AppTest) -> list[dict]:
    """Every chart on the page: ``spec`` (the JSON) and ``data`` (its datasets as frames, by name)."""
    out = []
    for el in at.get("vega_lite_chart"):
        p = el.proto
        data = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in p.datasets}
        out.append({"spec": json.loads(p.spec), "data": data})
    return out


def frames(chart: dict) -> pd.DataFrame:
    """All of one chart's datasets stacked (columns as they come)."""
    return pd.concat(list(chart["data"].values()), ignore_index=True) if chart["data"] else pd.DataFrame()


def titled(at: AppTest, text: str) -> dict:
    """The one chart whose spec mentions ``text`` (a title or a field name)."""
    found = [c for c in drawn(at) if text in json.dumps(c["spec"], ensure_ascii=False)]
    assert len(found) == 1, f"{len(found)} charts mention {text!r}"
    return found[0]
