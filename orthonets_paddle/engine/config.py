"""PaddleClas-style YAML configs: load, ``-o Section.key=value`` overrides, validation.

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


# Keys every config has; files fill in what they need. Comments say why.
DEFAULTS: Dict[str, Any] = {
    "Global": {
        "output_dir": "./output",
        "device": "auto",            # auto | cpu | gpu
        "seed": 42,
        "epochs": 100,
        "eval_interval": 1,          # evaluate every N epochs (and at the last)
        "save_interval": 0,          # also keep epoch_N.* every N epochs; 0 = off
        "print_batch_step": 10,      # record train loss and log a line every N iterations
        "pretrained_model": None,    # path or URL: initialise from weights
        "checkpoints": None,         # output dir or checkpoint prefix: resume
        "use_visualdl": True,
        "save_inference_dir": "./output/inference",
        "image_shape": [3, 32, 32],  # export / benchmark input (C, H, W)
        "plot": True,                # loss.png / acc.png at the end
        "progress_bar": True,
        "overwrite": False,          # a new run may replace the checkpoints in output_dir
    },
    "AMP": {
        "enable": False,             # GPU only; refused on CPU
        "level": "O1",
        "init_loss_scaling": 1024.0,
        "use_dynamic_loss_scaling": True,
    },
    "Arch": None,                    # required: every config names its model
    "Loss": {"name": "CELoss", "epsilon": 0.1},
    "Optimizer": {"name": "Momentum", "momentum": 0.9, "weight_decay": 5e-4,
                  "lr": {"name": "Constant", "learning_rate": 0.1}},
    "DataLoader": {},
    "Infer": {
        "infer_imgs": None,
        "batch_size": 8,
        "topk": 5,
        "transforms": None,          # defaults to DataLoader.Eval's transforms
        "class_names": None,         # list, or a text file with one name per line
    },
}
_SECTIONS = list(DEFAULTS)

_NUM = Typed("number")
_PATH = Typed("str", null=True)
# The type and range of every value a user can set; keys are dotted paths, and
# DataLoader.* applies to both Train and Eval.
SCHEMA: Dict[str, Typed] = {
    "Global.output_dir": Typed("str"),
    "Global.device": Typed("choice", choices=("auto", "cpu", "gpu")),
    "Global.seed": NON_NEGATIVE_INT,
    "Global.epochs": POSITIVE_INT,
    "Global.eval_interval": POSITIVE_INT,
    "Global.save_interval": NON_NEGATIVE_INT,
    "Global.print_batch_step": POSITIVE_INT,
    "Global.pretrained_model": _PATH,
    "Global.checkpoints": _PATH,
    "Global.use_visualdl": BOOL,
    "Global.save_inference_dir": Typed("str"),
    "Global.image_shape": Typed("list", item=POSITIVE_INT, length=3),
    "Global.plot": BOOL,
    "Global.progress_bar": BOOL,
    "Global.overwrite": BOOL,
    "AMP.enable": BOOL,
    "AMP.level": Typed("choice", choices=("O1", "O2")),
    "AMP.init_loss_scaling": Typed("number", min=0, min_open=True),
    "AMP.use_dynamic_loss_scaling": BOOL,
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
    "Loss.name": Typed("str"),
    "Loss.epsilon": Typed("number", min=0, max=1, max_open=True),
    "Optimizer.name": Typed("str"),
    "Optimizer.momentum": Typed("number", min=0, max=1),
    "Optimizer.weight_decay": Typed("number", min=0, null=True),
    "Optimizer.use_nesterov": BOOL,
    "Optimizer.beta1": Typed("number", min=0, max=1, max_open=True),
    "Optimizer.beta2": Typed("number", min=0, max=1, max_open=True),
    "Optimizer.epsilon": Typed("number", min=0, min_open=True),
    "Optimizer.lr.name": Typed("str"),
    "Optimizer.lr.learning_rate": Typed("number", min=0),
    "Optimizer.lr.milestones": Typed("list", item=NON_NEGATIVE_INT),
    "Optimizer.lr.gamma": Typed("number", min=0, min_open=True),
    "Optimizer.lr.eta_min": Typed("number", min=0),
    "Optimizer.lr.warmup_epoch": Typed("number", min=0),
    "Optimizer.lr.warmup_start_lr": Typed("number", min=0),
    "DataLoader.*.batch_size": POSITIVE_INT,
    "DataLoader.*.shuffle": Typed("bool", null=True),
    "DataLoader.*.drop_last": BOOL,
    "DataLoader.*.num_workers": NON_NEGATIVE_INT,
    "DataLoader.*.use_shared_memory": BOOL,
    "DataLoader.*.skip_bad_images": BOOL,
    "DataLoader.*.dataset.num_samples": Typed("int", min=1, null=True),
    "Infer.infer_imgs": _PATH,
    "Infer.batch_size": POSITIVE_INT,
    "Infer.topk": POSITIVE_INT,
}
_INDEX = re.compile(r"^(.*?)\[(\d+)\]$")


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


def _merge(base: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (new or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k in ("Global", "AMP", "Infer"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: Optional[str], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config, fill defaults, apply overrides, validate."""
    data: Dict[str, Any] = {}
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path} (configs live in configs/, e.g. "
                              "-c configs/orthonet18_cifar10.yaml)")
        try:  # reliability (issue 20): bounded aliases, duplicate keys refused with their line
            data = load_yaml(path) or {}
        except YamlError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of sections ({', '.join(_SECTIONS)})")
        for section in data:
            if section not in _SECTIONS:
                raise ConfigError(f"{path}: unknown section {section!r}; " + _near(section, _SECTIONS))
    cfg = _merge(DEFAULTS, data)
    for override in overrides or ():
        apply_override(cfg, override)
    if not cfg.get("Arch"):
        raise ConfigError(f"{path or 'the config'} has no Arch section: every config names its "
                          "model, e.g. Arch: {name: orthonet18, class_num: 10, stem: cifar} "
                          "(see configs/)")
    validate_config(cfg)
    share_data_file(cfg)
    return cfg


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
        raise ConfigError(f"{where} must be a mapping, got {section!r}")
    valid = list(valid)
    for key in section:
        if key not in valid:
            raise ConfigError(f"{where}.{key}: unknown key; " + _near(key, valid))


def _arch_params() -> List[str]:
    from ..models.resnet import arch_options
    return ["name", "class_num", *arch_options()]


def validate_config(cfg: Dict[str, Any]) -> None:
    """Check every key against what the code accepts; raise ``ConfigError``."""
    from ..data import dataset_params, loader_params, transform_params
    from .losses import LOSSES
    from .optim import lr_params, optimizer_params

    from ..models.registry import model_entrypoint

    _check_keys(cfg, _SECTIONS, "config")
    for section in ("Global", "AMP", "Infer"):
        _check_keys(cfg[section], DEFAULTS[section], section)
    arch = cfg["Arch"]
    _check_keys(arch, _arch_params(), "Arch")
    try:  # the registry's message: nearest names, or why a name is not registered
        model_entrypoint(str(arch.get("name")))
    except ValueError as exc:
        raise ConfigError(f"Arch.name: {exc}") from None

    loss = cfg["Loss"]
    if loss.get("name") not in LOSSES:
        raise ConfigError(f"Loss.name: {loss.get('name')!r}; valid: {', '.join(LOSSES)}")
    _check_keys(loss, ["name", "epsilon"], "Loss")

    opt = cfg["Optimizer"]
    _wrap(lambda: _check_keys(opt, optimizer_params(opt.get("name")), "Optimizer"), "Optimizer.name")
    lr = opt.get("lr")
    if not isinstance(lr, dict) or "learning_rate" not in lr:
        raise ConfigError("Optimizer.lr must be a mapping with name and learning_rate")
    _wrap(lambda: _check_keys(lr, lr_params(lr.get("name", "Constant")), "Optimizer.lr"),
          "Optimizer.lr.name")

    _check_keys(cfg["DataLoader"], ["Train", "Eval"], "DataLoader")
    for mode, loader in cfg["DataLoader"].items():
        where = f"DataLoader.{mode}"
        _check_keys(loader, loader_params(), where)
        ds = loader.get("dataset")
        if not isinstance(ds, dict) or "name" not in ds:
            raise ConfigError(f"{where}.dataset must be a mapping with a name, e.g. "
                              "{name: Cifar10, data_file: ...}")
        _wrap(lambda: _check_keys(ds, ["name", "transforms", *dataset_params(ds["name"])],
                                  f"{where}.dataset"), f"{where}.dataset.name")
        _check_transforms(ds.get("transforms"), f"{where}.dataset.transforms", transform_params)
    _check_transforms(cfg["Infer"].get("transforms"), "Infer.transforms", transform_params)
    _check_values(cfg)


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
            elif isinstance(value, dict) and not (len(here) >= 3 and here[-1] == "transforms"):
                visit(value, here)
    visit(cfg, [])


def _check_transforms(ops, where: str, transform_params) -> None:
    if ops is None:
        return
    if not isinstance(ops, list):
        raise ConfigError(f"{where} must be a list of ops like '- ToTensor: {{}}'")
    for i, entry in enumerate(ops):
        if not isinstance(entry, str) and not (isinstance(entry, dict) and len(entry) == 1):
            # reliability (issue 20): e.g. '- 5' was an AttributeError traceback
            raise ConfigError(f"{where}[{i}] is {cap_repr(entry)}; each entry is one op like "
                              "'- ToTensor: {}' or '- RandomCrop: {size: 32}'")
        name, params = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        _wrap(lambda: _check_keys(params or {}, transform_params(name), f"{where}[{i}].{name}"),
              f"{where}[{i}]")


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
    parser = argparse.ArgumentParser(description=description)
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
