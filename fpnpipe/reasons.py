"""Rejection reasons that are byte-stable: the same problem gives the same text in every run.

Exception texts from decoders and parsers sometimes embed an object's repr with its memory address
(``<_io.BytesIO object at 0x7f8c...>``), which would change reports/preprocess.json from run to run.

A reason may quote a file path or an identifier from the manifest. Such a quote is marked with `private`;
`reveal` shows it (the local log, a report without pseudonymisation), `withhold` replaces it by
``<withheld>`` (a report under data.pseudonymize).
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "\ue000", "\ue001"  # Unicode private-use characters: never in a real path or message
_PRIVATE = re.compile("\ue000([^\ue000\ue001]*)(?:\ue001|$)")
WITHHELD = "<withheld>"

_REPR_ADDRESS = re.compile(r"(<[^<>]*?) at 0x[0-9a-fA-F]+>")
_BARE_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{10,}\b")


def stable_reason(text: str, limit: int = 400) -> str:
    """`text` on one line, without memory addresses, shortened to `limit` characters.

    ``<_io.BytesIO object at 0x7f8c>`` becomes ``<_io.BytesIO object>``; any other hexadecimal number of
    10 or more digits (a 64-bit pointer; a DICOM tag has 8) becomes ``0x...``.
    """
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    text = _REPR_ADDRESS.sub(r"\1>", text)
    text = _BARE_ADDRESS.sub("0x...", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exception_reason(exc: BaseException, limit: int = 240) -> str:
    """The exception's message as a stable one-line reason (its type name if it has no message)."""
    return stable_reason(str(exc), limit) or type(exc).__name__


def private(value: object) -> str:
    """`value` as text, marked as a path or identifier that a pseudonymised report must not show."""
    return f"{_OPEN}{value}{_CLOSE}"


def is_private(text: str) -> bool:
    """True if `text` holds a marked span."""
    return _OPEN in text


def reveal(text: str) -> str:
    """`text` with its marked spans shown as they are (for the local log and unpseudonymised reports)."""
    return _PRIVATE.sub(r"\1", text)


def withhold(text: str) -> str:
    """`text` with each marked span replaced by ``<withheld>``."""
    return _PRIVATE.sub(WITHHELD, text)
