"""Predict the classes of image files: ``tools/infer.py`` and the notebook.

Images are read with PIL (as RGB, or grayscale for a 1-channel model), transformed with
``Infer.transforms`` (or the eval loader's transforms when that is null), batched, run
through a predictor (dygraph, Paddle Inference or ONNX Runtime) and reported as the top-k
classes with softmax scores.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.datasets import IMAGE_EXTENSIONS
from ..data.transforms import build_transforms
from ..utils.schema import POSITIVE_INT, SchemaError
from .predictors import Predictor

__all__ = ["InferError", "list_images", "read_image", "load_class_names", "softmax",
           "topk_predictions", "predict_images", "infer_postprocess", "infer_transforms", "infer_from_config",
           "format_predictions"]


class InferError(ValueError):
    """An input image or the class-name list cannot be used."""


def list_images(path: str) -> List[str]:
    """One image file, or every image in a folder (recursively, sorted).

    A folder's files are filtered by extension (``.jpg``, ``.png``, ...); a file named
    directly is taken as is and must decode as an image.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InferError: the folder holds no image files.
    """
    if path is None or path == "":
        raise InferError("Infer.infer_imgs is not set; give an image file or a folder, e.g. "
                         "-o Infer.infer_imgs=demo/cat.png")
    path = os.path.expanduser(str(path))
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"image path {path} does not exist; set Infer.infer_imgs to an "
                                "image file or a folder of images")
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise InferError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
    return found


def read_image(path: str, pil: bool = False, channels: int = 3) -> Any:
    """Decode ``path`` as RGB, or as grayscale with ``channels=1``: a uint8 HWC array
    (``[H, W, 1]`` for grayscale), or a PIL image with ``pil``.

    Raises:
        FileNotFoundError: the file does not exist.
        InferError: the file is not an image PIL can decode (the message names it).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InferError(f"{path} is not a readable image ({type(exc).__name__}: {exc}); remove "
                         "it or point Infer.infer_imgs at image files only") from None
    if pil:
        return im
    arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr


def load_class_names(spec: Any, num_classes: int) -> Optional[List[str]]:
    """``Infer.PostProcess.class_names``: a list, a text file with one name per line, or None.

    Raises:
        FileNotFoundError: the text file does not exist.
        InferError: the number of names is not ``num_classes``.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"Infer.PostProcess.class_names file {spec} does not exist; give a text "
                                    "file with one class name per line, or a list")
        with open(spec, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        where = f"{spec} has"
    elif isinstance(spec, (list, tuple)):
        names, where = [str(n) for n in spec], "Infer.PostProcess.class_names has"
    else:
        raise InferError(f"Infer.PostProcess.class_names must be a list or a text file path, got {spec!r}")
    if len(names) != num_classes:
        raise InferError(f"{where} {len(names)} names but the model has {num_classes} classes "
                         "(Arch.class_num); give one name per class")
    return names


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed in float64 for stability."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk_predictions(logits: np.ndarray, k: int,
                     class_names: Optional[Sequence[str]] = None) -> List[List[Dict[str, Any]]]:
    """For each row: the ``k`` best classes as ``{"class_id", "class_name", "score"}``."""
    probs = softmax(logits)
    k = max(1, min(int(k), probs.shape[-1]))
    out = []
    for row in probs:
        top = np.argsort(-row, kind="stable")[:k]
        out.append([{"class_id": int(i),
                     "class_name": class_names[i] if class_names else str(int(i)),
                     "score": float(row[i])} for i in top])
    return out


def infer_postprocess(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """``Infer.PostProcess`` resolved: ``{"topk": int, "class_names": list | None}``.

    ``class_names`` (ours) wins; else ``class_id_map_file`` (PaddleClas's ``"<id> <name>"``
    lines, split at ``delimiter``) is read.
    """
    post = dict(cfg["Infer"].get("PostProcess") or {})
    names = post.get("class_names")
    path = post.get("class_id_map_file")
    if names is None and path:
        if not os.path.isfile(path):
            raise InferError(f"Infer.PostProcess.class_id_map_file {path} does not exist; give "
                              "a file of '<id> <name>' lines, or set it to null")
        found: Dict[int, str] = {}
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                head, _, name = line.strip().partition(post.get("delimiter") or " ")
                if not head.isdigit():
                    raise InferError(f"{path}:{n}: expected '<id> <name>', got {line.strip()!r}")
                found[int(head)] = name.strip()
        names = [found.get(i, str(i)) for i in range(max(found) + 1)] if found else None
    return {"topk": int(post.get("topk") or 5), "class_names": names}


def infer_transforms(cfg: Dict[str, Any]) -> Optional[Callable]:
    """``Infer.transforms``, or ``DataLoader.Eval.dataset.transform_ops`` when that is null."""
    ops = cfg["Infer"].get("transforms")
    backend = None
    ds = cfg.get("DataLoader", {}).get("Eval", {}).get("dataset") or {}
    if ops is None:
        ops = ds.get("transform_ops")
    if ds.get("backend") in ("cv2", "pil"):
        backend = ds["backend"]
    return build_transforms(ops, backend=backend)


def predict_images(predictor: Predictor, paths: Sequence[str],
                   transforms: Optional[Callable], batch_size: int = 8, topk: int = 5,
                   class_names: Optional[Sequence[str]] = None,
                   image_shape: Optional[Sequence[int]] = None,
                   pil: bool = False, channels: int = 3) -> List[Dict[str, Any]]:
    """Top-k predictions for image files, in batches.

    Args:
        predictor: any ``Predictor``.
        paths: image files.
        transforms: applied to each decoded image; must end in a float CHW array
            (``ToTensor``, ``Normalize``).
        batch_size: images per ``predict`` call.
        topk: classes reported per image.
        class_names: names by class index (default: the index as a string).
        image_shape: ``[C, H, W]`` the predictor needs (exported models); ``None``: any.
        pil: hand the transforms PIL images instead of numpy arrays.
        channels: the model's input channels; images are decoded as RGB (3) or gray (1).

    Returns:
        ``[{"image": path, "topk": [{"class_id", "class_name", "score"}, ...]}, ...]``.

    Raises:
        InferError: an image cannot be decoded, or its transformed shape does not fit.
    """
    try:
        POSITIVE_INT("Infer.batch_size", batch_size)
        POSITIVE_INT("Infer.topk", topk)
    except SchemaError as exc:
        raise InferError(str(exc)) from None
    results: List[Dict[str, Any]] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        arrays = []
        for path in chunk:
            img = read_image(path, pil=pil, channels=channels)
            arr = np.asarray(transforms(img) if transforms is not None else img)
            if arr.ndim != 3 or arr.dtype == np.uint8:
                raise InferError(f"{path}: the transforms gave a {arr.dtype} array of shape "
                                 f"{arr.shape}, not a float [C, H, W] one; end Infer.transforms "
                                 "with ToTensor (and Normalize)")
            if arr.shape[0] != channels:
                raise InferError(f"{path}: read with {channels} channel(s) (Arch.in_channels) but "
                                 f"the transforms made it {arr.shape[0]}-channel (shape "
                                 f"{list(arr.shape)}); give Normalize one mean/std per channel "
                                 f"({channels}) in Infer.transforms")
            if image_shape is not None and list(arr.shape) != list(image_shape):
                raise InferError(f"{path}: transformed to shape {list(arr.shape)} but the model "
                                 f"takes {list(image_shape)} (Global.image_shape); add "
                                 f"Resize: {{size: [{image_shape[1]}, {image_shape[2]}]}} to "
                                 "Infer.transforms")
            if arrays and arr.shape != arrays[0].shape:
                raise InferError(f"{path}: transformed to shape {list(arr.shape)}, unlike "
                                 f"{chunk[0]} ({list(arrays[0].shape)}); images in a batch must "
                                 "match: use Resize with [height, width] (or CenterCrop) in "
                                 "Infer.transforms")
            arrays.append(arr)
        logits = predictor.predict(np.stack(arrays).astype(np.float32))
        for path, top in zip(chunk, topk_predictions(logits, topk, class_names)):
            results.append({"image": path, "topk": top})
    return results


def format_predictions(results: Sequence[Dict[str, Any]]) -> str:
    """One line per image: ``path: name score, name score, ...``."""
    return "\n".join(f"{r['image']}: " + ", ".join(f"{t['class_name']} {t['score']:.4f}"
                                                   for t in r["topk"]) for r in results)


def infer_from_config(cfg: Dict[str, Any], backend: str = "dygraph",
                      threads: Optional[int] = None,
                      results_name: str = "infer_results.json") -> Dict[str, Any]:
    """``tools/infer.py``: predict ``Infer.infer_imgs`` and save the top-k as JSON.

    ``dygraph`` builds ``Arch`` and loads ``Global.pretrained_model`` (strictly);
    ``paddle`` and ``onnx`` run the model exported to ``Global.save_inference_dir``.

    Returns:
        ``{"backend", "results": [...], "results_file"}``; the JSON holds the same.

    Raises:
        FileNotFoundError: a missing image path, class-name file or exported model.
        InferError: a file that is not an image, or shapes that do not fit.
    """
    from ..utils.io import write_json
    from .export import check_image_shape
    from ..models import load_model
    from ..models.registry import model_channels
    from .predictors import BACKENDS, create_predictor

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    g, inf = cfg["Global"], cfg["Infer"]
    paths = list_images(inf["infer_imgs"])  # fail on a bad path before building anything
    post = infer_postprocess(cfg)
    names = load_class_names(post["class_names"], int(cfg["Arch"]["class_num"]))
    transforms = infer_transforms(cfg)
    ds = cfg.get("DataLoader", {}).get("Eval", {}).get("dataset") or {}
    if backend == "dygraph":
        predictor = create_predictor("dygraph", model=load_model(cfg), threads=threads)
        shape = None  # eager mode takes any size
    else:
        predictor = create_predictor(backend, save_dir=g["save_inference_dir"], threads=threads)
        shape = check_image_shape(g["image_shape"])
    channels = model_channels(cfg["Arch"])
    if shape is not None and shape[0] != channels:
        raise InferError(f"Global.image_shape {shape} has {shape[0]} channel(s) but the model "
                         f"takes {channels} (Arch.in_channels); set -o Global.image_shape="
                         f"[{channels},{shape[1]},{shape[2]}] and export again")
    results = predict_images(predictor, paths, transforms, inf["batch_size"], post["topk"], names,
                             image_shape=shape, pil=ds.get("backend") == "pil",
                             channels=channels)
    out = {"backend": backend, "results": results}
    os.makedirs(g["output_dir"], exist_ok=True)
    out["results_file"] = os.path.join(g["output_dir"], results_name)
    write_json(out, out["results_file"])
    return out
