"""PaddleClas's YAML config schema: load, ``-o Section.key=value`` overrides, validation.

Every key is checked against what the code accepts; a misspelt key, in the
file or in an override, is an error naming the nearest valid keys. Nothing is
silently added.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml

from ..utils.io import cap_repr
from ..utils.yamlio import YamlError, load_yaml

from ..utils.hints import did_you_mean
from ..utils.io import write_text
from ..utils.schema import BOOL, NON_NEGATIVE_INT, POSITIVE_INT, SchemaError, Typed

__all__ = ["ConfigError", "DEFAULTS", "load_config", "share_data_file", "apply_override", "parse_value",
           "validate_config", "save_config", "dump_config", "get_parser", "parse_args"]


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

# Keys of earlier versions of this package and of PaddleClas's other layouts: each names
# where it went. (PaddleClas users' most common trip: a key silently ignored.)
_MOVED = {
    "AMP.enable": "AMP.use_amp",
    "AMP.init_loss_scaling": "AMP.scale_loss",
    "Loss.name": "Loss.Train: [{CELoss: {weight: 1.0, epsilon: 0.1}}] (and Loss.Eval)",
    "Loss.epsilon": "Loss.Train: [{CELoss: {weight: 1.0, epsilon: ...}}]",
    "Optimizer.weight_decay": "Optimizer.regularizer: {name: L2, coeff: ...}",
    "Infer.topk": "Infer.PostProcess.topk",
    "Infer.class_names": "Infer.PostProcess.class_names",
    "Global.class_num": "Arch.class_num",
    "Global.image_channel": "Arch.in_channels",
    "Arch.input_image_channel": "Arch.in_channels",
    "AMP.use_pure_fp16": "AMP.level: O2",
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
    "Arch.Backbone": "RecModel (retrieval) architectures",
    "Arch.Head": "RecModel (retrieval) architectures",
    "Arch.Neck": "RecModel (retrieval) architectures",
    "Arch.BackboneStopLayer": "RecModel (retrieval) architectures",
    "Arch.models": "distillation models",
    "Arch.infer_add_softmax": "an exported softmax (infer applies it itself)",
    "Arch.infer_output_key": "RecModel outputs",
    "Arch.use_first_short_conv": "ResNet variants other than this family",
    "Arch.layer_type": "ResNet variants other than this family",
    "Arch.pretrained_list": "per-model pretrained lists",
    "Arch.lr_mult_list": "per-stage learning-rate multipliers",
    "Global.feature_normalize": "retrieval", "Global.feature_binarize": "retrieval",
    "Global.use_ema": "EMA weights", "Global.use_sync_bn": "use Arch.norm: sync_bn",
}
_OLD_TOP = ("ARCHITECTURE", "TRAIN", "VALID", "OPTIMIZER", "LEARNING_RATE", "mode",
            "classes_num", "model_save_dir", "total_images", "validate", "valid_interval")

_NUM = Typed("number")
_PATH = Typed("str", null=True)
# The type and range of every value a user can set; keys are dotted paths, and
# DataLoader.* applies to both Train and Eval.
SCHEMA: Dict[str, Typed] = {
    "Global.output_dir": Typed("str"),
    "Global.device": Typed("choice", choices=("auto", "cpu", "gpu")),
    "Global.seed": NON_NEGATIVE_INT,
    "Global.epochs": POSITIVE_INT,
    "Global.eval_during_train": BOOL,
    "Global.eval_interval": POSITIVE_INT,
    "Global.save_interval": NON_NEGATIVE_INT,
    "Global.print_batch_step": POSITIVE_INT,
    "Global.pretrained_model": _PATH,
    "Global.checkpoints": _PATH,
    "Global.use_visualdl": BOOL,
    "Global.save_inference_dir": Typed("str"),
    "Global.image_shape": Typed("list", item=POSITIVE_INT, length=3),
    "Global.to_static": BOOL,
    "Global.plot": BOOL,
    "Global.progress_bar": BOOL,
    "Global.overwrite": BOOL,
    "AMP.use_amp": BOOL,
    "AMP.level": Typed("choice", choices=("O1", "O2")),
    "AMP.scale_loss": Typed("number", min=0, min_open=True),
    "AMP.use_dynamic_loss_scaling": BOOL,
    "AMP.use_fp16_test": BOOL,
    "AMP.use_promote": BOOL,
    "Arch.name": Typed("str"),
    "Arch.class_num": POSITIVE_INT,
    "Arch.in_channels": POSITIVE_INT,
    "Arch.width": POSITIVE_INT,
    "Arch.input_size": Typed("int", min=1, null=True),
    "Arch.reduction": POSITIVE_INT,
    "Arch.seed": NON_NEGATIVE_INT,
    "Arch.stem": Typed("str"),
    "Arch.squeeze": Typed("str", null=True),
    "Arch.position": Typed("str"),
    "Arch.freq_sel": Typed("str"),
    "Arch.norm": Typed("str"),
    "Arch.features_only": BOOL,
    "Arch.out_indices": Typed("list", item=NON_NEGATIVE_INT),
    "Optimizer.name": Typed("str"),
    "Optimizer.momentum": Typed("number", min=0, max=1),
    "Optimizer.weight_decay": Typed("number", min=0, null=True),  # AdamW's decoupled decay
    "Optimizer.use_nesterov": BOOL,
    "Optimizer.multi_precision": BOOL,
    "Optimizer.beta1": Typed("number", min=0, max=1, max_open=True),
    "Optimizer.beta2": Typed("number", min=0, max=1, max_open=True),
    "Optimizer.epsilon": Typed("number", min=0, min_open=True),
    "Optimizer.lr.name": Typed("str"),
    "Optimizer.lr.learning_rate": Typed("number", min=0),
    "Optimizer.lr.milestones": Typed("list", item=NON_NEGATIVE_INT),
    "Optimizer.lr.decay_epochs": Typed("list", item=POSITIVE_INT),
    "Optimizer.lr.values": Typed("list", item=Typed("number", min=0)),
    "Optimizer.lr.gamma": Typed("number", min=0, min_open=True),
    "Optimizer.lr.eta_min": Typed("number", min=0),
    "Optimizer.lr.warmup_epoch": Typed("number", min=0),
    "Optimizer.lr.warmup_start_lr": Typed("number", min=0),
    "Optimizer.regularizer.name": Typed("choice", choices=("L2",)),
    "Optimizer.regularizer.coeff": Typed("number", min=0),
    "DataLoader.*.dataset.num_samples": Typed("int", min=1, null=True),
    "DataLoader.*.sampler.name": Typed("str"),
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


# PaddleClas's Metric.Train / Metric.Eval entries this package computes.
METRICS = {"TopkAcc": ["topk"]}


def metric_params(name: str) -> List[str]:
    """Valid keys of a ``Metric.Train/Eval`` entry named ``name``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)} (top-1/top-k "
                         "accuracy; the other PaddleClas metrics are for retrieval/multi-label)")
    return METRICS[name]


def metric_topk(cfg: Dict[str, Any], split: str = "Eval") -> List[int]:
    """The k of every ``TopkAcc`` in ``Metric.<split>`` (sorted; 1 is always reported, as
    the best-model metric is top-1). An empty or null list gives ``[1]``."""
    ks = {1}
    for entry in ((cfg.get("Metric") or {}).get(split) or []):
        name, params = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        topk = (params or {}).get("topk", [1, 5])
        for k in ([topk] if isinstance(topk, int) else topk):
            if not isinstance(k, int) or isinstance(k, bool) or k < 1:
                raise ValueError(f"Metric.{split}.{name}.topk must hold positive integers, got "
                                 f"{topk!r}")
            ks.add(int(k))
    return sorted(ks)


def _near(key: str, valid: Iterable[str]) -> str:
    valid = [str(v) for v in valid]
    return f"{did_you_mean(key, valid, n=3, cutoff=0.5, quote=False)}valid keys: {', '.join(valid)}"


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

    The key is created only when it is valid at that place; ``validate_config``
    then checks it, so a misspelt key never lands silently.
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
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise ConfigError(f"override {key!r}: index {last} out of range for a list of "
                              f"{len(node)} items")
    value = parse_value(text)
    # reliability (issue 20): a string-typed key (a path) keeps its text: -o Global.output_dir=2024
    spec = SCHEMA.get(".".join("*" if i == 1 and parts[0] == "DataLoader" else str(p) for i, p in enumerate(parts)))
    if spec is not None and spec.kind == "str" and value is not None and not isinstance(value, str):
        value = text.strip()
    node[last] = value


def _merge(base: Dict[str, Any], new: Dict[str, Any], depth: int = 0) -> Dict[str, Any]:
    """Sections Global, AMP, Infer (and Infer.PostProcess) fill in defaults key by key;
    every other section a file gives replaces the default whole."""
    out = copy.deepcopy(base)
    for k, v in (new or {}).items():
        nested = k in ("Global", "AMP", "Infer") if depth == 0 else k == "PostProcess"
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
    for section in data:
        if section not in _SECTIONS:
            raise ConfigError(f"{path}: unknown section {section!r}; " + _near(section, _SECTIONS))
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


_GLOBAL_PATHS = ("output_dir", "checkpoints", "pretrained_model", "save_inference_dir")


def expand_paths(cfg: Dict[str, Any]) -> None:
    """``~`` in Global's paths means the home folder, as in a shell (else a folder named
    ``~`` appeared in the working directory); URLs are left alone."""
    g = cfg.get("Global") or {}
    for key in _GLOBAL_PATHS:
        value = g.get(key)
        if isinstance(value, str) and value.startswith("~"):
            g[key] = os.path.expanduser(value)


def _resolve_arch_name(arch: Dict[str, Any]) -> None:
    from ..models.aliases import paddleclas_alias, paddleclas_variant
    near = paddleclas_variant(arch.get("name"))
    if near is not None:
        raise ConfigError(f"Arch.name: {arch['name']} is PaddleClas's {arch['name'].rsplit('_', 1)[1]} "
                          "variant (deep stem, average-pool downsampling), which this package does "
                          f"not build; nearest: {near} (-o Arch.name={near})")
    ours = paddleclas_alias(arch.get("name"))
    if ours is not None:
        arch["name"] = ours


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


def _check_keys(section: Dict[str, Any], valid: Iterable[str], where: str) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a mapping, got {cap_repr(section)}")
    valid = list(valid)
    for key in section:
        dotted = f"{where}.{key}"
        if dotted in _MOVED:
            raise ConfigError(f"{dotted} is now {_MOVED[dotted]} (PaddleClas's schema); move it")
        if dotted in _NOT_HERE:
            raise ConfigError(f"{dotted}: {_NOT_HERE[dotted]} are not supported by this "
                              "package; remove the key")
        if dotted in _REFUSED:
            accepted, why = _REFUSED[dotted]
            if section[key] not in accepted:
                raise ConfigError(f"{dotted}: {section[key]!r} cannot be honoured: {why}")
            continue
        if key not in valid:
            raise ConfigError(f"{dotted}: unknown key; " + _near(key, valid))


def _refusable(where: str) -> List[str]:
    return [k.rsplit(".", 1)[1] for k in (*_REFUSED, *_MOVED, *_NOT_HERE)
            if k.rsplit(".", 1)[0] == where]


def _arch_params() -> List[str]:
    from ..models.resnet import arch_options
    return ["name", "class_num", "pretrained", *arch_options()]


def _op_list(ops: Any, where: str, params_of, required: bool = False) -> None:
    """A PaddleClas op list: ``- Name: {param: value}`` entries, each checked by name."""
    if ops is None:
        if required:
            raise ConfigError(f"{where} must be a list like '- CELoss: {{weight: 1.0}}'")
        return
    if not isinstance(ops, list):
        raise ConfigError(f"{where} must be a list of '- Name: {{param: value}}' entries, got "
                          f"{cap_repr(ops)}")
    for i, entry in enumerate(ops):
        if isinstance(entry, str):
            name, params = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            name, params = next(iter(entry.items()))
        else:
            raise ConfigError(f"{where}[{i}] is {cap_repr(entry)}; each entry is one op like "
                              "'- Name: {param: value}' (e.g. '- ToTensor: {}')")
        _wrap(lambda: _check_keys(params or {}, params_of(name), f"{where}[{i}].{name}"),
              f"{where}[{i}]")


def validate_config(cfg: Dict[str, Any]) -> None:
    """Check every key against what the code accepts; raise ``ConfigError``."""
    from ..data import (batch_transform_params, dataset_params, loader_options,
                        loader_params, sampler_params, transform_params)
    from ..models.registry import model_entrypoint
    from .losses import loss_params
    from .optim import lr_params, optimizer_params

    _check_keys(cfg, _SECTIONS, "config")
    for section in ("Global", "AMP"):
        _check_keys(cfg[section], [*DEFAULTS[section], *_refusable(section)], section)
    _check_keys(cfg["Infer"], [*DEFAULTS["Infer"], *_refusable("Infer")], "Infer")
    post = cfg["Infer"].get("PostProcess") or {}
    _check_keys(post, DEFAULTS["Infer"]["PostProcess"], "Infer.PostProcess")
    _op_list(cfg["Infer"].get("transforms"), "Infer.transforms", transform_params)

    arch = cfg["Arch"]
    _check_keys(arch, [*_arch_params(), *_refusable("Arch")], "Arch")
    try:  # the registry's message: nearest names, or why a name is not registered
        model_entrypoint(str(arch.get("name")))
    except ValueError as exc:
        raise ConfigError(f"Arch.name: {exc}") from None

    loss = cfg["Loss"]
    _check_keys(loss, ["Train", "Eval", *_refusable("Loss")], "Loss")
    _op_list(loss.get("Train"), "Loss.Train", loss_params, required=True)
    _op_list(loss.get("Eval"), "Loss.Eval", loss_params)
    from .losses import build_loss
    for split in ("Train", "Eval"):  # values too (epsilon range), before any data is read
        _wrap(lambda: build_loss(loss.get(split)), f"Loss.{split}")
    metric = cfg["Metric"] or {}
    _check_keys(metric, ["Train", "Eval"], "Metric")
    for split in ("Train", "Eval"):
        _op_list(metric.get(split), f"Metric.{split}", metric_params)
        ks = _wrap_value(lambda: metric_topk(cfg, split), f"Metric.{split}")
        if set(ks) - {1, 5}:
            raise ConfigError(f"Metric.{split}.TopkAcc.topk {ks}: this trainer reports top-1 and "
                              "top-5 only; use topk: [1, 5]")

    opt = cfg["Optimizer"]
    _wrap(lambda: _check_keys(opt, [*optimizer_params(opt.get("name")), *_refusable("Optimizer")],
                              "Optimizer"), "Optimizer.name")
    lr = opt.get("lr")
    if not isinstance(lr, dict) or "name" not in lr:
        raise ConfigError("Optimizer.lr must be a mapping with a name, e.g. {name: Cosine, "
                          "learning_rate: 0.1}")
    _wrap(lambda: _check_keys(lr, [*lr_params(lr["name"]), *_refusable("Optimizer.lr")],
                              "Optimizer.lr"), "Optimizer.lr.name")
    if opt.get("regularizer") is not None:
        _check_keys(opt["regularizer"], ["name", "coeff"], "Optimizer.regularizer")
    _check_values(cfg)
    from .optim import build_lr  # the schedule's own checks (values vs decay_epochs, ...)
    _wrap(lambda: build_lr(lr, 1, cfg["Global"]["epochs"]), "Optimizer.lr")

    _check_keys(cfg["DataLoader"], ["Train", "Eval"], "DataLoader")
    for mode, loader in cfg["DataLoader"].items():
        where = f"DataLoader.{mode}"
        if isinstance(loader, dict):
            for key in loader:
                if key in ("batch_size", "shuffle", "drop_last", "num_workers",
                           "use_shared_memory", "skip_bad_images"):
                    part = "sampler" if key in ("batch_size", "shuffle", "drop_last") else "loader"
                    raise ConfigError(f"{where}.{key} is now {where}.{part}.{key} "
                                      "(PaddleClas's schema); move it")
        _check_keys(loader, loader_params(), where)
        ds = loader.get("dataset")
        if not isinstance(ds, dict) or "name" not in ds:
            raise ConfigError(f"{where}.dataset must be a mapping with a name, e.g. "
                              "{name: Cifar10, data_file: ...}")
        if "transforms" in ds:
            raise ConfigError(f"{where}.dataset.transforms is now {where}.dataset.transform_ops "
                              "(PaddleClas's schema); rename it")
        _wrap(lambda: _check_keys(ds, ["name", "transform_ops", "batch_transform_ops",
                                       *dataset_params(ds["name"])], f"{where}.dataset"),
              f"{where}.dataset.name")
        _op_list(ds.get("transform_ops"), f"{where}.dataset.transform_ops", transform_params)
        _op_list(ds.get("batch_transform_ops"), f"{where}.dataset.batch_transform_ops",
                 batch_transform_params)
        smp = loader.get("sampler") or {}
        _wrap(lambda: _check_keys(smp, sampler_params(smp.get("name", "DistributedBatchSampler")),
                                  f"{where}.sampler"), f"{where}.sampler.name")
        _check_keys(loader.get("loader") or {}, loader_options(), f"{where}.loader")
    _check_values(cfg)


_LISTS = ("transform_ops", "batch_transform_ops", "transforms")


def _check_values(cfg: Dict[str, Any]) -> None:
    """Every value against ``SCHEMA`` (numbers written as text become numbers)."""
    def visit(node: Any, path: List[str]) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            here = path + [str(key)]
            pattern = ".".join(["*" if len(here) > 1 and here[0] == "DataLoader" and i == 1
                                else p for i, p in enumerate(here)])
            spec = SCHEMA.get(pattern)
            if spec is not None:
                try:
                    node[key] = spec.check(".".join(here), value)
                except SchemaError as exc:
                    raise ConfigError(str(exc)) from None
            elif isinstance(value, dict) and not (len(here) >= 2 and here[-1] in _LISTS):
                visit(value, here)
    visit(cfg, [])


def _wrap_value(fn, where: str):
    try:
        return fn()
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _wrap(check, where: str) -> None:
    try:
        check()
    except ConfigError:
        raise
    except ValueError as exc:  # registries raise ValueError naming the valid names
        raise ConfigError(f"{where}: {exc}") from None


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
