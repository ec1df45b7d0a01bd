#!/usr/bin/env bash
# One command: set everything up and start the console on the bundled sample shop.
#   ./run.sh                      -> http://localhost:8501
#   ./run.sh --server.port 8600   (extra arguments go to `streamlit run`)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh run
exec .venv/bin/python -m streamlit run app.py "$@"
