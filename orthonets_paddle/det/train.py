"""Train and evaluate a PaddleDetection detector from one of our configs.

PaddleDetection's wheel has no ``tools/``: this is the part of its ``tools/train.py`` the
OrthoNet configs need, with clear errors where it falls back silently (an unknown override
key, missing COCO files, which it would download, a missing ``pretrain_weights`` file).
"""
from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Sequence

import paddle

from ..utils.hints import did_you_mean
from ..utils.io import load_paddle_file
from ..utils.yamlio import check_yaml, loads_yaml

__all__ = ["load_det_config", "apply_overrides", "check_coco_layout", "check_pretrain_weights",
           "train_detector", "COCO_LAYOUT"]

COCO_LAYOUT = """expected COCO 2017 layout (dataset_dir, default dataset/coco):
  <dataset_dir>/annotations/instances_train2017.json
  <dataset_dir>/annotations/instances_val2017.json
  <dataset_dir>/train2017/*.jpg
  <dataset_dir>/val2017/*.jpg
(images and annotations from https://cocodataset.org/#download); point the config at it with
  -o TrainDataset.dataset_dir=/path/to/coco -o EvalDataset.dataset_dir=/path/to/coco"""

_INDEX = re.compile(r"^(?P<key>[^\[\]]+)(?P<idx>(\[\d+\])*)$")


def _reset_global_config() -> None:
    """Forget values of an earlier config in this process (PaddleDetection keeps one
    global config); the registered module schemas stay."""
    from ppdet.core.config.schema import SchemaDict
    from ppdet.core.workspace import global_config
    for key in list(global_config):
        value = global_config[key]
        if isinstance(value, SchemaDict):
            dict.clear(value)
        else:
            del global_config[key]


def load_det_config(path: str, overrides: Sequence[str] = ()):
    """Load a PaddleDetection YAML (``_BASE_`` allowed) and apply ``-o`` overrides.

    Args:
        path: the ``.yml`` file, e.g. ``configs/det/faster_rcnn_orthonet50_fpn_1x_coco.yml``.
        overrides: ``Key.sub=value`` strings; values are YAML (``2``, ``1e-3``, ``null``,
            ``[1, 2]``); list items as ``Key.list[0].sub=value``.

    Returns:
        PaddleDetection's global config (an ``AttrDict``).
    """
    from ppdet.core.workspace import load_config
    from . import backbone  # noqa: F401  (the OrthoNet backbone must be registered)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"detection config {path!r} not found "
                                "(the shipped ones are in configs/det/)")
    if os.path.splitext(path)[1] not in (".yml", ".yaml"):
        raise ValueError(f"detection config {path!r} must be a .yml/.yaml file")
    _reset_global_config()
    check_yaml(path)  # ppdet's own loader has no bound on aliases
    cfg = load_config(path)
    apply_overrides(cfg, overrides)
    return cfg


def _child_keys(node) -> List[str]:
    if isinstance(node, dict):  # + a registered module's arguments
        return list(dict.fromkeys(list(node) + list(getattr(node, "schema", {}))))
    return [k for k in vars(node) if not k.startswith("_")]


def apply_overrides(cfg, overrides: Iterable[str]) -> None:
    """Set ``Key.sub=value`` overrides in place; an unknown key is an error naming
    the nearest valid key (never silently added)."""
    for item in overrides or ():
        dotted, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like Key.sub=value")
        path: List = []
        for part in dotted.strip().split("."):
            match = _INDEX.match(part)
            if not match:
                raise ValueError(f"override {item!r}: cannot parse {part!r}")
            path += [match["key"]] + [int(i) for i in re.findall(r"\d+", match["idx"])]
        node, where = cfg, ""
        for i, key in enumerate(path):
            indexed = isinstance(node, (dict, list))
            if isinstance(key, int):
                if not isinstance(node, list) or key >= len(node):
                    raise ValueError(f"override {item!r}: {where or 'the config'} has no item [{key}]")
            elif isinstance(node, list) or key not in _child_keys(node):
                valid = [] if isinstance(node, list) else _child_keys(node)
                raise ValueError(f"override {item!r}: unknown key {key!r} in {where or 'the config'}; "
                                 f"{did_you_mean(key, valid)}valid: {', '.join(sorted(map(str, valid)))}")
            if i < len(path) - 1:
                node = node[key] if indexed else getattr(node, key)
            elif indexed:
                node[key] = loads_yaml(raw, f"override {item!r}")
            else:
                setattr(node, key, loads_yaml(raw, f"override {item!r}"))
            where += f"[{key}]" if isinstance(key, int) else f".{key}" if where else key


def check_coco_layout(cfg, modes: Sequence[str] = ("Train", "Eval")) -> None:
    """Raise FileNotFoundError naming the missing path and the expected layout if
    the COCO annotation file or image folder of a dataset is absent."""
    for mode in modes:
        dataset = cfg.get(f"{mode}Dataset")
        if dataset is None:
            raise ValueError(f"the config has no {mode}Dataset section")
        root = getattr(dataset, "dataset_dir", None) or ""
        for attr in ("anno_path", "image_dir"):
            rel = getattr(dataset, attr, None)
            path = os.path.join(root, rel) if rel else root
            if not os.path.exists(path):
                kind = "annotation file" if attr == "anno_path" else "image folder"
                raise FileNotFoundError(f"{mode}Dataset {kind} {path!r} does not exist; {COCO_LAYOUT}")


def check_pretrain_weights(cfg) -> Optional[str]:
    """The ``pretrain_weights`` to load (None if unset); a missing local file is an
    error that says how to make one."""
    weights = cfg.get("pretrain_weights")
    if not weights:
        return None
    weights = str(weights)
    if "://" in weights:
        return weights
    stem = weights[:-len(".pdparams")] if weights.endswith(".pdparams") else weights
    if not os.path.isfile(stem + ".pdparams"):
        raise FileNotFoundError(
            f"pretrain_weights {weights!r} not found. Make it from the authors' ImageNet checkpoint: "
            f"python tools/convert_torch_weights.py <ckpt.pth.tar> {stem}.pdparams --arch <orthonet50|"
            f"orthonet_mod_50>; or train without it: -o pretrain_weights=null")
    # PaddleDetection reads it with paddle.load (plain pickle): vet it first with the
    # restricted unpickler, so a crafted file is an error here instead of running code.
    load_paddle_file(stem + ".pdparams")
    return stem


def _select_device(cfg) -> None:
    if cfg.get("use_gpu", False) and not paddle.is_compiled_with_cuda():
        print("note: use_gpu is true but this Paddle has no CUDA; training on the CPU "
              "(set -o use_gpu=false to silence this)")
        cfg["use_gpu"] = False
    paddle.set_device("gpu" if cfg.get("use_gpu", False) else "cpu")


def train_detector(cfg, validate: bool = True, callbacks: Sequence = ()):
    """Train (and, with ``validate``, evaluate after each snapshot epoch) the
    config's detector with PaddleDetection's ``Trainer``.

    Args:
        cfg: a config from :func:`load_det_config`.
        validate: evaluate on ``EvalDataset`` (COCO metric) every ``snapshot_epoch``.
        callbacks: extra ``ppdet.engine.callbacks.Callback`` instances, or Callback
            classes (made with the trainer, as PaddleDetection's own callbacks are).

    Returns:
        The ``ppdet.engine.Trainer`` after training; ``trainer.eval_results`` holds the
        last evaluation's metrics (e.g. ``{'bbox': [AP, AP50, ...12 COCO stats]}``).
    """
    from ppdet.engine import Trainer
    from ppdet.engine.callbacks import Callback

    class KeepEvalResults(Callback):
        """PaddleDetection resets its metrics after logging them: keep a copy."""

        def on_epoch_end(self, status):
            if status.get("mode") == "eval":
                self.model.eval_results = {
                    k: [float(x) for x in v]
                    for m in self.model._metrics for k, v in m.get_results().items()}

    _select_device(cfg)
    check_coco_layout(cfg, ("Train", "Eval") if validate else ("Train",))
    weights = check_pretrain_weights(cfg)
    if cfg.get("output_eval"):  # PaddleDetection makes only the last folder
        os.makedirs(cfg["output_eval"], exist_ok=True)
    trainer = Trainer(cfg, mode="train")
    if weights:
        trainer.load_weights(weights)
    trainer.eval_results = {}
    extra = [c(trainer) if isinstance(c, type) else c for c in callbacks]
    trainer.register_callbacks([KeepEvalResults(trainer)] + extra)
    trainer.train(validate)
    return trainer
