"""Export a model for deployment: Paddle Inference (``paddle.jit.save``) and ONNX.

``export_model`` writes ``inference.json`` + ``inference.pdiparams`` (Paddle 3's PIR program
format, dynamic batch axis) and optionally ``inference.onnx`` (paddle2onnx) into a new folder
beside ``save_dir``, checks them against the dygraph model, and swaps that folder in by two
renames: the old folder to ``parked_export(save_dir)``, the new one to ``save_dir``; then the
old one is removed. A kill at any instant leaves the old export or the new one, whole: in the
instant between the renames the predictors read the parked one, and the next export puts it
back. So ``save_dir`` holds the export only; any other entry (a file, a link, a folder) is
refused, never copied, followed or deleted.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
import uuid
from typing import Any, Dict, Optional, Sequence

import numpy as np
import paddle

from ..models import load_model
from ..models.registry import model_channels
from ..utils.io import write_bytes
from .predictors import OnnxPredictor, PaddlePredictor, inference_files, parked_export

__all__ = ["ExportError", "export_model", "export_onnx", "export_from_config", "verify_export",
           "check_image_shape", "drop_paddle_notices", "DEFAULT_OPSET"]

DEFAULT_OPSET = 13  # the lowest opset paddle2onnx 2.1 picks for these models anyway
TOLERANCE = 1e-4
# Files an export folder may hold: ours, and those of older Paddle's jit.save.
EXPORT_FILES = ("inference.json", "inference.pdiparams", "inference.onnx", "inference.pdmodel",
                "inference.pdiparams.info")


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


def check_image_shape(image_shape: Any, arch: Optional[Dict[str, Any]] = None,
                      error: type = ValueError) -> list:
    """``Global.image_shape`` as ``[C, H, W]`` positive ints (with the channels of ``arch``'s
    model when given); else ``error`` saying how to fix it."""
    if (not isinstance(image_shape, (list, tuple)) or len(image_shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                   for v in image_shape)):
        raise error(f"Global.image_shape must be [channels, height, width] of positive "
                         f"integers, got {image_shape!r}; e.g. -o Global.image_shape=[3,32,32]")
    shape = [int(v) for v in image_shape]
    channels = model_channels(arch) if arch is not None else shape[0]
    if shape[0] != channels:
        raise error(f"Global.image_shape {shape} has {shape[0]} channel(s) but the model "
                         f"takes {channels} (Arch.in_channels); set -o Global.image_shape="
                         f"[{channels},{shape[1]},{shape[2]}] (and export again)")
    return shape


def export_onnx(model_file: str, params_file: str, save_file: str,
                opset_version: int = DEFAULT_OPSET) -> str:
    """Convert an exported Paddle model (``.json`` + ``.pdiparams``) to ONNX with paddle2onnx,
    written to ``save_file`` whole; returns it. Raises ExportError when paddle2onnx is
    missing or fails."""
    try:
        import paddle2onnx  # an optional dependency (the onnx extra)
    except ImportError:
        raise ExportError("--onnx needs paddle2onnx: pip install paddle2onnx") from None
    try:
        # save_file=None returns the bytes; optimize_tool="" skips the Polygraphy pass,
        # which tries to pip-install its dependencies (fails offline) and changes nothing here.
        data = paddle2onnx.export(model_file, params_file, None, opset_version=opset_version,
                                  enable_onnx_checker=True, optimize_tool="")
    except Exception as exc:  # paddle2onnx logs the cause and then fails on its own variable
        data, cause = None, f" ({type(exc).__name__}: {exc})"
    else:
        cause = " (an empty model)"
    if not data:
        raise ExportError(f"paddle2onnx could not convert {model_file} to ONNX opset "
                          f"{opset_version}{cause}; see the [Paddle2ONNX] log above, or try "
                          "another --opset (13 to 17)")
    return write_bytes(data, save_file)


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
    predictors = {"paddle": PaddlePredictor(files["model"], files["params"], threads)}
    if onnx or (onnx is None and os.path.isfile(files["onnx"])):
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
            out = predictor.predict(batch)
            diffs[name] = max(diffs[name], float(np.abs(out - ref).max())
                              if out.shape == ref.shape else float("inf"))
    allowed = tolerance * max(1.0, scale)
    return {"max_abs_diff": diffs, "output_scale": scale, "tolerance": allowed,
            "batch_sizes": [int(n) for n in batch_sizes],
            "ok": all(d <= allowed for d in diffs.values())}


def _target_mode(save_dir: str, shown: str) -> Optional[int]:
    """The mode of the folder the export will replace (None: there is none yet), after
    refusing, in one line, a folder whose swap would lose or move something not ours."""
    real = os.path.realpath(save_dir)
    if os.path.commonpath([real, os.path.realpath(os.getcwd())]) == real:
        raise ExportError(f"Global.save_inference_dir {shown} is the current folder or holds it, "
                          "and an export replaces its folder whole; give a folder of its own, "
                          "e.g. -o Global.save_inference_dir=./inference")
    if os.path.islink(save_dir):
        raise ExportError(f"Global.save_inference_dir {shown} is a symbolic link (to "
                          f"{os.readlink(save_dir)}); give a real folder, e.g. the link's target")
    if not os.path.lexists(save_dir):
        return None
    if not os.path.isdir(save_dir):
        raise ExportError(f"Global.save_inference_dir {shown} is a file; give a folder")
    if os.path.ismount(save_dir):
        raise ExportError(f"Global.save_inference_dir {shown} is a mount point, which cannot be "
                          "replaced by a new export; give a folder inside it, e.g. -o "
                          f"Global.save_inference_dir={os.path.join(shown, 'inference')}")
    others = sorted(e.name for e in os.scandir(save_dir)
                    if e.name not in EXPORT_FILES or not e.is_file(follow_symlinks=False))
    if others:
        raise ExportError(f"Global.save_inference_dir {shown} holds {', '.join(others[:8])}, "
                          f"which are not an export's files, and an export replaces its folder "
                          "whole; give a new or empty folder, or move those out")
    return stat.S_IMODE(os.stat(save_dir).st_mode)


def _unpark(save_dir: str) -> None:
    """Finish what a killed export left: its parked old folder goes back when ``save_dir`` is
    missing (killed between the renames), or away when the new one is in place."""
    old = parked_export(save_dir)
    if not os.path.isdir(old) or os.path.islink(old):
        return
    if not os.path.lexists(save_dir):
        os.rename(old, save_dir)
    elif all(e.name in EXPORT_FILES and e.is_file(follow_symlinks=False)
             for e in os.scandir(old)):  # only an export's files: what we parked
        shutil.rmtree(old)
    else:
        raise ExportError(f"{old} is in the way of the export's swap and holds more than an "
                          "export; move it away")


def export_model(model: paddle.nn.Layer, save_dir: str, image_shape: Sequence[int],
                 onnx: bool = False, opset_version: int = DEFAULT_OPSET, check: bool = True,
                 check_batch_sizes: Sequence[int] = (1, 3)) -> Dict[str, Any]:
    """Export ``model`` with a dynamic batch axis, check it, then swap it in as ``save_dir``.

    Args:
        model: the model (switched to eval mode).
        save_dir: output folder, new or holding only an export (then replaced whole, keeping
            its mode; a new one gets the mode ``os.makedirs`` gives). Without ``onnx`` an old
            ``inference.onnx`` goes with it, since it would not match the new weights.
        image_shape: ``[C, H, W]`` of the input.
        onnx: also write ``inference.onnx``.
        opset_version: ONNX opset.
        check: compare the exported outputs with dygraph's (``verify_export``) first.
        check_batch_sizes: batch sizes of the check.

    Returns:
        ``{"files": {"model", "params"[, "onnx"]}, "check": verify_export's result or None}``.

    Raises:
        ExportError: ``save_dir`` is not a folder an export may replace; the export or the
            ONNX conversion failed, or the check found outputs outside the tolerance (then
            ``save_dir`` is left as it was).
    """
    image_shape = check_image_shape(image_shape)
    shown, save_dir = save_dir, os.path.abspath(save_dir)
    os.makedirs(os.path.dirname(save_dir), exist_ok=True)
    _unpark(save_dir)
    mode = _target_mode(save_dir, shown)
    staging = os.path.join(os.path.dirname(save_dir),
                           f".{os.path.basename(save_dir)}.export-{uuid.uuid4().hex[:12]}")
    os.mkdir(staging)  # the mode os.makedirs gives under the umask (mkdtemp's is 0700)
    try:
        if mode is not None:
            os.chmod(staging, mode)
        model.eval()
        spec = paddle.static.InputSpec([None, *image_shape], "float32", name="x")
        try:
            with drop_paddle_notices():
                paddle.jit.save(model, os.path.join(staging, "inference"), input_spec=[spec])
        except Exception as exc:  # to_static raises many types; the cause is in the message
            dims = ", ".join(map(str, image_shape))
            raise ExportError(f"paddle.jit.save failed for input [N, {dims}] ({type(exc).__name__}"
                              f": {exc}); check Global.image_shape") from None
        files = inference_files(staging)
        if not (os.path.isfile(files["model"]) and os.path.isfile(files["params"])):
            raise ExportError(f"paddle.jit.save wrote {sorted(os.listdir(staging))}, not "
                              "inference.json + inference.pdiparams; this needs Paddle 3's PIR "
                              "program format (paddlepaddle >= 3.0)")
        if onnx:
            export_onnx(files["model"], files["params"], files["onnx"], opset_version)
        report = None
        if check:
            try:
                report = verify_export(model, staging, image_shape, check_batch_sizes, onnx=onnx)
            except RuntimeError as exc:
                raise ExportError(f"the exported model does not run: {exc}") from None
            if not report["ok"]:
                raise ExportError(f"exported outputs differ from dygraph's: max abs diff "
                                  f"{report['max_abs_diff']} > {report['tolerance']:.3g}; "
                                  f"{shown} was left as it was")
        if mode is None:
            os.rename(staging, save_dir)
        else:
            old = parked_export(save_dir)
            os.rename(save_dir, old)
            os.rename(staging, save_dir)  # killed before this: predictors read `old`
            shutil.rmtree(old)
        final = inference_files(save_dir)
        return {"files": {k: final[k] for k in ("model", "params", "onnx")[:3 if onnx else 2]},
                "check": report}
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the folder this call made, if not moved


def export_from_config(cfg: Dict[str, Any], onnx: bool = False,
                       opset_version: int = DEFAULT_OPSET, check: bool = True) -> Dict[str, Any]:
    """``tools/export_model.py``: build ``Arch``, load ``Global.pretrained_model`` strictly,
    export to ``Global.save_inference_dir`` with input ``[N, *Global.image_shape]``."""
    g = cfg["Global"]
    shape = check_image_shape(g["image_shape"], cfg["Arch"], ExportError)  # before the (slow) model build
    return export_model(load_model(cfg), g["save_inference_dir"], shape, onnx=onnx,
                        opset_version=opset_version, check=check)
