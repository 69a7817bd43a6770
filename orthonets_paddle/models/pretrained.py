"""One loader for pretrained weights: local path or URL, mismatches listed."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import paddle
from paddle.utils.download import is_url

from ..utils.download import DigestError, DownloadError, download, local_path
from ..utils.io import StateDictError, UnsafePickleError, check_state_dict, load_paddle_file

__all__ = ["load_pretrained", "resolve_weights", "cache_dir", "cache_path",
           "LoadReport", "WeightsError"]
logger = logging.getLogger("orthonets_paddle")


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


# What a training run's other files hold (keys of engine.checkpoint's .pdopt / .pdstates).
_OPTIMIZER_KEY = re.compile(r".*_(moment[12]|velocity|beta[12]_pow_acc)_[0-9]+|LR_Scheduler|master_weights")
_STATES_KEYS = {"epoch", "global_step", "lr_scheduler", "rng", "records", "digests"}


def _not_weights(state: Dict[Any, Any], local: str) -> Optional[str]:
    """Why ``state`` (read from ``local``) is not a model's weights, with the fix; or None."""
    keys = [k for k in state if isinstance(k, str)]
    if any(_OPTIMIZER_KEY.fullmatch(k) for k in keys):
        what = "an optimizer state (moment/velocity tensors)"
    elif len(_STATES_KEYS.intersection(keys)) >= 2:
        what = "a training state (.pdstates: epoch, learning-rate schedule, RNG)"
    else:
        return None
    folder, name = os.path.split(local)
    weights = re.sub(r"^(best|final)_optimizer\.pdopt$", r"\1_model.pdparams", name)
    weights = re.sub(r"\.(pdopt|pdstates)$", ".pdparams", weights)
    return (f"{local} holds {what}, not model weights; give a model's weights file instead "
            f"(e.g. {os.path.join(folder, weights)}), or resume that run with "
            f"-o Global.checkpoints={folder or '.'}")


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

    def summary(self, limit: int = 5, loaded: bool = True) -> str:
        """What loaded (unless not ``loaded``) and what did not, naming at most ``limit``
        keys per kind."""
        kinds = (("shape mismatches, kept the model's own", [
                     f"{k} file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]),
                 ("missing in file", self.missing), ("unexpected in file", self.unexpected))
        skipped = ["classifier skipped (the file has another number of classes, or none): it "
                   "keeps its fresh initialisation, as for fine-tuning"] if self.skipped_classifier else []
        lines = [f"loaded {len(self.loaded)} tensors from {self.path}" if loaded else ""] + skipped + [
            f"{kind} ({len(keys)}): " + ", ".join(keys[:limit])
            + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
            for kind, keys in kinds if keys] + [self.cause()]
        return "; ".join(line for line in lines if line)

    def cause(self) -> str:
        """The likely reason the file does not fit, or ``""``."""
        if len(self.mismatched) > 1 or (self.missing and self.unexpected):
            return ("the file was saved from another model: check that Arch (name, width, stem, "
                    "in_channels, class_num) is the one the weights were trained with")
        if self.missing and not self.unexpected:
            if all(re.search(r"\.att\.fc[12]\.bias$", k) for k in self.missing):
                # se_resnet* weights saved before it had SENet's excitation biases
                return ("the file's attention has no excitation biases: build the model with "
                        "excitation_bias=False (-o Arch.excitation_bias=False), or convert SENet "
                        "weights with tools/convert_torch_weights.py, which sets absent biases to 0")
            return "the file holds only part of this model"
        return ""


def cache_dir() -> str:
    """Where downloaded weights are cached (``$ORTHONETS_HOME/weights``)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "orthonets_paddle")
    return os.path.join(os.environ.get("ORTHONETS_HOME", default), "weights")


def cache_path(url: str) -> str:
    """The cache file of ``url``, in a folder named by a hash of the whole URL."""
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return local_path(url, os.path.join(cache_dir(), key))


def resolve_weights(path: str, sha256: Optional[str] = None) -> str:
    """A local file for ``path``: an http(s) URL is downloaded into the cache (checked
    against ``sha256`` when given); ``.pdparams`` optional."""
    path = str(path)
    if is_url(path):
        try:
            return download(path, os.path.dirname(cache_path(path)), sha256=sha256,
                            hint=" (or pass its local path instead)")
        except (DownloadError, DigestError) as exc:
            raise WeightsError(str(exc)) from None
    for candidate in (path, path + ".pdparams"):
        if os.path.isfile(candidate):
            return candidate
    raise WeightsError(f"weights file not found: {path} (also tried {path}.pdparams); "
                       "give the path of a .pdparams file or an http(s) URL")


FINE_TUNE = "all_but_classifier"


def load_pretrained(model: paddle.nn.Layer, path: str, strict: Union[bool, str] = False,
                    skip_mismatched_classifier: bool = True, verbose: bool = True,
                    sha256: Optional[str] = None) -> LoadReport:
    """Load weights (a local ``.pdparams``, suffix optional, or an http(s) URL checked against
    ``sha256``, default ``pretrained_cfg``'s) into ``model``; return what did not fit.

    ``strict``: ``False`` loads what fits; ``True`` (eval, export) raises ``WeightsError`` on
    any misfit; ``"all_but_classifier"`` (``Global.pretrained_model``, fine-tuning) raises
    unless every tensor but the classifier's (``pretrained_cfg["classifier"]``, ``fc``) is in
    the file with the model's shape and the file has nothing else. A classifier with another
    class count (or none in the file) is skipped if ``skip_mismatched_classifier``. An
    optimizer or training-state file is refused in every mode."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if sha256 is None and cfg.get("url") and cfg["url"] == str(path):
        sha256 = cfg.get("sha256")
    local, own = resolve_weights(path, sha256=sha256), model.state_dict()
    try:  # the safe unpickler: nothing in the file can run code
        state = load_paddle_file(local)
    except UnsafePickleError as exc:
        raise WeightsError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001  (corrupt files raise assorted types)
        raise WeightsError(f"{local} is not a readable Paddle weights file ({type(exc).__name__}: "
                           f"{exc}). It may be truncated or corrupt; re-download or re-save it.") from None
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{local} does not hold a state dict (got {type(state).__name__})")
    wrong_kind = _not_weights(state, local)
    if wrong_kind:
        raise WeightsError(wrong_kind)
    try:  # keys, dtypes and NaN/inf checked before set_state_dict
        state, notes = check_state_dict(state, {k for k, v in own.items() if v.is_floating_point()}, local)
    except StateDictError as exc:
        raise WeightsError(str(exc)) from None
    for note in notes:
        logger.warning("pretrained weights %s: %s", local, note)
    report, to_set = LoadReport(path=local), {}
    classifier = cfg.get("classifier", "fc") + "."
    for key, value in state.items():
        value = np.asarray(value)
        shape = tuple(own[key].shape) if key in own else None
        head = key.startswith(classifier) and strict is not True
        if value.shape == shape:
            to_set[key] = value
        elif head and (shape is None and getattr(model, "fc", 0) is None  # no head at all
                       # or another class count (the last axis): fine-tuning
                       or shape is not None and skip_mismatched_classifier
                       and value.ndim == len(shape) and value.shape[:-1] == shape[:-1]):
            report.skipped_classifier = True
        elif shape is None:
            report.unexpected.append(key)
        else:
            report.mismatched.append((key, value.shape, shape))
    report.missing = [k for k in own if k not in state]
    if strict == FINE_TUNE and skip_mismatched_classifier and any(k.startswith(classifier) for k in report.missing):
        report.skipped_classifier = True  # a file without a classifier: the model keeps its own
        report.missing = [k for k in report.missing if not k.startswith(classifier)]
    if strict == FINE_TUNE and not report.clean:
        head = [k for k in own if k.startswith(classifier)]
        raise WeightsError(
            f"{local} does not fit {getattr(model, 'arch', type(model).__name__)} as pretrained "
            f"weights: {len(to_set)} of the model's {len(own)} tensors match by name and shape; all "
            f"but the classifier's ({', '.join(head) or 'none'}) must (fine-tuning may change "
            f"only the class count); nothing was loaded. {report.summary(loaded=False)}")
    if strict is True and not report.clean:
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
    """``cfg["Arch"]`` in eval mode with ``Global.pretrained_model`` loaded strictly; without
    it, ``ValueError`` (showing ``example``) if ``require_weights``, else random weights."""
    from .registry import build_model_from_config  # registry imports this module

    weights = cfg["Global"].get("pretrained_model")
    if require_weights and not weights:
        raise ValueError("Global.pretrained_model is not set; give the trained weights, e.g. "
                         f"-o Global.pretrained_model={example}")
    model = build_model_from_config(cfg["Arch"])
    if weights:
        load_pretrained(model, weights, strict=True, verbose=False)
    model.eval()
    return model
