"""PaddleClas's YAML config schema: load, ``-o Section.key=value`` overrides, validation.

The one validation layer: a section's valid keys come from the code that reads it (the
builders' keyword-only parameters, the registries' parameter lists, ``_OWN`` for the
trainer's own sections), values from ``SCHEMA``. A misspelt key, in the file or in an
override, is an error naming the nearest valid keys; nothing is silently added.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import yaml

from ..data import (batch_transform_params, dataset_params, loader_options, loader_params,
                    sampler_params, transform_params)
from ..models.aliases import paddleclas_alias, paddleclas_variant
from ..models.registry import model_entrypoint
from ..models.resnet import arch_options
from ..utils.cli import cap_text, get_parser, parse_args  # noqa: F401  (the tools' import)
from ..utils.hints import did_you_mean, lookup
from ..utils.io import write_text
from ..utils.schema import (BATCH_SIZE, BOOL, CHANNELS_MAX, CLASS_NUM, EPOCHS, IMAGE_SIDE,
                            NUM_SAMPLES, PATH, SEED, WIDTH,
                            ConfigError, Typed)
from ..utils.threads import WORKERS
from ..utils import yamlio
from ..utils.yamlio import YamlError, load_yaml, parse_value
from .losses import build_loss, loss_params
from .optim import build_lr, lr_params, optimizer_params, regularizer_params

__all__ = ["ConfigError", "DEFAULTS", "SCHEMA", "load_config", "apply_override", "parse_value",
           "validate_config", "save_config", "dump_config"]

_STR, _PATH = Typed("str"), Typed("path", null=True)
_UNIT = Typed("number", min=0, max=1, max_open=True)
_ITERS = Typed("int", min=1, max=10**9, why="iterations")  # beyond: never, in effect
# The trainer's own sections: key -> (default, type). The meaning of every key is
# PaddleClas's; keys marked "ours" are this package's extensions.
_OWN: Dict[str, Dict[str, tuple]] = {
    "Global": {
        "output_dir": ("./output", PATH),
        "device": ("auto", Typed("choice", choices=("auto", "cpu", "gpu"))),
        "seed": (42, SEED),                      # ours (PaddleClas seeds nothing by default)
        "epochs": (100, EPOCHS),
        "eval_during_train": (True, BOOL),
        "eval_interval": (1, EPOCHS),            # evaluate every N epochs (and at the last)
        "save_interval": (0, Typed("int", min=0, max=EPOCHS.max)),  # epoch_N.* every N; 0 = off
        "print_batch_step": (10, _ITERS),        # log train loss every N iterations
        "pretrained_model": (None, _PATH),       # path or URL: initialise from weights
        "checkpoints": (None, _PATH),            # output dir, checkpoint prefix or auto: resume
        "use_visualdl": (True, BOOL),
        "save_inference_dir": ("./output/inference", PATH),
        "image_shape": ([3, 32, 32], Typed("list", item=IMAGE_SIDE, length=3)),  # C, H, W
        "to_static": (False, BOOL),              # train the paddle.jit.to_static program
        "plot": (True, BOOL),                    # ours: loss.png / acc.png at the end
        "progress_bar": (True, BOOL),            # ours
        "overwrite": (False, BOOL),  # ours: a new run may replace the checkpoints in output_dir
        "update_freq": (1, _ITERS),              # accumulate N batches' gradients per step
    },
    "AMP": {
        "use_amp": (False, BOOL),                # GPU only; refused on CPU
        "level": ("O1", Typed("choice", choices=("O1", "O2"))),
        "scale_loss": (65536.0, Typed("number", min=0, min_open=True)),  # initial loss scale
        "use_dynamic_loss_scaling": (True, BOOL),
        "use_fp16_test": (False, BOOL),          # evaluate under auto_cast too
        "use_promote": (False, BOOL),
    },
    "Infer": {
        "infer_imgs": (None, _PATH),
        "batch_size": (8, BATCH_SIZE),
        "transforms": (None, None),              # defaults to DataLoader.Eval's transform_ops
        "PostProcess": (None, None),
    },
    "Infer.PostProcess": {
        "name": ("Topk", Typed("choice", choices=("Topk",))),
        "topk": (5, CLASS_NUM),
        "class_id_map_file": (None, _PATH),
        "delimiter": (" ", _STR),
        "class_names": (None, None),             # ours: the names as a list
    },
}
# Keys every config has; files fill in what they need.
DEFAULTS: Dict[str, Any] = {
    **{s: {k: v[0] for k, v in keys.items()} for s, keys in _OWN.items() if "." not in s},
    "Arch": None,
    "Loss": {"Train": [{"CELoss": {"weight": 1.0}}], "Eval": [{"CELoss": {"weight": 1.0}}]},
    "Optimizer": {"name": "Momentum", "momentum": 0.9,
                  "lr": {"name": "Constant", "learning_rate": 0.1}},
    "DataLoader": {},
    "Metric": {"Train": [{"TopkAcc": {"topk": [1, 5]}}], "Eval": [{"TopkAcc": {"topk": [1, 5]}}]},
}
DEFAULTS["Infer"]["PostProcess"] = {k: v[0] for k, v in _OWN["Infer.PostProcess"].items()}
_SECTIONS = ["Global", "AMP", "EMA", "Arch", "Loss", "Optimizer", "DataLoader", "Metric", "Infer"]
_SPLITS = {"Train": False, "Eval": False}

# Where each section's keys come from, by dotted path ("*": DataLoader's Train and Eval):
# a function of the section (its ``name`` picks the builder) -> {key: required}.
_KEYS: Dict[str, Callable[[Dict], Dict[str, bool]]] = {
    "": lambda s: {**dict.fromkeys(_SECTIONS, False), "Arch": True},  # every config names its model
    **{s: (lambda s, keys=keys: dict.fromkeys(keys, False)) for s, keys in _OWN.items()},
    "Arch": lambda s: {"name": True, "class_num": False, "pretrained": False,
                       **dict.fromkeys(arch_options(), False)},
    "Loss": lambda s: {"Train": True, "Eval": False},
    "Metric": lambda s: _SPLITS, "DataLoader": lambda s: _SPLITS,
    "Optimizer": lambda s: optimizer_params(s.get("name")),
    "Optimizer.lr": lambda s: lr_params(s.get("name")),
    "Optimizer.regularizer": lambda s: regularizer_params(),
    "EMA": lambda s: {"decay": False},  # the section's presence turns EMA on (PaddleClas)
    "DataLoader.*": lambda s: loader_params(),
    "DataLoader.*.dataset": lambda s: {"name": True, **dict.fromkeys(
        ["transform_ops", "batch_transform_ops", *dataset_params(s.get("name"))], False)},
    "DataLoader.*.sampler": lambda s: sampler_params(s.get("name", "DistributedBatchSampler")),
    "DataLoader.*.loader": lambda s: loader_options(),
}
_TOPK = {"TopkAcc": ["topk"]}  # PaddleClas's metrics this trainer reports (top-1, top-5)
# PaddleClas's op lists (``- Name: {param: value}``): the op's valid keys by its name.
_OP_LISTS: Dict[str, Callable[[str], Iterable[str]]] = {
    "Loss.Train": loss_params, "Loss.Eval": loss_params,
    **dict.fromkeys(("Metric.Train", "Metric.Eval"), lambda n: lookup(_TOPK, n, "metric")),
    "Infer.transforms": transform_params,
    "DataLoader.*.dataset.transform_ops": transform_params,
    "DataLoader.*.dataset.batch_transform_ops": batch_transform_params,
}

# Keys of earlier versions of this package and of PaddleClas's other layouts: each names
# where it went (PaddleClas users' most common trip: a key silently ignored). A key that
# the section's builder takes (AdamW's weight_decay) is never one of these.
_MOVED = {
    "AMP.enable": "AMP.use_amp", "AMP.init_loss_scaling": "AMP.scale_loss",
    "AMP.use_pure_fp16": "AMP.level: O2",
    "Loss.name": "Loss.Train: [{CELoss: {weight: 1.0, epsilon: 0.1}}] (and Loss.Eval)",
    "Loss.epsilon": "Loss.Train: [{CELoss: {weight: 1.0, epsilon: ...}}]",
    "Optimizer.weight_decay": "Optimizer.regularizer: {name: L2, coeff: ...}",
    "Global.use_ema": "EMA: {decay: 0.9999}",
    "Infer.topk": "Infer.PostProcess.topk", "Infer.class_names": "Infer.PostProcess.class_names",
    "Global.class_num": "Arch.class_num", "Global.image_channel": "Arch.in_channels",
    "Arch.input_image_channel": "Arch.in_channels",
    "DataLoader.*.dataset.transforms": "DataLoader.*.dataset.transform_ops",
    **{f"DataLoader.*.{k}": f"DataLoader.*.sampler.{k}"
       for k in ("batch_size", "shuffle", "drop_last")},
    **{f"DataLoader.*.{k}": f"DataLoader.*.loader.{k}"
       for k in ("num_workers", "use_shared_memory", "skip_bad_images")},
}
# PaddleClas keys whose other values this package cannot honour: key -> (accepted
# values, why). A key here with an accepted value is kept and means what it says.
_REFUSED = {
    "Global.use_dali": ((False,), "NVIDIA DALI loading is not supported here; Paddle's "
                        "DataLoader is used (set it to false)"),
    "Global.use_multilabel": ((False,), "multi-label classification is not supported here"),
    "Global.eval_mode": (("classification",), "only classification is supported here "
                         "(no retrieval)"),
    "Arch.data_format": (("NCHW",), "the models here are NCHW only"),
    "Arch.use_ssld": ((False,), "SSLD-distilled pretrained weights do not exist for these models"),
    "Optimizer.lr.last_epoch": ((-1,), "a schedule starts at its beginning here; resume with "
                                "Global.checkpoints instead"),
    "Optimizer.lr.verbose": ((False,), "the learning rate is logged every print_batch_step"),
    "Optimizer.lr.by_epoch": ((False,), "schedules step every iteration here (epoch-based ones "
                              "change only at epoch boundaries)"),
}
_NOT_HERE = {  # whole PaddleClas features with no counterpart here
    **dict.fromkeys(("Arch.Backbone", "Arch.Head", "Arch.Neck", "Arch.BackboneStopLayer",
                     "Arch.infer_output_key"), "RecModel (retrieval) architectures"),
    **dict.fromkeys(("Arch.use_first_short_conv", "Arch.layer_type"),
                    "ResNet variants other than this family"),
    **dict.fromkeys(("Global.feature_normalize", "Global.feature_binarize"), "retrieval"),
    "Arch.models": "distillation models",
    "Arch.infer_add_softmax": "an exported softmax (infer applies it itself)",
    "Arch.pretrained_list": "per-model pretrained lists",
    "Arch.lr_mult_list": "per-stage learning-rate multipliers",
    "Global.use_sync_bn": "use Arch.norm: sync_bn",
    **dict.fromkeys(("ARCHITECTURE", "TRAIN", "VALID", "OPTIMIZER", "LEARNING_RATE", "mode",
                     "classes_num", "model_save_dir", "total_images", "validate",
                     "valid_interval"), "PaddleClas 1.x's static-graph layouts (write the 2.x "
                                        "one: Global, Arch, Loss, ...; see configs/)"),
}

# The type and range of every value a user can set, by dotted path ("*" as in _KEYS); the
# bounds and their reasons are utils.schema's.
SCHEMA: Dict[str, Typed] = {
    **{f"{s}.{k}": v[1] for s, keys in _OWN.items() for k, v in keys.items() if v[1]},
    **{f"Arch.{k}": _STR for k in ("name", "stem", "position", "freq_sel", "norm", "global_pool")},
    "Arch.class_num": CLASS_NUM, "Arch.width": WIDTH,
    "Arch.in_channels": CHANNELS_MAX, "Arch.reduction": Typed("int", min=1, max=WIDTH.max),
    "Arch.input_size": Typed("int", min=1, max=IMAGE_SIDE.max, null=True),
    "Arch.seed": SEED,
    "Arch.squeeze": Typed("str", null=True),
    **{f"Arch.{k}": BOOL for k in ("features_only", "excitation_bias")},
    **{f"Arch.{k}": _UNIT for k in ("drop_rate", "drop_path_rate")},
    "Arch.out_indices": Typed("list", item=Typed("int", min=0, max=3)),
    "Optimizer.name": _STR,
    "EMA.decay": Typed("number", min=0, max=1, max_open=True),
    "Optimizer.momentum": Typed("number", min=0, max=1),
    "Optimizer.weight_decay": Typed("number", min=0),  # AdamW's decoupled decay
    **{f"Optimizer.{k}": BOOL for k in ("use_nesterov", "multi_precision")},
    "Optimizer.beta1": _UNIT, "Optimizer.beta2": _UNIT,
    "Optimizer.epsilon": Typed("number", min=0, min_open=True),
    "Optimizer.lr.name": _STR,
    **{f"Optimizer.lr.{k}": Typed("number", min=0)
       for k in ("learning_rate", "eta_min", "warmup_start_lr")},
    "Optimizer.lr.warmup_epoch": Typed("number", min=0, max=EPOCHS.max),
    "Optimizer.lr.milestones": Typed("list", item=Typed("int", min=0, max=EPOCHS.max)),
    "Optimizer.lr.decay_epochs": Typed("list", item=EPOCHS),
    "Optimizer.lr.values": Typed("list", item=Typed("number", min=0)),
    "Optimizer.lr.gamma": Typed("number", min=0, min_open=True),
    "Optimizer.regularizer.name": Typed("choice", choices=("L2",)),
    "Optimizer.regularizer.coeff": Typed("number", min=0),
    "DataLoader.*.dataset.name": _STR, "DataLoader.*.sampler.name": _STR,
    "DataLoader.*.dataset.num_samples": NUM_SAMPLES,
    **{f"DataLoader.*.dataset.{k}": _PATH for k in ("data_file", "image_path", "label_path",
                                                   "root", "image_root", "cls_label_path")},
    "DataLoader.*.dataset.image_size": IMAGE_SIDE,
    "DataLoader.*.dataset.num_classes": CLASS_NUM,
    "DataLoader.*.dataset.channels": CHANNELS_MAX,
    "DataLoader.*.dataset.seed": SEED,
    "DataLoader.*.sampler.batch_size": BATCH_SIZE,
    "DataLoader.*.sampler.shuffle": Typed("bool", null=True),
    "DataLoader.*.sampler.drop_last": BOOL,
    "DataLoader.*.loader.num_workers": WORKERS,  # an int or auto (utils.threads.plan)
    **{f"DataLoader.*.loader.{k}": BOOL for k in ("use_shared_memory", "skip_bad_images")},
}


def _pattern(path: Sequence[Any]) -> str:
    """The dotted key of ``_KEYS`` / ``SCHEMA`` for ``path`` (DataLoader's mode as ``*``)."""
    return ".".join("*" if i == 1 and path[0] == "DataLoader" else str(p)
                    for i, p in enumerate(path))


def _near(key: Any, valid: Iterable[str]) -> str:
    valid = [str(v) for v in valid]
    return f"{did_you_mean(key, valid, n=3, cutoff=0.5, quote=False)}valid keys: {', '.join(valid)}"


def _wrap(fn: Callable[[], Any], where: str) -> Any:
    """``fn()``, its ValueError or TypeError (registries name the valid names) as a
    ConfigError."""
    try:
        return fn()
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:  # a builder given a value of another type
        raise ConfigError(f"{where}: {exc}") from None


def _refuse(path: List[Any], value: Any, valid: Iterable[str]) -> None:
    """A key its builder does not take; returns only for a refused key at an accepted value."""
    dotted, pattern = ".".join(map(str, path)), _pattern(path)
    if pattern in _MOVED:
        moved = _MOVED[pattern].replace("*", str(path[1]) if len(path) > 1 else "*")
        raise ConfigError(f"{dotted} is now {moved} (PaddleClas's schema); move it")
    if pattern in _NOT_HERE:
        raise ConfigError(f"{dotted}: {_NOT_HERE[pattern]} are not supported by this package; "
                          "remove the key")
    if pattern in _REFUSED:
        accepted, why = _REFUSED[pattern]
        if value not in accepted:
            raise ConfigError(f"{dotted}: {value!r} cannot be honoured: {why}")
        return
    if len(path) == 1:
        raise ConfigError(f"unknown section {dotted!r}; " + _near(dotted, valid))
    raise ConfigError(f"{dotted}: unknown key; " + _near(path[-1], valid))


def _walk(node: Any, path: List[Any]) -> None:
    """Check the section at ``path`` and all under it, in place (values normalised)."""
    where = ".".join(map(str, path)) or "the config"
    if not isinstance(node, dict):
        raise ConfigError(f"{where} must be a mapping (got a {type(node).__name__}: "
                          f"{cap_text(repr(node), 80)})")
    name = SCHEMA.get(_pattern(path + ["name"]))
    if name is not None and "name" in node:  # the name picks the keys: checked first
        node["name"] = name.check(f"{where}.name", node["name"])
    keys = _wrap(lambda: _KEYS[_pattern(path)](node), f"{where}.name")
    for key in [k for k in node if k not in keys]:
        _refuse(path + [key], node[key], keys)
    for key in [k for k, required in keys.items() if required and node.get(k) is None]:
        raise ConfigError(f"{where} needs {key} (see configs/, e.g. "
                          "configs/orthonet18_cifar10.yaml)")
    for key, value in [(k, v) for k, v in node.items() if k in keys]:
        here = path + [key]
        pattern = _pattern(here)
        if pattern in SCHEMA:
            node[key] = SCHEMA[pattern].check(".".join(map(str, here)), value)
        elif pattern in _OP_LISTS:
            _op_list(value, ".".join(map(str, here)), _OP_LISTS[pattern])
        elif pattern in _KEYS:
            node[key] = {} if value is None else value
            _walk(node[key], here)


def _op_list(ops: Any, where: str, params_of: Callable[[str], Iterable[str]]) -> None:
    """A PaddleClas op list: ``- Name: {param: value}`` entries, each checked by name."""
    for i, entry in enumerate(ops if isinstance(ops, list) else [] if ops is None else [ops]):
        name, params = next(iter(entry.items())) if isinstance(entry, dict) and entry else (entry, {})
        if not isinstance(ops, list) or not isinstance(name, str) or not isinstance(
                params or {}, dict) or (isinstance(entry, dict) and len(entry) != 1):
            raise ConfigError(f"{where}{f'[{i}]' if isinstance(ops, list) else ''} is "
                              f"{cap_text(repr(entry), 80)}; each entry is one op like "
                              "'- Name: {param: value}' (e.g. '- ToTensor: {}') in a list")
        valid = list(_wrap(lambda: params_of(name), f"{where}[{i}]"))
        for key in (k for k in params or {} if k not in valid):
            raise ConfigError(f"{where}[{i}].{name}.{key}: unknown key; " + _near(key, valid))


def validate_config(cfg: Dict[str, Any]) -> None:
    """Check every key and value against the code that reads it; raise ``ConfigError``."""
    _walk(cfg, [])
    arch, near = cfg["Arch"], paddleclas_variant(cfg["Arch"]["name"])
    if near is not None:
        raise ConfigError(f"Arch.name: {arch['name']} is PaddleClas's {arch['name'].rsplit('_', 1)[1]} "
                          "variant (deep stem, average-pool downsampling), which this package does "
                          f"not build; nearest: {near} (-o Arch.name={near})")
    arch["name"] = paddleclas_alias(arch["name"]) or arch["name"]
    _wrap(lambda: model_entrypoint(arch["name"]), "Arch.name")
    for split in ("Train", "Eval"):  # values that only the builders know, before any data
        _wrap(lambda: build_loss(cfg["Loss"].get(split)), f"Loss.{split}")
        for entry in cfg["Metric"].get(split) or []:
            params = next(iter(entry.values())) if isinstance(entry, dict) else None
            topk = (params or {}).get("topk", [1, 5])
            if not set(topk if isinstance(topk, list) else [topk]) <= {1, 5}:
                raise ConfigError(f"Metric.{split}.TopkAcc.topk {topk}: this trainer reports "
                                  "top-1 and top-5 only; use topk: [1, 5]")
    _wrap(lambda: build_lr(cfg["Optimizer"]["lr"], 1, cfg["Global"]["epochs"]), "Optimizer.lr")


def apply_override(cfg: Dict[str, Any], override: str) -> None:
    """Apply ``Section.key=value`` in place; a string-typed key keeps its text (``=2024``)."""
    yamlio.apply_override(cfg, override, lambda path: getattr(
        SCHEMA.get(_pattern(path)), "kind", None) in ("str", "path"))


def _merge(base: Dict[str, Any], new: Dict[str, Any], depth: int = 0) -> Dict[str, Any]:
    """Global, AMP, Infer(.PostProcess) merge key by key; other sections replace whole."""
    out = copy.deepcopy(base)
    for k, v in (new or {}).items():
        nested = k in ("Global", "AMP", "Infer") if depth == 0 else k == "PostProcess"
        if nested and v is None:
            continue  # an empty section: its defaults
        if isinstance(v, dict) and isinstance(out.get(k), dict) and nested:
            out[k] = _merge(out[k], v, depth + 1)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: Optional[str], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config (PaddleClas's schema), fill defaults, apply overrides, validate."""
    if path and not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path} (configs live in configs/, e.g. "
                          "-c configs/orthonet18_cifar10.yaml)")
    try:  # bounded aliases, duplicate keys refused with their line (utils.yamlio)
        data = (load_yaml(path) if path else None) or {}
    except YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections ({', '.join(_SECTIONS)})")
    if isinstance(data.get("AMP"), dict) and not {"use_amp", "enable"} & set(data["AMP"]):
        data["AMP"]["use_amp"] = True  # PaddleClas: an AMP section without use_amp turns it on
    cfg = _merge(DEFAULTS, data)
    for override in overrides or ():
        apply_override(cfg, override)
    validate_config(cfg)
    # One archive serves both splits (CIFAR's): an Eval dataset of Train's name without a
    # data_file takes Train's, so -o DataLoader.Train.dataset.data_file=... is enough.
    train, evl = ((cfg["DataLoader"].get(s) or {}).get("dataset") or {} for s in ("Train", "Eval"))
    if (train.get("data_file") and evl.get("name") == train.get("name")
            and evl.get("data_file") is None):
        evl["data_file"] = train["data_file"]
    for key in ("output_dir", "checkpoints", "pretrained_model", "save_inference_dir"):
        value = cfg["Global"][key]  # ~ is the home folder, as in a shell; URLs stay
        cfg["Global"][key] = os.path.expanduser(value) if isinstance(value, str) else value
    _check_output_dir(cfg)
    return cfg


def _check_output_dir(cfg: Dict[str, Any]) -> None:
    """Refuse an output folder inside a folder read by listing it (ImageFolder's root, or
    its train/ and val/ when it has them): the next run would take its loss.png for an image
    and its subfolders for classes."""
    out = os.path.realpath(cfg["Global"]["output_dir"])
    for split, loader in (cfg["DataLoader"] or {}).items():
        root = ((loader or {}).get("dataset") or {}).get("root")
        if not isinstance(root, str):
            continue
        real = os.path.realpath(os.path.expanduser(root))
        read = [os.path.join(real, s) for s in ("train", "val")
                if os.path.isdir(os.path.join(real, s))] or [real]  # as ImageFolder reads
        if any(os.path.commonpath([out, r]) == r for r in read) or out == real:
            raise ConfigError(f"Global.output_dir {cfg['Global']['output_dir']} is inside "
                              f"DataLoader.{split}.dataset.root {root}, whose images and class "
                              "folders are read as data: the run's outputs would become data. "
                              "Choose an output folder outside it")


def dump_config(cfg: Dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def save_config(cfg: Dict[str, Any], path: str) -> None:
    """Write the resolved config (atomically) so a run records what it ran."""
    write_text(dump_config(cfg), path)
