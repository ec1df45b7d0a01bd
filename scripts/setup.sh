#!/usr/bin/env bash
# Shared set-up for run.sh and test.sh: a virtual environment with the pinned
# requirements, and (for tests) Debian's Chromium for the browser tests.
# Usage: scripts/setup.sh run|test
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "Python 3.11 以上が必要です / Python 3.11+ is required (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ "${1:-run}" = "test" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  chromium_bin=${CRM_CHROMIUM:-/usr/bin/chromium}
  if [ ! -x "$chromium_bin" ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "Installing Chromium and Japanese fonts for the browser tests (apt-get)…"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-noto-color-emoji >/dev/null
    else
      echo "Browser tests need Chromium at $chromium_bin: sudo apt-get install chromium fonts-noto-cjk" >&2
      exit 1
    fi
  fi
else
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
fi
