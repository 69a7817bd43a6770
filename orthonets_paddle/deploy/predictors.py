"""``predict(float32 [N, C, H, W]) -> float32 [N, classes]`` on three runtimes, as PaddleClas's
``predict_cls.py`` offers: dygraph, Paddle Inference and ONNX Runtime on the export. Infer and
benchmark both use these, so a benchmark times the code path inference runs."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import paddle

from ..utils.threads import check_threads, cpu_threads, set_paddle_threads

__all__ = ["Predictor", "DygraphPredictor", "PaddlePredictor", "OnnxPredictor", "BACKENDS",
           "create_predictor", "inference_files", "parked_export"]

BACKENDS = ("dygraph", "paddle", "onnx")


def parked_export(save_dir: str) -> str:
    """Where an export parks the old folder for the instant between its two renames."""
    save_dir = os.path.normpath(save_dir)
    return os.path.join(os.path.dirname(save_dir), f".{os.path.basename(save_dir)}.export-old")


def inference_files(save_dir: str) -> Dict[str, str]:
    """``{"model": .json, "params": .pdiparams, "onnx": .onnx}`` of the export in ``save_dir``,
    or, while a kill between an export's two renames left none, of the old one it parked."""
    if not os.path.isdir(save_dir) and os.path.isdir(parked_export(save_dir)):
        save_dir = parked_export(save_dir)
    base = os.path.join(save_dir, "inference")
    return {"model": base + ".json", "params": base + ".pdiparams", "onnx": base + ".onnx"}


def _as_batch(batch: Any) -> np.ndarray:
    arr = np.ascontiguousarray(batch, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"predict() takes a batch of images shaped [N, C, H, W], got shape "
                         f"{arr.shape}; add a batch axis with batch[None] for one image")
    return arr


def _runtime_setup(paths, threads: Optional[int], flag: str = "") -> int:
    # The files must exist (the runtimes' own errors do not say how to make them).
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"exported model file {path} not found; export the model "
                                    "first: python tools/export_model.py -c CONFIG -o "
                                    f"Global.pretrained_model=WEIGHTS{flag}")
    return check_threads(threads if threads is not None else cpu_threads())


class Predictor:
    """Base of the predictors; calling one is ``predict``."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.predict(batch)


class _Exported(Predictor):
    """A runtime on an export: its errors (its own C++ types) become one-line RuntimeErrors."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = _as_batch(batch)
        try:
            return self._run(batch)
        except Exception as exc:
            raise RuntimeError(f"{self.runtime} could not run a batch of shape {list(batch.shape)}"
                               f" ({type(exc).__name__}: {exc}); the model takes "
                               "[N, *Global.image_shape] as exported") from None


class DygraphPredictor(Predictor):
    """The model in eager mode, no gradients; ``threads`` sets Paddle's (process-wide)."""

    def __init__(self, model: paddle.nn.Layer, threads: Optional[int] = None):
        self.model, self.threads = model, threads
        if threads is not None:
            set_paddle_threads(threads)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.model.eval()
        with paddle.no_grad():
            return self.model(paddle.to_tensor(_as_batch(batch))).numpy()


class PaddlePredictor(_Exported):
    """Paddle Inference (CPU) on an exported ``.json`` + ``.pdiparams``; ``threads`` (``None``:
    ``OMP_NUM_THREADS``, else all cores); oneDNN when Paddle has it (3x on OrthoNet-18)."""

    runtime = "Paddle Inference"

    def __init__(self, model_file: str, params_file: str, threads: Optional[int] = None):
        from paddle import inference  # loads the inference library only when used

        self.threads = _runtime_setup((model_file, params_file), threads)
        config = inference.Config(model_file, params_file)
        config.disable_gpu()
        config.disable_glog_info()  # the pass log drowns the tools' own output
        config.set_cpu_math_library_num_threads(self.threads)
        if paddle.base.core.is_compiled_with_mkldnn():
            config.enable_mkldnn()
        self._predictor = inference.create_predictor(config)
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self._predictor.run()
        return self._output.copy_to_cpu()


class OnnxPredictor(_Exported):
    """ONNX Runtime (CPU execution provider) on an exported ``inference.onnx``, with
    ``threads`` intra-op threads (``None``: ``OMP_NUM_THREADS``, else all cores)."""

    runtime = "ONNX Runtime"

    def __init__(self, onnx_file: str, threads: Optional[int] = None):
        try:
            import onnxruntime as ort  # an optional dependency
        except ImportError:
            raise RuntimeError("the onnx backend needs onnxruntime: pip install onnxruntime")
        self.threads = _runtime_setup((onnx_file,), threads, " --onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        options.log_severity_level = 3  # paddle2onnx leaves unused initializers; ORT warns per one
        try:
            self._session = ort.InferenceSession(onnx_file, options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors are its own types
            raise RuntimeError(f"ONNX Runtime cannot load {onnx_file} ({type(exc).__name__}: "
                               f"{exc}); re-export it with tools/export_model.py --onnx") from None
        self._input = self._session.get_inputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch})[0]


def create_predictor(backend: str, model: Optional[paddle.nn.Layer] = None,
                     save_dir: Optional[str] = None, threads: Optional[int] = None) -> Predictor:
    """A predictor for ``backend``: ``dygraph`` runs ``model``; ``paddle`` and ``onnx`` run the
    export in ``save_dir`` (``Global.save_inference_dir``). ``threads``: CPU threads.

    Raises:
        ValueError: unknown backend, or the argument it needs is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "dygraph":
        if model is None:
            raise ValueError("the dygraph backend needs the model (model=...)")
        return DygraphPredictor(model, threads)
    if save_dir is None:
        raise ValueError(f"the {backend} backend needs the exported model's folder "
                         "(save_dir=..., Global.save_inference_dir)")
    files = inference_files(save_dir)
    return (PaddlePredictor(files["model"], files["params"], threads) if backend == "paddle"
            else OnnxPredictor(files["onnx"], threads))
