"""Atomic outputs (written beside, renamed over the name: never half a file, and a planted
link is replaced, not written through) and ``safe_load``, the one restricted unpickler."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import pickle
import reprlib
import struct
from typing import Any, Callable, Dict, List, Mapping, Tuple, Union

import numpy as np

__all__ = ["atomic_write", "write_json", "write_text", "fsync", "file_digest", "UnsafePickleError",
           "safe_load", "load_paddle_file", "StateDictError", "check_state_dict", "cap_repr"]


def fsync(path: str) -> None:
    """Put a file's (or a folder's renames') bytes on disk; a no-op where that fails."""
    try:
        fd = os.open(path or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write(path: str, writer: Callable[[str], Any]) -> str:
    """Call ``writer(tmp)`` on a fresh file beside ``path``, then rename it onto ``path``
    (replacing a file or a link there; the previous file stays whole until then). An
    ``OSError`` names ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, ".partial-" + os.path.basename(path))  # one per name
    try:
        os.makedirs(folder, exist_ok=True)
        if os.path.lexists(tmp):
            os.unlink(tmp)  # a link there is removed, never followed
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
        writer(tmp)
        fsync(tmp)
        os.replace(tmp, path)
        fsync(folder)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def write_text(text: str, path: str) -> str:
    """``text`` to ``path`` (UTF-8), atomically."""
    return atomic_write(path, lambda tmp: pathlib.Path(tmp).write_bytes(text.encode("utf-8")))


def write_json(obj: Any, path: str, indent: int = 1) -> str:
    """``obj`` as JSON to ``path``, atomically."""
    return write_text(json.dumps(obj, indent=indent), path)


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- safe unpickling
class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names something other than numpy arrays, numbers, strings and containers."""


# What .pdparams/.pdopt (numpy arrays), .pdstates and CIFAR batches hold: numpy's array
# and scalar reconstructors, dtypes and plain containers; not bytes/bytearray/str/int,
# which called with a number allocate that much.
_SAFE_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"), ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
}
# What the admitted callables build is counted: more than ALLOC_FACTOR times the file's
# size (plus a floor) is refused, so a memo reused a thousand times cannot fill memory.
ALLOC_FACTOR = 4
ALLOC_FLOOR = 64 << 20
# Opcodes the package's files never hold (instantiating classes, buffers, extensions).
_REFUSED_OPS = (pickle.BYTEARRAY8, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER, pickle.EXT1,
                pickle.EXT2, pickle.EXT4, pickle.INST, pickle.OBJ, pickle.NEWOBJ,
                pickle.NEWOBJ_EX, pickle.PERSID, pickle.BINPERSID)


def _cost(obj: Any) -> int:
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(getattr(obj, "nbytes", None), int):
        return obj.nbytes
    return 8 * len(obj) + 64 if isinstance(obj, (list, tuple, set, frozenset, dict)) else 64


class _SafeUnpickler(pickle._Unpickler):  # the Python one: its opcodes can be refused
    def __init__(self, data: bytes, what: str, encoding: str):
        super().__init__(io.BytesIO(data), encoding=encoding)  # reads past the end stop short
        self.what, self.budget = what, max(ALLOC_FLOOR, ALLOC_FACTOR * len(data))
        self.dispatch = dict(pickle._Unpickler.dispatch)
        for op in _REFUSED_OPS:
            self.dispatch[op[0]] = lambda _self, op=op: self._refuse(f"the pickle opcode {op!r}")

    def _refuse(self, why: str) -> None:
        raise UnsafePickleError(
            f"refusing {self.what}: {why}; only numpy arrays, numbers, strings and plain "
            "containers are loaded, because unpickling anything else can run code or allocate "
            "without bound. The file was not written by this package (or was tampered with): "
            "do not use it")

    def _counted(self, func: Callable[..., Any], name: str) -> Callable[..., Any]:
        def call(*args):
            if name == "encode" and args[1:] not in (("latin1",), ("latin-1",)):
                self._refuse(f"it encodes with {args[1:]!r} (only numpy's latin1 is admitted)")
            if name == "_reconstruct" and not (  # numpy writes (0,): the data comes later
                    len(args) > 1 and isinstance(args[1], tuple) and len(args[1]) < 33
                    and all(isinstance(d, int) and 0 <= d < self.budget for d in args[1])
                    and int(np.prod(args[1], dtype=object)) < self.budget):
                self._refuse(f"bad array shape {cap_repr(args[1:2])}")
            out = func(*args)
            self.budget -= _cost(out)
            if self.budget < 0:
                self._refuse(f"it would allocate more than {ALLOC_FACTOR}x its size")
            return out
        return call

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names (CIFAR's pickles)
            import _compat_pickle
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _SAFE_GLOBALS:
            found = super().find_class(module, name)
            return found if name in ("ndarray", "dtype") else self._counted(found, name)
        if module in ("numpy.dtypes", "numpy._core.dtypes") and name.endswith("DType"):
            return super().find_class(module, name)
        self._refuse(f"it refers to {module}.{name}")


def safe_load(file: Union[str, os.PathLike, bytes], encoding: str = "ASCII") -> Any:
    """Unpickle ``file`` (a path, or bytes) admitting only numpy arrays and dtypes, numbers,
    strings and plain containers, allocating at most ``ALLOC_FACTOR`` times its size (or
    ``ALLOC_FLOOR``). ``encoding`` as ``pickle.load``.

    Raises:
        UnsafePickleError: the pickle names anything else, or would allocate beyond the
            bound (nothing of it has run).
        pickle.UnpicklingError, EOFError, ValueError: the file is not a valid pickle.
    """
    what = "pickle" if isinstance(file, bytes) else os.fspath(file)
    if not isinstance(file, bytes):
        with open(file, "rb") as f:
            file = f.read()
    try:
        return _SafeUnpickler(file, what, encoding).load()
    except (MemoryError, RecursionError) as exc:
        raise UnsafePickleError(f"refusing {what}: {type(exc).__name__} while reading it (a "
                                "memory bomb, or not a file this package wrote)") from None
    except (IndexError, KeyError, TypeError, AttributeError, struct.error) as exc:
        raise pickle.UnpicklingError(f"{what} is not a valid pickle ({type(exc).__name__}: "
                                     f"{exc})") from None


def load_paddle_file(path: str) -> Any:
    """Read a ``paddle.save`` file (``.pdparams`` / ``.pdopt``) with the safe unpickler:
    tensors come back as numpy arrays (as ``paddle.load(path, return_numpy=True)``)."""
    obj = safe_load(path, encoding="latin1")
    if isinstance(obj, dict):
        obj.pop("StructuredToParameterName@@", None)  # Paddle's bookkeeping
    return obj


# ----------------------------------------------------------------------------- weights
class StateDictError(ValueError):
    """A weights file's state dict cannot be loaded as it is (the message says why)."""


def check_state_dict(state: Mapping[Any, Any], floats: set,
                     what: str) -> Tuple[Dict[str, Any], List[str]]:
    """Check a state dict read from ``what`` before it reaches the model: float16/float64
    arrays among ``floats`` (the model's floating-point names) are cast to float32, with
    one note per dtype; a non-float array there, a non-string key or NaN/inf raises
    ``StateDictError`` naming the keys and the fix. Returns ``(state, notes)``."""
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        raise StateDictError(f"{what}: state-dict keys must be parameter names (strings); "
                             f"found {len(bad_keys)} other key(s), e.g. {cap_repr(bad_keys[0])}; "
                             "the file was not saved from a model's state_dict()")
    out, cast, wrong, broken = {}, {}, [], []
    for key, value in state.items():
        arr = np.asarray(value) if isinstance(value, (np.ndarray, np.generic)) else value
        if isinstance(arr, np.ndarray) and key in floats:
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
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlevel, r.maxlist, r.maxdict = 3, 6, 6
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
