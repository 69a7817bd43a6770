"""Evaluate trained weights: top-1/top-5/loss, per-class accuracy, confusion matrix.

``evaluate_from_config`` is ``tools/eval.py``: the numbers come from the trainer's own
``evaluate`` (so they match a training run's validation figures), and the per-class
figures from the same single pass over the data.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle

from ..utils.io import write_json

__all__ = ["confusion_matrix", "per_class_accuracy", "plot_confusion_matrix",
           "evaluate_from_config", "format_eval"]


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts, int64 ``[num_classes, num_classes]``.

    Raises:
        ValueError: lengths differ or a value is outside ``[0, num_classes)``.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    preds = np.asarray(preds, dtype=np.int64).reshape(-1)
    if labels.shape != preds.shape:
        raise ValueError(f"labels ({labels.size}) and preds ({preds.size}) differ in length")
    for name, v in (("labels", labels), ("preds", preds)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} hold values outside [0, {num_classes}); is Arch.class_num "
                             f"({num_classes}) the dataset's number of classes?")
    return np.bincount(labels * num_classes + preds,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (``diag / row sum``); NaN for classes without samples."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1)
    return np.divide(np.diag(cm), totals, out=np.full(len(cm), np.nan), where=totals > 0)


def plot_confusion_matrix(cm: np.ndarray, class_names: Optional[Sequence[str]] = None,
                          normalize: bool = True, title: Optional[str] = None,
                          save_path: Optional[str] = None):
    """Heat map of a confusion matrix (rows: true class, columns: predicted), made and
    saved as ``plotting``'s figures are.

    Args:
        cm: ``[K, K]`` counts from ``confusion_matrix``.
        class_names: tick labels (default: class indices).
        normalize: colour (and annotate) each row as fractions of that class's samples.
    """
    # Here, not at the top: matplotlib loads only when a figure is asked for.
    from ..plotting import _axes, _finish

    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"cm must be a square [classes, classes] matrix, got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names for a {k}-class matrix; give one "
                         "name per class")
    values = cm
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        values = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(max(4.0, 0.55 * k + 2.0), 16.0)
    fig, ax, _ = _axes(None, (side + 1.0, side))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= 30:  # beyond that the labels are unreadable anyway
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
    if k <= 20:
        threshold = values.max() / 2 if values.size else 0
        for i in range(k):
            for j in range(k):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > threshold else "black")
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    default = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix"
    ax.set_title(title or default)
    return _finish(fig, save_path)


def _class_names(dataset: Any, cfg: Dict[str, Any], k: int) -> List[str]:
    names = getattr(dataset, "class_names", None)
    if names is not None and len(names) == k:
        return [str(n) for n in names]
    infer_names = cfg["Infer"]["PostProcess"]["class_names"]  # Infer.class_names moved there
    if isinstance(infer_names, list) and len(infer_names) == k:
        return [str(n) for n in infer_names]
    return [str(i) for i in range(k)]


def _warn_folder_classes(dataset: Any, class_num: int) -> None:
    """An ImageFolder labels by sorted folder index: with fewer class folders than the model
    has classes, the labels are right only if the folders are its first classes."""
    from ..data.datasets import ImageFolder
    from .logger import get_logger
    ds = getattr(dataset, "dataset", dataset)
    if isinstance(ds, ImageFolder) and ds.num_classes != class_num:
        get_logger().warning(
            "WARNING DataLoader.Eval: %s has %d class folders but Arch.class_num is %d; labels "
            "are the sorted folder index, so they match the model's classes only if these are "
            "its first %d classes in its training order (keep a class's place with an empty "
            "folder)", ds.root, ds.num_classes, class_num, ds.num_classes)


def evaluate_from_config(cfg: Dict[str, Any], per_class: bool = False,
                         confusion_path: Optional[str] = None,
                         results_name: str = "eval_results.json") -> Dict[str, Any]:
    """``tools/eval.py``: evaluate ``Global.pretrained_model`` on ``DataLoader.Eval``.

    Builds ``Arch``, loads the weights strictly, runs one pass, and writes
    ``Global.output_dir/eval_results.json`` (atomically; not touched when anything fails
    before it). With ``per_class`` the JSON holds each class's accuracy; with
    ``confusion_path`` a confusion-matrix PNG is written there.

    Returns:
        ``{"arch", "weights", "top1", "top5", "loss", "samples"[, "confusion_matrix",
        "per_class"][, "confusion_png"], "results_file"}``.

    Raises:
        ValueError: no ``Global.pretrained_model`` or no ``DataLoader.Eval``.
        WeightsError: unreadable weights, or weights for another architecture.
    """
    from ..data import build_dataloader, check_loader_samples
    from ..data.datasets import validate_dataset
    from ..models.registry import model_channels
    from .env import setup_env
    from .losses import build_loss
    from .trainer import evaluate
    from ..models import load_model

    g = cfg["Global"]
    if "Eval" not in cfg["DataLoader"]:
        raise ValueError("the config has no DataLoader.Eval section to evaluate on; add one "
                         "(see configs/orthonet18_cifar10.yaml)")
    setup_env(g["device"])
    model = load_model(cfg)
    loader = build_dataloader(cfg["DataLoader"]["Eval"], "eval", seed=g["seed"],
                              image_shape=g["image_shape"])
    validate_dataset(loader.dataset, cfg["Arch"]["class_num"], "DataLoader.Eval")
    _warn_folder_classes(loader.dataset, int(cfg["Arch"]["class_num"]))
    check_loader_samples(loader, model_channels(cfg["Arch"]), "DataLoader.Eval", g["image_shape"])
    loss_fn = build_loss(cfg["Loss"].get("Eval") or cfg["Loss"].get("Train"))
    preds, labels = [], []

    def recording_loss(logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        # evaluate's one pass also yields every prediction and label: no second pass
        preds.append(logits.argmax(axis=-1).numpy().reshape(-1))
        labels.append(target.numpy().reshape(-1))
        return loss_fn(logits, target)

    raw = evaluate(model, loader, recording_loss, show_progress=g["progress_bar"])
    k = int(cfg["Arch"]["class_num"])
    result: Dict[str, Any] = {"arch": cfg["Arch"]["name"], "weights": str(g["pretrained_model"]),
                              "top1": raw["acc"], "top5": raw["top5"], "loss": raw["loss"],
                              "samples": raw["samples"]}
    names = _class_names(loader.dataset, cfg, k)
    if per_class or confusion_path:
        cm = confusion_matrix(np.concatenate(labels), np.concatenate(preds), k)
        result["confusion_matrix"] = cm.tolist()  # rows: true class, columns: predicted
    if per_class:
        result["per_class"] = [{"class_id": i, "class": names[i], "samples": int(cm[i].sum()),
                                "acc": None if np.isnan(a) else float(a)}
                               for i, a in enumerate(per_class_accuracy(cm))]
    if confusion_path:
        plot_confusion_matrix(cm, names, title=f"{cfg['Arch']['name']}: confusion matrix",
                              save_path=confusion_path)
        result["confusion_png"] = confusion_path
    os.makedirs(g["output_dir"], exist_ok=True)
    result["results_file"] = os.path.join(g["output_dir"], results_name)
    write_json(result, result["results_file"])
    return result


def format_eval(result: Dict[str, Any]) -> str:
    """The summary ``tools/eval.py`` prints."""
    lines = [f"{result['arch']} ({result['weights']}): top-1 {result['top1']:.4f}  "
             f"top-5 {result['top5']:.4f}  loss {result['loss']:.4f}  "
             f"({result['samples']} samples)"]
    if "per_class" in result:
        width = max(5, *(len(r["class"]) for r in result["per_class"]))
        lines.append(f"{'class':<{width}}  samples  acc")
        for row in result["per_class"]:
            acc = "-" if row["acc"] is None else f"{row['acc']:.4f}"
            lines.append(f"{row['class']:<{width}}  {row['samples']:>7}  {acc}")
    if "confusion_png" in result:
        lines.append(f"confusion matrix: {result['confusion_png']}")
    lines.append(f"results: {result['results_file']}")
    return "\n".join(lines)
