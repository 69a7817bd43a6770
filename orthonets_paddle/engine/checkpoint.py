"""Checkpoints: staged in ``<run>/.commit-partial/``, made current by one rename to
``<run>/.commit/``, then moved onto their names (a kill after the rename is rolled forward);
checked before use, read without running code. And the run folder's lock. Only the package's
own file names are ever moved or deleted.
"""
from __future__ import annotations

import inspect
import json
import os
import pathlib
import pickle
import re
from typing import Any, Dict, List, Tuple

import filelock
import numpy as np
import paddle

from .amp import float32_state
from .logger import new_records
from ..models.resnet import arch_options
from ..utils.io import UnsafePickleError, cap_repr, file_digest, fsync, load_paddle_file, safe_load

__all__ = ["save_checkpoint", "commit", "checkpoint_files", "roll_forward", "load_optimizer_state",
           "load_checkpoint", "load_states", "current", "save_json", "CheckpointError",
           "RunFolderError", "arch_identity", "identity_diff", "holds_run", "RunLock", "READY",
           "run_shape", "resume_source", "check_optimizer", "resume_schedule"]

FORMAT = 2  # of .pdstates; 1 was the manifest era's
PARTIAL, READY = ".commit-partial", ".commit"
_PARTS = (".pdparams", ".pdopt", ".pdstates")
_EMA = ".ema.pdparams"  # a set's EMA weights (PaddleClas's name), bound by its digests too
# Checkpoint names the package writes; with metrics.json, the only ones it moves or deletes.
_OURS = re.compile(r"(latest|epoch_[1-9][0-9]*)\.(pdparams|pdopt|pdstates|ema\.pdparams)"
                   r"|(best|final)_(model\.pdparams|optimizer\.pdopt)|best_model_ema\.pdparams")
_ours = re.compile(_OURS.pattern + r"|metrics\.json").fullmatch


class CheckpointError(RuntimeError):
    """A resume checkpoint is missing, unreadable, malformed, mixed or from another model."""


class RunFolderError(RuntimeError):
    """The output folder belongs to another run or another process."""


def save_json(obj: Any, path: str) -> None:
    """A ``commit`` writer for ``metrics.json``."""
    pathlib.Path(path).write_text(json.dumps(obj, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------- commits
def _clear(path: str) -> None:
    """Remove a staging folder: a link there is unlinked, not followed; only our names."""
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
    for name, (obj, writer) in files.items():  # names of ours only (_ours)
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
    """Optimizer state keys (``<param>_moment1_0``, ``master_weights[<param>]``) renamed from
    one parameter naming to the other; longest names first, so no shorter prefix matches."""
    out, order = {}, sorted(mapping, key=len, reverse=True)
    for key, value in state.items():
        if key == "master_weights":
            value = _rename(value, mapping)
        for old in order:
            if isinstance(key, str) and (key == old or key.startswith(old + "_")):
                key = mapping[old] + key[len(old):]
                break
        out[key] = value
    return out


def _tensors(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return paddle.to_tensor(obj)
    return {k: _tensors(v) for k, v in obj.items()} if isinstance(obj, dict) else obj


def load_optimizer_state(model: paddle.nn.Layer, optimizer, state: Dict[str, Any]) -> None:
    """Load a state saved by ``checkpoint_files`` (keyed by structured parameter names), but
    not its ``LR_Scheduler`` entry: ``resume_schedule`` positions the schedule for this run."""
    if "LR_Scheduler" in state:  # Paddle requires the entry: this run's own, still at step 0
        state = dict(state, LR_Scheduler=optimizer.state_dict().get("LR_Scheduler"))
    optimizer.set_state_dict(_rename(_tensors(state), {n: p.name for n, p in model.named_parameters()}))


def load_states(path: str) -> Dict[str, Any]:
    """Read a ``.pdstates`` file with the safe unpickler (RNG states rebuilt)."""
    states = safe_load(current(path))
    rng = states.get("rng") if isinstance(states, dict) else None
    if isinstance(rng, dict) and isinstance(rng.get("paddle"), list):
        def rebuilt(s):
            g = paddle.base.libpaddle.GeneratorState.__new__(paddle.base.libpaddle.GeneratorState)
            g.__setstate__(s)
            return g
        rng["paddle"] = [rebuilt(s) if isinstance(s, tuple) else s for s in rng["paddle"]]
    return states


def checkpoint_files(prefix: str, model: paddle.nn.Layer, optimizer=None, states=None,
                     opt_name=None, ema=None) -> Dict[str, Tuple[Any, Any]]:
    """``{name: (obj, writer)}`` of one set for ``commit``: ``prefix.pdparams`` (float32),
    the optimizer as ``opt_name`` (default ``prefix.pdopt``), the ``ema`` model's weights as
    ``prefix.ema.pdparams`` and, with ``states``, ``prefix.pdstates`` (whose ``digests``
    bind it to the other files)."""
    files = {prefix + ".pdparams": (float32_state(model.state_dict()), None)}
    if ema is not None:
        files[prefix + _EMA] = (float32_state(ema.state_dict()), None)
    if optimizer is not None:
        # Keyed by structured names (layer1.0.conv1.weight), not Paddle's per-process
        # counters (conv2d_80.w_0): the state then loads into any fresh copy of the model.
        state = _rename(optimizer.state_dict(), {p.name: n for n, p in model.named_parameters()})
        files[opt_name or prefix + ".pdopt"] = (state, None)
    if states is not None:
        def write_states(obj, path):  # digests of the two files just staged beside it
            folder, rng = os.path.dirname(path), obj.get("rng") or {}
            obj = dict(obj, format=FORMAT, digests={
                s: file_digest(os.path.join(folder, prefix + s))
                for s in _PARTS[:2] + ((_EMA,) if ema is not None else ())})
            if rng.get("paddle") is not None:  # pybind objects: store their plain tuples
                obj["rng"] = dict(rng, paddle=[s.__getstate__() if hasattr(s, "current_seed") else s
                                               for s in rng["paddle"]])
            pathlib.Path(path).write_bytes(pickle.dumps(obj, protocol=4))
        files[prefix + ".pdstates"] = (states, write_states)
    return files


def save_checkpoint(prefix: str, model: paddle.nn.Layer, optimizer=None, states=None) -> None:
    """Commit one set ``prefix.pdparams`` (+ ``.pdopt``, ``.pdstates``)."""
    folder, name = os.path.split(os.path.abspath(prefix))
    commit(folder, checkpoint_files(name, model, optimizer, states))


# ----------------------------------------------------------------------------- reading
def _int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _same_shape(a: Any, b: Any) -> bool:  # the records' nesting, lists at the leaves
    if isinstance(b, dict):
        return isinstance(a, dict) and set(a) == set(b) and all(_same_shape(a[k], b[k]) for k in b)
    return isinstance(a, list)


def _check_states(st: Any, where: str) -> None:
    """Refuse (``CheckpointError``) a states dict whose format, types or ranges are not what
    ``train`` writes."""
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
        ("run", st.get("run") is None or isinstance(st["run"], dict) and all(
            _int(st["run"].get(k)) and st["run"][k] >= 1 for k in _SHAPE) and isinstance(
            st["run"].get("optimizer"), str), "run sizes >= 1 and an optimizer name"),
        ("digests", isinstance(st.get("digests"), dict) and all(
            isinstance(st["digests"].get(s), str) for s in _PARTS[:2]), "sha256 of .pdparams/.pdopt"),
        ("records", _same_shape(st.get("records"), new_records()), "the records train() keeps"),
    ]
    for key, ok, want in rules:
        if not ok:
            raise CheckpointError(f"refusing {where}: {key}: {cap_repr(st.get(key))} (expected "
                                  f"{want}); the file was not written by this package or is damaged")


def _whole(prefix: str, digests: Dict[str, str]) -> bool:
    return all(os.path.isfile(current(prefix + s)) and file_digest(current(prefix + s)) == digests.get(s)
               for s in _PARTS[:2] + ((_EMA,) if _EMA in digests else ()))


def _alternatives(folder: str, exclude: str) -> str:
    sets = []
    for name in sorted(os.listdir(folder)):
        prefix = os.path.join(folder, name[: -len(".pdstates")])
        if _OURS.fullmatch(name) and name.endswith(".pdstates") and prefix != exclude:
            try:
                st = safe_load(current(prefix + ".pdstates"))
                _check_states(st, prefix)
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
    and ``'ema'`` when the set has EMA weights (arrays as numpy). ``path`` is a run folder
    (its ``latest``) or a prefix such as ``output/run/epoch_10`` (a ``.pdparams``/``.pdopt``/
    ``.pdstates`` suffix is dropped).

    Raises:
        CheckpointError: missing, mixed, malformed, NaN/inf, unreadable or unsafe parts.
    """
    prefix = os.path.join(path, "latest") if os.path.isdir(path) else str(path)
    for suffix in _PARTS:
        if prefix.endswith(suffix):
            prefix = prefix[: -len(suffix)]
    missing = [prefix + s for s in _PARTS if not os.path.isfile(current(prefix + s))]
    if missing:
        raise CheckpointError(
            f"cannot resume from {prefix}: missing {', '.join(missing)}. Global.checkpoints takes a "
            "run's output directory (resumes from its latest.*) or a checkpoint prefix such as "
            "output/run/epoch_10; to start from weights only, use Global.pretrained_model")
    folder = os.path.dirname(os.path.abspath(prefix))
    out: Dict[str, Any] = {"prefix": prefix}
    for key, suffix in (("states", ".pdstates"), ("model", ".pdparams"), ("optimizer", ".pdopt"),
                        ("ema", _EMA)):
        if key == "ema" and _EMA not in out["states"]["digests"]:
            break  # a set saved without EMA
        try:
            out[key] = (load_states if key == "states" else load_paddle_file)(current(prefix + suffix))
        except UnsafePickleError as exc:
            raise CheckpointError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001  (any reading error: the file is unusable)
            raise CheckpointError(f"cannot read {prefix + suffix} ({type(exc).__name__}: "
                                  f"{cap_repr(exc, 200)}); {_alternatives(folder, prefix)}") from None
        if key == "states":
            _check_states(out["states"], prefix + suffix)
            if not _whole(prefix, out["states"]["digests"]):
                raise CheckpointError(
                    f"refusing to resume: {prefix}.pdparams/.pdopt/.pdstates are parts of different "
                    f"saves (files copied in by hand?), and resuming would mix them; "
                    f"{_alternatives(folder, prefix)}")
            continue
        bad = _nonfinite(out[key])  # a diverged save would train on as NaN from step one
        if bad:
            raise CheckpointError(
                f"refusing to resume: {prefix + suffix} holds NaN/inf values in {bad[0]}"
                f"{f' and {len(bad) - 1} more tensor(s)' if len(bad) > 1 else ''} (the training "
                f"that wrote it diverged); {_alternatives(folder, prefix)}")
    return out


def _nonfinite(obj: Any, name: str = "") -> List[str]:
    """Names of the float arrays in a nested state dict holding NaN or inf."""
    if isinstance(obj, dict):
        return [b for k, v in obj.items() for b in _nonfinite(v, f"{name}.{k}" if name else str(k))]
    arr = np.asarray(obj) if isinstance(obj, (np.ndarray, np.generic)) else None
    if arr is not None and arr.dtype.kind == "f" and not np.isfinite(arr).all():
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
    return [f"Arch.{k}: checkpoint {saved.get(k)!r}, this run {now.get(k)!r}"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


# ----------------------------------------------------------------------------- resume
_SHAPE = ("world_size", "batch_size", "global_batch", "steps_per_epoch", "epochs")


def run_shape(world_size: int, batch_size: int, steps_per_epoch: int, epochs: int,
              optimizer: str, update_freq: int = 1) -> Dict[str, Any]:
    """What a checkpoint records of its run (``states["run"]``) and a resume compares:
    processes, per-process and global batch (x update_freq: the batch of one optimizer
    step), optimizer steps per epoch, epochs, optimizer."""
    return {"world_size": world_size, "batch_size": batch_size,
            "global_batch": world_size * batch_size * update_freq, "steps_per_epoch": steps_per_epoch,
            "epochs": epochs, "optimizer": optimizer}


def _saved_shape(st: Dict[str, Any]) -> Dict[str, Any]:
    """``st["run"]``; for checkpoints written before it was recorded, what follows from the
    rest: the world size from the saved rank streams, steps per epoch from the global step
    (saves are at epoch ends); batch, epochs and optimizer unknown (None)."""
    if st.get("run"):
        return st["run"]
    world = len(st["rank_rng"]) if st.get("rank_rng") else 1
    return {"world_size": world, "batch_size": None, "global_batch": None, "epochs": None,
            "steps_per_epoch": max(1, round(st["global_step"] / (st["epoch"] + 1))), "optimizer": None}


def resume_source(checkpoints: Any, output_dir: str) -> Any:
    """``Global.checkpoints``, with ``auto`` resolved: ``output_dir`` when it holds a latest
    checkpoint (a restarted process continues its run), else None (a fresh start)."""
    if checkpoints != "auto":
        return checkpoints
    return output_dir if os.path.isfile(current(os.path.join(output_dir, "latest.pdstates"))) else None


def _optimizer_of(state: Dict[str, Any]) -> str:
    """The optimizer that wrote a ``.pdopt``, from its accumulators' names (Paddle's)."""
    kinds = {m.group(1) for k in state if isinstance(k, str)
             for m in [re.search(r"_(velocity|moment1)_[0-9]+$", k)] if m}
    return {"velocity": "Momentum", "moment1": "AdamW"}.get(kinds.pop()) if len(kinds) == 1 else "SGD"


def check_optimizer(ckpt: Dict[str, Any], name: str) -> None:
    """Refuse a resume whose ``Optimizer.name`` is not the checkpoint's: its state would not
    fit (Paddle's AssertionError at the first step). Checkpoints that do not record the
    name (older ones) are known by their accumulators."""
    prefix = ckpt["prefix"]
    saved = (ckpt["states"].get("run") or {}).get("optimizer") or _optimizer_of(ckpt["optimizer"])
    if saved != name:
        raise CheckpointError(
            f"cannot resume from {prefix}: it was trained with Optimizer.name={saved}, this run "
            f"has Optimizer.name={name}; resume with -o Optimizer.name={saved}, or start a new run "
            f"with {name} in another Global.output_dir (Global.pretrained_model={prefix}.pdparams)")


def resume_schedule(st: Dict[str, Any], run: Dict[str, Any], scheduler) -> Tuple[int, List[str]]:
    """Put a freshly built ``scheduler`` where this run continues: the saved global step,
    rescaled by epoch when the steps per epoch changed (``step * new / old``: at an epoch
    end, ``epochs_done * new``), then stepped there as an uninterrupted run with this
    run's shape and schedule would have. Returns (global step, what changed, in words)."""
    saved, done = _saved_shape(st), st["epoch"] + 1
    step = st["global_step"]
    old, new = saved["steps_per_epoch"], run["steps_per_epoch"]
    if new != old:
        step = round(step * new / old)
    for _ in range(step):  # Paddle's schedulers are stepped; ~1 us a step
        scheduler.step()
    notes = []
    if (saved["world_size"], old) != (run["world_size"], new) or saved["global_batch"] not in (
            None, run["global_batch"]):
        batch = saved["global_batch"] or "?"
        notes.append(
            f"{saved['world_size']} process(es) x {saved['batch_size'] or '?'} -> "
            f"{run['world_size']} x {run['batch_size']} (global batch {batch} -> "
            f"{run['global_batch']}, {old} -> {new} steps/epoch); the learning-rate schedule "
            f"continues by epoch (global step {st['global_step']} -> {step}, the start of "
            f"epoch {done + 1})")
    if saved["epochs"] is not None and saved["epochs"] != run["epochs"]:
        notes.append(f"Global.epochs {saved['epochs']} -> {run['epochs']}: the learning-rate "
                     f"schedule is the one for {run['epochs']} epochs")
    if notes:
        was = st["lr_scheduler"].get("last_lr")
        notes[-1] += (f" (lr {was:.4g} -> {scheduler.last_lr:.4g})" if isinstance(was, float)
                      else f" (lr {scheduler.last_lr:.4g})")
    return step, notes


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
        self.lock = filelock.FileLock(self.path)

    def acquire(self) -> "RunLock":
        os.makedirs(self.folder, exist_ok=True)
        if os.path.islink(self.path):
            os.unlink(self.path)  # a planted link: opening it could truncate its target
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunFolderError(f"{self.folder} is in use by another {self.what} (it holds "
                                 f"{self.path}); wait for it to finish or choose another output "
                                 "folder") from None
        return self

    def release(self) -> None:  # a no-op when not held
        self.lock.release()
