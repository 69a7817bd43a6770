"""Predict the classes of image files: ``tools/infer.py`` and the notebook.

Images are read with PIL (as RGB, or grayscale for a 1-channel model), transformed with
``Infer.transforms`` or, when that is null, the pipeline ``data.preprocess`` resolves from
the model's ``pretrained_cfg`` (input size ``Global.image_shape``, crop_pct,
interpolation) and the eval loader's Normalize: resize + centre crop, so any image size
fits. The same pipeline and the same input shape serve all three predictors (dygraph,
Paddle Inference, ONNX Runtime), so they give one answer. Results: the top-k classes with
softmax scores, saved as ``infer_results_<backend>.json``.
"""
from __future__ import annotations

import datetime
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.datasets import IMAGE_EXTENSIONS, DataFileError, read_image_file, walk_files
from ..data.preprocess import create_transform, normalize_of, resolve_data_config, transform_ops
from ..data.transforms import build_transforms
from ..models import load_model
from ..models.registry import model_channels
from ..models.resnet import pretrained_cfg_for
from ..utils.io import write_json
from ..utils.schema import POSITIVE_INT, SchemaError
from .export import check_image_shape
from .predictors import BACKENDS, Predictor, create_predictor, inference_files

__all__ = ["InferError", "list_images", "read_image", "load_class_names", "load_class_id_map",
           "softmax", "topk_predictions", "predict_images", "infer_settings", "infer_pipeline",
           "infer_from_config", "format_predictions", "model_files"]

logger = logging.getLogger("orthonets_paddle")


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
    """Decode ``path`` as RGB, or as grayscale with ``channels=1``: a uint8 HWC array
    (``[H, W, 1]`` for grayscale), or a PIL image with ``pil``.

    Raises:
        FileNotFoundError: the file does not exist.
        InferError: the file is not an image PIL can decode (the message names it).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    # The training datasets' reader: size checked from the header, EXIF orientation
    # applied, 16-bit scaled to 8 bits (so infer sees what training saw).
    try:
        arr = read_image_file(path, channels=1 if channels == 1 else 3, owner="Infer")
    except DataFileError as exc:
        raise InferError(f"{path} is not a readable image ({exc}); remove it or point "
                         "Infer.infer_imgs at image files only") from None
    if pil:
        return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    return arr


def load_class_names(spec: Any, num_classes: int) -> Optional[List[str]]:
    """``Infer.class_names``: a list, a text file with one name per line, or None.

    Raises:
        FileNotFoundError: the text file does not exist.
        InferError: the number of names is not ``num_classes``.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"Infer.class_names file {spec} does not exist; give a text "
                                    "file with one class name per line, or a list")
        with open(spec, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        where = f"{spec} has"
    elif isinstance(spec, (list, tuple)):
        names, where = [str(n) for n in spec], "Infer.class_names has"
    else:
        raise InferError(f"Infer.class_names must be a list or a text file path, got {spec!r}")
    if len(names) != num_classes:
        raise InferError(f"{where} {len(names)} names but the model has {num_classes} classes "
                         "(Arch.class_num); give one name per class")
    return names


def load_class_id_map(path: Optional[str], num_classes: int) -> Optional[List[str]]:
    """PaddleClas's ``class_id_map_file``: ``<id> <name>`` lines (ids 0..num_classes-1).

    Raises:
        FileNotFoundError: the file does not exist.
        InferError: a line is not ``<id> <name>``, or an id is missing or out of range.
    """
    if not path:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Infer.PostProcess.class_id_map_file {path} does not exist; "
                                "give a text file of '<id> <name>' lines")
    names: Dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            head, _, name = line.strip().partition(" ")
            if not head.isdigit() or not name.strip() or int(head) >= num_classes:
                raise InferError(f"{path}:{n}: {line.strip()!r} is not '<id> <name>' with an id "
                                 f"below {num_classes} (Arch.class_num)")
            names[int(head)] = name.strip()
    missing = [i for i in range(num_classes) if i not in names]
    if missing:
        raise InferError(f"{path} has no name for class id(s) {missing[:5]}; give one "
                         "'<id> <name>' line per class")
    return [names[i] for i in range(num_classes)]


def model_files(backend: str, cfg: Dict[str, Any]) -> List[str]:
    """The files ``backend`` runs for ``cfg``: the weights (dygraph) or the export."""
    if backend == "dygraph":
        weights = cfg["Global"].get("pretrained_model")
        return [str(weights)] if weights else []
    files = inference_files(cfg["Global"]["save_inference_dir"])
    return [files["onnx"]] if backend == "onnx" else [files["model"], files["params"]]


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


def infer_settings(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The one reader of the ``Infer`` section: ``infer_imgs``, ``batch_size``,
    ``transforms``, ``topk``, ``class_names``, ``class_id_map_file``.

    Reads PaddleClas's layout (``PostProcess: {name: Topk, topk, class_id_map_file,
    class_names}``) and the older flat keys (``Infer.topk``, ``Infer.class_names``)."""
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
    """The preprocessing every backend uses for ``cfg``.

    ``Infer.transforms`` when set (built as given); otherwise the pipeline
    ``resolve_data_config`` makes from the ``Arch``'s ``pretrained_cfg``, with
    ``Global.image_shape`` as input size and mean/std of the eval loader's Normalize.

    Returns:
        ``{"transforms", "pil" (hand them PIL images), "image_shape" ([C, H, W] every
        image must end at, or None: any), "ops" (the resolved op list, or None)}``.
    """
    ops = infer_settings(cfg)["transforms"]
    ds = (cfg.get("DataLoader") or {}).get("Eval", {}).get("dataset") or {}
    shape = (cfg.get("Global") or {}).get("image_shape")
    if ops:
        backend = ds.get("backend") if ds.get("backend") in ("cv2", "pil") else None
        return {"transforms": build_transforms(ops, backend=backend),
                "pil": backend == "pil", "image_shape": list(shape) if shape else None,
                "ops": None, "raw": _op_name(ops[0]) == "DecodeImage"}
    arch = cfg["Arch"]
    opts = {k: v for k, v in arch.items() if k not in ("name", "class_num")}
    model_cfg = pretrained_cfg_for(arch["name"], arch.get("class_num", 1000), **opts)
    eval_ops = ds.get("transforms") or ds.get("transform_ops")
    data_cfg = resolve_data_config({"input_size": tuple(shape) if shape else None,
                                    **normalize_of(eval_ops)}, pretrained_cfg=model_cfg)
    return {"transforms": create_transform(data_cfg), "pil": True,
            "image_shape": list(data_cfg["input_size"]), "ops": transform_ops(data_cfg),
            "raw": False}


def _op_name(entry: Any) -> str:
    if isinstance(entry, dict):
        return next(iter(entry), "")
    return entry if isinstance(entry, str) else ""


def predict_images(predictor: Predictor, paths: Sequence[str],
                   transforms: Optional[Callable], batch_size: int = 8, topk: int = 5,
                   class_names: Optional[Sequence[str]] = None,
                   image_shape: Optional[Sequence[int]] = None,
                   pil: bool = False, channels: int = 3, raw: bool = False,
                   skipped: Optional[List[str]] = None) -> List[Dict[str, Any]]:
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
        raw: hand them the file's bytes (a PaddleClas pipeline that starts with
            DecodeImage); the file is still checked to decode first.
        channels: the model's input channels; images are decoded as RGB (3) or gray (1).
        skipped: when a list, a file that is not a readable image is skipped with a
            warning naming it and appended here; when None, it is an error.

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
        chunk, arrays = [], []
        for path in paths[start:start + batch_size]:
            try:
                img = read_image(path, pil=pil, channels=channels)
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
        if not arrays:
            continue
        logits = predictor.predict(np.stack(arrays).astype(np.float32))
        for path, top in zip(chunk, topk_predictions(logits, topk, class_names)):
            results.append({"image": path, "topk": top})
    return results


def format_predictions(results: Sequence[Dict[str, Any]]) -> str:
    """One line per image: ``path: name score, name score, ...``."""
    return "\n".join(f"{r['image']}: " + ", ".join(f"{t['class_name']} {t['score']:.4f}"
                                                   for t in r["topk"]) for r in results)


def infer_from_config(cfg: Dict[str, Any], backend: str = "dygraph",
                      threads: Optional[int] = None, results_name: Optional[str] = None,
                      strict: bool = False) -> Dict[str, Any]:
    """``tools/infer.py``: predict ``Infer.infer_imgs`` and save the top-k as JSON.

    ``dygraph`` builds ``Arch`` and loads ``Global.pretrained_model`` (strictly);
    ``paddle`` and ``onnx`` run the model exported to ``Global.save_inference_dir``. All
    three use ``infer_pipeline``'s preprocessing and input shape.

    Args:
        strict: a file in a folder that is not a readable image is an error (by default
            it is skipped with a warning naming it; a file named directly always errors).
        results_name: file name in ``Global.output_dir``; default
            ``infer_results_<backend>.json``.

    Returns:
        ``{"backend", "model_files", "note", "skipped", "results": [...], "results_file"}``;
        the JSON holds the same.

    Raises:
        FileNotFoundError: a missing image path, class-name file or exported model.
        InferError: a file that is not an image, or shapes that do not fit.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    g, inf = cfg["Global"], infer_settings(cfg)
    paths = list_images(inf["infer_imgs"])  # fail on a bad path before building anything
    from_folder = os.path.isdir(os.path.expanduser(str(inf["infer_imgs"])))
    num_classes = int(cfg["Arch"]["class_num"])
    names = (load_class_id_map(inf["class_id_map_file"], num_classes)
             or load_class_names(inf["class_names"], num_classes))
    pipe = infer_pipeline(cfg)
    files, note = model_files(backend, cfg), ""
    if backend == "dygraph":
        predictor = create_predictor("dygraph", model=load_model(cfg), threads=threads)
    else:
        predictor = create_predictor(backend, save_dir=g["save_inference_dir"], threads=threads)
        when = datetime.datetime.fromtimestamp(os.path.getmtime(files[0])).isoformat(" ", "seconds")
        note = (f"{backend} backend: runs the export {', '.join(files)} (written {when}, "
                "Global.save_inference_dir)")
        if g.get("pretrained_model"):
            note += ("; Global.pretrained_model is not read by this backend: export it "
                     "again if those weights are newer")
    shape = pipe["image_shape"]
    if shape is not None or backend != "dygraph":
        shape = check_image_shape(shape or g["image_shape"], cfg["Arch"], InferError)
    channels = model_channels(cfg["Arch"])
    skipped: List[str] = []
    results = predict_images(predictor, paths, pipe["transforms"], inf["batch_size"], inf["topk"],
                             names, image_shape=shape, pil=pipe["pil"], channels=channels,
                             raw=pipe["raw"],
                             skipped=skipped if from_folder and not strict else None)
    out = {"backend": backend, "model_files": files, "note": note, "skipped": skipped,
           "results": results}
    os.makedirs(g["output_dir"], exist_ok=True)
    out["results_file"] = os.path.join(g["output_dir"],
                                       results_name or f"infer_results_{backend}.json")
    write_json(out, out["results_file"], indent=2)
    return out
