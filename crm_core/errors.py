"""The one input-error type of the console.

``crm_core`` raises :class:`InputError` for anything the marketer can fix
(a wrong file, a missing column, a bad rule).  It carries a Japanese message
for the screen and an English detail for the log; pages show ``message`` with
``st.error`` and stop.  Unexpected exceptions are never turned into this type.
"""

from __future__ import annotations


class InputError(Exception):
    """A problem with the user's input, explained in Japanese.

    Parameters
    ----------
    message : str
        Japanese text for the marketer, saying what is wrong and how to fix it.
    detail : str, optional
        English detail for logs and developers (never customer data).
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class StorageError(InputError):
    """The machine, not the input, failed: the store is locked, read-only, or the disk is full.

    Raised by :mod:`crm_core.failures` in place of DuckDB's or the operating
    system's error, with a Japanese message that says what happened and what
    to do.  A subclass of :class:`InputError` so every page and the command
    line show it the same way; ``kind`` is ``locked``, ``read_only``,
    ``disk_full``, ``missing``, ``no_permission``, ``invalidated``,
    ``too_deep`` or ``memory``.
    """

    def __init__(self, message: str, detail: str = "", kind: str = "") -> None:
        super().__init__(message, detail)
        self.kind = kind
