"""crm_core.filecache: a shipped file is parsed once per version, and every caller gets its own copy."""

from __future__ import annotations

import os

from crm_core import filecache


def test_a_file_is_parsed_once_per_version_and_callers_get_copies(tmp_path):
    calls = []

    @filecache.read_once
    def read(path: str) -> dict:
        calls.append(path)
        return {"lines": open(path, encoding="utf-8").read().splitlines()}

    path = tmp_path / "presets.toml"
    path.write_text("a\nb\n", encoding="utf-8")
    first = read(path)
    first["lines"].append("changed by a caller")
    assert read(path) == {"lines": ["a", "b"]} and read(str(path)) == {"lines": ["a", "b"]}
    assert len(calls) == 1
    # the same size with a new modification time, then a new size: read again each time
    path.write_text("a\nc\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert read(path) == {"lines": ["a", "c"]} and len(calls) == 2
    path.write_text("a\nc\nd\n", encoding="utf-8")
    assert read(path) == {"lines": ["a", "c", "d"]} and len(calls) == 3


def test_scenario_presets_seed_the_same_definitions_as_a_fresh_parse(tmp_path):
    """The cached rows :func:`_seed` stores equal the presets parsed now, and a caller's change reaches nobody."""
    import json
    import tomllib

    from crm_core.scenarios import definitions as D

    presets = D.load_presets()
    presets[0].steps[0].day = 999
    fresh = [D.parse(s) for s in tomllib.loads(D.PRESETS_PATH.read_text(encoding="utf-8"))["scenario"]]
    rows = dict(D._preset_rows(D.PRESETS_PATH))
    assert {name: json.loads(text) for name, text in rows.items()} == {s.name: s.to_dict() for s in fresh}
    assert D.load_presets() == fresh
