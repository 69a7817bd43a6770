"""GPU inference options (issue 29, part 1): PaddleClas's switches reach
``paddle.inference.Config`` and ONNX Runtime's provider list.

On a CPU-only build the CPU switches are read back from a real Config; the GPU switches
(which that build ignores or refuses) are checked as calls on a recording Config with CUDA
faked; a GPU request gives one line with the fix. The tests marked ``gpu`` run only where
Paddle sees a GPU: they read the GPU switches back from a real Config and compare GPU
outputs with the CPU's."""
import numpy as np
import paddle
import pytest

from orthonets_paddle import build_model
from orthonets_paddle.deploy import predictors as P
from orthonets_paddle.deploy.export import export_model
from orthonets_paddle.deploy.predictors import (InferenceOptions, OnnxPredictor,
                                                PaddlePredictor, configure_paddle,
                                                create_predictor, inference_files,
                                                onnx_providers)

SHAPE = [3, 8, 8]
HAS_GPU = P.paddle_has_gpu()
gpu = pytest.mark.skipif(not HAS_GPU, reason="needs Paddle with CUDA and a visible GPU")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    paddle.seed(0)
    model = build_model("resnet18", 3, stem="cifar", width=4).eval()
    folder = str(tmp_path_factory.mktemp("gpu") / "inf")
    export_model(model, folder, SHAPE, onnx=True, check=False)
    x = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype(np.float32)
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    return folder, x, ref


def _config():
    from paddle import inference
    return inference.Config()


def test_cpu_switches_read_back_from_the_config(export):
    files = inference_files(export[0])
    pred = PaddlePredictor(files["model"], files["params"], options=InferenceOptions(
        device="cpu", cpu_num_threads=2, enable_mkldnn=False, ir_optim=False))
    c = pred.config
    assert (c.use_gpu(), c.mkldnn_enabled(), c.cpu_math_library_num_threads(), c.ir_optim()) \
        == (False, False, 2, False)
    assert pred.device == "Paddle Inference on CPU (2 threads)"
    np.testing.assert_allclose(pred.predict(export[1]), export[2], atol=1e-4)
    c = _config()
    configure_paddle(c, InferenceOptions(device="cpu", cpu_num_threads=3, enable_mkldnn=True))
    assert (c.use_gpu(), c.mkldnn_enabled(), c.cpu_math_library_num_threads(), c.ir_optim()) \
        == (False, True, 3, True)


@pytest.mark.skipif(HAS_GPU, reason="the CPU-only build's behaviour")
def test_auto_is_the_cpu_and_a_gpu_request_is_one_line_with_the_fix():
    c = _config()
    assert configure_paddle(c, InferenceOptions(cpu_num_threads=1)).startswith(
        "Paddle Inference on CPU") and not c.use_gpu()
    for opts in (InferenceOptions(device="gpu"), InferenceOptions(use_tensorrt=True)):
        with pytest.raises(RuntimeError) as info:
            configure_paddle(_config(), opts)
        msg = str(info.value)
        assert "\n" not in msg and "CPU-only build" in msg and "paddlepaddle-gpu" in msg
        assert "--device cpu" in msg


class Recorder:
    """A paddle.inference.Config stand-in that records the calls made on it."""

    def __init__(self):
        self.calls = {}

    def __getattr__(self, name):
        return lambda *a, **kw: self.calls.setdefault(name, []).append((a, kw))


def test_gpu_switches_reach_the_config(monkeypatch):
    """CUDA faked: the GPU calls PaddleClas's predictor makes, with our values. A CUDA build
    with no GPU visible is the same one-line error."""
    from paddle import inference
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 1)
    rec = Recorder()
    what = configure_paddle(rec, InferenceOptions(device="auto", gpu_id=1, gpu_mem=2000,
                                                  use_tensorrt=True, precision="fp16",
                                                  ir_optim=False), image_shape=SHAPE)
    assert what == "Paddle Inference on GPU 1, TensorRT fp16"
    assert rec.calls["enable_use_gpu"] == [((2000, 1), {})]
    assert "disable_gpu" not in rec.calls and "enable_mkldnn" not in rec.calls
    (args, kw), = rec.calls["enable_tensorrt_engine"]
    assert kw["precision_mode"] == inference.PrecisionType.Half and kw["max_batch_size"] == 8
    assert rec.calls["set_trt_dynamic_shape_info"] == [(  # min, max, opt
        ({"x": [1, *SHAPE]}, {"x": [8, *SHAPE]}, {"x": [1, *SHAPE]}), {})]
    assert rec.calls["switch_ir_optim"] == [((False,), {})]
    rec = Recorder()
    configure_paddle(rec, InferenceOptions(device="gpu", use_tensorrt=True,
                                           trt_shapes=[[1, *SHAPE], [4, *SHAPE], [16, *SHAPE]]))
    (_, kw), = rec.calls["enable_tensorrt_engine"]
    assert kw["precision_mode"] == inference.PrecisionType.Float32 and kw["max_batch_size"] == 16
    assert rec.calls["set_trt_dynamic_shape_info"][0][0][1] == {"x": [16, *SHAPE]}
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 0)
    with pytest.raises(RuntimeError, match="sees no GPU"):
        configure_paddle(Recorder(), InferenceOptions(device="gpu"))
    rec = Recorder()  # auto without a visible GPU: the CPU
    assert "CPU" in configure_paddle(rec, InferenceOptions(cpu_num_threads=1))
    assert "disable_gpu" in rec.calls and "enable_use_gpu" not in rec.calls


def test_options_are_checked():
    for kw, word in (({"device": "cuda"}, "device"), ({"precision": "int8"}, "precision"),
                     ({"precision": "fp16"}, "--use-tensorrt"),
                     ({"device": "cpu", "use_tensorrt": True}, "TensorRT runs on a GPU"),
                     ({"gpu_mem": 0}, "gpu_mem"), ({"gpu_id": -1}, "gpu_id")):
        with pytest.raises(ValueError, match=word):
            InferenceOptions(**kw)


ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_onnx_provider_choice():
    dev = {"device_id": 0}
    assert onnx_providers(InferenceOptions(), ALL) == [("CUDAExecutionProvider", dev),
                                                       "CPUExecutionProvider"]
    assert onnx_providers(InferenceOptions(device="gpu", use_tensorrt=True, precision="fp16",
                                           gpu_id=2), ALL) == [
        ("TensorrtExecutionProvider", {"device_id": 2, "trt_fp16_enable": True}),
        ("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]
    assert onnx_providers(InferenceOptions(device="cpu"), ALL) == ["CPUExecutionProvider"]
    cpu_only = ["CPUExecutionProvider"]
    assert onnx_providers(InferenceOptions(), cpu_only) == cpu_only
    with pytest.raises(RuntimeError) as info:
        onnx_providers(InferenceOptions(device="gpu"), cpu_only)
    assert "onnxruntime-gpu" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RuntimeError, match="TensorrtExecutionProvider"):
        onnx_providers(InferenceOptions(use_tensorrt=True), ALL[1:])


def test_onnx_says_which_provider_ran(export, monkeypatch):
    """With CUDA's provider listed but not startable here, the session runs on the CPU and
    the predictor says so, naming what was asked."""
    import onnxruntime as ort
    onnx = inference_files(export[0])["onnx"]
    pred = OnnxPredictor(onnx, threads=1)
    assert pred.device == "ONNX Runtime on CPUExecutionProvider (1 threads)"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        monkeypatch.setattr(ort, "get_available_providers", lambda: ALL[1:])
        pred = OnnxPredictor(onnx, threads=1)
        assert pred.device == ("ONNX Runtime on CPUExecutionProvider (1 threads) (asked for "
                               "CUDAExecutionProvider, which could not start)")
        np.testing.assert_allclose(pred.predict(export[1]), export[2], atol=1e-4)


# ----------------------------------------------------------------------------- GPU only
@gpu
def test_gpu_config_reads_back(export):
    files = inference_files(export[0])
    pred = PaddlePredictor(files["model"], files["params"],
                           options=InferenceOptions(device="gpu", gpu_id=0, gpu_mem=300))
    c = pred.config
    assert c.use_gpu() and c.gpu_device_id() == 0 and c.memory_pool_init_size_mb() == 300
    np.testing.assert_allclose(pred.predict(export[1]), export[2], atol=1e-3)


@gpu
def test_tensorrt_fp16_runs_and_agrees(export):
    pred = create_predictor("paddle", save_dir=export[0], image_shape=SHAPE,
                            options=InferenceOptions(device="gpu", use_tensorrt=True,
                                                     precision="fp16"))
    assert pred.config.tensorrt_engine_enabled()
    np.testing.assert_allclose(pred.predict(export[1]), export[2], atol=5e-2)


@gpu
def test_onnx_runtime_on_cuda(export):
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    pred = create_predictor("onnx", save_dir=export[0], options=InferenceOptions(device="gpu"))
    assert pred.device == "ONNX Runtime on CUDAExecutionProvider"
    np.testing.assert_allclose(pred.predict(export[1]), export[2], atol=1e-3)
