#!/usr/bin/env bash
# One command: set everything up and start the console, the background worker and the
# endpoint service on the bundled sample shop (python -m crm_core run-all).
#   ./run.sh                         -> console http://127.0.0.1:8501, endpoints http://127.0.0.1:8502
#   ./run.sh --server.port 8600      (extra arguments go to `streamlit run`)
#   CRM_BIND=0.0.0.0 ./run.sh        listen beyond this machine (only behind a reverse proxy with sign-in)
# Ctrl-C stops all three; a process that crashes is reported and started again.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh run
exec .venv/bin/python -m crm_core run-all "$@"
