"""Export: ``inference.json`` + ``.pdiparams`` (``paddle.jit.save``, dynamic batch axis) and
``inference.onnx`` (paddle2onnx) are written into a new folder beside ``save_dir``, checked,
then swapped in by two renames (old folder to ``parked_export``, new one in) and the old one
removed. A kill leaves the old or the new export whole (between the renames the predictors
read the parked one, the next export puts it back). ``save_dir`` holds the export only."""
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
import yaml

from ..models import load_model
from ..models.registry import model_channels
from .predictors import InferenceOptions, create_predictor, inference_files, parked_export

__all__ = ["ExportError", "export_model", "export_onnx", "export_from_config", "verify_export",
           "check_image_shape", "drop_paddle_notices", "DEFAULT_OPSET"]

DEFAULT_OPSET = 13  # the lowest opset paddle2onnx 2.1 picks for these models anyway
# Files an export folder may hold: ours, and those of older Paddle's jit.save.
EXPORT_FILES = ("inference.json", "inference.pdiparams", "inference.onnx", "inference.yml",
                "inference.pdmodel", "inference.pdiparams.info")


class ExportError(RuntimeError):
    """An export failed, or the exported model disagrees with the dygraph one."""


@contextlib.contextmanager
def drop_paddle_notices(patterns: Sequence[str] = ("not support input out tensor",)):
    """Run the block with stderr (fd 2, Paddle's glog) captured, then pass on the lines without
    ``patterns``: by default the notice every model's tracing prints (paddle.vision's too)."""
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
            lines = buf.read().decode("utf-8", "replace").splitlines(True)
            sys.stderr.writelines(x for x in lines if not any(p in x for p in patterns))
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
    """Convert an exported Paddle model (``.json`` + ``.pdiparams``) to ONNX ``save_file`` with
    paddle2onnx (inside the export's new folder, so a half-written file is never seen);
    returns it. Raises ExportError when paddle2onnx is missing or fails."""
    try:
        import paddle2onnx  # an optional dependency, needed for --onnx only
    except ImportError:
        raise ExportError("--onnx needs paddle2onnx: pip install paddle2onnx") from None
    try:
        # optimize_tool="": no Polygraphy pass (it pip-installs its dependencies; no gain here)
        paddle2onnx.export(model_file, params_file, save_file, opset_version=opset_version,
                           enable_onnx_checker=True, optimize_tool="")
        cause = "" if os.path.getsize(save_file) else " (an empty model)"
    except Exception as exc:  # paddle2onnx logs the cause and then fails on its own variable
        cause = f" ({type(exc).__name__}: {exc})"
    if cause:
        raise ExportError(f"paddle2onnx could not convert {model_file} to ONNX opset "
                          f"{opset_version}{cause}; see the [Paddle2ONNX] log above, or try "
                          "another --opset (13 to 17)")
    return save_file


def verify_export(model: paddle.nn.Layer, save_dir: str, image_shape: Sequence[int],
                  batch_sizes: Sequence[int] = (1, 3), onnx: Optional[bool] = None,
                  tolerance: float = 1e-4) -> Dict[str, Any]:
    """Run the export in ``save_dir`` (and its ``inference.onnx`` if ``onnx``; ``None``: if it
    exists) and ``model`` on random batches of ``batch_sizes`` (one predictor for all: the
    batch axis must be dynamic). Allowed error: ``tolerance * max(1, max|dygraph output|)``.
    Returns ``{"max_abs_diff": {"paddle", "onnx"}, "output_scale", "tolerance", "batch_sizes",
    "ok"}``."""
    onnx = os.path.isfile(inference_files(save_dir)["onnx"]) if onnx is None else onnx
    cpu = InferenceOptions(device="cpu")  # the check is the same on any machine
    predictors = {b: create_predictor(b, save_dir=save_dir, options=cpu)
                  for b in ("paddle", "onnx")[:1 + onnx]}
    rng = np.random.default_rng(0)
    model.eval()
    diffs, scale = dict.fromkeys(predictors, 0.0), 0.0
    for n in batch_sizes:
        batch = rng.standard_normal((int(n), *image_shape)).astype(np.float32)
        with paddle.no_grad():
            ref = model(paddle.to_tensor(batch)).numpy().astype(np.float64)
        scale = max(scale, float(np.abs(ref).max()))
        for name, predictor in predictors.items():
            out = predictor.predict(batch)
            err = float(np.abs(out - ref).max()) if out.shape == ref.shape else float("inf")
            diffs[name] = max(diffs[name], err)
    allowed = tolerance * max(1.0, scale)
    return {"max_abs_diff": diffs, "output_scale": scale, "tolerance": allowed,
            "batch_sizes": [int(n) for n in batch_sizes],
            "ok": all(d <= allowed for d in diffs.values())}


def _not_export(folder: str) -> list:
    """The entries of ``folder`` that are not an export's files (links never are)."""
    return sorted(e.name for e in os.scandir(folder)
                  if e.name not in EXPORT_FILES or not e.is_file(follow_symlinks=False))


def _prepare_target(save_dir: str, shown: str) -> Optional[int]:
    """Finish a killed export's swap; refuse, in one line, a ``save_dir`` whose swap would
    lose or move anything not ours; return its mode (None: no folder yet)."""
    old = parked_export(save_dir)
    if os.path.isdir(old) and not os.path.islink(old) and not _not_export(old):
        if os.path.lexists(save_dir):  # killed after the swap: the old export goes
            shutil.rmtree(old)
        else:  # killed between the renames: the old export goes back
            os.rename(old, save_dir)
    real = os.path.realpath(save_dir)
    if os.path.commonpath([real, os.path.realpath(os.getcwd())]) == real:
        raise ExportError(f"Global.save_inference_dir {shown} is the current folder or holds it; "
                          "give the export a folder of its own, e.g. ./inference")
    if not os.path.lexists(save_dir):
        return None
    if os.path.islink(save_dir) or not os.path.isdir(save_dir):
        what = "symbolic link" if os.path.islink(save_dir) else "file"
        raise ExportError(f"Global.save_inference_dir {shown} is a {what}; give a folder")
    if os.path.ismount(save_dir):
        raise ExportError(f"Global.save_inference_dir {shown} is a mount point, which cannot be "
                          f"swapped; give a folder in it, e.g. {os.path.join(shown, 'inference')}")
    others = _not_export(save_dir)
    if others:
        raise ExportError(f"Global.save_inference_dir {shown} holds {', '.join(others[:8])}, not "
                          "an export's files; give a new or empty folder, or move those out")
    return stat.S_IMODE(os.stat(save_dir).st_mode)


def export_model(model: paddle.nn.Layer, save_dir: str, image_shape: Sequence[int],
                 onnx: bool = False, opset_version: int = DEFAULT_OPSET, check: bool = True,
                 check_batch_sizes: Sequence[int] = (1, 3),
                 infer_config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Export ``model`` (eval mode) for input ``[N, *image_shape]``, check it against dygraph
    (``verify_export`` on ``check_batch_sizes``, when ``check``) and swap it in as ``save_dir``
    (a new folder gets ``os.makedirs``'s mode, an old one keeps its own and loses its files).
    ``infer_config`` (``infer.inference_config``) is written beside it as ``inference.yml``.

    Returns:
        ``{"files": {"model", "params"[, "onnx"][, "config"]}, "check": verify_export's
        result or None}``.

    Raises:
        ExportError: ``save_dir`` may not be replaced, or a step failed (it is left as it was).
    """
    image_shape = check_image_shape(image_shape)
    shown, save_dir = save_dir, os.path.abspath(save_dir)
    parent, base = os.path.split(save_dir)
    os.makedirs(parent, exist_ok=True)
    mode = _prepare_target(save_dir, shown)
    staging = os.path.join(parent, f".{base}.export-{uuid.uuid4().hex[:12]}")
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
        if onnx:
            export_onnx(files["model"], files["params"], files["onnx"], opset_version)
        if infer_config is not None:
            with open(os.path.join(staging, "inference.yml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(infer_config, f, sort_keys=False, allow_unicode=True,
                               default_flow_style=None)  # inner lists on one line
        report = (verify_export(model, staging, image_shape, check_batch_sizes, onnx)
                  if check else None)
        if report and not report["ok"]:
            raise ExportError(f"exported outputs differ from dygraph's: max abs diff "
                              f"{report['max_abs_diff']} > {report['tolerance']:.3g}; "
                              f"{shown} was left as it was")
        if mode is not None:  # killed between these renames: predictors read the parked one
            os.rename(save_dir, parked_export(save_dir))
        os.rename(staging, save_dir)
        if mode is not None:
            shutil.rmtree(parked_export(save_dir))
        final = inference_files(save_dir)
        out = {k: final[k] for k in ("model", "params", "onnx")[:3 if onnx else 2]}
        if infer_config is not None:
            out["config"] = os.path.join(save_dir, "inference.yml")
        return {"files": out, "check": report}
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the folder this call made, if not moved


def export_from_config(cfg: Dict[str, Any], onnx: bool = False,
                       opset_version: int = DEFAULT_OPSET, check: bool = True) -> Dict[str, Any]:
    """``tools/export_model.py``: build ``Arch``, load ``Global.pretrained_model`` strictly,
    export to ``Global.save_inference_dir`` with input ``[N, *Global.image_shape]`` and the
    ``inference.yml`` (preprocessing, class names) that ``infer --model-dir`` reads."""
    from .infer import inference_config  # infer imports this module

    g = cfg["Global"]
    shape = check_image_shape(g["image_shape"], cfg["Arch"], ExportError)  # before the build
    described = inference_config(cfg)  # bad class names or transforms fail before the build
    return export_model(load_model(cfg), g["save_inference_dir"], shape, onnx=onnx,
                        opset_version=opset_version, check=check, infer_config=described)
