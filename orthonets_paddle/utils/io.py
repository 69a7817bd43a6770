"""The one atomic write: a temporary file in the same folder, fsynced, then ``os.replace``
and an fsync of the folder, so a crash, a kill or a power loss never leaves a half-written
file where a good one was; and the one safe unpickler, so no file the package reads can
run code or allocate more than a small multiple of its own size."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import signal
import struct
import tempfile
import threading
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

__all__ = ["pid_alive", "atomic_write", "atomic_write_set", "write_json", "write_text", "write_bytes",
           "TMP_MARK", "remove_stale_tmp", "sha256_file", "UnsafePickleError", "safe_load",
           "safe_loads", "load_paddle_file", "fsync_dir", "StateDictError", "check_state_dict",
           "cap_repr"]

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
        fsync_dir(os.path.dirname(os.path.abspath(path)))
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
        _finish(tmp)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return tmp


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # reading the umask means setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _finish(tmp: str) -> None:
    """Give a staged file the mode a plain ``open`` would (mkstemp makes 0600) and put its
    bytes on disk before it is renamed into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be fsynced)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _DeferSigint:
    """Hold Ctrl-C and SIGTERM back while files are renamed into place (main thread only),
    so a signal never stops a commit halfway; its handler runs right after."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.hit = []
        self.old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.old[sig] = signal.signal(sig, lambda num, _: self.hit.append(num))
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        if self.hit and exc[0] is None:
            num = self.hit[0]
            handler = self.old.get(num)
            if callable(handler):
                handler(num, None)  # e.g. raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), num)
        return False


def atomic_write_set(writers: Mapping[str, Callable[[str], Any]],
                     before_commit: Optional[Callable[[Dict[str, str]], Any]] = None) -> None:
    """Write several files as one set: all are written to temporary files first (a
    failure there leaves every old file untouched), then ``before_commit({path: tmp})``
    runs (e.g. to record each file's digest and staged name, so that a later start can
    finish the renames after a kill: ``engine.checkpoint.recover_sets``), then each is
    renamed into place with Ctrl-C and SIGTERM held back until the last rename.

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
            for folder in {os.path.dirname(os.path.abspath(p)) for p in staged}:
                fsync_dir(folder)
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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a stale lock or staging folder's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


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
# batches hold, and nothing that can run code or allocate from a small number: numpy's
# array/scalar reconstructors (they build arrays from bytes in the file), dtypes, and plain
# containers. Not bytearray/bytes/str/int: called with a number they allocate that much.
_SAFE_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "complex"),
}
# Everything one unpickle builds beyond its input (decoded strings, arrays, containers)
# is counted; more than this many times the input (plus a floor) is refused.
ALLOC_FACTOR = 4
ALLOC_FLOOR = 64 << 20


class _BoundedReader:
    """A binary file that refuses reads past its end before anything is allocated (a
    record claiming 6 GB in a 50-byte file stops here)."""

    def __init__(self, file: IO[bytes], size: int, what: str):
        self.file, self.left, self.what = file, size, what

    def _take(self, n: int) -> None:
        if n > self.left:
            raise UnsafePickleError(
                f"refusing {self.what}: a record claims {n} bytes but only {self.left} remain; "
                "the file is truncated or crafted (re-download or re-save it)")
        self.left -= n

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else n
        if n > self.left and n <= 8:  # a short read at the end: the unpickler says EOF
            n = self.left
        self._take(n)
        return self.file.read(n)

    def readinto(self, buf) -> int:
        self._take(len(buf))
        return self.file.readinto(buf)

    def readline(self) -> bytes:
        line = self.file.readline(self.left)
        self.left -= len(line)
        return line


def _size(file: IO[bytes]) -> int:
    try:
        pos = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(pos)
        return end - pos
    except (OSError, AttributeError, ValueError):
        size = getattr(file, "size", None)  # tarfile members
        if isinstance(size, int):
            return size
        raise


def _cost(obj: Any) -> int:
    """Bytes an object built by an admitted callable holds beyond references."""
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        return 8 * len(obj) + 64
    return 64


class _SafeUnpickler(pickle._Unpickler):  # the Python one: its opcodes can be bounded
    def __init__(self, file: IO[bytes], what: str, size: int, **kwargs):
        super().__init__(_BoundedReader(file, size, what), **kwargs)
        self.what = what
        self.budget = max(ALLOC_FLOOR, ALLOC_FACTOR * size)
        self.dispatch = dict(pickle._Unpickler.dispatch)
        for op in (pickle.BYTEARRAY8, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER,
                   pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.INST, pickle.OBJ,
                   pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.PERSID, pickle.BINPERSID):
            self.dispatch[op[0]] = self._refuse_opcode(op)

    def _refuse_opcode(self, op: bytes):
        def refuse(_self=None):
            raise UnsafePickleError(
                f"refusing {self.what}: it uses the pickle opcode {op!r}, which the files this "
                "package reads never hold; the file was not written by this package (or was "
                "tampered with): do not use it")
        return refuse

    def _spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise UnsafePickleError(
                f"refusing {self.what}: it would allocate more than {ALLOC_FACTOR}x its size "
                "(a memory bomb, or not a file this package wrote): do not use it")

    def _counted(self, func: Callable[..., Any], module: str, name: str) -> Callable[..., Any]:
        def call(*args):
            if name == "_reconstruct" and len(args) >= 2:
                shape = args[1] if isinstance(args[1], tuple) else (args[1],)
                if not all(isinstance(d, int) and 0 <= d for d in shape):
                    raise UnsafePickleError(f"refusing {self.what}: bad array shape {shape!r}")
                self._spend(int(np.prod(shape, dtype=object)) if shape else 1)
            elif name == "encode" and (len(args) != 2 or args[1] not in ("latin1", "latin-1")):
                raise UnsafePickleError(f"refusing {self.what}: it encodes with "
                                        f"{args[1:]!r}; only latin1 (numpy's) is admitted")
            out = func(*args)
            self._spend(_cost(out))
            return out
        return call

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names (CIFAR's pickles)
            import _compat_pickle
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _SAFE_GLOBALS:
            found = super().find_class(module, name)
            return found if isinstance(found, type) and name in ("ndarray", "dtype") \
                else self._counted(found, module, name)
        if module in ("numpy.dtypes", "numpy._core.dtypes") and name.endswith("DType"):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing {self.what}: it refers to {module}.{name}; only numpy arrays, numbers, strings and "
            "plain containers are loaded, because unpickling anything else can run code or "
            "allocate without bound. The file was not written by this package (or was tampered "
            "with): do not use it")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing {self.what}: it uses persistent ids, which this package never "
                                "writes; refusing to load it")


def safe_load(file: Union[str, IO[bytes]], what: Optional[str] = None,
              encoding: str = "ASCII") -> Any:
    """Unpickle ``file`` (path or binary file object) admitting only numpy arrays and
    dtypes, numbers, strings and plain containers, and allocating at most
    ``ALLOC_FACTOR`` times the file's size (or ``ALLOC_FLOOR``).

    Args:
        file: a path or an open binary file (seekable, or with a ``size``).
        what: how to name the file in errors (default: the path).
        encoding: as ``pickle.load`` (``"bytes"`` for Python-2 pickles like CIFAR's).

    Raises:
        UnsafePickleError: the pickle names any other class or function, or would
            allocate beyond the bound (nothing of it has run).
        pickle.UnpicklingError, EOFError, ValueError: the file is not a valid pickle.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return safe_load(f, what or os.fspath(file), encoding)
    what = what or getattr(file, "name", "pickle")
    try:
        return _SafeUnpickler(file, what, _size(file), encoding=encoding).load()
    except (MemoryError, RecursionError) as exc:
        raise UnsafePickleError(f"refusing {what}: {type(exc).__name__} while reading it (a "
                                "memory bomb, or not a file this package wrote)") from None
    except (IndexError, KeyError, TypeError, AttributeError, struct.error) as exc:
        # the Python unpickler's reaction to a malformed stream
        raise pickle.UnpicklingError(f"{what} is not a valid pickle ({type(exc).__name__}: "
                                     f"{exc})") from None


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


# ----------------------------------------------------------------------------- weights
class StateDictError(ValueError):
    """A weights file's state dict cannot be loaded as it is (the message says why)."""


def check_state_dict(state: Mapping[Any, Any], floats: Optional[set] = None,
                     what: str = "weights") -> Tuple[Dict[str, Any], List[str]]:
    """Check a state dict read from a file before it reaches the model.

    float16/float64 arrays are cast to float32 (a note says so); an integer or other
    array where the model holds floats, a non-string key, or a NaN/inf value is refused.

    Args:
        state: ``{name: numpy array}``.
        floats: names whose model tensors are floating point (default: every key).
        what: the file, for messages.

    Returns:
        ``(state, notes)``: the (cast) state and one note per kind of cast.

    Raises:
        StateDictError: naming the keys and the fix.
    """
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        raise StateDictError(f"{what}: state-dict keys must be parameter names (strings); "
                             f"found {len(bad_keys)} other key(s), e.g. {cap_repr(bad_keys[0])}; "
                             "the file was not saved from a model's state_dict()")
    out, cast, wrong, broken = {}, {}, [], []
    for key, value in state.items():
        arr = np.asarray(value) if isinstance(value, (np.ndarray, np.generic)) else value
        if isinstance(arr, np.ndarray) and (floats is None or key in floats):
            if arr.dtype.kind == "f" and arr.dtype != np.float32:
                cast.setdefault(str(arr.dtype), []).append(key)
                arr = arr.astype(np.float32)
            elif arr.dtype.kind != "f":
                wrong.append(f"{key} ({arr.dtype})")
                continue
            if not np.isfinite(arr).all():
                broken.append(f"{key} ({int((~np.isfinite(arr)).sum())} of {arr.size})")
        out[key] = arr
    if wrong:
        raise StateDictError(f"{what}: {len(wrong)} weight(s) hold non-float values where the "
                             f"model has floats: {', '.join(wrong[:3])}; save the weights as "
                             "float32 (model.state_dict()), not converted to integers")
    if broken:
        raise StateDictError(f"{what}: {len(broken)} weight(s) hold NaN/inf values: "
                             f"{', '.join(broken[:3])}; the training that wrote them diverged: "
                             "use an earlier checkpoint")
    notes = [f"cast {len(keys)} {dt} weight(s) to float32 (e.g. {keys[0]})" for dt, keys in cast.items()]
    return out, notes


def cap_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` of at most ``limit`` characters, safe for huge or shared values."""
    import reprlib
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlevel, r.maxlist, r.maxdict = 3, 6, 6
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
