"""The command-line tools (eval, export_model, infer, benchmark, compare) and the package
code behind them, on tiny generated data and width-8 models."""
import json
import logging
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

from data_files import make_cifar_archive, make_image_folder
from orthonets_paddle.deploy.benchmark import (BACKEND_LABELS, latency_stats, make_train_step,
                                               time_interleaved)
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.models import build_model_from_config
from orthonets_paddle.engine.metrics import evaluate_from_config
from orthonets_paddle.deploy.export import ExportError, export_from_config
from orthonets_paddle.deploy.infer import InferError, infer_from_config, list_images
from orthonets_paddle.deploy.predictors import DygraphPredictor, create_predictor
from orthonets_paddle.models.pretrained import WeightsError
from orthonets_paddle.engine.runs import compare_runs, count_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
RESNET_CFG = os.path.join(ROOT, "configs", "resnet18_cifar10.yaml")
NORM = "{Normalize: {mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}"
INFER_TRANSFORMS = f"Infer.transforms=[{{Resize: {{size: [32, 32]}}}}, ToTensor, {NORM}]"


def run_tool(name, *args, timeout=110):
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("ORTHONETS_DEBUG", None)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A CIFAR archive, width-8 orthonet18 weights and the overrides that use them."""
    root = tmp_path_factory.mktemp("tools")
    archive = make_cifar_archive(root / "data", n_train=10, n_test=30)
    overrides = [f"DataLoader.Eval.dataset.data_file={archive}", "DataLoader.Eval.loader.num_workers=0",
                 "DataLoader.Eval.sampler.batch_size=16", "Arch.width=8", "Global.progress_bar=False",
                 f"Global.save_inference_dir={root / 'inference'}"]
    model = build_model_from_config(load_config(CFG, overrides)["Arch"])
    weights = str(root / "orthonet18_w8.pdparams")
    paddle.save(model.state_dict(), weights)
    return {"root": root, "archive": archive, "overrides": overrides, "weights": weights}


def cfg_for(work, out_dir, *extra, path=CFG, weights=True):
    ov = [*work["overrides"], f"Global.output_dir={out_dir}", *extra]
    if weights:
        ov.append(f"Global.pretrained_model={work['weights']}")
    return load_config(path, ov)


def o_args(work, out_dir, *extra, weights=True):
    ov = [*work["overrides"], f"Global.output_dir={out_dir}", *extra]
    if weights:
        ov.append(f"Global.pretrained_model={work['weights']}")
    return [a for o in ov for a in ("-o", o)]


# ----------------------------------------------------------------------------- eval
# The eval tool's figures against numpy: tests/test_metrics.py.
def test_eval_other_arch_lists_mismatches(work, tmp_path):
    cfg = cfg_for(work, tmp_path, path=RESNET_CFG)
    with pytest.raises(WeightsError, match=r"strict.*unexpected in file.*att\.filters"):
        evaluate_from_config(cfg)
    assert not (tmp_path / "eval_results.json").exists()


def test_eval_corrupt_weights_overwrites_nothing(work, tmp_path):
    bad = tmp_path / "bad.pdparams"
    with open(work["weights"], "rb") as f:
        bad.write_bytes(f.read()[:2000])
    results = tmp_path / "eval_results.json"
    results.write_text('{"top1": 0.5}')
    cfg = cfg_for(work, tmp_path, f"Global.pretrained_model={bad}", weights=False)
    with pytest.raises(WeightsError, match="truncated or (corrupt|crafted)"):
        evaluate_from_config(cfg)
    assert results.read_text() == '{"top1": 0.5}'


def test_eval_without_weights_is_an_error(work, tmp_path):
    proc = run_tool("eval.py", "-c", CFG, *o_args(work, tmp_path, weights=False))
    assert proc.returncode == 2
    assert "Global.pretrained_model is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- export + infer
@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("imgs"), classes=3, per_class=2)


def test_export_tool_and_infer_backends(work, images, tmp_path):
    proc = run_tool("export_model.py", "-c", CFG, *o_args(work, tmp_path), "--onnx")
    assert proc.returncode == 0, proc.stderr
    inf = work["root"] / "inference"
    assert sorted(os.listdir(inf)) == ["inference.json", "inference.onnx", "inference.pdiparams"]
    assert "max abs diff" in proc.stdout
    assert "PIR" not in proc.stderr and "W1" not in proc.stderr  # Paddle's tracing notices
    # No temporary export folders left next to the output.
    assert not [p for p in os.listdir(work["root"]) if ".export-" in p]

    scores = {}
    for backend in ("dygraph", "paddle", "onnx"):
        cfg = cfg_for(work, tmp_path / backend, f"Infer.infer_imgs={images}", INFER_TRANSFORMS,
                      "Infer.PostProcess.topk=3")
        out = infer_from_config(cfg, backend=backend)
        assert len(out["results"]) == 6
        scores[backend] = np.array([[t["score"] for t in r["topk"]] for r in out["results"]])
        assert os.path.isfile(out["results_file"])
    np.testing.assert_allclose(scores["paddle"], scores["dygraph"], atol=1e-4)
    np.testing.assert_allclose(scores["onnx"], scores["dygraph"], atol=1e-4)


def test_infer_scores_are_the_softmax_top_k_of_the_logits(work, tmp_path):
    """Infer's classes and scores against numpy on the model's logits (32x32 PNGs, so the
    Resize is the identity and decoding is lossless)."""
    from PIL import Image
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(folder / f"im_{i}.png")
    cfg = cfg_for(work, tmp_path / "out", f"Infer.infer_imgs={folder}", INFER_TRANSFORMS,
                  "Infer.PostProcess.topk=4", "Infer.batch_size=2")
    got = infer_from_config(cfg)["results"]
    model = build_model_from_config(cfg["Arch"])
    model.set_state_dict(paddle.load(work["weights"]))
    model.eval()
    x = ((pixels.astype(np.float32) / 255 - 0.5) / 0.5).transpose(0, 3, 1, 2)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x)).numpy().astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert [os.path.basename(r["image"]) for r in got] == [f"im_{i}.png" for i in range(5)]
    for row, p in zip(got, probs):
        want = np.argsort(-p)[:4]
        assert [t["class_id"] for t in row["topk"]] == want.tolist()
        np.testing.assert_allclose([t["score"] for t in row["topk"]], p[want], rtol=1e-4)
        assert row["topk"][0]["class_name"] == cfg["Infer"]["PostProcess"]["class_names"][want[0]]


def test_export_failure_leaves_nothing(work, tmp_path, monkeypatch):
    import orthonets_paddle.deploy.export as export_mod

    def broken(*args, **kwargs):
        raise ExportError("simulated paddle2onnx failure")

    monkeypatch.setattr(export_mod, "export_onnx", broken)
    target = tmp_path / "inference_out"
    cfg = cfg_for(work, tmp_path, f"Global.save_inference_dir={target}")
    with pytest.raises(ExportError, match="simulated"):
        export_from_config(cfg, onnx=True)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_infer_tool_topk_json(work, images, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"label_{i}" for i in range(10)) + "\n")
    proc = run_tool("infer.py", "-c", CFG,
                    *o_args(work, tmp_path, f"Infer.infer_imgs={images}", INFER_TRANSFORMS,
                            f"Infer.PostProcess.class_names={names}", "Infer.batch_size=4"))
    assert proc.returncode == 0, proc.stderr
    assert "class_0/img_0.png: label_" in proc.stdout
    assert f"model: {work['weights']}" in proc.stdout
    text = (tmp_path / "infer_results_dygraph.json").read_text()
    assert text.startswith('{\n  "backend"')  # indented JSON
    saved = json.loads(text)
    assert saved["model_files"] == [work["weights"]]
    assert saved["backend"] == "dygraph" and len(saved["results"]) == 6
    for row in saved["results"]:
        top = row["topk"]
        assert len(top) == 5
        assert all(t["class_name"] == f"label_{t['class_id']}" for t in top)
        s = [t["score"] for t in top]
        assert s == sorted(s, reverse=True) and 0 < sum(s) <= 1 + 1e-9


def test_infer_errors_name_the_file(work, images, tmp_path):
    missing = tmp_path / "nope.png"
    cfg = cfg_for(work, tmp_path, f"Infer.infer_imgs={missing}")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        infer_from_config(cfg)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    cfg = cfg_for(work, tmp_path, f"Infer.infer_imgs={text}")
    with pytest.raises(InferError, match="notes.png is not a readable image"):
        infer_from_config(cfg)
    proc = run_tool("infer.py", "-c", CFG, *o_args(work, tmp_path, f"Infer.infer_imgs={text}"))
    assert proc.returncode == 2 and "notes.png" in proc.stderr and "Traceback" not in proc.stderr
    # A folder: non-image extensions are skipped.
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "readme.txt").write_text("x")
    with pytest.raises(InferError, match="no image files"):
        list_images(str(tmp_path / "folder"))
    cfg = cfg_for(work, tmp_path, f"Infer.infer_imgs={images}", "Infer.PostProcess.class_names=[a, b]")
    with pytest.raises(InferError, match="2 names but the model has 10 classes"):
        infer_from_config(cfg)


FMNIST_CFG = os.path.join(ROOT, "configs", "orthonet18_fashionmnist.yaml")


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    """Random-weight Fashion-MNIST OrthoNet-18 (width 8, grayscale 28x28), exported."""
    root = tmp_path_factory.mktemp("fmnist")
    paddle.seed(11)
    over = [f"Global.save_inference_dir={root / 'inference'}", "Global.progress_bar=False"]
    model = build_model_from_config(load_config(FMNIST_CFG, over)["Arch"])
    weights = str(root / "w.pdparams")
    paddle.save(model.state_dict(), weights)
    over.append(f"Global.pretrained_model={weights}")
    export_from_config(load_config(FMNIST_CFG, over + [f"Global.output_dir={root}"]), onnx=True)
    return {"root": root, "overrides": over, "weights": weights}


def _fmnist_images(folder, rng):
    from PIL import Image
    folder.mkdir()
    for side in (28, 64, 280):
        for i in range(2):
            # A bright square on noise: cropping instead of resizing changes what is seen.
            img = rng.integers(0, 60, (side, side)).astype(np.uint8)
            img[side // 8: side // 2, side // 4: side // 2 + i * side // 4] = 250
            Image.fromarray(img, "L").save(folder / f"s{side}_{i}.png")
    return folder


def test_any_image_size_gives_one_answer_on_all_backends(fmnist, tmp_path):
    """28x28, 64x64 and 280x280 images, Infer.transforms null (the shipped config): the
    pipeline resolved from pretrained_cfg (crop_pct 1.0, bilinear, the eval Normalize)
    gives the same top-3 on dygraph, Paddle Inference and ONNX Runtime, and that equals
    the model on the image PIL-resized to 28x28 and normalised by hand."""
    from PIL import Image
    folder = _fmnist_images(tmp_path / "imgs", np.random.default_rng(12))
    outs = {}
    for backend in ("dygraph", "paddle", "onnx"):
        cfg = load_config(FMNIST_CFG, fmnist["overrides"] + [
            f"Global.output_dir={tmp_path}", f"Infer.infer_imgs={folder}"])
        outs[backend] = infer_from_config(cfg, backend=backend)
        assert outs[backend]["results_file"] == str(tmp_path / f"infer_results_{backend}.json")
    assert outs["paddle"]["model_files"][0].endswith("inference.json")
    assert "runs the export" in outs["onnx"]["note"] and "inference.onnx" in outs["onnx"]["note"]
    model = build_model_from_config(cfg["Arch"])
    model.set_state_dict(paddle.load(fmnist["weights"]))
    model.eval()
    ids = {b: [[t["class_id"] for t in r["topk"]] for r in o["results"]] for b, o in outs.items()}
    assert ids["dygraph"] == ids["paddle"] == ids["onnx"] and len(ids["dygraph"]) == 6
    for b in ("paddle", "onnx"):
        np.testing.assert_allclose([[t["score"] for t in r["topk"]] for r in outs[b]["results"]],
                                   [[t["score"] for t in r["topk"]] for r in outs["dygraph"]["results"]],
                                   atol=1e-4)
    for row in outs["dygraph"]["results"]:
        with Image.open(row["image"]) as im:
            small = np.asarray(im.resize((28, 28), Image.BILINEAR), dtype=np.float32) / 255
        x = ((small - 0.286) / 0.353)[None, None]
        with paddle.no_grad():
            logits = model(paddle.to_tensor(x)).numpy()[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        want = np.argsort(-p)[:3]
        assert [t["class_id"] for t in row["topk"]] == want.tolist(), row["image"]
        np.testing.assert_allclose([t["score"] for t in row["topk"]], p[want], rtol=1e-5)


def test_bad_file_in_a_folder_is_skipped_or_fatal(fmnist, tmp_path, caplog):
    folder = _fmnist_images(tmp_path / "imgs", np.random.default_rng(13))
    (folder / "broken.png").write_bytes(b"not a png")
    cfg = load_config(FMNIST_CFG, fmnist["overrides"] + [
        f"Global.output_dir={tmp_path}", f"Infer.infer_imgs={folder}"])
    logger = logging.getLogger("orthonets_paddle")  # it does not propagate once the CLI set it up
    logger.addHandler(caplog.handler)
    try:
        out = infer_from_config(cfg)
    finally:
        logger.removeHandler(caplog.handler)
    assert out["skipped"] == [str(folder / "broken.png")] and len(out["results"]) == 6
    assert "broken.png" in caplog.text and "skipped" in caplog.text
    with pytest.raises(InferError, match="broken.png is not a readable image"):
        infer_from_config(cfg, strict=True)
    proc = run_tool("infer.py", "-c", FMNIST_CFG, "--strict", *[a for o in fmnist["overrides"] + [
        f"Global.output_dir={tmp_path}", f"Infer.infer_imgs={folder}"] for a in ("-o", o)])
    assert proc.returncode == 2 and "broken.png" in proc.stderr


def test_infer_settings_reads_postprocess_and_the_flat_keys(tmp_path):
    from orthonets_paddle.deploy.infer import infer_settings, load_class_id_map
    flat = {"Infer": {"infer_imgs": "a.png", "batch_size": 2, "topk": 3, "class_names": ["x"]}}
    assert infer_settings(flat) == {"infer_imgs": "a.png", "batch_size": 2, "transforms": None,
                                    "topk": 3, "class_names": ["x"], "class_id_map_file": None}
    idmap = tmp_path / "ids.txt"
    idmap.write_text("1 dog\n0 cat\n\n2 hot dog\n")
    new = {"Infer": {"infer_imgs": "b", "batch_size": 4, "transforms": None,
                     "PostProcess": {"name": "Topk", "topk": 1, "class_id_map_file": str(idmap)}}}
    got = infer_settings(new)
    assert got["topk"] == 1 and got["class_id_map_file"] == str(idmap)
    assert load_class_id_map(got["class_id_map_file"], 3) == ["cat", "dog", "hot dog"]
    with pytest.raises(InferError, match=r"no name for class id\(s\) \[3\]"):
        load_class_id_map(str(idmap), 4)
    with pytest.raises(InferError, match="valid: Topk"):
        infer_settings({"Infer": {"PostProcess": {"name": "Argmax"}}})


def test_static_backend_without_export_is_an_error(work, tmp_path):
    with pytest.raises(FileNotFoundError, match="export_model.py"):
        create_predictor("paddle", save_dir=str(tmp_path))
    with pytest.raises(ValueError, match="valid: dygraph, paddle, onnx"):
        create_predictor("tensorrt")


# ----------------------------------------------------------------------------- benchmark
def test_benchmark_tool_compare(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_tool("benchmark.py", "--arch", "orthonet18", "--num-classes", 10, "--stem", "cifar",
                    "--width", 8, "--batch-size", 2, "--warmup", 1, "--repeats", 2, "--threads", 1,
                    "--compare", "resnet18", "--train", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "PIR" not in proc.stderr and "W1" not in proc.stderr  # Paddle's tracing notices
    assert "1 CPU threads" in proc.stdout
    for text in ("orthonet18", "resnet18", "Paddle Inference", "ONNX Runtime", "training",
                 "throughput ratio orthonet18 / resnet18"):
        assert text in proc.stdout
    with open(out) as f:
        saved = json.load(f)
    assert set(saved["models"]) == {"orthonet18", "resnet18"}
    assert set(saved["ratios"]) == {"dygraph", "paddle", "onnx", "train"}
    assert saved["ratio_of"] == ["orthonet18", "resnet18"]
    m = saved["models"]
    for kind, ratio in saved["ratios"].items():
        a, b = m["orthonet18"][kind], m["resnet18"][kind]
        assert a["repeats"] == b["repeats"] and a["batch_size"] == b["batch_size"] == 2
        assert ratio == pytest.approx(a["images_per_sec"] / b["images_per_sec"])
        # The printed ratio is the saved one.
        assert f"{BACKEND_LABELS[kind]} {ratio:.3f}" in proc.stdout, kind


def test_measure_functions():
    batch = np.zeros((4, 3, 8, 8), np.float32)
    calls = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             warmup=1, repeats=5)
    assert calls == ["a", "b"] + ["a", "b"] * 5  # 1 untimed call each, then 5 round robins
    stats = latency_stats(times["a"], 4)
    assert stats["batch_size"] == 4 and stats["repeats"] == 5
    lat = stats["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"]
    assert stats["images_per_sec"] == pytest.approx(4 / (lat["mean"] / 1e3))
    got = latency_stats([0.5, 0.25, 0.75, 0.5], 10)
    assert got["images_per_sec"] == pytest.approx(20.0)
    assert got["latency_ms"]["min"] == 250.0 and got["latency_ms"]["p50"] == 500.0

    model = build_model_from_config({"name": "resnet18", "class_num": 3, "stem": "cifar",
                                     "width": 4})
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    step = make_train_step(model, batch)
    assert np.isfinite(step()) and np.isfinite(step())
    # Training runs on a copy: the caller's model is unchanged.
    assert all(np.array_equal(before[k], v.numpy()) for k, v in model.state_dict().items())
    pred = DygraphPredictor(model)
    assert pred.predict(batch).shape == (4, 3)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        pred.predict(batch[0])


# ----------------------------------------------------------------------------- compare
def _fake_run(path, arch, accs, throughput=None, extra=()):
    """A finished run folder as train() leaves it (config.yaml + metrics.json)."""
    os.makedirs(path)
    cfg = load_config(CFG, [f"Arch.name={arch}", "Arch.width=8", *extra])
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    steps = [10 * (i + 1) for i in range(len(accs))]
    metrics = {"arch": arch, "best_acc": max(accs), "best_epoch": int(np.argmax(accs)) + 1,
               "loss_record": {"train": {"loss": [2.0, 1.5], "iter": [5, 10]},
                               "val": {"loss": [1.0 / a for a in accs], "iter": steps}},
               "acc_record": {"train": {"acc": accs, "iter": steps},
                              "val": {"acc": accs, "iter": steps}},
               "epochs": [{"epoch": i + 1, "val_acc": a} for i, a in enumerate(accs)]}
    with open(os.path.join(path, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    if throughput is not None:
        with open(os.path.join(path, "benchmark.json"), "w") as f:
            json.dump({"models": {arch: {"dygraph": {"images_per_sec": throughput}}}}, f)
    return cfg


def test_compare_tool(tmp_path):
    cfg_a = _fake_run(tmp_path / "orthonet_run", "orthonet18", [0.3, 0.5, 0.6], throughput=123.4)
    _fake_run(tmp_path / "resnet_run", "resnet18", [0.2, 0.55, 0.58])
    out = tmp_path / "cmp"
    proc = run_tool("compare.py", tmp_path / "orthonet_run", tmp_path / "resnet_run", "--out", out)
    assert proc.returncode == 0, proc.stderr
    table = (out / "comparison.md").read_text()
    assert table.strip() in proc.stdout
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(lines) == {"orthonet18", "resnet18"}
    params = count_parameters(build_model_from_config(cfg_a["Arch"]))
    assert f"{params:,}" in lines["orthonet18"] and "0.6000" in lines["orthonet18"]
    assert "123.4" in lines["orthonet18"] and lines["resnet18"].rstrip().endswith("| - |")
    assert (out / "learning_curves.png").stat().st_size > 0


def test_compare_labels_variants_and_keeps_titles_short(tmp_path, monkeypatch):
    import orthonets_paddle.plotting as plotting
    _fake_run(tmp_path / "a", "resnet18", [0.2, 0.5])
    _fake_run(tmp_path / "b", "resnet18", [0.3, 0.5], extra=["Arch.squeeze=random"])
    _fake_run(tmp_path / "c", "resnet18", [0.3, 0.6], extra=["Arch.squeeze=random"])
    _fake_run(tmp_path / "d", "orthonet18", [0.4, 0.6])
    titles = []
    real = plotting.plot_curves_together

    def spy(*args, **kwargs):
        titles.append(kwargs.get("title"))
        return real(*args, **kwargs)
    monkeypatch.setattr(plotting, "plot_curves_together", spy)
    out = compare_runs([str(tmp_path / n) for n in "abcd"], str(tmp_path / "cmp"))
    assert [r["model"] for r in out["rows"]] == [
        "resnet18", "resnet18 (squeeze=random) (b)", "resnet18 (squeeze=random) (c)",
        "orthonet18"]
    assert titles == ["Val acc (4 runs)", "Val loss (4 runs)"]  # the legend names the runs


def test_compare_needs_run_folders(tmp_path):
    with pytest.raises(ValueError, match="no metrics.json"):
        compare_runs([str(tmp_path)])
    proc = run_tool("compare.py", tmp_path / "missing")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_resolve_data_config_precedence_and_ops():
    from orthonets_paddle.data.preprocess import resolve_data_config, transform_ops
    from orthonets_paddle.models import build_model
    m = build_model("orthonet50", width=4)
    cfg = resolve_data_config(model=m)
    assert cfg == {"input_size": (3, 256, 256), "interpolation": "bilinear",
                   "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 0.875}
    # timm's eval resize: floor(256 / 0.875) = 292, then the 256 centre crop.
    assert transform_ops(cfg)[:2] == [{"Resize": {"size": 292, "interpolation": "bilinear"}},
                                      {"CenterCrop": {"size": [256, 256]}}]
    over = resolve_data_config({"input_size": 224, "crop_pct": None, "mean": [0.5], "std": [0.25]},
                               model=m)
    assert over["input_size"] == (3, 224, 224) and over["crop_pct"] == 0.875
    assert over["mean"] == (0.5,) * 3 and over["std"] == (0.25,) * 3
    with pytest.raises(ValueError, match="crop_pct must be in"):
        resolve_data_config({"crop_pct": 1.5})
    with pytest.raises(ValueError, match="mean has 2 values but input_size"):
        resolve_data_config({"mean": [0.1, 0.2]})


def test_interrupted_training_prints_the_resume_command(tmp_path):
    from orthonets_paddle.commands import train as tool
    argv = ["-c", "configs/orthonet18_cifar10.yaml", "-o", "Global.epochs=3", "-o",
            "Global.checkpoints=old/run"]
    assert "no checkpoint to resume" in tool.resume_hint(argv, str(tmp_path))
    (tmp_path / "latest.pdparams").write_bytes(b"")
    assert tool.resume_hint(argv, str(tmp_path)) == (
        "resume with: python tools/train.py -c configs/orthonet18_cifar10.yaml -o Global.epochs=3"
        f" -o Global.checkpoints={tmp_path}")


def _options_without_help(text):
    """Option lines of an argparse -h text with no help after them (same line or next)."""
    import re
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        m = re.match(r"^  (-[^ ].*?)(\s{2,}(\S.*))?$", line)
        if m and not m.group(3) and not re.match(r"^\s{8,}\S", (lines + [""])[i + 1]):
            out.append(m.group(1).strip())
    return out


def test_every_option_of_every_tool_has_help():
    assert _options_without_help("options:\n  -h, --help  show\n  --x X\n  --y Y\n        why\n") == ["--x X"]
    tools = sorted(t for t in os.listdir(os.path.join(ROOT, "tools"))
                   if t.endswith(".py") and not t.startswith("_"))
    assert "model_table.py" in tools and "infer.py" in tools
    for tool in tools:
        proc = run_tool(tool, "-h")
        assert proc.returncode == 0, (tool, proc.stderr[-500:])
        assert _options_without_help(proc.stdout) == [], tool
        # the description keeps its example commands one a line (argparse reflows by default)
        joined = [ln for ln in proc.stdout.splitlines() if "python tools/" in ln
                  and not ln.lstrip().startswith(("python tools/", "[", "usage"))]
        assert joined == [], (tool, joined)


def test_data_file_that_is_a_folder_says_so(tmp_path):
    from orthonets_paddle.data import Cifar10, DataFileError
    with pytest.raises(DataFileError, match=r"is a folder; give the archive file cifar-10-python"):
        Cifar10(data_file=str(tmp_path))
    archive = make_cifar_archive(tmp_path / "data", n_train=10, n_test=10)
    folder = os.path.dirname(archive)
    if os.path.basename(archive) == "cifar-10-python.tar.gz":
        with pytest.raises(DataFileError, match=f"is a folder; use {archive}"):
            Cifar10(data_file=folder)


def test_raw_pipelines_get_the_file_bytes(tmp_path):
    """A PaddleClas pipeline starting with DecodeImage is handed the file's bytes."""
    from PIL import Image
    from orthonets_paddle.deploy.infer import predict_images
    path = tmp_path / "a.png"
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(path)
    seen = []

    def decode(data):
        seen.append(data)
        return np.zeros((3, 4, 4), np.float32)

    class Zero:
        def predict(self, batch):
            return np.zeros((len(batch), 2), np.float32)
    predict_images(Zero(), [str(path)], decode, raw=True)
    assert seen == [path.read_bytes()]
