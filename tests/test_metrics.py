"""Evaluation metrics (tools/eval.py, engine/metrics.py) against numpy on fixed logits.

The oracle takes the logits of every evaluation sample (the model's output on inputs built
here from the generated archive's arrays) and computes, from the definitions: top-1 (argmax
equals the label), top-5 (the label is among the 5 largest logits), the mean over samples
of the seed's label-smoothing loss, the confusion matrix ``cm[true, predicted]`` and each
class's accuracy ``cm[k, k] / sum_j cm[k, j]``. None of it calls the code under test.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

from data_files import cifar_arrays, make_cifar_archive
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine.metrics import (confusion_matrix, evaluate_from_config,
                                             per_class_accuracy)
from orthonets_paddle.models import build_model_from_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
N_TEST, BATCH, EPS = 30, 16, 0.1  # two batches of unequal size (16 + 14)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def oracle(logits, labels, k=10, eps=EPS):
    logits = np.asarray(logits, np.float64)
    n = len(labels)
    pred = logits.argmax(axis=1)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    logp = log_softmax(logits)
    loss = (1 - eps) * -logp[np.arange(n), labels] + eps * -logp.mean(axis=1)
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(labels, pred):
        cm[t, p] += 1
    per_class = [cm[c, c] / cm[c].sum() if cm[c].sum() else None for c in range(k)]
    return {"top1": float(np.mean(pred == labels)),
            "top5": float(np.mean([labels[i] in top5[i] for i in range(n)])),
            "loss": float(loss.mean()), "cm": cm, "per_class": per_class}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Width-8 orthonet18 weights with a spread-out classifier (so predictions, top-5 and
    the confusion matrix are not degenerate), the eval overrides, and the oracle."""
    root = tmp_path_factory.mktemp("metrics")
    archive = make_cifar_archive(root, n_train=10, n_test=N_TEST)
    overrides = [f"DataLoader.Eval.dataset.data_file={archive}", "DataLoader.Eval.loader.num_workers=0",
                 f"DataLoader.Eval.sampler.batch_size={BATCH}", "Arch.width=8", "Global.progress_bar=False",
                 f"Loss.Eval[0].CELoss.epsilon={EPS}"]
    paddle.seed(3)
    model = build_model_from_config(load_config(CFG, overrides)["Arch"])
    model.eval()
    # The eval transforms (Resize 32 on 32x32, ToTensor, Normalize 0.5/0.5), by hand.
    images, labels = cifar_arrays(10, N_TEST, 0, "test")
    x = (images.astype(np.float32) / 255.0 - 0.5) / 0.5
    batches = [paddle.to_tensor(x[i:i + BATCH].transpose(0, 3, 1, 2)) for i in range(0, N_TEST, BATCH)]
    with paddle.no_grad():
        feats = np.concatenate([model.forward_head(model.forward_features(b), pre_logits=True).numpy()
                                for b in batches]).astype(np.float64)
        # A random classifier on the standardised features: logits of spread about 2 over
        # classes. (The loader's inputs differ from these by an ulp; a larger spread would
        # amplify that.)
        f = feats.shape[1]
        w = np.random.default_rng(0).normal(0, 2 / np.sqrt(f), (10, f)) / (feats.std(0) + 1e-6)
        model.fc.weight.set_value(w.T.astype("float32"))
        model.fc.bias.set_value((-w @ feats.mean(0)).astype("float32"))
        logits = np.concatenate([model(b).numpy() for b in batches])
    weights = str(root / "w.pdparams")
    paddle.save(model.state_dict(), weights)
    want = oracle(logits, labels)
    assert len(set(want["cm"].argmax(axis=1))) > 1, "the oracle's predictions are degenerate"
    assert want["top1"] < want["top5"] < 1.0
    return {"root": root, "weights": weights, "labels": labels, "want": want,
            "overrides": overrides + [f"Global.pretrained_model={weights}"]}


def test_eval_tool_figures_equal_numpy_on_the_logits(setup, tmp_path):
    cfg = load_config(CFG, setup["overrides"] + [f"Global.output_dir={tmp_path}"])
    got = evaluate_from_config(cfg, per_class=True)
    want = setup["want"]
    assert got["samples"] == N_TEST
    assert got["top1"] == pytest.approx(want["top1"], abs=1e-12)
    assert got["top5"] == pytest.approx(want["top5"], abs=1e-12)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
    np.testing.assert_array_equal(np.array(got["confusion_matrix"]), want["cm"])
    assert [r["acc"] for r in got["per_class"]] == pytest.approx(want["per_class"], abs=1e-12)
    assert [r["samples"] for r in got["per_class"]] == want["cm"].sum(axis=1).tolist()
    # What was returned is what was written.
    with open(tmp_path / "eval_results.json") as f:
        assert json.load(f) == got


def test_eval_cli_prints_and_saves_the_same_figures(setup, tmp_path):
    png = tmp_path / "cm.png"
    args = [a for o in setup["overrides"] + [f"Global.output_dir={tmp_path}"] for a in ("-o", o)]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval.py"), "-c", CFG, *args,
                           "--per-class", "--confusion", str(png)],
                          capture_output=True, text=True, cwd=ROOT, timeout=100,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = setup["want"]
    printed = re.search(r"top-1 ([\d.]+)\s+top-5 ([\d.]+)\s+loss ([\d.]+)\s+\((\d+) samples\)",
                        proc.stdout)
    assert printed, proc.stdout
    assert float(printed[1]) == pytest.approx(want["top1"], abs=5e-5)
    assert float(printed[2]) == pytest.approx(want["top5"], abs=5e-5)
    assert float(printed[3]) == pytest.approx(want["loss"], abs=5e-5)
    assert int(printed[4]) == N_TEST
    # One printed row per class: name, samples, accuracy; CIFAR-10's names.
    rows = re.findall(r"^(\w+)\s+(\d+)\s+([\d.]+|-)$", proc.stdout, re.M)
    assert [r[0] for r in rows][:2] == ["airplane", "automobile"] and len(rows) == 10
    for (name, n, acc), w, count in zip(rows, want["per_class"], want["cm"].sum(axis=1)):
        assert int(n) == count
        assert (acc == "-") if w is None else float(acc) == pytest.approx(w, abs=5e-5)
    with open(tmp_path / "eval_results.json") as f:
        saved = json.load(f)
    assert saved["top5"] == pytest.approx(want["top5"], abs=1e-12)
    np.testing.assert_array_equal(np.array(saved["confusion_matrix"]), want["cm"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_and_per_class_by_hand():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(cm)
    assert acc[:3] == pytest.approx([0.5, 1.0, 2 / 3]) and np.isnan(acc[3])
    with pytest.raises(ValueError, match="class_num"):
        confusion_matrix([0, 5], [0, 1], 4)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0], 4)


def test_oracle_itself_on_a_hand_example():
    # Guard the oracle: 3 samples, 6 classes, logits chosen so each figure is known.
    logits = np.array([[5, 4, 3, 2, 1, 0],    # label 0: top-1 hit
                       [5, 4, 3, 2, 1, 0],    # label 4: top-5 hit only
                       [0, 1, 2, 3, 4, 5]],   # label 0: miss even in top-5
                      np.float64)
    got = oracle(logits, np.array([0, 4, 0]), k=6, eps=0.0)
    assert got["top1"] == pytest.approx(1 / 3) and got["top5"] == pytest.approx(2 / 3)
    lse = np.log(np.exp(np.arange(6.0)).sum())
    assert got["loss"] == pytest.approx(((lse - 5) + (lse - 1) + (lse - 0)) / 3)
    assert got["cm"][0].tolist() == [1, 0, 0, 0, 0, 1] and got["per_class"][0] == 0.5


def test_per_class_names_come_from_postprocess_class_names():
    """A dataset without class names (an ImageNet list file) labels eval's per-class rows and
    confusion matrix with Infer.PostProcess.class_names (it read the moved Infer.class_names,
    which no config can hold, so the names were always the indices)."""
    from types import SimpleNamespace
    from orthonets_paddle.engine.metrics import _class_names
    cfg = load_config(CFG, ["Infer.PostProcess.class_names=[tench, goldfish, shark]"])
    assert _class_names(SimpleNamespace(), cfg, 3) == ["tench", "goldfish", "shark"]
    assert _class_names(SimpleNamespace(class_names=["x", "y", "z"]), cfg, 3) == ["x", "y", "z"]
