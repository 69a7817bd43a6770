"""First contact: what a new user meets first works as the README says.

The README's links and figures, the packaging (extras the index can serve, Paddle kept out of
the core install), the offline failure of the main job, one CIFAR archive for both splits,
grayscale models end to end, a quiet start, and a clean work tree after the documented
commands with their default paths.
"""
import copy
import gzip
import os
import re
import runpy
import shutil
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from data_files import make_cifar_archive, serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
CIFAR_CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
FASHION_CFG = os.path.join(ROOT, "configs", "orthonet18_fashionmnist.yaml")
FASHION_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
# The Fashion-MNIST config's Normalize (one channel).
GRAY_MEAN, GRAY_STD = 0.286, 0.353


def _readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _idx(name):
    """A Fashion-MNIST IDX file as a uint8 array, read from its definition (magic, dims, data)."""
    raw = gzip.open(os.path.join(FASHION_DIR, name)).read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


# ----------------------------------------------------------------------------- README
def test_readme_relative_links_resolve_inside_the_repository():
    text = _readme()
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert "docs/DESIGN.md" in relative and "docs/PERFORMANCE.md" in relative
    for link in relative:
        path, _, anchor = link.partition("#")
        if not path:  # a heading of the README itself
            assert anchor in anchors, f"README links #{anchor}, which is no heading"
            continue
        target = os.path.realpath(os.path.join(ROOT, path))
        assert target.startswith(os.path.realpath(ROOT) + os.sep), f"{link} leaves the repository"
        assert os.path.exists(target), f"README links {link}, which does not exist"


def test_readme_gives_the_fashionmnist_config_width():
    with open(FASHION_CFG, encoding="utf-8") as f:
        width = yaml.safe_load(f)["Arch"]["width"]
    paragraphs = [p for p in re.split(r"\n\s*\n", _readme())
                  if re.search(r"fashion-?mnist", p, flags=re.I)]
    stated = [int(w) for p in paragraphs for w in re.findall(r"\bwidth (\d+)", p)]
    assert stated, "the README no longer states the Fashion-MNIST config's width"
    assert set(stated) == {width}


# ----------------------------------------------------------------------------- packaging
@pytest.fixture(scope="module")
def setup_kwargs():
    import setuptools

    captured = {}
    real, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        os.chdir(ROOT)  # setup.py reads README.md from there
        runpy.run_path(os.path.join(ROOT, "setup.py"))
    finally:
        setuptools.setup = real
        os.chdir(cwd)
    return captured


def _name(req):
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()


def test_core_install_has_every_documented_tool_and_no_paddle(setup_kwargs):
    core = {_name(r) for r in setup_kwargs["install_requires"]}
    extras = setup_kwargs["extras_require"]
    # Core: what import and tools/train.py need (train logs, the run lock, intervals); the
    # ONNX and notebook stacks are extras (README: command 1 is .[cpu,onnx]), and the
    # tests' extra holds both, as the suite runs them.
    assert {"visualdl", "filelock", "scipy", "pyyaml", "numpy"} <= core
    onnx, notebook = {"paddle2onnx", "onnxruntime"}, {"nbclient", "ipykernel", "jupyterlab"}
    assert not (onnx | notebook) & core
    assert {_name(r) for r in extras["onnx"]} == onnx
    assert notebook <= {_name(r) for r in extras["notebook"]}
    assert onnx | notebook | {"pytest", "torch"} <= {_name(r) for r in extras["test"]}
    # Paddle only through an extra, so a CUDA build installed first is never replaced.
    assert not any(name.startswith("paddlepaddle") for name in core)
    assert "paddlepaddle==3.3.1" in extras["cpu"]
    # PyPI has no paddlepaddle-gpu 3.x: no extra may ask for it.
    assert not any(_name(r) == "paddlepaddle-gpu" for reqs in extras.values() for r in reqs)


@pytest.mark.slow
def test_every_pinned_requirement_is_on_the_index(setup_kwargs, tmp_path):
    reqs = set(setup_kwargs["install_requires"])
    for extra in setup_kwargs["extras_require"].values():
        reqs.update(extra)
    pinned = sorted(r for r in reqs if "==" in r)
    assert "paddlepaddle==3.3.1" in pinned and "torch==2.13.0" in pinned
    for req in pinned:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                               "-d", str(tmp_path), req], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"pip cannot get {req}:\n{proc.stderr[-2000:]}"


# ----------------------------------------------------------------------------- threads, start
def test_threads_default_to_all_cores_without_the_environment_variable(monkeypatch):
    from orthonets_paddle.utils import threads

    seen = []
    monkeypatch.setattr(paddle.base.core, "set_num_threads", seen.append)
    monkeypatch.setattr(threads, "_USER", None)
    cores = os.cpu_count() or 1
    assert threads.set_paddle_threads() == cores and seen == [cores]
    assert threads.set_paddle_threads(ranks=2) == max(1, cores // 2)
    monkeypatch.setattr(threads, "_USER", "3")  # the user's OMP_NUM_THREADS wins
    assert threads.set_paddle_threads(ranks=2) == 3 and seen[-1] == 3
    with pytest.raises(ValueError, match="positive integer"):
        threads.set_paddle_threads(0)


def test_train_help_prints_no_framework_warning():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONWARNINGS")}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-h"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:")
    assert proc.stderr == "", f"warnings at start:\n{proc.stderr}"


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("cache_exists", [False, True])
def test_offline_cifar_fails_at_once_naming_the_archive_its_place_and_the_alternative(
        tmp_path, monkeypatch, cache_exists):
    from orthonets_paddle.data import datasets

    home = tmp_path / "cache" / "paddle" / "dataset"
    if cache_exists:
        home.mkdir(parents=True)
    monkeypatch.setattr(paddle.dataset.common, "DATA_HOME", str(home))
    monkeypatch.setattr(datasets.Cifar10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    start = time.monotonic()
    with pytest.raises(ConnectionError) as err:
        datasets.Cifar10(mode="train")
    msg = str(err.value)
    assert time.monotonic() - start < 2  # one attempt, no retries
    assert str(home / "cifar" / "cifar-10-python.tar.gz") in msg  # the archive and its place
    assert "-o DataLoader.Train.dataset.data_file=/path/to/cifar-10-python.tar.gz" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "configs/orthonet18_fashionmnist.yaml" in msg
    # Nothing left behind: no partial file, no folder the download created.
    if cache_exists:
        assert os.listdir(home) == []
    else:
        assert not (tmp_path / "cache").exists()


def test_a_corrupt_download_leaves_no_file_behind(tmp_path, monkeypatch):
    from orthonets_paddle.data import datasets

    home = tmp_path / "cache" / "paddle" / "dataset"
    monkeypatch.setattr(paddle.dataset.common, "DATA_HOME", str(home))
    with serve({"/cifar-10-python.tar.gz": b"not cifar"}) as (base, _):
        monkeypatch.setattr(datasets.Cifar10, "url", base + "/cifar-10-python.tar.gz")
        with pytest.raises(datasets.DataFileError, match="md5"):
            datasets.Cifar10(mode="test")
    assert [f for _, _, files in os.walk(tmp_path) for f in files] == []


def _cifar_overrides(archive, run_dir):
    return [f"DataLoader.Train.dataset.data_file={archive}", "Global.epochs=1",
            f"Global.output_dir={run_dir}", "Arch.width=4", "DataLoader.Train.sampler.batch_size=8",
            "DataLoader.Eval.sampler.batch_size=10", "DataLoader.Train.loader.num_workers=0",
            "DataLoader.Eval.loader.num_workers=0", "Global.use_visualdl=False", "Global.plot=False",
            "Global.progress_bar=False"]


def test_one_cifar_archive_given_once_trains_and_evaluates(tmp_path):
    from orthonets_paddle.engine import train
    from orthonets_paddle.engine.config import load_config
    from orthonets_paddle.engine.metrics import evaluate_from_config

    archive = make_cifar_archive(str(tmp_path / "cifar-10-python.tar.gz"), n_train=40, n_test=20)
    run_dir = tmp_path / "run"
    cfg = load_config(CIFAR_CFG, _cifar_overrides(archive, run_dir))
    assert cfg["DataLoader"]["Eval"]["dataset"]["data_file"] == archive
    out = train(cfg)
    assert out["final"]["samples"] == 20  # the archive's test split, not a download
    cfg = load_config(CIFAR_CFG, _cifar_overrides(archive, run_dir)
                      + [f"Global.pretrained_model={run_dir / 'final_model.pdparams'}"])
    result = evaluate_from_config(cfg)
    assert result["samples"] == 20
    assert result["top1"] == pytest.approx(out["final"]["acc"])


def test_an_eval_data_file_of_its_own_is_kept(tmp_path):
    from orthonets_paddle.engine.config import load_config

    cfg = load_config(CIFAR_CFG, ["DataLoader.Train.dataset.data_file=/a/train.tar.gz",
                                  "DataLoader.Eval.dataset.data_file=/b/test.tar.gz"])
    assert cfg["DataLoader"]["Eval"]["dataset"]["data_file"] == "/b/test.tar.gz"


# ----------------------------------------------------------------------------- grayscale
@pytest.fixture(scope="module")
def gray(tmp_path_factory):
    """A width-4 grayscale OrthoNet-18 (random weights) exported with ONNX, and the first
    Fashion-MNIST test image as a 28x28 grayscale PNG."""
    from orthonets_paddle.deploy.export import export_from_config
    from orthonets_paddle.engine.config import load_config
    from orthonets_paddle.models import build_model_from_config

    if not os.path.isdir(FASHION_DIR):
        pytest.fail("install the Debian package dataset-fashion-mnist (see .ci/run)")
    root = tmp_path_factory.mktemp("gray")
    paddle.seed(3)
    cfg = load_config(FASHION_CFG, ["Arch.width=4", f"Global.output_dir={root / 'run'}",
                                    f"Global.save_inference_dir={root / 'inference'}",
                                    "DataLoader.Eval.dataset.num_samples=20", "Infer.PostProcess.topk=10",
                                    "Global.progress_bar=False"])
    model = build_model_from_config(cfg["Arch"])
    model.eval()
    weights = str(root / "gray.pdparams")
    paddle.save(model.state_dict(), weights)
    cfg["Global"]["pretrained_model"] = weights
    image = _idx("t10k-images-idx3-ubyte.gz")[0]
    png = str(root / "first.png")
    Image.fromarray(image, "L").save(png)
    cfg["Infer"]["infer_imgs"] = png
    export_from_config(cfg, onnx=True)
    return {"cfg": cfg, "model": model, "image": image}


def _gray_probs(model, images):
    """Softmax of the model on uint8 [N, 28, 28] images, normalised as the config says."""
    x = ((images.astype(np.float32) / 255.0 - GRAY_MEAN) / GRAY_STD)[:, None]
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x)).numpy().astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("backend", ["dygraph", "paddle", "onnx"])
def test_grayscale_infer_on_every_backend(gray, backend):
    from orthonets_paddle.deploy.infer import infer_from_config

    out = infer_from_config(gray["cfg"], backend=backend)
    expected = _gray_probs(gray["model"], gray["image"][None])[0]
    got = np.zeros(10)
    for entry in out["results"][0]["topk"]:
        got[entry["class_id"]] = entry["score"]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_grayscale_eval_reads_one_channel(gray):
    from orthonets_paddle.engine.metrics import evaluate_from_config

    result = evaluate_from_config(gray["cfg"])
    images, labels = _idx("t10k-images-idx3-ubyte.gz")[:20], _idx("t10k-labels-idx1-ubyte.gz")[:20]
    expected = float((_gray_probs(gray["model"], images).argmax(axis=1) == labels).mean())
    assert result["samples"] == 20 and result["top1"] == pytest.approx(expected)


def test_channel_mismatches_name_the_cause(gray, tmp_path):
    from orthonets_paddle.deploy.export import ExportError, export_from_config
    from orthonets_paddle.deploy.infer import InferError, infer_from_config
    from orthonets_paddle.engine.metrics import evaluate_from_config

    cfg = copy.deepcopy(gray["cfg"])
    cfg["Global"]["image_shape"] = [3, 28, 28]
    cfg["Global"]["save_inference_dir"] = str(tmp_path / "never")
    with pytest.raises(ExportError, match=r"3 channel\(s\) but the model takes 1 \(Arch.in_channels\)"):
        export_from_config(cfg)
    assert not (tmp_path / "never").exists()
    cfg["Global"]["save_inference_dir"] = gray["cfg"]["Global"]["save_inference_dir"]
    with pytest.raises(InferError, match=r"Global.image_shape=\[1,28,28\]"):
        infer_from_config(cfg, backend="onnx")

    cfg = copy.deepcopy(gray["cfg"])  # 3-channel images for a 1-channel model
    ds = cfg["DataLoader"]["Eval"]["dataset"]
    ds["channels"] = 3
    ds["transform_ops"] = [{"ToTensor": {}}, {"Normalize": {"mean": [0.3] * 3, "std": [0.3] * 3}}]
    with pytest.raises(ValueError, match="3-channel images but the model takes 1"):
        evaluate_from_config(cfg)


def test_training_channel_mismatch_is_refused_before_the_run_folder_is_written(gray, tmp_path):
    from orthonets_paddle.engine import train

    cfg = copy.deepcopy(gray["cfg"])  # 3-channel training images for a 1-channel model
    cfg["Global"]["output_dir"] = str(tmp_path / "run")
    ds = cfg["DataLoader"]["Train"]["dataset"]
    ds["channels"] = 3
    ds["transform_ops"] = [{"ToTensor": {}}, {"Normalize": {"mean": [0.3] * 3, "std": [0.3] * 3}}]
    with pytest.raises(ValueError, match="DataLoader.Train gives 3-channel images but the model takes 1"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_the_channel_probe_leaves_the_random_state_alone():
    import random

    from orthonets_paddle.data import build_dataloader, check_loader_channels

    loader = build_dataloader({"dataset": {"name": "Synthetic", "num_samples": 4, "image_size": 16,
                                           "transform_ops": [{"RandomCrop": {"size": 16, "padding": 4}},
                                                          {"RandomHorizontalFlip": {}}, {"ToTensor": {}}]},
                               "sampler": {"batch_size": 2}}, "train")
    random.seed(3)
    np.random.seed(3)
    check_loader_channels(loader, 3, "DataLoader.Train")
    assert random.random() == random.Random(3).random()
    assert np.random.rand() == np.random.RandomState(3).rand()


# ----------------------------------------------------------------------------- default paths
def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    # Bytes, decoded by hand: text mode would turn a progress bar's "\r" into "\n".
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, env=env,
                          timeout=600)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, f"{args}:\n{out[-2000:]}\n{err[-3000:]}"
    return out + err


@pytest.mark.slow
def test_documented_commands_leave_the_work_tree_clean(tmp_path):
    """Train, eval, export, infer on every backend and compare with their default paths, in a
    copy of the repository's tracked files; then `git status --porcelain` is empty."""
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed for this test")
    tracked = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    repo = tmp_path / "repo"
    for name in filter(None, tracked):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(repo / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), repo / name)
    ident = ["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
    for cmd in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-q", "-m", "copy"]):
        subprocess.run([git, *cmd], cwd=repo, check=True, capture_output=True)

    image = tmp_path / "shoe.png"  # the user's image lives outside the checkout
    Image.fromarray(_idx("t10k-images-idx3-ubyte.gz")[0], "L").save(image)
    cfg = "configs/orthonet18_fashionmnist.yaml"
    weights = ["-o", "Global.pretrained_model=output/orthonet18_fashionmnist/best_model.pdparams"]
    train = _run(["tools/train.py", "-c", cfg, "-o", "Global.epochs=1", "-o", "Arch.width=4",
                  "-o", "DataLoader.Train.dataset.num_samples=256",
                  "-o", "DataLoader.Eval.dataset.num_samples=100",
                  "-o", "Global.print_batch_step=1"], repo)
    log = train
    assert "[Train][Epoch 1/1][Iter: 1/2]lr: " in log  # the PaddleClas-style step line
    assert "\r" not in log  # no progress bar when redirected
    assert "Warning" not in log and "WARNING" not in log, log
    over = ["-o", "Arch.width=4"]
    _run(["tools/eval.py", "-c", cfg, *weights, *over, "--per-class",
          "--confusion", "output/orthonet18_fashionmnist/confusion.png"], repo)
    _run(["tools/export_model.py", "-c", cfg, *weights, *over, "--onnx"], repo)
    assert (repo / "output" / "inference" / "orthonet18_fashionmnist" / "inference.onnx").is_file()
    for backend in ("dygraph", "paddle", "onnx"):
        _run(["tools/infer.py", "-c", cfg, *weights, *over, "-o", f"Infer.infer_imgs={image}",
              "--backend", backend], repo)
    _run(["tools/compare.py", "output/orthonet18_fashionmnist", "--out", "output/compare"], repo)

    status = subprocess.run([git, "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"files left in the work tree:\n{status}"
    # What `pip install -e .` and Paddle's launcher (default --log_dir) would write is ignored.
    for path in ("orthonets_paddle.egg-info/PKG-INFO", "log/workerlog.0"):
        assert subprocess.run([git, "check-ignore", "-q", path], cwd=repo).returncode == 0, path


# ----------------------------------------------------------------------------- messages
def test_weights_mismatch_is_short_and_names_the_cause(tmp_path):
    from orthonets_paddle import build_model, load_pretrained
    from orthonets_paddle.models.pretrained import WeightsError, load_model

    path = str(tmp_path / "w8.pdparams")
    paddle.save(build_model("orthonet18", 10, stem="cifar", width=8).state_dict(), path)
    # Another width: every conv differs, and it is not a class-count question.
    report = load_pretrained(build_model("orthonet18", 10, stem="cifar", width=4), path,
                             verbose=False)
    assert not report.skipped_classifier and len(report.mismatched) > 100
    text = report.summary()
    assert len(text) < 800 and "different number of classes" not in text
    assert "another model" in text and f"and {len(report.mismatched) - 5} more" in text
    with pytest.raises(WeightsError) as err:
        load_model({"Global": {"pretrained_model": path},
                    "Arch": {"name": "orthonet18", "class_num": 10, "stem": "cifar", "width": 4}})
    assert len(str(err.value)) < 900 and "orthonet18" in str(err.value)
    # Only the class count differs: the classifier is skipped, everything else loads.
    report = load_pretrained(build_model("orthonet18", 7, stem="cifar", width=8), path,
                             verbose=False)
    assert report.skipped_classifier and not report.mismatched
    assert "another number of classes" in report.summary()


def test_model_names_are_not_called_config_keys():
    from orthonets_paddle.engine.config import ConfigError, load_config

    with pytest.raises(ConfigError) as err:
        load_config(FASHION_CFG, ["Arch.name=orthonet19"])
    assert "did you mean 'orthonet18'" in str(err.value)
    assert "registered models: resnet18" in str(err.value) and "valid keys" not in str(err.value)


def test_converter_hints_come_before_the_key_lists():
    from orthonets_paddle import build_model
    from orthonets_paddle.convert import ConversionError, convert_state_dict

    with pytest.raises(ConversionError, match="did you mean 'orthonet50'"):
        convert_state_dict({}, "orthnet50")
    # A torchvision-style ResNet-18 (7x7 conv1) converted with the cifar stem (3x3 conv1).
    names = {"_mean": "running_mean", "_variance": "running_var"}
    state = {}
    for key, value in build_model("resnet18", 10).state_dict().items():
        head, _, last = key.rpartition(".")
        value = value.numpy()
        state[f"{head}.{names.get(last, last)}"] = value.T if key == "fc.weight" else value
    with pytest.raises(ConversionError) as err:
        convert_state_dict(state, "resnet18", stem="cifar")
    lines = str(err.value).splitlines()
    hint = next(i for i, line in enumerate(lines) if "conv1's kernel differs" in line)
    listing = next(i for i, line in enumerate(lines) if "shape mismatches:" in line)
    assert hint < listing
