"""The one atomic write: a temporary file in the same folder, then ``os.replace``, so a
crash or a full disk never leaves a half-written file where a good one was; and the one
safe unpickler, so no file the package reads can run code."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import tempfile
import threading
from typing import IO, Any, Callable, Dict, Mapping, Optional, Union

__all__ = ["download", "DownloadError", "DigestError", "atomic_write", "atomic_write_set", "write_json", "write_text", "write_bytes",
           "TMP_MARK", "remove_stale_tmp", "sha256_file", "UnsafePickleError", "safe_load",
           "safe_loads", "load_paddle_file"]

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
    tmp = _stage(path, writer)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _stage(path: str, writer: Callable[[str], Any]) -> str:
    """Write ``path``'s content to a marked temporary file beside it; return that file."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + TMP_MARK, dir=folder)
        os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        writer(tmp)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return tmp


class _DeferSigint:
    """Hold Ctrl-C back while files are renamed into place (main thread only), so an
    interrupt never stops a commit halfway; it is raised right after."""

    def __enter__(self):
        self.hit = False
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, lambda *_: setattr(self, "hit", True))
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            if self.hit and exc[0] is None:
                raise KeyboardInterrupt
        return False


def atomic_write_set(writers: Mapping[str, Callable[[str], Any]],
                     before_commit: Optional[Callable[[Dict[str, str]], Any]] = None) -> None:
    """Write several files as one set: all are written to temporary files first (a
    failure there leaves every old file untouched), then ``before_commit({path: tmp})``
    runs (e.g. to record each file's digest), then each is renamed into place with
    Ctrl-C held back until the last rename.

    Args:
        writers: ``{final path: writer(tmp_path)}``.
        before_commit: called with the staged temporary files before any rename.

    Raises:
        OSError: a file cannot be written (the message names it).
    """
    staged: Dict[str, str] = {}
    try:
        for path, writer in writers.items():
            staged[os.fspath(path)] = _stage(os.fspath(path), writer)
        if before_commit is not None:
            before_commit(dict(staged))
        with _DeferSigint():
            for path, tmp in staged.items():
                try:
                    os.replace(tmp, path)
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def remove_stale_tmp(folder: str) -> list:
    """Delete temporary files a crashed write left in ``folder`` (they carry ``TMP_MARK``);
    return their names. Call it only while holding the folder (one writer)."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        if TMP_MARK in name and os.path.isfile(full):
            os.remove(full)
            removed.append(name)
    return removed


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes."""
    return file_digest(path, "sha256")


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


# ----------------------------------------------------------------------------- safe unpickling
class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names something other than numpy arrays, numbers, strings and containers."""


# What .pdparams/.pdopt (paddle.save of state dicts: numpy arrays), .pdstates and CIFAR
# batches hold, and nothing that can run code: numpy's array/scalar reconstructors (they
# only build arrays from bytes), dtypes, and plain containers.
_SAFE_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"),
    ("builtins", "str"), ("builtins", "bytes"),
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], what: str, **kwargs):
        super().__init__(file, **kwargs)
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module.startswith("numpy") and name.endswith("DType") and module in (
                "numpy.dtypes", "numpy._core.dtypes"):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing {self.what}: it refers to {module}.{name}; only numpy arrays, numbers, strings and "
            "plain containers are loaded, because unpickling anything else can run code. "
            "The file was not written by this package (or was tampered with): do not use it")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing {self.what}: it uses persistent ids, which this package never "
                                "writes; refusing to load it")


def safe_load(file: Union[str, IO[bytes]], what: Optional[str] = None,
              encoding: str = "ASCII") -> Any:
    """Unpickle ``file`` (path or binary file object) admitting only numpy arrays and
    dtypes, numbers, strings and plain containers.

    Args:
        file: a path or an open binary file.
        what: how to name the file in errors (default: the path).
        encoding: as ``pickle.load`` (``"bytes"`` for Python-2 pickles like CIFAR's).

    Raises:
        UnsafePickleError: the pickle names any other class or function (nothing of it
            has run).
        pickle.UnpicklingError, EOFError, ValueError: the file is not a valid pickle.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return _SafeUnpickler(f, what or os.fspath(file), encoding=encoding).load()
    return _SafeUnpickler(file, what or getattr(file, "name", "pickle"), encoding=encoding).load()


def safe_loads(data: bytes, what: str = "pickle", encoding: str = "ASCII") -> Any:
    """``safe_load`` of bytes."""
    return safe_load(io.BytesIO(data), what, encoding)


_NAME_TABLE = "StructuredToParameterName@@"
_BIG_PARAMS = "UnpackBigParamInfor@@"  # paddle.save splits >4 GB arrays with protocol < 4


def load_paddle_file(path: str) -> Any:
    """Read a ``paddle.save`` file (``.pdparams`` / ``.pdopt``) with the safe unpickler.

    Tensors come back as numpy arrays (as ``paddle.load(path, return_numpy=True)``
    gives them); Paddle's bookkeeping keys are resolved and dropped.
    """
    obj = safe_load(path, encoding="latin1")
    if isinstance(obj, dict):
        info = obj.pop(_BIG_PARAMS, None)
        if isinstance(info, dict):
            import numpy as np
            for key, value in info.items():
                parts = [obj.pop(p) for p in value["slices"]]
                obj[key] = np.concatenate(parts).reshape(value["OriginShape"])
        obj.pop(_NAME_TABLE, None)
    return obj


class DownloadError(ConnectionError):
    """A URL could not be fetched (the message gives the underlying error)."""


class DigestError(ValueError):
    """A downloaded file does not have the expected digest."""


def download(url: str, path: str, opener: Callable[..., Any], timeout: float,
             digest: Optional[str] = None, algorithm: str = "sha256") -> str:
    """Fetch ``url`` into ``path`` through a temporary file beside it, checking ``digest``.

    On any failure nothing is left behind: no partial file, and no folder this call
    created. Callers turn the errors into their own messages (where to put the file).

    Args:
        url: what to fetch.
        path: the final file.
        opener: ``urllib.request.urlopen``-like ``opener(url, timeout=...)``.
        timeout: seconds; a download without one could hang forever.
        digest: expected hex digest of the file (not checked when None).
        algorithm: ``hashlib`` name of the digest.

    Raises:
        DownloadError: the fetch failed.
        DigestError: the file's digest is not ``digest``.
    """
    created = _make_parents(os.path.dirname(os.path.abspath(path)))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + TMP_MARK,
                                   dir=os.path.dirname(os.path.abspath(path)))
        try:
            with os.fdopen(fd, "wb") as out, opener(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out, 1 << 20)
        except Exception as err:  # URLError, timeouts, HTTP errors: all mean "no file"
            raise DownloadError(f"{type(err).__name__}: {err}") from None
        if digest is not None and file_digest(tmp, algorithm) != digest.lower():
            raise DigestError(f"{url}: {algorithm} is not {digest}")
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        for folder in reversed(created):
            try:
                os.rmdir(folder)  # only if still empty
            except OSError:
                break
        raise
    return path


def _make_parents(folder: str) -> list:
    """``os.makedirs(folder)``; returns the folders it created, outermost first."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    missing.reverse()
    for d in missing:
        os.makedirs(d, exist_ok=True)
    return missing
