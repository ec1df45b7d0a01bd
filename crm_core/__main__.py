"""``python -m crm_core``: every command lives in :mod:`crm_core.cli`."""

from crm_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
