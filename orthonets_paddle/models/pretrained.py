"""One loader for pretrained weights: local path or URL, mismatches listed."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import paddle

from ..utils.io import (DigestError, DownloadError, UnsafePickleError, download,
                        load_paddle_file, sha256_file)
from ..utils.io import StateDictError, check_state_dict

__all__ = ["load_pretrained", "load_state_file", "resolve_weights", "cache_dir", "cache_path", "LoadReport",
           "WeightsError"]

logger = logging.getLogger("orthonets_paddle")


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


@dataclass
class LoadReport:
    """What ``load_pretrained`` did: loaded keys and every mismatch."""

    path: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    skipped_classifier: bool = False

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        """What loaded and what did not, naming at most ``limit`` keys per kind."""
        def some(keys: List[str]) -> str:
            more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        lines = [f"loaded {len(self.loaded)} tensors from {self.path}"]
        if self.skipped_classifier:
            lines.append("classifier skipped (the file has another number of classes): it keeps "
                         "its fresh initialisation, as for fine-tuning")
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} shape mismatches (kept the model's own): " + some(
                [f"{k} file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]))
        if self.missing:
            lines.append(f"missing in file ({len(self.missing)}): {some(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected in file ({len(self.unexpected)}): {some(self.unexpected)}")
        cause = self.cause()
        if cause:
            lines.append(cause)
        return "; ".join(lines)

    def cause(self) -> str:
        """The likely reason the file does not fit, or ``""``."""
        if len(self.mismatched) > 1 or (self.missing and self.unexpected):
            return ("the file was saved from another model: check that Arch (name, width, stem, "
                    "in_channels, class_num) is the one the weights were trained with")
        if self.missing and not self.unexpected and all(
                re.search(r"\.att\.fc[12]\.bias$", k) for k in self.missing):
            # se_resnet* weights saved before it had SENet's excitation biases
            return ("the file's attention has no excitation biases: build the model with "
                    "excitation_bias=False (-o Arch.excitation_bias=False), or convert SENet "
                    "weights with tools/convert_torch_weights.py, which sets absent biases to 0")
        if self.missing and not self.unexpected:
            return "the file holds only part of this model"
        return ""


def cache_dir() -> str:
    """Where downloaded weights are cached (``$ORTHONETS_HOME/weights``)."""
    home = os.environ.get("ORTHONETS_HOME", os.path.join(os.path.expanduser("~"), ".cache",
                                                         "orthonets_paddle"))
    return os.path.join(home, "weights")


def _is_url(path: str) -> bool:
    return urllib.parse.urlparse(str(path)).scheme in ("http", "https")


def cache_path(url: str) -> str:
    """The cache file of ``url``: keyed by the whole URL (a hash of it names the folder),
    so two URLs with the same file name never share an entry."""
    name = os.path.basename(urllib.parse.urlparse(url).path) or "weights.pdparams"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir(), key, name)


def _check_sha256(path: str, sha256: Optional[str], url: str) -> None:
    if sha256 and sha256_file(path) != sha256.lower():
        raise WeightsError(f"{path} (from {url}) does not have the expected sha256 {sha256}; "
                           f"it is truncated or not the published file: delete it and download "
                           "again")


def _download(url: str, timeout: float = 30.0, sha256: Optional[str] = None) -> str:
    target = cache_path(url)
    if os.path.isfile(target):
        _check_sha256(target, sha256, url)
        return target
    try:
        return download(url, target, urllib.request.urlopen, timeout, sha256)
    except DownloadError as exc:
        raise WeightsError(
            f"could not download {url} ({exc}). If this machine is offline, download the file "
            f"elsewhere and place it at {target} (or pass its local path instead).") from None
    except DigestError:
        raise WeightsError(f"{target} (from {url}) does not have the expected sha256 {sha256}; "
                           "it is truncated or not the published file; try again, or place a "
                           "good copy there") from None


def resolve_weights(path: str, sha256: Optional[str] = None) -> str:
    """A local file for ``path``: a URL is downloaded (cached by the full URL, checked
    against ``sha256`` when given); ``.pdparams`` optional."""
    path = str(path)
    if _is_url(path):
        return _download(path, sha256=sha256)
    for candidate in (path, path + ".pdparams"):
        if os.path.isfile(candidate):
            return candidate
    raise WeightsError(f"weights file not found: {path} (also tried {path}.pdparams); "
                       "give the path of a .pdparams file or an http(s) URL")


def load_state_file(path: str) -> Dict[str, np.ndarray]:
    """Read a ``.pdparams`` state dict with the safe unpickler (nothing in the file can
    run code); a clear error for anything else."""
    try:
        state = load_paddle_file(path)
    except UnsafePickleError as exc:
        raise WeightsError(str(exc)) from None
    except Exception as exc:  # paddle raises assorted types for corrupt files
        raise WeightsError(f"{path} is not a readable Paddle weights file ({type(exc).__name__}: "
                           f"{exc}). It may be truncated or corrupt; re-download or re-save it.") from None
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def _only_classes_differ(file_shape: tuple, model_shape: tuple) -> bool:
    """A classifier weight ``[features, classes]`` or bias ``[classes]`` that differs only in
    its last (class) axis: another class count, not another model."""
    file_shape, model_shape = tuple(file_shape), tuple(model_shape)
    return (len(file_shape) == len(model_shape) and file_shape[:-1] == model_shape[:-1]
            and file_shape[-1] != model_shape[-1])


def load_pretrained(model: paddle.nn.Layer, path: str, strict: bool = False,
                    skip_mismatched_classifier: bool = True, verbose: bool = True,
                    sha256: Optional[str] = None) -> LoadReport:
    """Load weights into ``model`` and report what did not fit.

    Args:
        model: the model to fill.
        path: local ``.pdparams`` (suffix optional) or http(s) URL.
        strict: raise ``WeightsError`` on any missing, unexpected or mismatched key.
        skip_mismatched_classifier: a classifier (``model.pretrained_cfg["classifier"]``,
            ``fc`` in this package) whose shape differs is skipped with a warning, so
            fine-tuning on new classes works.
        verbose: log the report as a warning when it is not clean.
        sha256: the file's expected digest (a URL's download is checked against it; by
            default the model's ``pretrained_cfg["sha256"]`` when ``path`` is its ``url``).
    """
    if sha256 is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if cfg.get("url") and cfg.get("url") == str(path):
            sha256 = cfg.get("sha256")
    local = resolve_weights(path, sha256=sha256)
    state = load_state_file(local)
    own = model.state_dict()
    try:  # reliability (issue 20): keys, dtypes and NaN/inf checked before set_state_dict
        state, notes = check_state_dict(state, {k for k, v in own.items() if v.is_floating_point()}, local)
    except StateDictError as exc:
        raise WeightsError(str(exc)) from None
    for note in notes:
        logger.warning("pretrained weights %s: %s", local, note)
    report = LoadReport(path=local)
    to_set = {}
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "fc") + "."
    for key, value in state.items():
        if key not in own:
            if key.startswith(classifier) and getattr(model, "fc", 0) is None and not strict:
                report.skipped_classifier = True  # num_classes=0 / features_only: no head
            else:
                report.unexpected.append(key)
            continue
        value = np.asarray(value)
        if tuple(value.shape) != tuple(own[key].shape):
            if (key.startswith(classifier) and skip_mismatched_classifier and not strict
                    and _only_classes_differ(value.shape, own[key].shape)):
                report.skipped_classifier = True
            else:
                report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
            continue
        to_set[key] = value
    report.missing = [k for k in own if k not in state]
    if strict and not report.clean:
        raise WeightsError(f"weights do not fit {getattr(model, 'arch', type(model).__name__)} "
                           f"(strict): {report.summary()}")
    with warnings.catch_warnings():
        # Paddle warns once per key it does not find; the report lists them in one line.
        warnings.filterwarnings("ignore", message="Skip loading for")
        model.set_state_dict(to_set)
    report.loaded = sorted(to_set)
    if verbose and (not report.clean or report.skipped_classifier):
        logger.warning("pretrained weights: %s", report.summary())
    return report


def load_model(cfg: Dict[str, Any], require_weights: bool = True,
               example: str = "output/orthonet18_cifar10/best_model.pdparams") -> paddle.nn.Layer:
    """Build ``cfg["Arch"]`` and load ``Global.pretrained_model`` strictly, in eval mode.

    Strict: weights for another architecture fail, listing the mismatched keys, rather than
    evaluating or exporting a half-initialised model.

    Args:
        cfg: a config from ``load_config``.
        require_weights: raise when ``Global.pretrained_model`` is not set (otherwise the
            model keeps its random initialisation, which is fine for timing).
        example: weights path shown in the error message.

    Raises:
        ValueError: no ``Global.pretrained_model`` while ``require_weights``.
        WeightsError: the file is missing, unreadable or does not fit the model.
    """
    from .registry import build_model_from_config

    weights = cfg["Global"].get("pretrained_model")
    if require_weights and not weights:
        raise ValueError("Global.pretrained_model is not set; give the trained weights, e.g. "
                         f"-o Global.pretrained_model={example}")
    model = build_model_from_config(cfg["Arch"])
    if weights:
        load_pretrained(model, weights, strict=True, verbose=False)
    model.eval()
    return model
