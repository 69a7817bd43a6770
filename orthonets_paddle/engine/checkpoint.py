"""Checkpoints: written complete, then made current in one rename; checked before use; read
without running code. And the run folder's lock.

A save (``commit``) writes all its files (one epoch's ``latest.*``, ``best_*``, ``epoch_N.*``,
``final_*``, ``metrics.json``) into ``<run>/.commit-partial/``, renames that folder to
``<run>/.commit/`` (the one commit point), then moves each file onto its name and removes
the folder. A kill before the rename leaves the previous files current; after it, readers
see the staged files first and the next save or start moves them in (roll forward). Only
the package's own file names are ever moved or deleted, and no path is read from a file.
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
import re
from typing import Any, Dict, List, Optional, Tuple

import filelock
import numpy as np
import paddle

from .amp import float32_state
from .logger import new_records
from ..models.resnet import arch_options
from ..utils.io import UnsafePickleError, atomic_write, cap_repr, fsync, load_paddle_file, safe_load, sha256_file

__all__ = ["atomic_save", "save_checkpoint", "commit", "checkpoint_files", "roll_forward",
           "optimizer_state", "load_optimizer_state", "resolve_checkpoint", "load_checkpoint",
           "load_states", "check_states", "current", "save_json", "CheckpointError", "RunFolderError",
           "arch_identity", "identity_diff", "holds_run", "RunLock", "FORMAT", "READY"]

FORMAT = 2  # of .pdstates; 1 was the manifest era's
PARTIAL, READY = ".commit-partial", ".commit"
_PARTS = (".pdparams", ".pdopt", ".pdstates")
# Checkpoint names the package writes (and the only ones it moves or deletes).
_OURS = re.compile(r"(latest|epoch_[1-9][0-9]*)\.(pdparams|pdopt|pdstates)"
                   r"|(best|final)_(model\.pdparams|optimizer\.pdopt)")


def _ours(name: str) -> bool:
    return bool(_OURS.fullmatch(name)) or name == "metrics.json"


class CheckpointError(RuntimeError):
    """A resume checkpoint is missing, unreadable, malformed, mixed or from another model."""


class RunFolderError(RuntimeError):
    """The output folder belongs to another run or another process."""


def _pickle(obj: Any, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def save_json(obj: Any, path: str) -> None:
    """A ``commit`` writer for JSON files (``metrics.json``)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


# ----------------------------------------------------------------------------- commits
def _clear(path: str) -> None:
    """Remove a staging folder of ours: a link or file there is unlinked (not followed); in
    a folder only the package's names are removed, so anything else stops here."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        for name in os.listdir(path):
            if _ours(name) and not os.path.isdir(os.path.join(path, name)):
                os.unlink(os.path.join(path, name))
        try:
            os.rmdir(path)
        except OSError:
            raise RunFolderError(f"{path} holds files this package did not write "
                                 f"({', '.join(sorted(os.listdir(path))[:3])}); move them out "
                                 "of it and run again") from None


def roll_forward(folder: str) -> None:
    """Finish a commit a kill interrupted after its commit point (move its files in)."""
    ready = os.path.join(folder, READY)
    if os.path.isdir(ready) and not os.path.islink(ready):
        for name in sorted(os.listdir(ready)):
            src = os.path.join(ready, name)
            if _ours(name) and os.path.isfile(src) and not os.path.islink(src):
                os.replace(src, os.path.join(folder, name))  # replaces a link, never follows it
    _clear(ready)
    fsync(folder)


def commit(folder: str, files: Dict[str, Tuple[Any, Any]]) -> None:
    """Write ``{name: (obj, writer)}`` into ``folder`` as one commit (``writer(obj, path)``;
    None means ``paddle.save``). Call it only while holding the folder (``RunLock``)."""
    os.makedirs(folder, exist_ok=True)
    roll_forward(folder)
    partial = os.path.join(folder, PARTIAL)
    _clear(partial)  # a killed save's
    os.mkdir(partial)
    for name, (obj, writer) in files.items():
        if not _ours(name):
            raise ValueError(f"{name!r} is not a checkpoint name this package writes")
        path = os.path.join(partial, name)
        (writer or paddle.save)(obj, path)
        fsync(path)
    fsync(partial)
    os.rename(partial, os.path.join(folder, READY))  # the commit point
    fsync(folder)
    roll_forward(folder)


def current(path: str) -> str:
    """The file a reader takes for ``path``: a committed file not yet moved in, or ``path``."""
    staged = os.path.join(os.path.dirname(path), READY, os.path.basename(path))
    return staged if os.path.isfile(staged) and not os.path.islink(staged) else path


# ----------------------------------------------------------------------------- what is saved
def _rename(state: Dict[str, Any], mapping: Dict[str, str]) -> Dict[str, Any]:
    out = {}
    for key, value in state.items():
        for old, new in mapping.items():
            if isinstance(key, str) and key.startswith(old + "_"):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def optimizer_state(model: paddle.nn.Layer, optimizer) -> Dict[str, Any]:
    """The optimizer's state keyed by structured parameter names (``layer1.0.conv1.weight``)
    instead of Paddle's global counters (``conv2d_80.w_0``), which differ between
    processes: the saved state then loads into any freshly built copy of the model."""
    names = {p.name: n for n, p in model.named_parameters()}
    state = optimizer.state_dict()
    if "master_weights" in state:
        state["master_weights"] = {names.get(k, k): v for k, v in state["master_weights"].items()}
    return _rename(state, names)


def _tensors(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return paddle.to_tensor(obj)
    return {k: _tensors(v) for k, v in obj.items()} if isinstance(obj, dict) else obj


def load_optimizer_state(model: paddle.nn.Layer, optimizer, state: Dict[str, Any]) -> None:
    """Inverse of ``optimizer_state``."""
    names = {n: p.name for n, p in model.named_parameters()}
    state = _tensors(dict(state))
    if "master_weights" in state:
        state["master_weights"] = {names.get(k, k): v for k, v in state["master_weights"].items()}
    # Longest first so 'layer1.0.conv1.weight' is not matched by a shorter name's prefix.
    optimizer.set_state_dict(_rename(state, dict(sorted(names.items(), key=lambda kv: -len(kv[0])))))


def _plain_states(states: Dict[str, Any]) -> Dict[str, Any]:
    """Paddle's RNG states are pybind objects: store their plain ``__getstate__`` tuples so
    the states file holds only what the safe unpickler admits."""
    rng = states.get("rng")
    if isinstance(rng, dict) and rng.get("paddle") is not None:
        rng = dict(rng, paddle=[s.__getstate__() if hasattr(s, "current_seed") else s
                                for s in rng["paddle"]])
        states = dict(states, rng=rng)
    return states


def load_states(path: str) -> Dict[str, Any]:
    """Read a ``.pdstates`` file (epoch, best metric, scheduler, RNG states, records) with
    the safe unpickler."""
    states = safe_load(current(path))
    rng = states.get("rng") if isinstance(states, dict) else None
    if isinstance(rng, dict) and isinstance(rng.get("paddle"), list):
        cls = paddle.base.libpaddle.GeneratorState
        out = []
        for s in rng["paddle"]:
            if isinstance(s, tuple):
                g = cls.__new__(cls)
                g.__setstate__(s)
                s = g
            out.append(s)
        states["rng"] = dict(rng, paddle=out)
    return states


def checkpoint_files(prefix: str, model: paddle.nn.Layer, optimizer=None,
                     states: Optional[Dict[str, Any]] = None, opt_name: Optional[str] = None,
                     ) -> Dict[str, Tuple[Any, Any]]:
    """``{name: (obj, writer)}`` of one set for ``commit``: ``prefix.pdparams`` (float32),
    the optimizer as ``opt_name`` (default ``prefix.pdopt``) and, with ``states``,
    ``prefix.pdstates`` (whose ``digests`` bind it to the other two files)."""
    files = {prefix + ".pdparams": (float32_state(model.state_dict()), None)}
    if optimizer is not None:
        files[opt_name or prefix + ".pdopt"] = (optimizer_state(model, optimizer), None)
    if states is not None:
        def write_states(obj, path):  # digests of the two files just staged beside it
            folder = os.path.dirname(path)
            obj = dict(obj, format=FORMAT, digests={
                s: sha256_file(os.path.join(folder, prefix + s)) for s in _PARTS[:2]})
            _pickle(_plain_states(obj), path)
        files[prefix + ".pdstates"] = (states, write_states)
    return files


def save_checkpoint(prefix: str, model: paddle.nn.Layer, optimizer=None,
                    states: Optional[Dict[str, Any]] = None,
                    meta: Optional[Dict[str, Any]] = None, opt_path: Optional[str] = None) -> None:
    """Commit one set ``prefix.pdparams`` (+ ``.pdopt``, ``.pdstates``, which also holds
    ``meta``); ``opt_path`` names the optimizer file when it is not ``prefix.pdopt``."""
    folder, name = os.path.split(os.path.abspath(prefix))
    commit(folder, checkpoint_files(name, model, optimizer,
                                    None if states is None else {**states, **(meta or {})},
                                    opt_path and os.path.basename(opt_path)))


def atomic_save(obj: Any, path: str, writer=None) -> None:
    """``paddle.save`` (or ``writer(obj, path)``) through ``utils.io.atomic_write``."""
    atomic_write(path, lambda tmp: (writer or paddle.save)(obj, tmp))


# ----------------------------------------------------------------------------- reading
def _int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_states(st: Any, where: str) -> None:
    """Refuse a states dict whose format, types or ranges are not what ``train`` writes.

    Raises:
        CheckpointError: one line naming the field, its value and what is expected.
    """
    if not isinstance(st, dict):
        raise CheckpointError(f"refusing {where}: it holds {type(st).__name__}, not a training "
                              "state; it was not written by this package")
    if st.get("format") != FORMAT:
        raise CheckpointError(
            f"refusing {where}: format: {cap_repr(st.get('format'))}; this version reads "
            f"format {FORMAT} (written by another version of orthonets_paddle). Start a new run; "
            "its weights can seed one: -o Global.pretrained_model=<prefix>.pdparams")
    epoch = st.get("epoch")
    rules = [
        ("epoch", _int(epoch) and epoch >= 0, "an integer >= 0"),
        ("global_step", _int(st.get("global_step")) and st["global_step"] >= 0, "an integer >= 0"),
        ("best_epoch", _int(st.get("best_epoch")) and _int(epoch) and -1 <= st["best_epoch"] <= epoch,
         "an integer in [-1, epoch]"),
        ("best_acc", isinstance(st.get("best_acc"), (float, int, np.floating)) and not isinstance(
            st.get("best_acc"), bool) and -1 <= st["best_acc"] <= 1, "a number in [-1, 1]"),
        ("lr_scheduler", isinstance(st.get("lr_scheduler"), dict), "a dict"),
        ("rng", isinstance(st.get("rng"), dict), "a dict"),
        ("rank_rng", st.get("rank_rng") is None or isinstance(st["rank_rng"], list), "a list"),
        ("scaler", st.get("scaler") is None or isinstance(st["scaler"], dict), "a dict"),
        ("identity", st.get("identity") is None or isinstance(st["identity"], dict), "a dict"),
        ("digests", isinstance(st.get("digests"), dict) and all(
            isinstance(st["digests"].get(s), str) for s in _PARTS[:2]), "sha256 of .pdparams/.pdopt"),
        ("records", _records_ok(st.get("records")), "the records train() keeps"),
    ]
    for key, ok, want in rules:
        if not ok:
            raise CheckpointError(f"refusing {where}: {key}: {cap_repr(st.get(key))} (expected "
                                  f"{want}); the file was not written by this package or is damaged")


def _records_ok(rec: Any) -> bool:
    def same(a: Any, b: Any) -> bool:
        if isinstance(b, dict):
            return isinstance(a, dict) and set(a) == set(b) and all(same(a[k], b[k]) for k in b)
        return isinstance(a, list)
    return same(rec, new_records())


def resolve_checkpoint(path: str) -> str:
    """``Global.checkpoints`` may be an output directory (uses its ``latest``) or a
    prefix such as ``output/run/epoch_10`` (a ``.pdparams``/``.pdopt``/``.pdstates`` suffix
    is dropped)."""
    path = str(path)
    if os.path.isdir(path):
        path = os.path.join(path, "latest")
    for suffix in _PARTS:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    missing = [path + s for s in _PARTS if not os.path.isfile(current(path + s))]
    if missing:
        raise CheckpointError(
            f"cannot resume from {path}: missing {', '.join(missing)}. Global.checkpoints takes a "
            "run's output directory (resumes from its latest.*) or a checkpoint prefix such as "
            "output/run/epoch_10; to start from weights only, use Global.pretrained_model")
    return path


def _whole(prefix: str, digests: Dict[str, str]) -> bool:
    return all(sha256_file(current(prefix + s)) == digests.get(s) for s in _PARTS[:2])


def _alternatives(folder: str, exclude: str) -> str:
    sets = []
    for name in sorted(os.listdir(folder)):
        prefix = os.path.join(folder, name[: -len(".pdstates")])
        if _OURS.fullmatch(name) and name.endswith(".pdstates") and prefix != exclude:
            try:
                st = safe_load(current(prefix + ".pdstates"))
                check_states(st, prefix)
                if _whole(prefix, st["digests"]):
                    sets.append(prefix)
            except Exception:  # noqa: BLE001  (any unreadable set is simply not offered)
                pass
    if sets:
        return (f"consistent checkpoints here: {', '.join(sets)} (resume with -o "
                f"Global.checkpoints={sets[-1]})")
    return (f"no other consistent checkpoint set is in {folder}; start a new run (-o "
            "Global.overwrite=True or another Global.output_dir; its weights can seed it: -o "
            "Global.pretrained_model=<prefix>.pdparams)")


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read and check a resume checkpoint: ``{'model', 'optimizer', 'states', 'prefix'}``
    (arrays as numpy).

    Raises:
        CheckpointError: missing parts, parts of different saves, malformed states, NaN/inf
            values, an unreadable or unsafe file (one line, naming the alternatives).
    """
    prefix = resolve_checkpoint(path)
    folder = os.path.dirname(os.path.abspath(prefix))
    out: Dict[str, Any] = {"prefix": prefix}
    for key, suffix in (("states", ".pdstates"), ("model", ".pdparams"), ("optimizer", ".pdopt")):
        try:
            out[key] = (load_states if key == "states" else load_paddle_file)(current(prefix + suffix))
        except UnsafePickleError as exc:
            raise CheckpointError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001  (any reading error: the file is unusable)
            raise CheckpointError(f"cannot read {prefix + suffix} ({type(exc).__name__}: "
                                  f"{cap_repr(exc, 200)}); {_alternatives(folder, prefix)}") from None
        if key == "states":
            check_states(out["states"], prefix + suffix)
            if not _whole(prefix, out["states"]["digests"]):
                raise CheckpointError(
                    f"refusing to resume: {prefix}.pdparams/.pdopt/.pdstates are parts of different "
                    f"saves (files copied in by hand?), and resuming would mix them; "
                    f"{_alternatives(folder, prefix)}")
    for key, suffix in (("model", ".pdparams"), ("optimizer", ".pdopt")):
        bad = _nonfinite(out[key])  # a diverged save would train on as NaN from step one
        if bad:
            raise CheckpointError(
                f"refusing to resume: {prefix + suffix} holds NaN/inf values in {bad[0]}"
                f"{f' and {len(bad) - 1} more tensor(s)' if len(bad) > 1 else ''} (the training "
                f"that wrote it diverged); {_alternatives(folder, prefix)}")
    return out


def _nonfinite(obj: Any, name: str = "") -> List[str]:
    """Names of the float arrays in a (nested) state dict holding NaN or inf."""
    if isinstance(obj, dict):
        return [b for k, v in obj.items() for b in _nonfinite(v, f"{name}.{k}" if name else str(k))]
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind == "f":
        arr = np.asarray(obj)
        if not np.isfinite(arr).all():
            return [f"{name} ({int((~np.isfinite(arr)).sum())} of {arr.size} values)"]
    return []


# ----------------------------------------------------------------------------- identity
# Views of the same weights, and training-only regularisers (absent from older identities).
_IDENTITY_SKIP = ("features_only", "out_indices", "global_pool", "drop_rate", "drop_path_rate")


def arch_identity(arch: Dict[str, Any]) -> Dict[str, Any]:
    """The ``Arch`` section with the model's defaults filled in: what must stay the same
    for a checkpoint to be resumed (architecture, options, class count, input channels)."""
    out = {k: v for k, v in arch_options().items()
           if k not in ("input_size", *_IDENTITY_SKIP) and v is not inspect.Parameter.empty}
    out.update({k: v for k, v in arch.items() if k not in _IDENTITY_SKIP})
    return json.loads(json.dumps(out, default=str))  # plain, as stored


def identity_diff(saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """``Arch.key: checkpoint X, this run Y`` for each key that differs."""
    return [f"Arch.{k}: checkpoint {saved.get(k)!r}, this run {now.get(k)!r}"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


# ----------------------------------------------------------------------------- run folder
def holds_run(folder: str) -> List[str]:
    """The checkpoint files (the package's names) of some run in ``folder``."""
    if not os.path.isdir(folder):
        return []
    names, ready = set(os.listdir(folder)), os.path.join(folder, READY)
    if os.path.isdir(ready) and not os.path.islink(ready):
        names |= set(os.listdir(ready))
    return sorted(n for n in names if _OURS.fullmatch(n))


class RunLock:
    """``folder/run.lock`` (or ``name``) held with ``filelock``: one writing process per
    folder. The operating system releases it when its process ends, however it ends."""

    def __init__(self, folder: str, name: str = "run.lock", what: str = "run"):
        self.folder, self.path, self.what = folder, os.path.join(folder, name), what
        self.lock: Optional[filelock.FileLock] = None

    def acquire(self) -> "RunLock":
        os.makedirs(self.folder, exist_ok=True)
        if os.path.islink(self.path):
            os.unlink(self.path)  # a planted link: opening it could truncate its target
        lock = filelock.FileLock(self.path)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunFolderError(f"{self.folder} is in use by another {self.what} (it holds "
                                 f"{self.path}); wait for it to finish or choose another output "
                                 "folder") from None
        self.lock = lock
        return self

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
