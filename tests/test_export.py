"""Export round trips at full width: Paddle Inference and ONNX Runtime outputs equal the
dygraph model's within 1e-4 (relative to the output scale), for several batch sizes
through one predictor (the batch axis is dynamic)."""
import numpy as np
import paddle
import pytest

from orthonets_paddle.deploy.export import export_model, verify_export
from orthonets_paddle.models import build_model
from orthonets_paddle.deploy.predictors import OnnxPredictor, PaddlePredictor, inference_files


def _round_trip(model, tmp_path, image_shape, batch_sizes):
    out = export_model(model, str(tmp_path / "inference"), image_shape, onnx=True, check=False)
    files = inference_files(str(tmp_path / "inference"))
    assert out["files"] == files
    predictors = {"paddle": PaddlePredictor(files["model"], files["params"]),
                  "onnx": OnnxPredictor(files["onnx"])}
    rng = np.random.default_rng(0)
    diffs = {name: 0.0 for name in predictors}
    for n in batch_sizes:
        x = rng.standard_normal((n, *image_shape)).astype(np.float32)
        with paddle.no_grad():
            ref = model(paddle.to_tensor(x)).numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        for name, predictor in predictors.items():
            got = predictor.predict(x)
            assert got.shape == ref.shape, (name, n)
            diff = float(np.abs(got - ref).max())
            assert diff <= 1e-4 * scale, (name, n, diff)
            diffs[name] = max(diffs[name], diff)
    print(f"max abs diff {diffs}")
    return diffs


def test_orthonet18_cifar_round_trip(tmp_path):
    paddle.seed(1)
    model = build_model("orthonet18", 10, stem="cifar")
    model.eval()
    _round_trip(model, tmp_path, [3, 32, 32], (1, 3))
    # The package's own check agrees.
    report = verify_export(model, str(tmp_path / "inference"), [3, 32, 32], (2,))
    assert report["ok"] and set(report["max_abs_diff"]) == {"paddle", "onnx"}


def test_orthonet50_imagenet_round_trip(tmp_path):
    paddle.seed(2)
    # The authors' model: filters made for 256 inputs (64/32/16/8), exported at 224, so each
    # attention squeezes a smaller map than its filters (the pooling folded into the filters).
    model = build_model("orthonet50", 1000)
    model.eval()
    _round_trip(model, tmp_path, [3, 224, 224], (1, 2))


def test_export_replaces_and_drops_stale_onnx(tmp_path):
    model = build_model("resnet18", 4, stem="cifar", width=4)
    target = str(tmp_path / "inf")
    export_model(model, target, [3, 16, 16], onnx=True, check_batch_sizes=(1,))
    out = export_model(model, target, [3, 16, 16], onnx=False, check_batch_sizes=(1, 2))
    assert sorted(out["files"]) == ["model", "params"] and out["check"]["ok"]
    assert not (tmp_path / "inf" / "inference.onnx").exists()
    with pytest.raises(ValueError, match="image_shape"):
        export_model(model, target, [32, 32], onnx=False)


def test_export_at_another_size_than_the_filters(tmp_path):
    # Filters for 32x32 inputs exported at 28x28 and 40x40: ONNX and Paddle Inference agree
    # with dygraph (adaptive pooling is folded into the filters, no AveragePool needed).
    model = build_model("orthonet18", 10, stem="cifar", width=4)
    model.eval()
    for side in (28, 40):
        out = export_model(model, str(tmp_path / f"inf{side}"), [3, side, side], onnx=True,
                           check_batch_sizes=(1, 2))
        assert out["check"]["ok"] and set(out["check"]["max_abs_diff"]) == {"paddle", "onnx"}


