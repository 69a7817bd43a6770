"""Export a model for deployment: Paddle Inference (``paddle.jit.save``) and ONNX.

``export_model`` writes ``<save_dir>/inference.json`` + ``inference.pdiparams`` (Paddle 3's
PIR program format) with a dynamic batch axis, and optionally ``inference.onnx`` through
paddle2onnx. Everything is written into a temporary folder next to ``save_dir``,
checked against the dygraph model, and then swapped with ``save_dir`` as a whole, so a
failed or killed export never leaves half-written or mismatched files behind.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, Optional, Sequence

import numpy as np
import paddle

from ..models import load_model
from ..models.registry import model_channels
from ..utils.io import fsync_dir, pid_alive, write_bytes
from .predictors import OnnxPredictor, PaddlePredictor, inference_files

__all__ = ["ExportError", "export_model", "export_onnx", "export_from_config", "verify_export",
           "check_image_shape", "drop_paddle_notices", "export_dir", "recover_export",
           "DEFAULT_OPSET"]

DEFAULT_OPSET = 13  # the lowest opset paddle2onnx 2.1 picks for these models anyway
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export failed, or the exported model disagrees with the dygraph one."""


# Paddle's C++ notices during tracing that no user can act on (every model, even
# paddle.vision's ResNet, triggers the first).
PADDLE_NOTICES = ("not support input out tensor",)


@contextlib.contextmanager
def drop_paddle_notices(patterns: Sequence[str] = PADDLE_NOTICES):
    """Run the block with the process's stderr (file descriptor 2, where Paddle's glog
    writes) captured, then pass on every line except those containing ``patterns``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            for line in buf.read().decode("utf-8", "replace").splitlines(True):
                if not any(p in line for p in patterns):
                    sys.stderr.write(line)
            sys.stderr.flush()


def check_image_shape(image_shape: Any) -> list:
    """``Global.image_shape`` as ``[C, H, W]`` positive ints; an error says how to fix it."""
    if (not isinstance(image_shape, (list, tuple)) or len(image_shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                   for v in image_shape)):
        raise ValueError(f"Global.image_shape must be [channels, height, width] of positive "
                         f"integers, got {image_shape!r}; e.g. -o Global.image_shape=[3,32,32]")
    return [int(v) for v in image_shape]


def export_onnx(model_file: str, params_file: str, save_file: str,
                opset_version: int = DEFAULT_OPSET) -> str:
    """Convert an exported Paddle model (``.json`` + ``.pdiparams``) to ONNX with paddle2onnx.

    Args:
        model_file: the ``.json`` program from ``paddle.jit.save``.
        params_file: its ``.pdiparams``.
        save_file: where to write the ``.onnx`` (written whole, via a temporary file).
        opset_version: ONNX opset; paddle2onnx raises it when an op needs a newer one.

    Returns:
        ``save_file``.

    Raises:
        ExportError: paddle2onnx is missing or the conversion failed.
    """
    try:
        import paddle2onnx
    except ImportError:
        raise ExportError("--onnx needs paddle2onnx: pip install paddle2onnx (a core "
                          "dependency: pip install -e . reinstalls it)") from None
    try:
        # save_file=None returns the bytes; optimize_tool="" skips the Polygraphy pass,
        # which tries to pip-install its dependencies (fails offline) and changes nothing here.
        data = paddle2onnx.export(model_file, params_file, None, opset_version=opset_version,
                                  enable_onnx_checker=True, optimize_tool="")
    except Exception as exc:  # paddle2onnx logs the cause and then fails on its own variable
        raise ExportError(f"paddle2onnx could not convert {model_file} to ONNX opset "
                          f"{opset_version} ({type(exc).__name__}: {exc}); see the "
                          "[Paddle2ONNX] log above, or try another --opset (13 to 17)") from None
    if not data:
        raise ExportError(f"paddle2onnx returned an empty model for {model_file}; see its log "
                          "above, or try another --opset (13 to 17)")
    return write_bytes(data, save_file)


def _max_error(out: np.ndarray, ref: np.ndarray) -> float:
    if out.shape != ref.shape:
        return float("inf")
    return float(np.abs(out.astype(np.float64) - ref).max())


def verify_export(model: paddle.nn.Layer, save_dir: str, image_shape: Sequence[int],
                  batch_sizes: Sequence[int] = (1, 3), onnx: Optional[bool] = None,
                  tolerance: float = TOLERANCE, threads: Optional[int] = None,
                  seed: int = 0) -> Dict[str, Any]:
    """Run the exported model(s) and the dygraph model on the same random batches.

    Each batch size runs through one predictor (checking the batch axis is dynamic). The
    error allowed is ``tolerance * max(1, max|dygraph output|)``: absolute for logits of
    order one, relative for larger ones.

    Args:
        model: the dygraph model that was exported.
        save_dir: the folder holding ``inference.*``.
        image_shape: ``[C, H, W]``.
        batch_sizes: batch sizes to try.
        onnx: also check ``inference.onnx``; ``None``: when the file exists.
        tolerance: allowed error (see above).
        threads: CPU threads of the predictors.
        seed: seed of the random inputs.

    Returns:
        ``{"max_abs_diff": {"paddle": x, "onnx": y}, "output_scale": s, "tolerance": t,
        "batch_sizes": [...], "ok": bool}``.
    """
    files = inference_files(save_dir)
    if onnx is None:
        onnx = os.path.isfile(files["onnx"])
    predictors = {"paddle": PaddlePredictor(files["model"], files["params"], threads)}
    if onnx:
        predictors["onnx"] = OnnxPredictor(files["onnx"], threads)
    rng = np.random.default_rng(seed)
    model.eval()
    diffs = {name: 0.0 for name in predictors}
    scale = 0.0
    for n in batch_sizes:
        batch = rng.standard_normal((int(n), *image_shape)).astype(np.float32)
        with paddle.no_grad():
            ref = model(paddle.to_tensor(batch)).numpy().astype(np.float64)
        scale = max(scale, float(np.abs(ref).max()))
        for name, predictor in predictors.items():
            diffs[name] = max(diffs[name], _max_error(predictor.predict(batch), ref))
    allowed = tolerance * max(1.0, scale)
    return {"max_abs_diff": diffs, "output_scale": scale, "tolerance": allowed,
            "batch_sizes": [int(n) for n in batch_sizes],
            "ok": all(d <= allowed for d in diffs.values())}


def export_model(model: paddle.nn.Layer, save_dir: str, image_shape: Sequence[int],
                 onnx: bool = False, opset_version: int = DEFAULT_OPSET, check: bool = True,
                 check_batch_sizes: Sequence[int] = (1, 3), prefix: str = "inference"
                 ) -> Dict[str, Any]:
    """Export ``model`` with a dynamic batch axis, check it, then move it into ``save_dir``.

    Args:
        model: the model (switched to eval mode).
        save_dir: output folder; ``<prefix>.json``, ``.pdiparams`` (and ``.onnx``) are
            replaced. Without ``onnx`` an old ``<prefix>.onnx`` there is removed, since it
            would no longer match the new weights.
        image_shape: ``[C, H, W]`` of the input.
        onnx: also write ``<prefix>.onnx``.
        opset_version: ONNX opset.
        check: compare the exported outputs with dygraph's (``verify_export``) first.
        check_batch_sizes: batch sizes of the check.
        prefix: file-name prefix.

    Returns:
        ``{"files": {"model", "params"[, "onnx"]}, "check": verify_export's result or None}``.

    Raises:
        ExportError: the export or the ONNX conversion failed, or the check found outputs
            outside the tolerance (nothing is written to ``save_dir`` then).
    """
    image_shape = check_image_shape(image_shape)
    save_dir = os.path.abspath(save_dir)
    parent = os.path.dirname(save_dir)
    os.makedirs(parent, exist_ok=True)
    recover_export(save_dir)
    tmp = _staging(save_dir)
    try:
        model.eval()
        spec = paddle.static.InputSpec([None, *image_shape], "float32", name="x")
        try:
            with drop_paddle_notices():
                paddle.jit.save(model, os.path.join(tmp, prefix), input_spec=[spec])
        except Exception as exc:  # to_static raises many types; the cause is in the message
            shape = ", ".join(map(str, image_shape))
            raise ExportError(f"paddle.jit.save failed for input [N, {shape}] "
                              f"({type(exc).__name__}: {exc}); check Global.image_shape") from None
        files = inference_files(tmp, prefix)
        if not (os.path.isfile(files["model"]) and os.path.isfile(files["params"])):
            raise ExportError(f"paddle.jit.save wrote {sorted(os.listdir(tmp))}, not "
                              f"{prefix}.json + {prefix}.pdiparams; this needs Paddle 3's PIR "
                              "program format (paddlepaddle >= 3.0)")
        if onnx:
            export_onnx(files["model"], files["params"], files["onnx"], opset_version)
        report = None
        if check:
            try:
                report = verify_export(model, tmp, image_shape, check_batch_sizes, onnx=onnx)
            except RuntimeError as exc:
                raise ExportError(f"the exported model does not run: {exc}") from None
            if not report["ok"]:
                raise ExportError(f"exported outputs differ from dygraph's: max abs diff "
                                  f"{report['max_abs_diff']} > {report['tolerance']:.3g}; nothing "
                                  f"was written to {save_dir}")
        final = inference_files(save_dir, prefix)
        kinds = ["model", "params"] + (["onnx"] if onnx else [])
        _swap_in(tmp, save_dir, prefix)
        return {"files": {k: final[k] for k in kinds}, "check": report}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _staging(save_dir: str) -> str:
    """A new staging folder beside ``save_dir`` (same filesystem, so moves are renames),
    named with this process's id so a later export can tell a killed one's leftovers."""
    base = os.path.basename(save_dir)
    return tempfile.mkdtemp(prefix=f".{base}.export-{os.getpid()}-", dir=os.path.dirname(save_dir))


def _old_copy(save_dir: str) -> str:
    # where the fallback swap parks the old export for the instant save_dir is absent
    return os.path.join(os.path.dirname(save_dir), f".{os.path.basename(save_dir)}.export-old")


def export_dir(save_dir: str) -> str:
    """The folder holding the export of ``save_dir``: itself, or, when a kill struck the
    fallback swap between its two renames, the old export parked beside it (read-only:
    ``recover_export`` puts it back)."""
    save_dir = os.path.abspath(save_dir)
    old = _old_copy(save_dir)
    return old if not os.path.isdir(save_dir) and os.path.isdir(old) else save_dir


def recover_export(save_dir: str) -> None:
    """Undo what a killed export left: the parked old export goes back (or away when the
    new one made it), staging folders of processes no longer running are removed."""
    save_dir = os.path.abspath(save_dir)
    parent, base = os.path.dirname(save_dir), os.path.basename(save_dir)
    old = _old_copy(save_dir)
    if os.path.isdir(old):
        if os.path.isdir(save_dir):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, save_dir)
            fsync_dir(parent)
    if not os.path.isdir(parent):
        return
    stem = f".{base}.export-"
    for name in os.listdir(parent):
        pid = name[len(stem):].split("-")[0]
        if (name.startswith(stem) and pid.isdigit() and int(pid) != os.getpid()
                and not pid_alive(int(pid))):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _swap_in(tmp: str, save_dir: str, prefix: str) -> None:
    """Make ``tmp`` (the new export) ``save_dir`` as a whole, so a kill at any instant
    leaves the old folder or the new one, never a new ``.json`` beside an old
    ``.pdiparams``. Other files of the old folder are carried over (hard links)."""
    if os.path.isdir(save_dir):
        ours = set(inference_files(save_dir, prefix).values())
        for name in os.listdir(save_dir):
            src = os.path.join(save_dir, name)
            if src in ours or os.path.exists(os.path.join(tmp, name)):
                continue
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(tmp, name), copy_function=_link_or_copy)
            else:
                _link_or_copy(src, os.path.join(tmp, name))
    for name in os.listdir(tmp):
        fd = os.open(os.path.join(tmp, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(tmp)
    if not os.path.isdir(save_dir):
        os.rename(tmp, save_dir)
    elif not _exchange(tmp, save_dir):
        # No atomic exchange here: for a moment save_dir is absent (never mixed); a kill
        # then leaves the old export at _old_copy, which export_dir reads and
        # recover_export puts back.
        old = _old_copy(save_dir)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(save_dir, old)
        os.rename(tmp, save_dir)
        tmp = old
    fsync_dir(os.path.dirname(save_dir))
    shutil.rmtree(tmp, ignore_errors=True)  # after an exchange it holds the old export


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _exchange(a: str, b: str) -> bool:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0


def export_from_config(cfg: Dict[str, Any], onnx: bool = False,
                       opset_version: int = DEFAULT_OPSET, check: bool = True) -> Dict[str, Any]:
    """``tools/export_model.py``: build ``Arch``, load ``Global.pretrained_model`` strictly,
    export to ``Global.save_inference_dir`` with input ``[N, *Global.image_shape]``."""
    g = cfg["Global"]
    shape = check_image_shape(g["image_shape"])  # before the (slow) model build
    channels = model_channels(cfg["Arch"])
    if shape[0] != channels:
        raise ExportError(f"Global.image_shape {shape} has {shape[0]} channel(s) but the model "
                          f"takes {channels} (Arch.in_channels); set -o Global.image_shape="
                          f"[{channels},{shape[1]},{shape[2]}]")
    model = load_model(cfg)
    return export_model(model, g["save_inference_dir"], g["image_shape"], onnx=onnx,
                        opset_version=opset_version, check=check)
