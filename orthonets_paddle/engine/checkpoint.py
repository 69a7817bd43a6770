"""Checkpoints: atomic as a set, verified before use, read without running code; and the
run folder's ownership (one run, one process).

Every save writes its files (e.g. ``latest.pdparams/.pdopt/.pdstates``) through
``utils.io.atomic_write_set`` and records each file's sha256 in ``<prefix>.manifest.json``,
so a resume can tell a whole set from parts of two saves. The new manifest is staged as
``<prefix>.manifest-next.json`` before the first rename and moved over the old one after
the last, so whichever moment a save is interrupted, the files on disk match one of the
two manifests or the set is reported as mixed.
"""
from __future__ import annotations

import glob
import inspect
import json
import os
import pickle
import socket
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import paddle

from ..utils.io import (UnsafePickleError, pid_alive, atomic_write, atomic_write_set, fsync_dir,
                        TMP_MARK, load_paddle_file, remove_stale_tmp, safe_load, sha256_file, write_json)

__all__ = ["atomic_save", "save_checkpoint", "save_set", "optimizer_state",
           "load_optimizer_state", "resolve_checkpoint", "load_checkpoint", "load_states",
           "verify_set", "consistent_sets", "CheckpointError", "RunFolderError",
           "arch_identity", "identity_diff", "holds_run", "RunLock", "MANIFEST", "recover_sets"]

MANIFEST = ".manifest.json"
_NEXT = ".manifest-next.json"
_PARTS = (".pdparams", ".pdopt", ".pdstates")


class CheckpointError(RuntimeError):
    """A resume checkpoint is missing, unreadable, mixed or from another model."""


class RunFolderError(RuntimeError):
    """The output folder belongs to another run or another process."""


def _pickle(obj: Any, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def atomic_save(obj: Any, path: str, writer=None) -> None:
    """``paddle.save`` (or ``writer(obj, path)``) through ``utils.io.atomic_write``."""
    atomic_write(path, lambda tmp: (writer or paddle.save)(obj, tmp))


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
    """numpy arrays (as the safe reader returns them) -> tensors, through containers."""
    if isinstance(obj, np.ndarray):
        return paddle.to_tensor(obj)
    if isinstance(obj, dict):
        return {k: _tensors(v) for k, v in obj.items()}
    return obj


def load_optimizer_state(model: paddle.nn.Layer, optimizer, state: Dict[str, Any]) -> None:
    """Inverse of ``optimizer_state``."""
    names = {n: p.name for n, p in model.named_parameters()}
    state = _tensors(dict(state))
    if "master_weights" in state:
        state["master_weights"] = {names.get(k, k): v for k, v in state["master_weights"].items()}
    # Longest first so 'layer1.0.conv1.weight' is not matched by a shorter name's prefix.
    optimizer.set_state_dict(_rename(state, dict(sorted(names.items(), key=lambda kv: -len(kv[0])))))


# ----------------------------------------------------------------------------- states
def _plain_states(states: Dict[str, Any]) -> Dict[str, Any]:
    """Paddle's RNG states are pybind objects: store their plain ``__getstate__`` tuples so
    the states file holds only what the safe unpickler admits."""
    rng = states.get("rng")
    if isinstance(rng, dict) and rng.get("paddle") is not None:
        rng = dict(rng, paddle=[s.__getstate__() if hasattr(s, "current_seed") else s
                                for s in rng["paddle"]])
        states = dict(states, rng=rng)
    return states


def _paddle_rng(plain: List[Any]) -> List[Any]:
    out = []
    for s in plain:
        if isinstance(s, tuple):
            cls = paddle.base.libpaddle.GeneratorState
            g = cls.__new__(cls)
            g.__setstate__(s)
            s = g
        out.append(s)
    return out


def load_states(path: str) -> Dict[str, Any]:
    """Read a ``.pdstates`` file (epoch, best metric, scheduler, RNG states, records) with
    the safe unpickler."""
    states = safe_load(path)
    rng = states.get("rng") if isinstance(states, dict) else None
    if isinstance(rng, dict) and rng.get("paddle") is not None:
        states["rng"] = dict(rng, paddle=_paddle_rng(rng["paddle"]))
    return states


# ----------------------------------------------------------------------------- sets
def save_set(files: Dict[str, Tuple[Any, Any]], manifest_prefix: str,
             meta: Optional[Dict[str, Any]] = None) -> None:
    """Write ``{path: (obj, writer)}`` as one set with the manifest ``manifest_prefix +
    '.manifest.json'`` (``writer`` None means ``paddle.save``)."""
    manifest, pending = manifest_prefix + MANIFEST, manifest_prefix + _NEXT

    def record(staged: Dict[str, str]) -> None:
        # "staged" lets the next start finish the renames after a kill (recover_sets).
        entries = {os.path.basename(p): {"sha256": sha256_file(t), "bytes": os.path.getsize(t),
                                         "staged": os.path.basename(t)}
                   for p, t in staged.items()}
        write_json({"format": 1, **(meta or {}), "files": entries}, pending)

    atomic_write_set({path: (lambda tmp, o=obj, w=writer: (w or paddle.save)(o, tmp))
                      for path, (obj, writer) in files.items()}, before_commit=record)
    os.replace(pending, manifest)
    fsync_dir(os.path.dirname(os.path.abspath(manifest)))


def _entry_ok(path: str, entry: Dict[str, Any]) -> bool:
    return (os.path.isfile(path) and os.path.getsize(path) == entry.get("bytes")
            and sha256_file(path) == entry.get("sha256"))


def recover_sets(folder: str) -> List[str]:
    """Finish the saves a kill interrupted in ``folder`` (call it only while holding the
    folder: ``RunLock.clean`` does, before any temporary file is removed).

    A pending manifest (``*.manifest-next.json``) is written only once every file of its
    set is staged and fsynced, so each of its files is either in place or still staged:
    the staged ones are renamed in (rolled forward) and the manifest takes its place. A
    pending manifest whose files are gone is dropped; the previous complete set (the old
    manifest) is then still whole, since no rename had happened.

    Returns:
        the prefixes rolled forward.
    """
    done = []
    for pending in sorted(glob.glob(os.path.join(glob.escape(folder), "*" + _NEXT))):
        manifest = _read_manifest(pending)
        if manifest is None:
            continue
        moves, whole = [], True
        for name, entry in manifest["files"].items():
            final = os.path.join(folder, name)
            staged = os.path.join(folder, str(entry.get("staged", "")))
            if entry.get("staged") and _entry_ok(staged, entry):
                moves.append((staged, final))
            elif not _entry_ok(final, entry):
                whole = False
        prefix = pending[: -len(_NEXT)]
        if not whole:
            os.remove(pending)
            continue
        for staged, final in moves:
            os.replace(staged, final)
        os.replace(pending, prefix + MANIFEST)
        fsync_dir(folder)
        done.append(prefix)
    return done


def save_checkpoint(prefix: str, model: paddle.nn.Layer, optimizer=None,
                    states: Optional[Dict[str, Any]] = None,
                    meta: Optional[Dict[str, Any]] = None, opt_path: Optional[str] = None) -> None:
    """Write ``prefix.pdparams`` (+ ``.pdopt``, ``.pdstates``) and ``prefix.manifest.json``
    as one set. ``meta`` (epoch, global step, model identity) goes into the manifest;
    ``opt_path`` names the optimizer file when it is not ``prefix.pdopt`` (the seed's
    ``best_optimizer.pdopt`` beside ``best_model.pdparams``)."""
    from .amp import float32_state
    files = {prefix + ".pdparams": (float32_state(model.state_dict()), None)}  # always float32
    if optimizer is not None:
        files[opt_path or prefix + ".pdopt"] = (optimizer_state(model, optimizer), None)
    if states is not None:
        # Plain pickle: RNG states hold arrays (uint32) that paddle.save cannot store.
        files[prefix + ".pdstates"] = (_plain_states(states), _pickle)
    save_set(files, prefix, meta)


def _read_manifest(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None
    except (OSError, ValueError):
        return None


def _matches(manifest: Dict[str, Any], folder: str) -> bool:
    for name, entry in manifest["files"].items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or os.path.getsize(path) != entry.get("bytes") \
                or sha256_file(path) != entry.get("sha256"):
            return False
    return True


def verify_set(prefix: str, parts=_PARTS) -> Optional[Dict[str, Any]]:
    """The manifest that ``prefix``'s files match as a whole, or None (mixed, missing
    or unrecorded). The manifest must list ``prefix`` + each of ``parts``."""
    folder = os.path.dirname(os.path.abspath(prefix))
    own = {os.path.basename(prefix) + p for p in parts}
    for candidate in (prefix + MANIFEST, prefix + _NEXT):
        manifest = _read_manifest(candidate)
        if manifest is not None and own <= set(manifest["files"]) and _matches(manifest, folder):
            return manifest
    return None


def _roll_forward_readonly(prefix: str) -> Optional[Dict[str, str]]:
    """``{suffix: path}`` of a set whose pending manifest's files are each in place or
    still staged (a save killed between its renames), without touching the folder."""
    folder = os.path.dirname(os.path.abspath(prefix))
    manifest = _read_manifest(prefix + _NEXT)
    if manifest is None:
        return None
    paths = {}
    for name, entry in manifest["files"].items():
        final = os.path.join(folder, name)
        staged = os.path.join(folder, str(entry.get("staged", "")))
        if entry.get("staged") and _entry_ok(staged, entry):
            paths[name] = staged
        elif _entry_ok(final, entry):
            paths[name] = final
        else:
            return None
    base = os.path.basename(prefix)
    out = {p: paths.get(base + p) for p in _PARTS}
    return out if all(out.values()) else None


def consistent_sets(folder: str, resumable: bool = True) -> List[str]:
    """Prefixes in ``folder`` whose files match their manifest (with ``resumable``: only
    sets holding weights, optimizer and states)."""
    out = []
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*" + MANIFEST))):
        prefix = path[: -len(MANIFEST)]
        parts = _PARTS if resumable else (".pdparams",)
        if not all(os.path.isfile(prefix + s) for s in parts):
            continue
        if verify_set(prefix, parts) is not None:
            out.append(prefix)
    return out


def _alternatives(folder: str, exclude: str = "") -> str:
    sets = [p for p in consistent_sets(folder) if p != exclude]
    if sets:
        return "consistent checkpoints here: " + ", ".join(sets) + " (resume with -o " \
               f"Global.checkpoints={sets[-1]})"
    return ("no consistent checkpoint set exists in " + folder + "; start a new run (its "
            "weights can still seed one: -o Global.pretrained_model=<prefix>.pdparams)")


def resolve_checkpoint(path: str) -> str:
    """``Global.checkpoints`` may be an output directory (uses its ``latest``) or a
    prefix such as ``output/run/epoch_10`` (``.pdparams`` suffix optional)."""
    path = str(path)
    if os.path.isdir(path):
        path = os.path.join(path, "latest")
    for suffix in (*_PARTS, MANIFEST):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    needed = [path + s for s in _PARTS]
    missing = [p for p in needed if not os.path.isfile(p)]
    if missing and _roll_forward_readonly(path) is None:
        raise CheckpointError(
            f"cannot resume from {path}: missing {', '.join(missing)}. Global.checkpoints takes a "
            "run's output directory (resumes from its latest.*) or a checkpoint prefix such as "
            "output/run/epoch_10; to start from weights only, use Global.pretrained_model")
    return path


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read a verified resume checkpoint: ``{'model', 'optimizer', 'states', 'prefix',
    'manifest'}`` (arrays as numpy).

    Raises:
        CheckpointError: missing parts, parts of different saves (the message names the
            consistent sets that exist), an unreadable or unsafe file.
    """
    prefix = resolve_checkpoint(path)
    folder = os.path.dirname(os.path.abspath(prefix))
    manifest = verify_set(prefix)
    paths = {p: prefix + p for p in _PARTS}
    staged = _roll_forward_readonly(prefix) if manifest is None else None
    if staged is not None:  # a save killed between its renames: its files are all there
        manifest, paths = _read_manifest(prefix + _NEXT), staged
    if manifest is None:
        if not os.path.isfile(prefix + MANIFEST):
            why = (f"{prefix}.* has no manifest ({os.path.basename(prefix)}{MANIFEST}), so its "
                   "parts cannot be shown to come from one save (written by hand or by an older "
                   "version)")
        else:
            why = (f"{prefix}.pdparams/.pdopt/.pdstates do not all match "
                   f"{os.path.basename(prefix)}{MANIFEST}: they are parts of different saves "
                   "(interrupted save or files copied in by hand), and resuming would mix them")
        raise CheckpointError(f"refusing to resume: {why}; {_alternatives(folder, prefix)}")
    out: Dict[str, Any] = {"prefix": prefix, "manifest": manifest}
    for key, suffix in (("model", ".pdparams"), ("optimizer", ".pdopt"), ("states", ".pdstates")):
        try:
            out[key] = (load_states if key == "states" else load_paddle_file)(paths[suffix])
        except UnsafePickleError as exc:
            raise CheckpointError(str(exc)) from None
        except Exception as exc:
            raise CheckpointError(f"cannot read {prefix + suffix} ({type(exc).__name__}: {exc}); "
                                  f"{_alternatives(folder, prefix)}") from None
    if not isinstance(out["states"], dict) or "epoch" not in out["states"]:
        raise CheckpointError(f"{prefix}.pdstates holds no training state; "
                              f"{_alternatives(folder, prefix)}")
    for key, suffix in (("model", ".pdparams"), ("optimizer", ".pdopt")):
        bad = _nonfinite(out[key])  # a diverged save would train on as NaN from step one
        if bad:
            others = [p for p in consistent_sets(folder) if p != prefix]
            hint = (_alternatives(folder, prefix) if others else "no other checkpoint set is "
                    "here; start a new run (-o Global.overwrite=True or another Global.output_dir)")
            raise CheckpointError(
                f"refusing to resume: {prefix + suffix} holds NaN/inf values in {bad[0]}"
                f"{f' and {len(bad) - 1} more tensor(s)' if len(bad) > 1 else ''} (the training "
                f"that wrote it diverged); {hint}")
    return out


def _nonfinite(obj: Any, name: str = "") -> List[str]:
    """Names of the float arrays in a (nested) state dict holding NaN or inf."""
    if isinstance(obj, dict):
        return [b for k, v in obj.items() for b in _nonfinite(v, f"{name}.{k}" if name else str(k))]
    if isinstance(obj, (list, tuple)):
        return [b for i, v in enumerate(obj) for b in _nonfinite(v, f"{name}[{i}]")]
    arr = obj.numpy() if hasattr(obj, "numpy") and not isinstance(obj, np.ndarray) else obj
    if isinstance(arr, (np.ndarray, np.generic)) and np.asarray(arr).dtype.kind == "f":
        arr = np.asarray(arr)
        if not np.isfinite(arr).all():
            return [f"{name} ({int((~np.isfinite(arr)).sum())} of {arr.size} values)"]
    return []


# ----------------------------------------------------------------------------- identity
# Views of the same weights, and training-only regularisers (api helper, issue 19: timm's
# global_pool/drop_rate/drop_path_rate are absent from older checkpoints' identities).
_IDENTITY_SKIP = ("features_only", "out_indices", "global_pool", "drop_rate", "drop_path_rate")


def arch_identity(arch: Dict[str, Any]) -> Dict[str, Any]:
    """The ``Arch`` section with the model's defaults filled in: what must stay the same
    for a checkpoint to be resumed (architecture, options, class count, input channels)."""
    from ..models.resnet import arch_options
    out = {k: v for k, v in arch_options().items()
           if k not in ("input_size", *_IDENTITY_SKIP) and v is not inspect.Parameter.empty}
    out.update({k: v for k, v in arch.items() if k not in _IDENTITY_SKIP})
    return json.loads(json.dumps(out, default=str))  # plain, as stored in the manifest


def identity_diff(saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """``Arch.key: saved X, now Y`` for each key that differs."""
    keys = sorted(set(saved) | set(now))
    return [f"Arch.{k}: checkpoint {saved.get(k)!r}, this run {now.get(k)!r}"
            for k in keys if saved.get(k) != now.get(k)]


# ----------------------------------------------------------------------------- run folder
def holds_run(folder: str) -> List[str]:
    """Checkpoint files of some run in ``folder`` (empty if none)."""
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder)
                  if n.endswith((*_PARTS, MANIFEST)) and os.path.isfile(os.path.join(folder, n)))


LOCK_GRACE = 30.0  # seconds an unreadable lock file counts as being written


def _young(path: str) -> bool:
    import time
    try:
        return time.time() - os.path.getmtime(path) < LOCK_GRACE
    except OSError:
        return False


class RunLock:
    """``folder/run.lock`` holding the owner's pid and host: one writing process per run
    folder. A lock left by a dead process on this host is taken over (``note`` says so)."""

    NAME = "run.lock"

    def __init__(self, folder: str):
        self.path = os.path.join(folder, self.NAME)
        self.note = ""
        self.held = False

    def _create(self) -> bool:
        # Written whole to a temporary file, then linked into place: run.lock never exists
        # without its owner (os.link fails if it exists, like O_EXCL).
        tmp = f"{self.path}{TMP_MARK}{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)
        return True

    def acquire(self) -> "RunLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if not self._create():
            try:
                with open(self.path, encoding="utf-8") as f:
                    owner = json.load(f)
                pid, host = int(owner["pid"]), str(owner.get("host", ""))
            except (OSError, ValueError, KeyError, TypeError):
                pid, host = None, ""
                if _young(self.path):  # an older version between create and write
                    raise RunFolderError(
                        f"{os.path.dirname(self.path)} is being taken by another run (its lock "
                        f"file {self.path} is {LOCK_GRACE:.0f} s old at most and not yet "
                        "written); wait, or choose another Global.output_dir") from None
            same_host = host == socket.gethostname()
            if pid is not None and (not same_host or pid_alive(pid)):
                raise RunFolderError(
                    f"{os.path.dirname(self.path)} is in use by another run (pid {pid} on "
                    f"{host or 'this host'}, lock file {self.path}); wait for it to finish or "
                    "choose another Global.output_dir. If that process is gone, delete the lock "
                    "file")
            os.remove(self.path)
            if not self._create():
                raise RunFolderError(f"{os.path.dirname(self.path)} was just taken by another "
                                     "run; choose another Global.output_dir")
            self.note = (f"took over the lock of a process that no longer runs (pid {pid}); its "
                         "unfinished temporary files are removed")
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            with open(self.path, encoding="utf-8") as f:
                mine = json.load(f).get("pid") == os.getpid()
        except (OSError, ValueError):
            mine = False
        if mine:
            os.remove(self.path)

    def clean(self) -> List[str]:
        """Finish saves a kill interrupted (``recover_sets``), then remove the temporary
        files of crashed writes (only while holding the lock)."""
        if not self.held:
            return []
        folder = os.path.dirname(self.path)
        self.recovered = recover_sets(folder)
        return remove_stale_tmp(folder)
