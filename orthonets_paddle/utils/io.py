"""The one atomic write: a temporary file in the same folder, then ``os.replace``, so a
crash or a full disk never leaves a half-written file where a good one was."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

__all__ = ["atomic_write", "write_json", "write_text", "write_bytes", "TMP_MARK"]

# Temporary files carry this mark, so a later start can find and remove stale ones.
TMP_MARK = ".tmp-"


def atomic_write(path: str, writer: Callable[[str], Any]) -> str:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``.

    Args:
        path: the final file.
        writer: writes the whole file at the path it is given.

    Returns:
        ``path``.

    Raises:
        OSError: the folder cannot be written (the message names ``path``); the
            previous ``path``, if any, is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + TMP_MARK, dir=folder)
        os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        writer(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(text: str, path: str) -> str:
    """``text`` to ``path`` (UTF-8), atomically."""
    def writer(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, writer)


def write_json(obj: Any, path: str, indent: int = 1) -> str:
    """``obj`` as JSON to ``path``, atomically."""
    return write_text(json.dumps(obj, indent=indent), path)


def write_bytes(data: bytes, path: str) -> str:
    """``data`` to ``path``, atomically."""
    def writer(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, writer)
