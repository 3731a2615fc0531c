"""Names are data: text fit for one terminal or log line, and the logging hook that applies it.

File names come from disk and may hold anything a file system allows: line breaks (which
would forge a second log line), ANSI escapes (which drive the terminal), bytes that are not
UTF-8 (decoded by Python as lone surrogates, which a UTF-8 log file cannot encode: logging
would print a traceback and drop the line). :func:`shown` escapes all of them;
:func:`install` makes every log message go through it, once per process, so no call site can
forget: each command-line entry point calls it after setting up its handlers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from search_lab.core.errors import SearchLabError


def shown(text: object) -> str:
    """``text`` fit for one terminal line: control characters and undecodable bytes escaped.

    A control character becomes its Python escape (``\\n``, ``\\x1b``), a byte that was not
    UTF-8 (a surrogate from ``os.fsdecode``) becomes ``\\xff``; printable text, non-ASCII
    letters included, is unchanged.
    """
    text = str(text)
    if text.isprintable():
        return text
    if any("\udc80" <= c <= "\udcff" for c in text):
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ShownRecord(logging.LogRecord):
    """A log record whose message is :func:`shown`: one line, whatever the arguments hold.

    Only the message is escaped: a traceback (``exc_info``) is formatted apart and keeps
    its lines.
    """

    def getMessage(self) -> str:
        return shown(super().getMessage())


def install() -> None:
    """Make every log record of this process a :class:`ShownRecord` (idempotent).

    Leaves a record factory someone else installed alone (it would be theirs to escape).
    """
    if logging.getLogRecordFactory() is logging.LogRecord:
        logging.setLogRecordFactory(ShownRecord)


def write_error(err: OSError) -> str:
    """``cannot write <path>: <reason>`` for a failed write (a full disk, no permission).

    The path is the one the error carries (every atomic write attaches it, see
    :func:`search_lab.core.files.atomic_write`); ``<unknown file>`` only if none did.
    """
    path = err.filename if err.filename is not None else "<unknown file>"
    return f"cannot write {os.fsdecode(path)}: {err.strerror or err}"


def run_command(body: Callable[[], object]) -> int:
    """Run a plain command's ``body`` as every non-Hydra command does: warnings as one
    ``warning:`` line each, names escaped in every record, a SearchLabError as one ``error:``
    line and exit status 2; otherwise ``body``'s status if it returns an int, else 0."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    install()
    try:
        status = body()
    except SearchLabError as err:
        print(f"error: {shown(str(err))}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0
