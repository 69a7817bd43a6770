"""PaddleClas's YAML config schema: load, ``-o Section.key=value`` overrides, validation.

Validation is this one layer: each section's valid keys come from the code that reads
it (the builders' keyword-only parameters and the registries' parameter lists, or
``DEFAULTS`` for the trainer's own sections), its values from ``SCHEMA``. A misspelt key,
in the file or in an override, is an error naming the nearest valid keys; nothing is
silently added.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import yaml

from ..data import (batch_transform_params, dataset_params, loader_options, loader_params,
                    sampler_params, transform_params)
from ..models.aliases import paddleclas_alias, paddleclas_variant
from ..models.registry import model_entrypoint
from ..models.resnet import arch_options
from ..utils.cli import cap_text
from ..utils.hints import did_you_mean, lookup
from ..utils.io import write_text
from ..utils.schema import BOOL, NON_NEGATIVE_INT, POSITIVE_INT, SchemaError, Typed
from ..utils.yamlio import YamlError, load_yaml
from .losses import build_loss, loss_params
from .optim import build_lr, lr_params, optimizer_params, regularizer_params

__all__ = ["ConfigError", "DEFAULTS", "SCHEMA", "load_config", "share_data_file",
           "apply_override", "parse_value", "validate_config", "save_config", "dump_config",
           "get_parser", "parse_args"]


class ConfigError(ValueError):
    """A config file or override names a key or value the code does not accept."""


# Keys every config has; files fill in what they need. The meaning of every key is
# PaddleClas's; keys marked "ours" are this package's extensions.
DEFAULTS: Dict[str, Any] = {
    "Global": {
        "output_dir": "./output",
        "device": "auto",            # auto | cpu | gpu
        "seed": 42,                  # ours (PaddleClas seeds nothing by default)
        "epochs": 100,
        "eval_during_train": True,
        "eval_interval": 1,          # evaluate every N epochs (and at the last)
        "save_interval": 0,          # also keep epoch_N.* every N epochs; 0 = off
        "print_batch_step": 10,      # record train loss and log a line every N iterations
        "pretrained_model": None,    # path or URL: initialise from weights
        "checkpoints": None,         # output dir or checkpoint prefix: resume
        "use_visualdl": True,
        "save_inference_dir": "./output/inference",
        "image_shape": [3, 32, 32],  # export / benchmark input (C, H, W)
        "to_static": False,          # train the paddle.jit.to_static program
        "plot": True,                # ours: loss.png / acc.png at the end
        "progress_bar": True,        # ours
        "overwrite": False,          # ours: a new run may replace the checkpoints in output_dir
    },
    "AMP": {
        "use_amp": False,            # GPU only; refused on CPU
        "level": "O1",
        "scale_loss": 65536.0,       # the initial loss scale (GradScaler init_loss_scaling)
        "use_dynamic_loss_scaling": True,
        "use_fp16_test": False,      # evaluate under auto_cast too
        "use_promote": False,
    },
    "Arch": None,                    # required: every config names its model
    "Loss": {"Train": [{"CELoss": {"weight": 1.0}}], "Eval": [{"CELoss": {"weight": 1.0}}]},
    "Optimizer": {"name": "Momentum", "momentum": 0.9,
                  "lr": {"name": "Constant", "learning_rate": 0.1}},
    "DataLoader": {},
    "Metric": {"Train": [{"TopkAcc": {"topk": [1, 5]}}], "Eval": [{"TopkAcc": {"topk": [1, 5]}}]},
    "Infer": {
        "infer_imgs": None,
        "batch_size": 8,
        "transforms": None,          # defaults to DataLoader.Eval's transform_ops
        "PostProcess": {"name": "Topk", "topk": 5, "class_id_map_file": None,
                        "delimiter": " ",
                        "class_names": None},  # ours: the names as a list
    },
}
_SECTIONS = list(DEFAULTS)
_DATA = {"Train": False, "Eval": False}


def _same(keys: Iterable[str]) -> Callable[[Dict], Dict[str, bool]]:
    return lambda section: dict.fromkeys(keys, False)


# Where each section's keys come from, by dotted path ("*": DataLoader's Train and Eval):
# a function of the section (its ``name`` picks the builder) -> {key: required}.
_KEYS: Dict[str, Callable[[Dict], Dict[str, bool]]] = {
    "": _same(_SECTIONS),
    **{s: _same(DEFAULTS[s]) for s in ("Global", "AMP", "Infer")},
    "Infer.PostProcess": _same(DEFAULTS["Infer"]["PostProcess"]),
    "Arch": lambda s: {"name": True, "class_num": False, "pretrained": False,
                       **dict.fromkeys(arch_options(), False)},
    "Loss": lambda s: {"Train": True, "Eval": False},
    "Metric": _same(_DATA),
    "Optimizer": lambda s: optimizer_params(s.get("name")),
    "Optimizer.lr": lambda s: lr_params(s.get("name")),
    "Optimizer.regularizer": lambda s: regularizer_params(),
    "DataLoader": _same(_DATA),
    "DataLoader.*": lambda s: loader_params(),
    "DataLoader.*.dataset": lambda s: {"name": True, "transform_ops": False,
                                       "batch_transform_ops": False,
                                       **dict.fromkeys(dataset_params(s.get("name")), False)},
    "DataLoader.*.sampler": lambda s: sampler_params(s.get("name", "DistributedBatchSampler")),
    "DataLoader.*.loader": lambda s: loader_options(),
}
METRICS = {"TopkAcc": ["topk"]}  # PaddleClas's metrics this trainer reports (top-1, top-5)
# PaddleClas's op lists (``- Name: {param: value}``): the op's valid keys by its name.
_OP_LISTS: Dict[str, Callable[[str], Iterable[str]]] = {
    "Loss.Train": loss_params, "Loss.Eval": loss_params,
    "Metric.Train": lambda n: lookup(METRICS, n, "metric"),
    "Metric.Eval": lambda n: lookup(METRICS, n, "metric"),
    "Infer.transforms": transform_params,
    "DataLoader.*.dataset.transform_ops": transform_params,
    "DataLoader.*.dataset.batch_transform_ops": batch_transform_params,
}

# Keys of earlier versions of this package and of PaddleClas's other layouts: each names
# where it went (PaddleClas users' most common trip: a key silently ignored). A key that
# the section's builder takes (AdamW's weight_decay) is never one of these.
_MOVED = {
    "AMP.enable": "AMP.use_amp",
    "AMP.init_loss_scaling": "AMP.scale_loss",
    "AMP.use_pure_fp16": "AMP.level: O2",
    "Loss.name": "Loss.Train: [{CELoss: {weight: 1.0, epsilon: 0.1}}] (and Loss.Eval)",
    "Loss.epsilon": "Loss.Train: [{CELoss: {weight: 1.0, epsilon: ...}}]",
    "Optimizer.weight_decay": "Optimizer.regularizer: {name: L2, coeff: ...}",
    "Infer.topk": "Infer.PostProcess.topk",
    "Infer.class_names": "Infer.PostProcess.class_names",
    "Global.class_num": "Arch.class_num",
    "Global.image_channel": "Arch.in_channels",
    "Arch.input_image_channel": "Arch.in_channels",
    "DataLoader.*.dataset.transforms": "DataLoader.*.dataset.transform_ops",
    **{f"DataLoader.*.{k}": f"DataLoader.*.sampler.{k}" for k in ("batch_size", "shuffle",
                                                                   "drop_last")},
    **{f"DataLoader.*.{k}": f"DataLoader.*.loader.{k}" for k in ("num_workers",
                                                                  "use_shared_memory",
                                                                  "skip_bad_images")},
}
# PaddleClas keys whose other values this package cannot honour: key -> (accepted
# values, why). A key here with an accepted value is kept and means what it says.
_REFUSED = {
    "Global.use_dali": ((False,), "NVIDIA DALI loading is not supported here; Paddle's "
                        "DataLoader is used (set it to false)"),
    "Global.use_multilabel": ((False,), "multi-label classification is not supported here"),
    "Global.eval_mode": (("classification",), "only classification is supported here "
                         "(no retrieval)"),
    "Global.update_freq": ((1,), "gradient accumulation is not supported here"),
    "Arch.data_format": (("NCHW",), "the models here are NCHW only"),
    "Optimizer.lr.last_epoch": ((-1,), "a schedule starts at its beginning here; resume with "
                                "Global.checkpoints instead"),
    "Optimizer.lr.verbose": ((False,), "the learning rate is logged every print_batch_step "
                             "instead"),
    "Optimizer.lr.by_epoch": ((False,), "schedules step every iteration here (epoch-based ones "
                              "change only at epoch boundaries)"),
    "Arch.use_ssld": ((False,), "SSLD-distilled pretrained weights do not exist for these "
                      "models"),
}
_NOT_HERE = {  # whole PaddleClas features with no counterpart here
    **dict.fromkeys(("Arch.Backbone", "Arch.Head", "Arch.Neck", "Arch.BackboneStopLayer"),
                    "RecModel (retrieval) architectures"),
    "Arch.models": "distillation models",
    "Arch.infer_add_softmax": "an exported softmax (infer applies it itself)",
    "Arch.infer_output_key": "RecModel outputs",
    "Arch.use_first_short_conv": "ResNet variants other than this family",
    "Arch.layer_type": "ResNet variants other than this family",
    "Arch.pretrained_list": "per-model pretrained lists",
    "Arch.lr_mult_list": "per-stage learning-rate multipliers",
    "Global.feature_normalize": "retrieval", "Global.feature_binarize": "retrieval",
    "EMA": "EMA weights", "Global.use_ema": "EMA weights",
    "Global.use_sync_bn": "use Arch.norm: sync_bn",
}
_OLD_TOP = ("ARCHITECTURE", "TRAIN", "VALID", "OPTIMIZER", "LEARNING_RATE", "mode",
            "classes_num", "model_save_dir", "total_images", "validate", "valid_interval")

_PATH = Typed("str", null=True)
_UNIT = Typed("number", min=0, max=1, max_open=True)
# The type and range of every value a user can set, by dotted path ("*" as in _KEYS).
SCHEMA: Dict[str, Typed] = {
    **{f"Global.{k}": Typed("str") for k in ("output_dir", "save_inference_dir")},
    **{f"Global.{k}": _PATH for k in ("pretrained_model", "checkpoints")},
    **{f"Global.{k}": BOOL for k in ("eval_during_train", "use_visualdl", "to_static", "plot",
                                     "progress_bar", "overwrite")},
    **{f"Global.{k}": POSITIVE_INT for k in ("epochs", "eval_interval", "print_batch_step")},
    "Global.device": Typed("choice", choices=("auto", "cpu", "gpu")),
    "Global.seed": NON_NEGATIVE_INT,
    "Global.save_interval": NON_NEGATIVE_INT,
    "Global.image_shape": Typed("list", item=POSITIVE_INT, length=3),
    **{f"AMP.{k}": BOOL for k in ("use_amp", "use_dynamic_loss_scaling", "use_fp16_test",
                                  "use_promote")},
    "AMP.level": Typed("choice", choices=("O1", "O2")),
    "AMP.scale_loss": Typed("number", min=0, min_open=True),
    **{f"Arch.{k}": Typed("str") for k in ("name", "stem", "position", "freq_sel", "norm")},
    **{f"Arch.{k}": POSITIVE_INT for k in ("class_num", "in_channels", "width", "reduction")},
    "Arch.input_size": Typed("int", min=1, null=True),
    "Arch.seed": NON_NEGATIVE_INT,
    "Arch.squeeze": Typed("str", null=True),
    "Arch.features_only": BOOL,
    "Arch.out_indices": Typed("list", item=NON_NEGATIVE_INT),
    "Optimizer.name": Typed("str"),
    "Optimizer.momentum": Typed("number", min=0, max=1),
    "Optimizer.weight_decay": Typed("number", min=0),  # AdamW's decoupled decay
    "Optimizer.use_nesterov": BOOL,
    "Optimizer.multi_precision": BOOL,
    "Optimizer.beta1": _UNIT,
    "Optimizer.beta2": _UNIT,
    "Optimizer.epsilon": Typed("number", min=0, min_open=True),
    "Optimizer.lr.name": Typed("str"),
    "Optimizer.lr.learning_rate": Typed("number", min=0),
    "Optimizer.lr.milestones": Typed("list", item=NON_NEGATIVE_INT),
    "Optimizer.lr.decay_epochs": Typed("list", item=POSITIVE_INT),
    "Optimizer.lr.values": Typed("list", item=Typed("number", min=0)),
    "Optimizer.lr.gamma": Typed("number", min=0, min_open=True),
    **{f"Optimizer.lr.{k}": Typed("number", min=0) for k in ("eta_min", "warmup_epoch",
                                                            "warmup_start_lr")},
    "Optimizer.regularizer.name": Typed("choice", choices=("L2",)),
    "Optimizer.regularizer.coeff": Typed("number", min=0),
    "DataLoader.*.dataset.num_samples": Typed("int", min=1, null=True),
    "DataLoader.*.sampler.batch_size": POSITIVE_INT,
    "DataLoader.*.sampler.shuffle": Typed("bool", null=True),
    "DataLoader.*.sampler.drop_last": BOOL,
    "DataLoader.*.loader.num_workers": NON_NEGATIVE_INT,
    "DataLoader.*.loader.use_shared_memory": BOOL,
    "DataLoader.*.loader.skip_bad_images": BOOL,
    "Infer.infer_imgs": _PATH,
    "Infer.batch_size": POSITIVE_INT,
    "Infer.PostProcess.name": Typed("choice", choices=("Topk",)),
    "Infer.PostProcess.topk": POSITIVE_INT,
    "Infer.PostProcess.class_id_map_file": _PATH,
    "Infer.PostProcess.delimiter": Typed("str"),
}
_INDEX = re.compile(r"^(.*?)\[(\d+)\]$")


def _pattern(path: Sequence[Any]) -> str:
    """The dotted key of ``_KEYS`` / ``SCHEMA`` for ``path`` (DataLoader's mode as ``*``)."""
    return ".".join("*" if i == 1 and path[0] == "DataLoader" else str(p)
                    for i, p in enumerate(path))


def _near(key: Any, valid: Iterable[str]) -> str:
    valid = [str(v) for v in valid]
    return f"{did_you_mean(key, valid, n=3, cutoff=0.5, quote=False)}valid keys: {', '.join(valid)}"


def _wrap(fn: Callable[[], Any], where: str) -> Any:
    """``fn()``, its ValueError (registries name the valid names) as a ConfigError."""
    try:
        return fn()
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _refuse(path: List[Any], value: Any, valid: Iterable[str]) -> None:
    """A key its section's builder does not take: moved, not here, refused at this
    value, or unknown; returns only for a refused key at an accepted value."""
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
    """Check the section at ``path`` and everything under it, in place (values that are
    numbers written as text become numbers; a null section becomes empty)."""
    where = ".".join(map(str, path)) or "the config"
    if not isinstance(node, dict):
        raise ConfigError(f"{where} must be a mapping, got {cap_text(repr(node), 80)}")
    keys = _wrap(lambda: _KEYS[_pattern(path)](node), f"{where}.name")
    for key, required in keys.items():
        if required and node.get(key) is None:
            raise ConfigError(f"{where} needs {key} (required: "
                              f"{', '.join(k for k, r in keys.items() if r)}; see configs/)")
    for key, value in node.items():
        here = path + [key]
        pattern = _pattern(here)
        if key not in keys:
            _refuse(here, value, keys)
        elif pattern in SCHEMA:
            try:
                node[key] = SCHEMA[pattern].check(".".join(map(str, here)), value)
            except SchemaError as exc:
                raise ConfigError(str(exc)) from None
        elif pattern in _OP_LISTS:
            _op_list(value, ".".join(map(str, here)), _OP_LISTS[pattern])
        elif pattern in _KEYS:
            node[key] = {} if value is None else value
            _walk(node[key], here)


def _op_list(ops: Any, where: str, params_of: Callable[[str], Iterable[str]]) -> None:
    """A PaddleClas op list: ``- Name: {param: value}`` entries, each checked by name."""
    if ops is None:
        return
    if not isinstance(ops, list):
        raise ConfigError(f"{where} must be a list of '- Name: {{param: value}}' entries, got "
                          f"{cap_text(repr(ops), 80)}")
    for i, entry in enumerate(ops):
        if isinstance(entry, dict) and len(entry) == 1:
            (name, params), = entry.items()
        elif isinstance(entry, str):
            name, params = entry, {}
        else:
            raise ConfigError(f"{where}[{i}] is {cap_text(repr(entry), 80)}; each entry is one "
                              "op like '- Name: {param: value}' (e.g. '- ToTensor: {}')")
        valid = list(_wrap(lambda: params_of(name), f"{where}[{i}]"))
        if not isinstance(params or {}, dict):
            raise ConfigError(f"{where}[{i}].{name} must be a mapping of its parameters")
        for key in params or {}:
            if key not in valid:
                raise ConfigError(f"{where}[{i}].{name}.{key}: unknown key; " + _near(key, valid))


def validate_config(cfg: Dict[str, Any]) -> None:
    """Check every key and value against the code that reads it; raise ``ConfigError``."""
    _walk(cfg, [])
    _wrap(lambda: model_entrypoint(str(cfg["Arch"].get("name"))), "Arch.name")
    for split in ("Train", "Eval"):  # values that only the builders know, before any data
        _wrap(lambda: build_loss(cfg["Loss"].get(split)), f"Loss.{split}")
        for entry in cfg["Metric"].get(split) or []:
            params = next(iter(entry.values())) if isinstance(entry, dict) else None
            topk = (params or {}).get("topk", [1, 5])
            if not set(topk if isinstance(topk, list) else [topk]) <= {1, 5}:
                raise ConfigError(f"Metric.{split}.TopkAcc.topk {topk}: this trainer reports "
                                  "top-1 and top-5 only; use topk: [1, 5]")
    _wrap(lambda: build_lr(cfg["Optimizer"]["lr"], 1, cfg["Global"]["epochs"]), "Optimizer.lr")


def parse_value(text: str) -> Any:
    """Typed override values: ints, floats (``5e-4`` too), bools, lists, null/None."""
    text = text.strip()
    if text in ("None", "none", "null", "Null", "~", ""):
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        for conv in (int, float, ast.literal_eval):
            try:
                return conv(value)
            except (ValueError, SyntaxError, TypeError):
                pass
    return value


def _split_key(key: str) -> List[Any]:
    parts: List[Any] = []
    for part in key.split("."):
        m = _INDEX.match(part)
        indices = []
        while m:  # a[0][1]
            indices.insert(0, int(m.group(2)))
            part = m.group(1)
            m = _INDEX.match(part)
        if part:
            parts.append(int(part) if part.isdigit() else part)
        parts.extend(indices)
    return parts


def apply_override(cfg: Dict[str, Any], override: str) -> None:
    """Apply ``Section.key=value`` (list items as ``key[0]`` or ``key.0``) in place.

    A new key lands where it is written; ``validate_config`` then checks it, so a
    misspelt key never passes silently.
    """
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like Section.key=value, "
                          "e.g. -o Global.epochs=1")
    key, text = override.split("=", 1)
    parts = _split_key(key.strip())
    if not parts or parts[0] not in _SECTIONS:
        raise ConfigError(f"override {key!r}: unknown section {parts[0] if parts else ''!r}; "
                          + _near(parts[0] if parts else "", _SECTIONS))
    node: Any = cfg
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(map(str, parts[:depth + 1]))
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise ConfigError(f"override {key!r}: {where} is not an index of a list "
                                  f"of {len(node)} items")
            node = node[part]
        else:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {key!r}: {where} holds a value, not a section")
    last = parts[-1]
    if isinstance(node, list) and (not isinstance(last, int) or last >= len(node)):
        raise ConfigError(f"override {key!r}: index {last} out of range for a list of "
                          f"{len(node)} items")
    value = parse_value(text)
    # a string-typed key (a path) keeps its text: -o Global.output_dir=2024
    spec = SCHEMA.get(_pattern(parts))
    if spec is not None and spec.kind == "str" and value is not None and not isinstance(value, str):
        value = text.strip()
    node[last] = value


def _merge(base: Dict[str, Any], new: Dict[str, Any], depth: int = 0) -> Dict[str, Any]:
    """Sections Global, AMP, Infer (and Infer.PostProcess) fill in defaults key by key;
    every other section a file gives replaces the default whole."""
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


def _read_yaml(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path} (configs live in configs/, e.g. "
                          "-c configs/orthonet18_cifar10.yaml)")
    try:  # bounded aliases, duplicate keys refused with their line (utils.yamlio)
        data = load_yaml(path) or {}
    except YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections ({', '.join(_SECTIONS)})")
    return data


def load_config(path: Optional[str], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config (PaddleClas's schema), fill defaults, apply overrides, validate."""
    data: Dict[str, Any] = _read_yaml(path) if path else {}
    old = [k for k in data if k in _OLD_TOP]
    if old:
        raise ConfigError(f"{path}: {', '.join(map(str, old))} belong to PaddleClas's 1.x "
                          "static-graph config layout; write it in the 2.x layout (Global, Arch, "
                          "Loss, Optimizer, DataLoader, Metric, Infer; see configs/)")
    for section in set(data) - set(_SECTIONS):
        _refuse([section], data[section], _SECTIONS)
    if isinstance(data.get("AMP"), dict) and "use_amp" not in data["AMP"] \
            and "enable" not in data["AMP"]:
        data["AMP"]["use_amp"] = True  # PaddleClas: an AMP section without use_amp turns it on
    cfg = _merge(DEFAULTS, data)
    for override in overrides or ():
        apply_override(cfg, override)
    if not cfg.get("Arch"):
        raise ConfigError(f"{path or 'the config'} has no Arch section: every config names its "
                          "model, e.g. Arch: {name: orthonet18, class_num: 10, stem: cifar} "
                          "(see configs/)")
    _resolve_arch_name(cfg["Arch"])
    validate_config(cfg)
    share_data_file(cfg)
    expand_paths(cfg)
    return cfg


def expand_paths(cfg: Dict[str, Any]) -> None:
    """``~`` in Global's paths means the home folder, as in a shell (else a folder named
    ``~`` appeared in the working directory); URLs are left alone."""
    g = cfg.get("Global") or {}
    for key in ("output_dir", "checkpoints", "pretrained_model", "save_inference_dir"):
        if isinstance(g.get(key), str) and g[key].startswith("~"):
            g[key] = os.path.expanduser(g[key])


def _resolve_arch_name(arch: Dict[str, Any]) -> None:
    if not isinstance(arch, dict):
        return  # validate_config names it
    near = paddleclas_variant(arch.get("name"))
    if near is not None:
        raise ConfigError(f"Arch.name: {arch['name']} is PaddleClas's {arch['name'].rsplit('_', 1)[1]} "
                          "variant (deep stem, average-pool downsampling), which this package does "
                          f"not build; nearest: {near} (-o Arch.name={near})")
    arch["name"] = paddleclas_alias(arch.get("name")) or arch.get("name")


def share_data_file(cfg: Dict[str, Any]) -> None:
    """One archive serves both splits (CIFAR's holds train and test): when
    ``DataLoader.Eval.dataset`` is the same dataset as Train's and its ``data_file`` is
    null or absent, it takes Train's, so ``-o DataLoader.Train.dataset.data_file=...``
    given once trains and evaluates."""
    loaders = cfg.get("DataLoader") or {}
    train = (loaders.get("Train") or {}).get("dataset") or {}
    evl = (loaders.get("Eval") or {}).get("dataset") or {}
    if (train.get("data_file") and evl and evl.get("name") == train.get("name")
            and evl.get("data_file") is None):
        evl["data_file"] = train["data_file"]


def dump_config(cfg: Dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def save_config(cfg: Dict[str, Any], path: str) -> None:
    """Write the resolved config (atomically) so a run records what it ran."""
    write_text(dump_config(cfg), path)


def get_parser(description: str) -> argparse.ArgumentParser:
    """The tools' shared ``-c`` / ``-o`` arguments."""
    # Raw: the tools' docstrings hold example commands, one a line; argparse would reflow them.
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="YAML config, e.g. configs/orthonet18_cifar10.yaml")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. -o Global.epochs=1 (repeatable)")
    return parser


def parse_args(description: str, argv: Optional[Sequence[str]] = None, require_config: bool = True):
    parser = get_parser(description)
    args = parser.parse_args(argv)
    if require_config and not args.config:
        parser.error("-c/--config is required (e.g. -c configs/orthonet18_cifar10.yaml)")
    return args
