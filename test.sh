#!/usr/bin/env bash
# One command: set everything up and run the whole test suite
# (lint, the import-layer contracts, unit and property tests, AppTest page tests, browser tests in headless Chromium).
#   ./test.sh            everything
#   ./test.sh -k import  extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh test
.venv/bin/python -m ruff check .
.venv/bin/lint-imports  # layers and no cycles (pyproject.toml [tool.importlinter])
exec .venv/bin/python -m pytest "$@"
