"""``predict(float32 [N, C, H, W]) -> float32 [N, classes]`` on three runtimes, as PaddleClas's
``predict_cls.py`` offers: dygraph, Paddle Inference and ONNX Runtime on the export. Infer and
benchmark both use these, so a benchmark times the code path inference runs."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle

from ..utils.threads import check_threads, cpu_threads, set_paddle_threads

__all__ = ["Predictor", "DygraphPredictor", "PaddlePredictor", "OnnxPredictor", "BACKENDS",
           "InferenceOptions", "configure_paddle", "onnx_providers", "paddle_has_gpu",
           "add_inference_options", "inference_options",
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
    """The model in eager mode, no gradients; ``threads`` sets Paddle's (process-wide);
    ``options.device`` ``cpu``/``gpu`` moves the model there (``auto``: Paddle's default)."""

    def __init__(self, model: paddle.nn.Layer, threads: Optional[int] = None,
                 options: Optional[InferenceOptions] = None):
        self.model, self.threads = model, threads
        if threads is not None:
            set_paddle_threads(threads)
        opts = options or InferenceOptions()
        if opts.use_tensorrt:
            raise ValueError("--use-tensorrt applies to an export (--backend paddle or onnx), "
                             "not to the dygraph backend")
        if opts.device != "auto":
            place = f"gpu:{opts.gpu_id}" if _paddle_uses_gpu(opts) else "cpu"
            paddle.set_device(place)
            model.to(device=place)
        self.device = f"dygraph on {paddle.get_device()}"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.model.eval()
        with paddle.no_grad():
            return self.model(paddle.to_tensor(_as_batch(batch))).numpy()


PADDLE_GPU_FIX = ("install Paddle's GPU build from its wheel index, e.g. python -m pip install "
                  "paddlepaddle-gpu -i https://www.paddlepaddle.org.cn/packages/stable/cu126/ "
                  "(pick your CUDA), or use --device cpu")


@dataclasses.dataclass
class InferenceOptions:
    """Runtime options of the exported-model predictors, PaddleClas's inference options
    (``deploy/configs/inference_cls.yaml``) under their names where one exists.

    Attributes:
        device: ``auto`` (the GPU when the runtime has one), ``cpu`` or ``gpu``
            (PaddleClas's ``use_gpu``).
        gpu_id: GPU index. gpu_mem: MB Paddle Inference reserves at start (it grows on demand).
        use_tensorrt: run TensorRT subgraphs (GPU only); ``precision`` ``fp32`` or ``fp16``
            (PaddleClas's ``use_fp16``, which also needs TensorRT).
        trt_shapes: ``[min, opt, max]`` input shapes for TensorRT's dynamic shapes (default:
            batch 1, 1 and 8 at the export's image shape, as PaddleX's ``Hpi`` writes them).
        enable_mkldnn: oneDNN on the CPU (``None``: when Paddle has it).
        cpu_num_threads: CPU threads (``None``: ``OMP_NUM_THREADS``, else all cores).
        ir_optim: Paddle Inference's graph optimisation passes.
    """

    device: str = "auto"
    gpu_id: int = 0
    gpu_mem: int = 1000
    use_tensorrt: bool = False
    precision: str = "fp32"
    trt_shapes: Optional[Sequence[Sequence[int]]] = None
    enable_mkldnn: Optional[bool] = None
    cpu_num_threads: Optional[int] = None
    ir_optim: bool = True

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.precision == "fp16" and not self.use_tensorrt:
            raise ValueError("precision fp16 runs through TensorRT (as PaddleClas's use_fp16): "
                             "add --use-tensorrt, or use --precision fp32")
        if self.use_tensorrt and self.device == "cpu":
            raise ValueError("TensorRT runs on a GPU: use --device gpu (or auto) with "
                             "--use-tensorrt, or drop --use-tensorrt")
        for key in ("gpu_id", "gpu_mem"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < (key == "gpu_mem"):
                raise ValueError(f"{key} must be an integer >= {int(key == 'gpu_mem')}, got {v!r}")


DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("fp32", "fp16")


def paddle_has_gpu() -> bool:
    """Paddle is a CUDA build and sees at least one GPU."""
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def _paddle_uses_gpu(opts: InferenceOptions) -> bool:
    """Whether Paddle Inference runs on the GPU; a GPU asked of a CPU-only build is an error
    (checked before any GPU call: that build ignores ``enable_use_gpu`` with a log line)."""
    if opts.device == "cpu":
        return False
    if paddle_has_gpu():
        return True
    if opts.device == "gpu" or opts.use_tensorrt:
        what = ("this Paddle is a CPU-only build" if not paddle.is_compiled_with_cuda()
                else "Paddle sees no GPU (CUDA_VISIBLE_DEVICES, driver)")
        raise RuntimeError(f"--device gpu{' --use-tensorrt' * opts.use_tensorrt} asked for a "
                           f"GPU but {what}; {PADDLE_GPU_FIX}")
    return False


def configure_paddle(config: Any, opts: InferenceOptions, input_name: str = "x",
                     image_shape: Optional[Sequence[int]] = None) -> str:
    """Apply ``opts`` to a ``paddle.inference.Config``; return what will run, in words."""
    config.disable_glog_info()  # the pass log drowns the tools' own output
    config.switch_ir_optim(bool(opts.ir_optim))
    threads = check_threads(opts.cpu_num_threads if opts.cpu_num_threads is not None
                            else cpu_threads())
    config.set_cpu_math_library_num_threads(threads)
    if _paddle_uses_gpu(opts):
        config.enable_use_gpu(int(opts.gpu_mem), int(opts.gpu_id))
        what = f"Paddle Inference on GPU {opts.gpu_id}"
        if opts.use_tensorrt:
            from paddle import inference
            precision = (inference.PrecisionType.Half if opts.precision == "fp16"
                         else inference.PrecisionType.Float32)
            shapes = opts.trt_shapes or (
                [[1, *image_shape], [1, *image_shape], [8, *image_shape]] if image_shape else None)
            config.enable_tensorrt_engine(workspace_size=1 << 30,
                                          max_batch_size=int(shapes[2][0]) if shapes else 8,
                                          min_subgraph_size=3, precision_mode=precision,
                                          use_static=False, use_calib_mode=False)
            if shapes:  # min, max, opt: Paddle's argument order
                config.set_trt_dynamic_shape_info({input_name: list(shapes[0])},
                                                  {input_name: list(shapes[2])},
                                                  {input_name: list(shapes[1])})
            what += f", TensorRT {opts.precision}"
        return what
    config.disable_gpu()
    mkldnn = (paddle.base.core.is_compiled_with_mkldnn() if opts.enable_mkldnn is None
              else bool(opts.enable_mkldnn))
    if mkldnn:  # 3x on OrthoNet-18 here
        config.set_mkldnn_cache_capacity(10)  # PaddleClas's bound on cached shapes
        config.enable_mkldnn()
    else:  # Paddle 3's CPU config has oneDNN on by default
        config.disable_mkldnn()
    return f"Paddle Inference on CPU ({threads} threads{', oneDNN' if mkldnn else ''})"


class PaddlePredictor(_Exported):
    """Paddle Inference on an exported ``.json`` + ``.pdiparams``, with ``options``
    (``InferenceOptions``; ``threads`` overrides its ``cpu_num_threads``). ``device`` says,
    in words, what runs."""

    runtime = "Paddle Inference"

    def __init__(self, model_file: str, params_file: str, threads: Optional[int] = None,
                 options: Optional[InferenceOptions] = None,
                 image_shape: Optional[Sequence[int]] = None):
        from paddle import inference  # loads the inference library only when used

        opts = dataclasses.replace(options or InferenceOptions())
        self.threads = _runtime_setup((model_file, params_file),
                                      threads if threads is not None else opts.cpu_num_threads)
        opts.cpu_num_threads = self.threads
        config = inference.Config(model_file, params_file)
        self.device = configure_paddle(config, opts, image_shape=image_shape)
        self.config = config
        self._predictor = inference.create_predictor(config)
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self._predictor.run()
        return self._output.copy_to_cpu()


ORT_GPU_FIX = "pip uninstall onnxruntime && pip install onnxruntime-gpu (matching your CUDA)"


def onnx_providers(opts: InferenceOptions, available: Sequence[str]) -> List[Any]:
    """ONNX Runtime's execution providers for ``opts`` from the ``available`` ones, best
    first: TensorRT (when asked), CUDA, then the CPU. ``device: gpu`` without CUDA's
    provider is an error naming the fix."""
    chosen: List[Any] = []
    if opts.device != "cpu":
        gpu = {"device_id": int(opts.gpu_id)}
        if opts.use_tensorrt and "TensorrtExecutionProvider" in available:
            chosen.append(("TensorrtExecutionProvider",
                           {**gpu, "trt_fp16_enable": opts.precision == "fp16"}))
        if "CUDAExecutionProvider" in available:
            chosen.append(("CUDAExecutionProvider", gpu))
        if not chosen and (opts.device == "gpu" or opts.use_tensorrt):
            raise RuntimeError(f"a GPU was asked (--device gpu or --use-tensorrt) but ONNX "
                               f"Runtime offers only "
                               f"{', '.join(available)}; {ORT_GPU_FIX}, or use --device cpu")
        if opts.use_tensorrt and "TensorrtExecutionProvider" not in available:
            raise RuntimeError("--use-tensorrt: this ONNX Runtime has no "
                               "TensorrtExecutionProvider (it offers "
                               f"{', '.join(available)}); install onnxruntime-gpu with "
                               "TensorRT, or drop --use-tensorrt")
    return chosen + ["CPUExecutionProvider"]


class OnnxPredictor(_Exported):
    """ONNX Runtime on an exported ``inference.onnx``, on the providers ``options`` pick
    (``onnx_providers``), with ``threads`` intra-op threads (``None``: the options', else
    ``OMP_NUM_THREADS``, else all cores). ``device`` names the provider that runs."""

    runtime = "ONNX Runtime"

    def __init__(self, onnx_file: str, threads: Optional[int] = None,
                 options: Optional[InferenceOptions] = None):
        try:
            import onnxruntime as ort  # an optional dependency
        except ImportError:
            raise RuntimeError("the onnx backend needs onnxruntime: pip install onnxruntime")
        opts = options or InferenceOptions()
        self.threads = _runtime_setup((onnx_file,), threads if threads is not None
                                      else opts.cpu_num_threads, " --onnx")
        providers = onnx_providers(opts, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        options.log_severity_level = 3  # paddle2onnx leaves unused initializers; ORT warns per one
        if not opts.ir_optim:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self._session = ort.InferenceSession(onnx_file, options, providers=providers)
        except Exception as exc:  # onnxruntime's errors are its own types
            raise RuntimeError(f"ONNX Runtime cannot load {onnx_file} ({type(exc).__name__}: "
                               f"{exc}); re-export it with tools/export_model.py --onnx") from None
        self._input = self._session.get_inputs()[0].name
        ran = self._session.get_providers()  # what the session really took, best first
        self.device = f"ONNX Runtime on {ran[0]}"
        if ran[0] == "CPUExecutionProvider":
            self.device += f" ({self.threads} threads)"
        if len(providers) > 1 and ran[0] == "CPUExecutionProvider":
            self.device += f" (asked for {providers[0][0]}, which could not start)"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch})[0]


def create_predictor(backend: str, model: Optional[paddle.nn.Layer] = None,
                     save_dir: Optional[str] = None, threads: Optional[int] = None,
                     options: Optional[InferenceOptions] = None,
                     image_shape: Optional[Sequence[int]] = None) -> Predictor:
    """A predictor for ``backend``: ``dygraph`` runs ``model``; ``paddle`` and ``onnx`` run the
    export in ``save_dir`` (``Global.save_inference_dir``), with ``options``
    (``InferenceOptions``: device, TensorRT, ...; ``image_shape`` [C, H, W] sizes TensorRT's
    dynamic shapes). ``threads``: CPU threads.

    Raises:
        ValueError: unknown backend, or the argument it needs is missing.
        RuntimeError: a GPU asked of a runtime without one (the message says how to get it).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "dygraph":
        if model is None:
            raise ValueError("the dygraph backend needs the model (model=...)")
        return DygraphPredictor(model, threads, options)
    if save_dir is None:
        raise ValueError(f"the {backend} backend needs the exported model's folder "
                         "(save_dir=..., Global.save_inference_dir)")
    files = inference_files(save_dir)
    return (PaddlePredictor(files["model"], files["params"], threads, options, image_shape)
            if backend == "paddle" else OnnxPredictor(files["onnx"], threads, options))


def add_inference_options(parser: Any) -> None:
    """The ``InferenceOptions`` as command-line flags (infer and benchmark)."""
    g = parser.add_argument_group("runtime (paddle and onnx backends; PaddleClas's inference "
                                  "options)")
    g.add_argument("--device", choices=DEVICES, default=None,
                   help="auto: the GPU when the runtime has one, else the CPU (default: "
                        "Global.device with -c, else auto)")
    g.add_argument("--gpu-id", type=int, default=0, help="GPU index (default: 0)")
    g.add_argument("--gpu-mem", type=int, default=1000,
                   help="MB Paddle Inference reserves on the GPU at start (default: 1000)")
    g.add_argument("--use-tensorrt", action="store_true",
                   help="TensorRT subgraphs (GPU; Paddle Inference, or ONNX Runtime's provider)")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="TensorRT precision (default: fp32; fp16 needs --use-tensorrt)")
    g.add_argument("--no-mkldnn", action="store_true", help="CPU: no oneDNN (default: on)")
    g.add_argument("--no-ir-optim", action="store_true", help="no graph optimisation passes")


def inference_options(args: Any, device: Optional[str] = None) -> InferenceOptions:
    """``add_inference_options``' flags as ``InferenceOptions`` (``device``: the default)."""
    return InferenceOptions(device=args.device or device or "auto", gpu_id=args.gpu_id,
                            gpu_mem=args.gpu_mem, use_tensorrt=args.use_tensorrt,
                            precision=args.precision,
                            enable_mkldnn=False if args.no_mkldnn else None,
                            cpu_num_threads=getattr(args, "threads", None),
                            ir_optim=not args.no_ir_optim)
