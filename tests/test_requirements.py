"""Streamlit has an upper bound the suite runs against (issue 11, item 20): a new minor version cannot slip in."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _requirement(name: str) -> Requirement:
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#") and Requirement(line).name == name:
            return Requirement(line)
    raise AssertionError(f"{name} is not in requirements.txt")


def test_streamlit_is_bounded_above_and_the_installed_version_fits():
    req = _requirement("streamlit")
    uppers = [s for s in req.specifier if s.operator in ("<", "<=", "~=", "==")]
    assert uppers, f"no upper bound: {req}"
    installed = Version(version("streamlit"))
    assert req.specifier.contains(installed), (str(req), str(installed))
    assert not req.specifier.contains(Version(f"{installed.major}.{installed.minor + 1}.0"))
