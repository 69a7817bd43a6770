"""Predict the classes of image files: ``tools/infer.py`` and the notebook.

Images are read as the training datasets read them, then transformed by ``Infer.transforms``
or, when that is null, by the pipeline ``data.preprocess`` resolves from the model's
``pretrained_cfg`` (resize + centre crop to ``Global.image_shape``, the eval loader's
Normalize), so any image size fits. The three predictors (dygraph, Paddle Inference, ONNX
Runtime) get the same input, so they give one answer: the top-k softmax scores, saved as
``infer_results_<backend>.json``.
"""
from __future__ import annotations

import datetime
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.datasets import IMAGE_EXTENSIONS, DataFileError, read_image_file, walk_files
from ..data.preprocess import create_transform, normalize_of, resolve_data_config
from ..data.transforms import build_transforms
from ..models import load_model
from ..models.registry import model_channels
from ..models.resnet import pretrained_cfg_for
from ..utils.io import write_json
from ..utils.schema import POSITIVE_INT, SchemaError
from .export import check_image_shape
from .predictors import Predictor, create_predictor, inference_files

__all__ = ["InferError", "list_images", "read_image", "load_class_names", "load_class_id_map",
           "topk_predictions", "predict_images", "infer_settings", "infer_pipeline",
           "infer_from_config", "format_predictions"]

logger = logging.getLogger("orthonets_paddle")


class InferError(ValueError):
    """An input image or the class-name list cannot be used."""


def list_images(path: str) -> List[str]:
    """``[path]`` for a file, else the image files (by extension) under the folder, sorted."""
    if path is None or path == "":
        raise InferError("Infer.infer_imgs is not set; give an image file or a folder, e.g. "
                         "-o Infer.infer_imgs=demo/cat.png")
    path = os.path.expanduser(str(path))
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        what = ("is not a regular file (a pipe or device)" if os.path.exists(path)
                else "does not exist")
        raise FileNotFoundError(f"image path {path} {what}; set Infer.infer_imgs to an "
                                "image file or a folder of images")
    found = []
    for dirpath, dirnames, filenames in walk_files(path):  # regular files: no FIFO hang
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise InferError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
    return found


def read_image(path: str, pil: bool = False, channels: int = 3) -> Any:
    """``path`` as a uint8 HWC array (RGB, or ``[H, W, 1]`` gray with ``channels=1``), or as a
    PIL image with ``pil``: the training datasets' reader, so infer sees what training saw."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        arr = read_image_file(path, channels=1 if channels == 1 else 3, owner="Infer")
    except DataFileError as exc:
        raise InferError(f"{path} is not a readable image ({exc}); remove it or point "
                         "Infer.infer_imgs at image files only") from None
    if pil:
        return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    return arr


def load_class_names(spec: Any, num_classes: int) -> Optional[List[str]]:
    """``Infer.class_names``: a list, a text file with one name per line, or None."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"Infer.class_names file {spec} does not exist; give a text "
                                    "file with one class name per line, or a list")
        with open(spec, encoding="utf-8") as f:
            names, where = [line.strip() for line in f if line.strip()], f"{spec} has"
    elif isinstance(spec, (list, tuple)):
        names, where = [str(n) for n in spec], "Infer.class_names has"
    else:
        raise InferError(f"Infer.class_names must be a list or a text file path, got {spec!r}")
    if len(names) != num_classes:
        raise InferError(f"{where} {len(names)} names but the model has {num_classes} classes "
                         "(Arch.class_num); give one name per class")
    return names


def load_class_id_map(path: Optional[str], num_classes: int) -> Optional[List[str]]:
    """PaddleClas's ``class_id_map_file``: ``<id> <name>`` lines (ids 0..num_classes-1)."""
    if not path:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Infer.PostProcess.class_id_map_file {path} does not exist; "
                                "give a text file of '<id> <name>' lines")
    names: Dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            head, _, name = line.strip().partition(" ")
            if not line.strip():
                continue
            if not head.isdigit() or not name.strip() or int(head) >= num_classes:
                raise InferError(f"{path}:{n}: {line.strip()!r} is not '<id> <name>' with an id "
                                 f"below {num_classes} (Arch.class_num)")
            names[int(head)] = name.strip()
    missing = [i for i in range(num_classes) if i not in names]
    if missing:
        raise InferError(f"{path} has no name for class id(s) {missing[:5]}; give one "
                         "'<id> <name>' line per class")
    return [names[i] for i in range(num_classes)]


def topk_predictions(logits: np.ndarray, k: int,
                     class_names: Optional[Sequence[str]] = None) -> List[List[Dict[str, Any]]]:
    """For each row: the ``k`` best classes as ``{"class_id", "class_name", "score"}``, the
    score a softmax computed in float64."""
    z = np.asarray(logits, dtype=np.float64)
    probs = np.exp(z - z.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return [[{"class_id": int(i), "class_name": class_names[i] if class_names else str(int(i)),
              "score": float(row[i])} for i in np.argsort(-row, kind="stable")[:k]]
            for row in probs]


def infer_settings(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The ``Infer`` section as ``{infer_imgs, batch_size, transforms, topk, class_names,
    class_id_map_file}``, from PaddleClas's ``PostProcess: {name: Topk, ...}`` or the older
    flat keys (``Infer.topk``, ``Infer.class_names``)."""
    inf = cfg.get("Infer") or {}
    post = inf.get("PostProcess") or {}
    if post and post.get("name", "Topk") != "Topk":
        raise InferError(f"Infer.PostProcess.name {post.get('name')!r} is not supported; "
                         "valid: Topk")

    def pick(key, default=None):
        return post[key] if post.get(key) is not None else inf.get(key, default)
    return {"infer_imgs": inf.get("infer_imgs"), "batch_size": inf.get("batch_size", 8),
            "transforms": inf.get("transforms"), "topk": pick("topk", 5),
            "class_names": pick("class_names"), "class_id_map_file": pick("class_id_map_file")}


def infer_pipeline(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The preprocessing of every backend: ``{"transforms", "pil" (they take PIL images),
    "raw" (they take the file's bytes: a pipeline starting with DecodeImage), "image_shape"
    ([C, H, W] every image must end at, or None: any)}``."""
    ops = infer_settings(cfg)["transforms"]
    ds = (cfg.get("DataLoader") or {}).get("Eval", {}).get("dataset") or {}
    shape = (cfg.get("Global") or {}).get("image_shape")
    if ops:
        backend = ds.get("backend") if ds.get("backend") in ("cv2", "pil") else None
        first = next(iter(ops[0]), "") if isinstance(ops[0], dict) else ops[0]
        return {"transforms": build_transforms(ops, backend=backend), "pil": backend == "pil",
                "raw": first == "DecodeImage", "image_shape": list(shape) if shape else None}
    arch = cfg["Arch"]
    opts = {k: v for k, v in arch.items() if k not in ("name", "class_num")}
    model_cfg = pretrained_cfg_for(arch["name"], arch.get("class_num", 1000), **opts)
    eval_ops = ds.get("transforms") or ds.get("transform_ops")
    data_cfg = resolve_data_config({"input_size": tuple(shape) if shape else None,
                                    **normalize_of(eval_ops)}, pretrained_cfg=model_cfg)
    return {"transforms": create_transform(data_cfg), "pil": True, "raw": False,
            "image_shape": list(data_cfg["input_size"])}


def predict_images(predictor: Predictor, paths: Sequence[str],
                   transforms: Optional[Callable], batch_size: int = 8, topk: int = 5,
                   class_names: Optional[Sequence[str]] = None,
                   image_shape: Optional[Sequence[int]] = None,
                   pil: bool = False, channels: int = 3, raw: bool = False,
                   skipped: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """``[{"image": path, "topk": [...]}, ...]`` for image files, ``batch_size`` at a time.

    Args:
        transforms: applied to each decoded image (a PIL image with ``pil``, the file's
            bytes with ``raw``); must end in a float ``[C, H, W]`` array: ``image_shape``
            when given (an export's), ``channels`` (RGB: 3, gray: 1) in any case.
        skipped: when a list, a file that is not a readable image is skipped with a
            warning naming it and appended here; when None, it is an error.
    """
    try:
        POSITIVE_INT("Infer.batch_size", batch_size)
        POSITIVE_INT("Infer.topk", topk)
    except SchemaError as exc:
        raise InferError(str(exc)) from None
    results: List[Dict[str, Any]] = []
    for start in range(0, len(paths), batch_size):
        chunk, arrays = [], []
        for path in paths[start:start + batch_size]:
            try:
                img = read_image(path, pil=pil, channels=channels)  # checks it decodes
                if raw:
                    with open(path, "rb") as f:
                        img = f.read()
            except InferError as exc:
                if skipped is None:
                    raise
                logger.warning("skipped %s (use --strict to stop on it)", exc)
                skipped.append(path)
                continue
            chunk.append(path)
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
                                 "Infer.transforms, or set it to null (resize + centre crop "
                                 "from the model's pretrained_cfg)")
            if arrays and arr.shape != arrays[0].shape:
                raise InferError(f"{path}: transformed to shape {list(arr.shape)}, unlike "
                                 f"{chunk[0]} ({list(arrays[0].shape)}); images in a batch must "
                                 "match: use Resize with [height, width] (or CenterCrop) in "
                                 "Infer.transforms")
            arrays.append(arr)
        if arrays:
            logits = predictor.predict(np.stack(arrays).astype(np.float32))
            results += [{"image": p, "topk": top}
                        for p, top in zip(chunk, topk_predictions(logits, topk, class_names))]
    return results


def format_predictions(results: Sequence[Dict[str, Any]]) -> str:
    """One line per image: ``path: name score, name score, ...``."""
    return "\n".join(f"{r['image']}: " + ", ".join(f"{t['class_name']} {t['score']:.4f}"
                                                   for t in r["topk"]) for r in results)


def infer_from_config(cfg: Dict[str, Any], backend: str = "dygraph",
                      threads: Optional[int] = None, results_name: Optional[str] = None,
                      strict: bool = False) -> Dict[str, Any]:
    """``tools/infer.py``: predict ``Infer.infer_imgs``, save the top-k as JSON in
    ``Global.output_dir`` (``results_name``, default ``infer_results_<backend>.json``).

    ``dygraph`` builds ``Arch`` and loads ``Global.pretrained_model`` (strictly); ``paddle``
    and ``onnx`` run the export in ``Global.save_inference_dir``. With ``strict``, a file in
    a folder that is not a readable image is an error (by default it is skipped with a
    warning; a file named directly always errors).

    Returns:
        ``{"backend", "model_files", "note", "skipped", "results", "results_file"}``, as saved.
    """
    g, inf = cfg["Global"], infer_settings(cfg)
    paths = list_images(inf["infer_imgs"])  # fail on a bad path before building anything
    from_folder = os.path.isdir(os.path.expanduser(str(inf["infer_imgs"])))
    num_classes = int(cfg["Arch"]["class_num"])
    names = (load_class_id_map(inf["class_id_map_file"], num_classes)
             or load_class_names(inf["class_names"], num_classes))
    pipe, note = infer_pipeline(cfg), ""
    if backend == "dygraph":
        files = [str(g["pretrained_model"])] if g.get("pretrained_model") else []
        predictor = create_predictor("dygraph", model=load_model(cfg), threads=threads)
    else:
        predictor = create_predictor(backend, save_dir=g["save_inference_dir"], threads=threads)
        found = inference_files(g["save_inference_dir"])
        files = [found["onnx"]] if backend == "onnx" else [found["model"], found["params"]]
        when = datetime.datetime.fromtimestamp(os.path.getmtime(files[0])).isoformat(" ", "seconds")
        note = (f"{backend} backend: runs the export {', '.join(files)} (written {when}, "
                "Global.save_inference_dir)")
        if g.get("pretrained_model"):
            note += ("; Global.pretrained_model is not read by this backend: export it "
                     "again if those weights are newer")
    shape = pipe["image_shape"]
    if shape is not None or backend != "dygraph":
        shape = check_image_shape(shape or g["image_shape"], cfg["Arch"], InferError)
    skipped: List[str] = []
    results = predict_images(predictor, paths, pipe["transforms"], inf["batch_size"], inf["topk"],
                             names, image_shape=shape, pil=pipe["pil"],
                             channels=model_channels(cfg["Arch"]), raw=pipe["raw"],
                             skipped=skipped if from_folder and not strict else None)
    out = {"backend": backend, "model_files": files, "note": note, "skipped": skipped,
           "results": results,
           "results_file": os.path.join(g["output_dir"],
                                        results_name or f"infer_results_{backend}.json")}
    os.makedirs(g["output_dir"], exist_ok=True)
    write_json(out, out["results_file"], indent=2)
    return out
