"""One ``predict(batch) -> logits`` interface over three runtimes, as PaddleClas's
``python/predict_cls.py`` offers: the dygraph model, Paddle Inference on an exported
``inference.json`` + ``inference.pdiparams`` (``tools/export_model.py``, oneDNN when Paddle
has it) and ONNX Runtime on ``inference.onnx``. ``infer`` and ``benchmark`` use these, so a
benchmark times the code path that inference runs.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import paddle

from ..utils.threads import check_threads, cpu_threads, set_paddle_threads

__all__ = ["Predictor", "DygraphPredictor", "PaddlePredictor", "OnnxPredictor", "BACKENDS",
           "create_predictor", "inference_files", "parked_export"]

BACKENDS = ("dygraph", "paddle", "onnx")
_EXPORT_HINT = "python tools/export_model.py -c CONFIG -o Global.pretrained_model=WEIGHTS"


def parked_export(save_dir: str) -> str:
    """Where an export parks the old folder for the instant between its two renames."""
    save_dir = os.path.normpath(save_dir)
    return os.path.join(os.path.dirname(save_dir), f".{os.path.basename(save_dir)}.export-old")


def inference_files(save_dir: str, prefix: str = "inference") -> Dict[str, str]:
    """Paths of an exported model: ``{"model": .json, "params": .pdiparams, "onnx": .onnx}``;
    while an export killed between its two renames left no ``save_dir``, those of the old
    export it parked (the next export puts it back)."""
    if not os.path.isdir(save_dir) and os.path.isdir(parked_export(save_dir)):
        save_dir = parked_export(save_dir)
    base = os.path.join(save_dir, prefix)
    return {"model": base + ".json", "params": base + ".pdiparams", "onnx": base + ".onnx"}


def _as_batch(batch: Any) -> np.ndarray:
    arr = np.ascontiguousarray(batch, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"predict() takes a batch of images shaped [N, C, H, W], got shape "
                         f"{arr.shape}; add a batch axis with batch[None] for one image")
    return arr


def _check_file(path: str, what: str, flag: str = "") -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found; export the model first: "
                                f"{_EXPORT_HINT}{flag}")


class Predictor:
    """Base of the predictors: ``predict(float32 [N, C, H, W]) -> float32 [N, classes]``."""

    backend = "base"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a batch."""
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.predict(batch)


class DygraphPredictor(Predictor):
    """The model in eager mode (``model.eval()``, no gradients).

    Args:
        model: the model; it is switched to eval mode.
        threads: CPU math-library threads (process-wide in Paddle); ``None`` keeps them.
    """

    backend = "dygraph"

    def __init__(self, model: paddle.nn.Layer, threads: Optional[int] = None):
        self.model = model
        self.threads = threads
        if threads is not None:
            set_paddle_threads(threads)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.model.eval()
        with paddle.no_grad():
            return self.model(paddle.to_tensor(_as_batch(batch))).numpy()


class PaddlePredictor(Predictor):
    """Paddle Inference on an exported model (``paddle.inference.Config``, CPU).

    Args:
        model_file: the exported program (``inference.json``; Paddle 3's PIR format).
        params_file: its weights (``inference.pdiparams``).
        threads: CPU math-library threads; ``None``: ``OMP_NUM_THREADS``, else all cores.
        mkldnn: use oneDNN kernels; ``None`` turns them on when Paddle is built with them
            (about 3x faster than the plain CPU kernels for OrthoNet-18 on CIFAR images).

    Raises:
        FileNotFoundError: a file is missing (the message names the export command).
    """

    backend = "paddle"

    def __init__(self, model_file: str, params_file: str, threads: Optional[int] = None,
                 mkldnn: Optional[bool] = None):
        from paddle import inference  # loads the inference library only when used

        for path in (model_file, params_file):
            _check_file(path, "exported model file")
        self.threads = check_threads(threads if threads is not None else cpu_threads())
        config = inference.Config(model_file, params_file)
        config.disable_gpu()
        config.disable_glog_info()  # the pass log drowns the tools' own output
        config.set_cpu_math_library_num_threads(self.threads)
        self.mkldnn = bool(paddle.base.core.is_compiled_with_mkldnn() if mkldnn is None
                           else mkldnn)
        config.enable_mkldnn() if self.mkldnn else config.disable_mkldnn()
        self._predictor = inference.create_predictor(config)
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = _as_batch(batch)
        try:
            self._input.reshape(list(batch.shape))
            self._input.copy_from_cpu(batch)
            self._predictor.run()
        except Exception as exc:  # Paddle raises assorted C++ error types
            raise RuntimeError(f"Paddle Inference could not run a batch of shape "
                               f"{list(batch.shape)} ({type(exc).__name__}: {exc}); the input "
                               "must be [N, *Global.image_shape] as exported") from None
        return self._output.copy_to_cpu()


class OnnxPredictor(Predictor):
    """ONNX Runtime on an exported ``inference.onnx`` (CPU execution provider).

    Args:
        onnx_file: the ONNX model.
        threads: intra-op threads; ``None``: ``OMP_NUM_THREADS``, else all cores.

    Raises:
        FileNotFoundError: the file is missing (the message names the export command).
        RuntimeError: onnxruntime is not installed, or cannot load the file.
    """

    backend = "onnx"

    def __init__(self, onnx_file: str, threads: Optional[int] = None):
        try:
            import onnxruntime as ort  # an optional dependency (the onnx extra)
        except ImportError:
            # RuntimeError, so the tools report it in one line (cli.USER_ERRORS).
            raise RuntimeError("the onnx backend needs onnxruntime: pip install onnxruntime"
                               ) from None
        _check_file(onnx_file, "ONNX model", " --onnx")
        self.threads = check_threads(threads if threads is not None else cpu_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # paddle2onnx leaves unused initializers; ORT warns per one
        try:
            self._session = ort.InferenceSession(onnx_file, options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors are its own types
            raise RuntimeError(f"ONNX Runtime cannot load {onnx_file} ({type(exc).__name__}: "
                               f"{exc}); re-export it with tools/export_model.py --onnx") from None
        self._input_name = self._session.get_inputs()[0].name
        self.input_shape = self._session.get_inputs()[0].shape

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = _as_batch(batch)
        try:
            return self._session.run(None, {self._input_name: batch})[0]
        except Exception as exc:  # onnxruntime's errors are its own types
            raise RuntimeError(f"ONNX Runtime could not run a batch of shape {list(batch.shape)} "
                               f"({type(exc).__name__}: {exc}); the model takes "
                               f"{self.input_shape}") from None


def create_predictor(backend: str, model: Optional[paddle.nn.Layer] = None,
                     save_dir: Optional[str] = None, threads: Optional[int] = None) -> Predictor:
    """A predictor for ``backend``.

    Args:
        backend: ``dygraph`` (needs ``model``), ``paddle`` or ``onnx`` (need ``save_dir``,
            the folder ``tools/export_model.py`` wrote).
        model: the model, for ``dygraph``.
        save_dir: the exported model's folder, for ``paddle`` and ``onnx``.
        threads: CPU threads.

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
        raise ValueError(f"the {backend} backend needs the exported model's folder (save_dir=..., "
                         "Global.save_inference_dir)")
    files = inference_files(save_dir)
    if backend == "paddle":
        return PaddlePredictor(files["model"], files["params"], threads)
    return OnnxPredictor(files["onnx"], threads)
