"""PyTorch checkpoints -> Paddle ``.pdparams``: the authors' OrthoNet / OrthoNet-MOD,
FcaNet, torchvision ResNets and senet.pytorch SE-ResNets.

The filter banks are copied from the checkpoint, never regenerated, so the converted model
computes exactly what the original did. torch is only needed to read ``.pth`` files.
"""
from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import paddle

from .utils.hints import did_you_mean
from .utils.io import atomic_write
from .utils.schema import CLASS_NUM, IMAGE_SIDE
from .models import DEPTHS, build_model, get_pretrained_cfg, list_models

__all__ = ["convert_state_dict", "convert_checkpoint", "convertible_archs", "guess_arch",
           "ConversionError", "ConversionReport"]


class ConversionError(ValueError):
    """A checkpoint cannot be read or does not fit the requested architecture."""


# Leaf renames shared by every family: PyTorch BN buffers -> Paddle's names.
_LEAVES = {"running_mean": "_mean", "running_var": "_variance"}

# Per-family renames of a block's sub-modules (the part after ``layerK.i.``).
# The authors' Sequential indices skip the ReLUs, hence 0, 1, 3, 4, 6, 7.
_ORTHONET_BLOCK = {
    "_process.0": "conv1", "_process.1": "bn1", "_process.3": "conv2", "_process.4": "bn2",
    "_process.6": "conv3", "_process.7": "bn3",
    "_preprocess.0": "conv1", "_preprocess.1": "bn1", "_preprocess.3": "conv2",
    "_preprocess.4": "bn2", "_scale.1": "conv3", "_scale.2": "bn3",
    "_excitation.0": "att.fc1", "_excitation.2": "att.fc2",
    "F_C_A.constant_filter": "att.filters",
}

# family -> (arch name pattern, block renames, marker of its checkpoints' keys)
_FAMILIES: Dict[str, Tuple[str, Dict[str, str], Optional[str]]] = {
    "orthonet_mod": ("orthonet_mod_{d}", _ORTHONET_BLOCK, "._preprocess."),
    "orthonet": ("orthonet{d}", _ORTHONET_BLOCK, ".F_C_A."),
    "fcanet": ("fcanet{d}", {"att.fc.0": "att.fc1", "att.fc.2": "att.fc2",
                             "att.dct_layer.weight": "att.filters"}, ".att.dct_layer."),
    "se_resnet": ("se_resnet{d}", {"se.fc.0": "att.fc1", "se.fc.2": "att.fc2"}, ".se.fc."),
    "resnet": ("resnet{d}", {}, None),
}
_BLOCK_KEY = re.compile(r"^(layer\d+\.\d+)\.(.+)$")


@dataclass
class ConversionReport:
    """What ``convert_checkpoint`` wrote."""
    src: str
    dst: str
    arch: str
    num_classes: int
    stem: str
    input_size: Optional[int]
    tensors: int = 0
    renamed: int = 0
    transposed: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    zero_biases: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the command line."""
        return (f"converted {self.src} -> {self.dst}: {self.arch} (num_classes={self.num_classes}, "
                f"stem={self.stem}, input_size={self.input_size}); {self.tensors} tensors, "
                f"{self.renamed} renamed, {len(self.transposed)} Linear weights transposed, "
                f"{len(self.dropped)} dropped (BN num_batches_tracked)"
                + (f", {len(self.zero_biases)} SE excitation biases set to 0 (the checkpoint has "
                   "none; same function)" if self.zero_biases else ""))


def _family(arch: str) -> Optional[str]:
    for name, (pattern, _, _) in _FAMILIES.items():
        if re.fullmatch(pattern.format(d=r"\d+"), arch):
            return name
    return None


def convertible_archs() -> List[str]:
    """Registered model names a PyTorch checkpoint can be converted to."""
    return [name for name in list_models() if _family(name)]


def _check_sizes(num_classes: Optional[int], input_size: Optional[int]) -> None:
    """The config's bounds (utils.schema): a typo such as 10**9 would allocate that much."""
    for spec, key, value in ((CLASS_NUM, "num_classes", num_classes),
                             (IMAGE_SIDE, "input_size", input_size)):
        if value is not None:
            try:
                spec.check(key, value)
            except ValueError as exc:
                raise ConversionError(str(exc)) from None


def _check_arch(arch: str) -> str:
    family = _family(arch)
    if family is None or arch not in list_models():
        raise ConversionError(f"cannot convert to arch {arch!r}; "
                              f"{did_you_mean(arch, convertible_archs())}convertible archs: "
                              f"{', '.join(convertible_archs())}")
    return family


def _to_numpy(value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):  # without importing torch
        value = value.detach().cpu()
        value = value.float() if value.is_floating_point() else value  # numpy has no bfloat16
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _strip_prefix(key: str) -> str:
    return re.sub(r"^(module\.)+", "", key)  # DataParallel saves every key under module.


def _rename(key: str, block_map: Dict[str, str]) -> Optional[str]:
    if key.rpartition(".")[2] == "num_batches_tracked":  # Paddle BN has no step counter
        return None
    match = _BLOCK_KEY.match(key)
    if match:
        prefix, rest = match.groups()
        for old in sorted(block_map, key=len, reverse=True):  # longest match first
            if rest == old or rest.startswith(old + "."):
                rest = block_map[old] + rest[len(old):]
                break
        key = f"{prefix}.{rest}"
    head, _, leaf = key.rpartition(".")
    leaf = _LEAVES.get(leaf, leaf)
    return f"{head}.{leaf}" if head else leaf


def _rename_all(state: Mapping[str, Any], family: str):
    # -> (renamed arrays, our key -> original key, dropped original keys)
    block_map = _FAMILIES[family][1]
    out: Dict[str, np.ndarray] = {}
    sources: Dict[str, str] = {}
    dropped: List[str] = []
    for original, value in state.items():
        new = _rename(_strip_prefix(str(original)), block_map)
        if new is None:
            dropped.append(str(original))
            continue
        if new in out:
            raise ConversionError(f"checkpoint keys {sources[new]!r} and {original!r} both map to "
                                  f"{new!r}; the checkpoint holds two copies of the model")
        out[new] = _to_numpy(value)
        sources[new] = str(original)
    return out, sources, dropped


def guess_arch(torch_state: Mapping[str, Any]) -> Optional[str]:
    """The registered arch a PyTorch state dict most likely belongs to, or None."""
    keys = [_strip_prefix(str(k)) for k in torch_state]
    family = next((name for name, (_, _, marker) in _FAMILIES.items()
                   if marker and any(marker in "." + k for k in keys)), "resnet")
    renamed = {_rename(k, _FAMILIES[family][1]) for k in keys}
    counts = [0, 0, 0, 0]
    for key in renamed:
        match = re.match(r"^layer([1-4])\.(\d+)\.", key or "")
        if match:
            stage = int(match.group(1)) - 1
            counts[stage] = max(counts[stage], int(match.group(2)) + 1)
    bottleneck = "layer1.0.conv3.weight" in renamed
    for depth, (block, layers) in DEPTHS.items():
        if list(layers) == counts and (block.expansion == 4) == bottleneck:
            name = _FAMILIES[family][0].format(d=depth)
            return name if name in list_models() else None
    return None


def _infer_input_size(state: Mapping[str, np.ndarray], stem: str) -> Optional[int]:
    bank = state.get("layer1.0.att.filters")
    if bank is None or bank.ndim != 3 or bank.shape[1] != bank.shape[2]:
        return None  # no banks (ResNet, SE-ResNet): the registry default is right
    # layer1 runs at input/4 after the ImageNet stem's two stride-2 steps.
    return int(bank.shape[1]) * (4 if stem == "imagenet" else 1)


def _mismatch_message(arch: str, settings: str, torch_state: Mapping[str, Any],
                      sources: Dict[str, str], missing: List[str], unexpected: List[str],
                      mismatched: List[Tuple[str, tuple, tuple]]) -> str:
    # The hint first: the key lists below it can run to a hundred lines.
    lines = [f"checkpoint does not fit {arch} ({settings})."]
    guess = guess_arch(torch_state)
    if guess and guess != arch:
        lines.append(f"The checkpoint looks like {guess}: convert with arch={guess!r} "
                     f"(--arch {guess}).")
    elif any(k == "conv1.weight" for k, _, _ in mismatched):
        lines.append("conv1's kernel differs: pass the stem the checkpoint was trained with "
                     "(stem='cifar' for a 3x3 conv1, 'imagenet' for 7x7).")
    elif any(k.endswith("att.filters") for k, _, _ in mismatched):
        lines.append("The filter sizes differ: pass the input_size the checkpoint was trained at.")
    if missing:
        lines.append(f"{len(missing)} missing (in the model, not in the checkpoint):")
        lines += [f"  {k}" for k in missing]
    if unexpected:
        lines.append(f"{len(unexpected)} unexpected (in the checkpoint, not in the model):")
        lines += [f"  {k}" + (f" (from {sources[k]})" if sources[k] != k else "")
                  for k in unexpected]
    if mismatched:
        lines.append(f"{len(mismatched)} shape mismatches:")
        lines += [f"  {k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatched]
    return "\n".join(lines)


def _convert(torch_state: Mapping[str, Any], arch: str, num_classes: Optional[int], stem: str,
             input_size: Optional[int], model: Optional[paddle.nn.Layer]
             ) -> Tuple[Dict[str, np.ndarray], ConversionReport]:
    """``convert_state_dict`` plus its report (``src``/``dst`` left empty)."""
    family = _check_arch(arch)
    _check_sizes(num_classes, input_size)
    if not isinstance(torch_state, Mapping) or not torch_state:
        raise ConversionError(f"expected a non-empty state dict (name -> tensor), got "
                              f"{type(torch_state).__name__}")
    state, sources, dropped = _rename_all(torch_state, family)
    if model is None:
        if num_classes is None:
            head = get_pretrained_cfg(arch)["classifier"] + ".weight"
            if head not in state:
                raise ConversionError(f"cannot infer num_classes: the checkpoint has no {head}; "
                                      "pass num_classes (--num-classes)")
            num_classes = int(state[head].shape[0])  # PyTorch [out, in]
        if input_size is None:
            input_size = _infer_input_size(state, stem)
        options = {"stem": stem, "input_size": input_size}
        conv1 = state.get("conv1.weight")
        if conv1 is not None and conv1.ndim == 4:
            options["in_channels"] = int(conv1.shape[1])  # e.g. 1 for grayscale models
        model = build_model(arch, num_classes=num_classes, **options)
    # PyTorch Linear stores [out, in]; Paddle's Linear computes x @ W with W [in, out].
    linear = {f"{name}.weight" for name, layer in model.named_sublayers()
              if isinstance(layer, paddle.nn.Linear)}
    transposed = [k for k in state if k in linear and state[k].ndim == 2]
    for key in transposed:
        state[key] = np.ascontiguousarray(state[key].T)

    own = model.state_dict()
    zero_biases = _fill_se_biases(state, own) if family == "se_resnet" else []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
                  if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    settings = (f"stem={getattr(model, 'stem', stem)}, "
                f"input_size={getattr(model, 'input_size', input_size)}, "
                f"num_classes={getattr(model, 'num_classes', num_classes)}")
    if missing or unexpected or mismatched:
        raise ConversionError(_mismatch_message(arch, settings, torch_state, sources, missing,
                                                unexpected, mismatched))
    out = _checked_values(state, own, sources)
    return out, ConversionReport(
        "", "", arch, getattr(model, "num_classes", num_classes), stem,
        getattr(model, "input_size", input_size), tensors=len(out),
        renamed=sum(1 for k, src in sources.items() if k != _strip_prefix(src)),
        transposed=transposed, dropped=dropped, zero_biases=zero_biases)


def _names(keys: List[str], sources: Dict[str, str], limit: int = 5) -> str:
    named = [k + (f" (from {sources[k]})" if sources.get(k, k) != k else "") for k in keys]
    return ", ".join(named[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _checked_values(state: Dict[str, np.ndarray], own: Mapping[str, Any],
                    sources: Dict[str, str]) -> Dict[str, np.ndarray]:
    """The model's tensors in its order as float32; a checkpoint whose float tensors hold
    integers (a quantised or mislabelled file) or NaN/inf (a diverged run, a corrupt file)
    is refused, since the model would load it and compute garbage."""
    ints = [k for k in own if own[k].is_floating_point()
            and not np.issubdtype(state[k].dtype, np.floating)]
    if ints:
        raise ConversionError(
            f"checkpoint tensors hold {state[ints[0]].dtype} values where the model has float "
            f"weights: {_names(ints, sources)}; a trained float checkpoint is needed (this one "
            "is quantised or not a model's weights)")
    out = {k: state[k].astype(np.float32) if own[k].is_floating_point() else state[k]
           for k in own}  # the model's order, float32 like the model
    bad = [k for k, v in out.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise ConversionError(
            f"checkpoint tensors hold NaN or inf (as float32): {_names(bad, sources)}; the "
            "training run diverged or the file is damaged: convert an earlier checkpoint")
    return out


def _fill_se_biases(state: Dict[str, np.ndarray], own: Mapping[str, Any]) -> List[str]:
    """senet.pytorch's SE has no biases, ours has: fill them with 0 (the same function)."""
    filled = []
    for key in own:
        weight = key[:-len("bias")] + "weight"
        if (".att.fc" in key and key.endswith(".bias") and key not in state
                and weight in state and state[weight].ndim == 2):
            state[key] = np.zeros(state[weight].shape[1], np.float32)  # Paddle [in, out]
            filled.append(key)
    return filled


def convert_state_dict(torch_state: Mapping[str, Any], arch: str,
                       num_classes: Optional[int] = None, stem: str = "imagenet",
                       input_size: Optional[int] = None, *,
                       model: Optional[paddle.nn.Layer] = None) -> Dict[str, np.ndarray]:
    """Map a PyTorch state dict (``module.`` prefixes stripped) onto ``build_model(arch,
    ...)``'s keys -> Paddle key -> float32 array, for ``model.set_state_dict``.

    ``num_classes`` is inferred from the classifier weight and ``input_size`` from layer1's
    bank (64 -> 256, 56 -> 224 for the ImageNet stem) when None; with ``model`` the keys are
    checked against it instead and neither is used. ``ConversionError`` lists every key
    missing, unexpected or of another shape.
    """
    return _convert(torch_state, arch, num_classes, stem, input_size, model)[0]


def _extract_state_dict(obj: Any, src: str) -> Mapping[str, Any]:
    """The state dict inside a loaded checkpoint: bare, or under state_dict / model."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict):  # a pickled nn.Module
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if wrapper in obj and (isinstance(obj[wrapper], Mapping)
                                   or hasattr(obj[wrapper], "state_dict")):
                return _extract_state_dict(obj[wrapper], src)
        if obj and all(hasattr(v, "shape") for v in obj.values()):
            return obj
        keys = ", ".join(map(str, list(obj)[:10]))
        raise ConversionError(f"{src} holds a dict without a state dict (top-level keys: {keys}); "
                              "expected a state dict or a dict with 'state_dict' or 'model'")
    raise ConversionError(f"{src} holds a {type(obj).__name__}, not a state dict")


# What a checkpoint may expand to: the model's tensors, an optimizer's two moments and an
# EMA copy (4x) plus room for metadata. A zip member's declared size is what torch's
# reader allocates for it, so the sum bounds memory before anything is unpacked.
EXPANSION_FACTOR = 4
EXPANSION_SLACK = 64 << 20


def _expansion_bound(arch: str, num_classes: Optional[int], stem: str) -> int:
    """Bytes a checkpoint of ``arch`` may unpack to (shapes only: nothing is allocated)."""
    with paddle.LazyGuard():  # input_size 32: the banks are small and quick to draw
        model = build_model(arch, num_classes=1000 if num_classes is None else num_classes,
                            stem=stem, input_size=32)
    numel = sum(int(np.prod(v.shape)) for v in model.state_dict().values())
    return EXPANSION_FACTOR * 4 * numel + EXPANSION_SLACK


def _check_destination(dst: str) -> None:
    """Refuse, before the slow part, a destination that cannot be written."""
    if os.path.isdir(dst):
        raise ConversionError(f"cannot write {dst}: it is a folder; give a file name, e.g. "
                              f"{os.path.join(dst, 'model.pdparams')}")
    folder = os.path.dirname(os.path.abspath(dst))
    while not os.path.lexists(folder):  # the nearest existing folder is where one is made
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ConversionError(f"cannot write {dst}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConversionError(f"cannot write {dst}: {folder} is not writable (permissions or "
                              "a read-only file system); choose another destination")


def _load_torch(src: str, trust_pickle: bool, bound: Optional[int] = None) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("reading PyTorch checkpoints needs torch: pip install torch==2.13.0 "
                          "(or pip install 'orthonets-paddle[torch]')") from None
    if not os.path.isfile(src):
        raise ConversionError(f"checkpoint not found: {src}")
    not_checkpoint = (f"{src} is not a PyTorch checkpoint (or is truncated); give a .pth / "
                      ".pth.tar file saved with torch.save")
    # torch.save writes a zip (legacy: a pickle, first byte 0x80): text is no unsafe pickle
    with open(src, "rb") as f:
        is_pickle = f.read(1) == b"\x80"
    if not (is_pickle or zipfile.is_zipfile(src)):
        raise ConversionError(not_checkpoint)
    if not is_pickle and bound is not None:
        try:
            with zipfile.ZipFile(src) as archive:
                size = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ConversionError(f"{not_checkpoint} (zip: {exc})") from None
        if size > bound:
            raise ConversionError(
                f"{src} would unpack to {size / 2**20:,.0f} MB (its zip members' declared "
                f"sizes), more than {bound / 2**20:,.0f} MB, {EXPANSION_FACTOR}x what the model "
                "holds plus 64 MB; refusing to unpack it (a compressed archive bomb, or the "
                "weights of a much larger model: check --arch and --num-classes)")
    try:
        return torch.load(src, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # torch raises assorted types for non-checkpoints
        if "Weights only load failed" in str(exc) and not trust_pickle:
            raise ConversionError(
                f"{src} pickles Python objects besides tensors, which are not loaded by default "
                "because unpickling can run code. If you trust the file, pass trust_pickle=True "
                "(--trust-pickle).") from None
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise ConversionError(f"{not_checkpoint} (torch.load: {type(exc).__name__}: "
                              f"{first_line})") from None


def convert_checkpoint(src_path: str, dst_path: str, arch: str, num_classes: Optional[int] = None,
                       stem: str = "imagenet", *, input_size: Optional[int] = None,
                       trust_pickle: bool = False) -> ConversionReport:
    """Convert a PyTorch ``.pth`` / ``.pth.tar`` checkpoint (a state dict, or a dict holding
    one under ``state_dict`` or ``model``) to a ``.pdparams`` file, written atomically once
    all is converted and checked. Arguments as ``convert_state_dict``; ``trust_pickle``
    allows checkpoints pickling other Python objects (unpickling can run code).

    Refused with ConversionError: an unwritable ``dst_path`` (before the load), a zip
    archive declaring more than ``_expansion_bound`` bytes, tensors that are not float or
    not finite. ImportError without torch; OSError if writing fails midway (nothing is
    left at ``dst_path`` then).
    """
    _check_arch(arch)  # before the (slow) load
    _check_sizes(num_classes, input_size)
    src_path, dst_path = os.fspath(src_path), os.fspath(dst_path)
    _check_destination(dst_path)
    bound = _expansion_bound(arch, num_classes, stem)
    torch_state = _extract_state_dict(_load_torch(src_path, trust_pickle, bound), src_path)
    state, report = _convert(torch_state, arch, num_classes, stem, input_size, None)
    atomic_write(dst_path, lambda tmp: paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, tmp))
    report.src, report.dst = src_path, dst_path
    return report
