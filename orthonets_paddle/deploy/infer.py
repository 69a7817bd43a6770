"""Predict the classes of image files: ``tools/infer.py`` and the notebook.

Images are read as the training datasets read them, then transformed by ``Infer.transforms``
or, when that is null, by the pipeline ``data.preprocess`` resolves from the model's
``pretrained_cfg`` (resize + centre crop to ``Global.image_shape``, the eval loader's
Normalize), so any image size fits. The three predictors (dygraph, Paddle Inference, ONNX
Runtime) get the same input, so they give one answer: the top-k softmax scores, saved as
``infer_results_<backend>.json``.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.datasets import IMAGE_EXTENSIONS, DataFileError, read_image_file, walk_files
from ..data.preprocess import normalize_of, resolve_data_config, transform_ops
from ..data.transforms import build_transforms
from ..models import load_model
from ..models.registry import model_channels
from ..models.resnet import pretrained_cfg_for
from ..utils.io import write_json
from ..utils.schema import POSITIVE_INT, SchemaError
from .export import check_image_shape
from .predictors import InferenceOptions, Predictor, create_predictor, inference_files

__all__ = ["InferError", "list_images", "read_image", "load_class_names", "load_class_id_map",
           "topk_predictions", "predict_images", "infer_settings", "infer_preprocess",
           "infer_pipeline", "inference_config", "config_from_export", "INFERENCE_YML",
           "infer_from_config", "format_predictions", "printable", "json_name",
           "check_writable"]

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


def _read_text(path: str) -> List[str]:
    """The lines of a UTF-8 text file (a BOM is dropped); another encoding is an InferError
    naming the file and the fix."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise InferError(f"{printable(path)} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}"
                         f" at offset {exc.start}); save it as UTF-8") from None


def _is_colour(path: str) -> bool:
    """The file holds a colour (or palette) image: its mode, from the header alone."""
    with Image.open(path) as im:
        return im.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def load_class_names(spec: Any, num_classes: int) -> Optional[List[str]]:
    """``Infer.class_names``: a list, a text file with one name per line, or None."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"Infer.class_names file {spec} does not exist; give a text "
                                    "file with one class name per line, or a list")
        names, where = [x.strip() for x in _read_text(spec) if x.strip()], f"{spec} has"
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
    for n, line in enumerate(_read_text(path), 1):
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


def infer_preprocess(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """What every backend does to an image, as data: ``{"transform_ops"`` (the op list),
    ``"backend"`` (the image library the ops take: ``pil``, ``cv2`` or None),
    ``"image_shape"`` ([C, H, W] every image must end at, or None: any)``}``: ``Infer.transforms``
    when set, else resize + centre crop from the model's ``pretrained_cfg``."""
    ops = infer_settings(cfg)["transforms"]
    ds = (cfg.get("DataLoader") or {}).get("Eval", {}).get("dataset") or {}
    shape = (cfg.get("Global") or {}).get("image_shape")
    if ops:
        backend = ds.get("backend") if ds.get("backend") in ("cv2", "pil") else None
        return {"transform_ops": list(ops), "backend": backend,
                "image_shape": list(shape) if shape else None}
    arch = cfg["Arch"]
    opts = {k: v for k, v in arch.items() if k not in ("name", "class_num")}
    model_cfg = pretrained_cfg_for(arch["name"], arch.get("class_num", 1000), **opts)
    eval_ops = ds.get("transforms") or ds.get("transform_ops")
    data_cfg = resolve_data_config({"input_size": tuple(shape) if shape else None,
                                    **normalize_of(eval_ops)}, pretrained_cfg=model_cfg)
    return {"transform_ops": transform_ops(data_cfg), "backend": "pil",
            "image_shape": list(data_cfg["input_size"])}


def infer_pipeline(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The preprocessing of every backend: ``{"transforms", "pil" (they take PIL images),
    "raw" (they take the file's bytes: a pipeline starting with DecodeImage), "image_shape"
    ([C, H, W] every image must end at, or None: any)}``."""
    pre = infer_preprocess(cfg)
    ops = pre["transform_ops"]
    first = next(iter(ops[0]), "") if isinstance(ops[0], dict) else ops[0]
    return {"transforms": build_transforms(ops, backend=pre["backend"]),
            "pil": pre["backend"] == "pil", "raw": first == "DecodeImage",
            "image_shape": pre["image_shape"]}


INFERENCE_YML = "inference.yml"


def inference_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The ``inference.yml`` an export writes beside the model: PaddleClas/PaddleX's layout
    (``Global.model_name``, ``Hpi`` TensorRT dynamic shapes, ``PreProcess.transform_ops``,
    ``PostProcess.Topk`` with ``label_list``) plus this package's keys in ``Global``
    (``image_shape``, ``class_num``, ``image_backend``), enough to run ``infer`` with no
    training config."""
    inf, pre = infer_settings(cfg), infer_preprocess(cfg)
    num_classes = int(cfg["Arch"]["class_num"])
    shape = check_image_shape(pre["image_shape"] or cfg["Global"]["image_shape"], cfg["Arch"],
                              InferError)
    names = (load_class_id_map(inf["class_id_map_file"], num_classes)
             or load_class_names(inf["class_names"], num_classes))
    shapes = {"x": [[1, *shape], [1, *shape], [8, *shape]]}  # min, opt, max (PaddleX's order)
    topk: Dict[str, Any] = {"topk": int(inf["topk"])}
    if names:
        topk["label_list"] = list(names)
    return {"Global": {"model_name": cfg["Arch"]["name"], "image_shape": shape,
                       "class_num": num_classes, "image_backend": pre["backend"]},
            "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": shapes},
                                        "tensorrt": {"dynamic_shapes": copy.deepcopy(shapes)}}},
            "PreProcess": {"transform_ops": pre["transform_ops"]},
            "PostProcess": {"Topk": topk}}


def config_from_export(model_dir: str) -> Dict[str, Any]:
    """A config for ``infer_from_config`` from the export folder's ``inference.yml`` alone
    (``Global.save_inference_dir`` is ``model_dir``); ``trt_shapes`` holds its TensorRT
    dynamic shapes. An export without the file (older versions) is an error saying to
    export again or to pass the training config."""
    from ..utils.yamlio import load_yaml
    path = os.path.join(os.path.dirname(inference_files(model_dir)["model"]), INFERENCE_YML)
    if not os.path.isfile(path):
        if not os.path.isfile(os.path.join(os.path.dirname(path), "inference.json")):
            raise FileNotFoundError(f"{model_dir} is not an export folder (no inference.json "
                                    "or inference.yml); give the folder tools/export_model.py "
                                    "wrote (Global.save_inference_dir), or -c CONFIG")
        raise FileNotFoundError(f"{model_dir} has no {INFERENCE_YML} (exports before this "
                                "version lack it); export again with tools/export_model.py, "
                                "or give the training config: -c CONFIG")
    doc = load_yaml(path)
    try:
        g, pre = doc["Global"], doc["PreProcess"]["transform_ops"]
        (post_name, post), = (doc.get("PostProcess") or {"Topk": {}}).items()
        shape, num_classes = list(g["image_shape"]), int(g["class_num"])
        trt = doc["Hpi"]["backend_configs"]["paddle_infer"]["trt_dynamic_shapes"]["x"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InferError(f"{path} is not an inference.yml this package wrote (missing or "
                         f"malformed {exc}); export the model again") from None
    if post_name != "Topk":
        raise InferError(f"{path}: PostProcess {post_name!r} is not supported; valid: Topk")
    return {"Global": {"save_inference_dir": model_dir, "image_shape": shape,
                       "pretrained_model": None, "output_dir": "./output"},
            "Arch": {"name": g.get("model_name", "?"), "class_num": num_classes,
                     "in_channels": shape[0]},
            "DataLoader": {"Eval": {"dataset": {"backend": g.get("image_backend")}}},
            "Infer": {"infer_imgs": None, "batch_size": 8, "transforms": pre,
                      "PostProcess": {"name": "Topk", "topk": post.get("topk", 5),
                                      "class_names": post.get("label_list")}},
            "trt_shapes": trt}


def predict_images(predictor: Predictor, paths: Sequence[str],
                   transforms: Optional[Callable], batch_size: int = 8, topk: int = 5,
                   class_names: Optional[Sequence[str]] = None,
                   image_shape: Optional[Sequence[int]] = None,
                   pil: bool = False, channels: int = 3, raw: bool = False,
                   skipped: Optional[List[str]] = None,
                   grayed: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """``[{"image": path, "topk": [...]}, ...]`` for image files, ``batch_size`` at a time.

    Args:
        transforms: applied to each decoded image (a PIL image with ``pil``, the file's
            bytes with ``raw``); must end in a float ``[C, H, W]`` array: ``image_shape``
            when given (an export's), ``channels`` (RGB: 3, gray: 1) in any case.
        skipped: when a list, a file that is not a readable image is skipped with a
            warning naming it and appended here; when None, it is an error.
        grayed: when a list, the colour images converted to gray (``channels`` 1) go here.
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
                if channels == 1 and grayed is not None and _is_colour(path):
                    grayed.append(path)
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


def printable(text: str) -> str:
    """``text`` as it may reach a terminal: control and format characters (ESC, CR, LF,
    bidi overrides) and the undecodable bytes of a file name (``os.fsdecode``'s lone
    surrogates) written as ``\\x1b``-style escapes; other text unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else
                   repr(c)[1:-1] for c in text)


def json_name(path: str) -> Dict[str, str]:
    """A file name for JSON, losslessly and without lone surrogates: ``{"image": name}`` when
    the name is UTF-8, else ``{"image": printable(name), "image_bytes": hex of
    os.fsencode(name)}`` (the exact name is ``os.fsdecode(bytes.fromhex(...))``)."""
    raw = os.fsencode(path)
    try:
        return {"image": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"image": printable(os.fsdecode(raw)), "image_bytes": raw.hex()}


def check_writable(path: str, what: str = "results file",
                   setting: str = "Global.output_dir") -> str:
    """Make ``path``'s folder and check a file can be written there, before a long pass:
    a missing or read-only folder, a file where a folder goes, or a folder where the file
    goes, is an OSError naming the path. Returns ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise OSError(f"cannot write the {what} {printable(path)} ({why}); give a writable "
                      f"folder ({setting})") from None
    return path


def format_predictions(results: Sequence[Dict[str, Any]]) -> str:
    """One line per image: ``path: name score, name score, ...``, control characters in
    names escaped (``printable``)."""
    return "\n".join(f"{printable(r['image'])}: " + ", ".join(
        f"{printable(t['class_name'])} {t['score']:.4f}" for t in r["topk"]) for r in results)


def infer_from_config(cfg: Dict[str, Any], backend: str = "dygraph",
                      threads: Optional[int] = None, results_name: Optional[str] = None,
                      strict: bool = False,
                      options: Optional[InferenceOptions] = None) -> Dict[str, Any]:
    """``tools/infer.py``: predict ``Infer.infer_imgs``, save the top-k as JSON in
    ``Global.output_dir`` (``results_name``, default ``infer_results_<backend>.json``).

    ``dygraph`` builds ``Arch`` and loads ``Global.pretrained_model`` (strictly); ``paddle``
    and ``onnx`` run the export in ``Global.save_inference_dir`` with ``options`` (device,
    TensorRT, ...). With ``strict``, a file in a folder that is not a readable image is an
    error (by default it is skipped with a warning; a file named directly always errors).
    ``cfg`` may be ``config_from_export``'s. The results file is checked writable first.
    In the JSON, file names follow ``json_name``.

    Returns:
        ``{"backend", "device", "model_files", "note", "skipped", "results",
        "results_file"}``, as saved.
    """
    g, inf = cfg["Global"], infer_settings(cfg)
    specs = inf["infer_imgs"] if isinstance(inf["infer_imgs"], list) else [inf["infer_imgs"]]
    paths = [p for spec in specs for p in list_images(spec)]  # bad paths fail before the build
    from_folder = any(os.path.isdir(os.path.expanduser(str(spec))) for spec in specs)
    results_file = check_writable(os.path.join(
        g["output_dir"], results_name or f"infer_results_{backend}.json"))
    num_classes = int(cfg["Arch"]["class_num"])
    names = (load_class_id_map(inf["class_id_map_file"], num_classes)
             or load_class_names(inf["class_names"], num_classes))
    pipe, note = infer_pipeline(cfg), ""
    shape = pipe["image_shape"]
    if shape is not None or backend != "dygraph":
        shape = check_image_shape(shape or g["image_shape"], cfg["Arch"], InferError)
    if cfg.get("trt_shapes") and options is not None and options.trt_shapes is None:
        options = dataclasses.replace(options, trt_shapes=cfg["trt_shapes"])
    if backend == "dygraph":
        files = [str(g["pretrained_model"])] if g.get("pretrained_model") else []
        predictor = create_predictor("dygraph", model=load_model(cfg), threads=threads,
                                     options=options)
    else:
        predictor = create_predictor(backend, save_dir=g["save_inference_dir"], threads=threads,
                                     options=options, image_shape=shape)
        found = inference_files(g["save_inference_dir"])
        files = [found["onnx"]] if backend == "onnx" else [found["model"], found["params"]]
        when = datetime.datetime.fromtimestamp(os.path.getmtime(files[0])).isoformat(" ", "seconds")
        note = (f"{backend} backend: runs the export {', '.join(files)} (written {when}, "
                "Global.save_inference_dir)")
        if g.get("pretrained_model"):
            note += ("; Global.pretrained_model is not read by this backend: export it "
                     "again if those weights are newer")
    skipped: List[str] = []
    grayed: List[str] = []
    channels = model_channels(cfg["Arch"])
    results = predict_images(predictor, paths, pipe["transforms"], inf["batch_size"], inf["topk"],
                             names, image_shape=shape, pil=pipe["pil"], channels=channels,
                             raw=pipe["raw"], grayed=grayed,
                             skipped=skipped if from_folder and not strict else None)
    if grayed:  # one note per run: the model sees a gray version of a colour photo
        logger.warning("%d colour image(s) converted to gray for this 1-channel model "
                       "(Arch.in_channels: 1), e.g. %s", len(grayed), printable(grayed[0]))
    out = {"backend": backend, "device": getattr(predictor, "device", ""), "model_files": files,
           "note": note, "skipped": skipped, "grayed": grayed, "results": results,
           "results_file": results_file}
    saved = dict(out, skipped=[json_name(p) for p in skipped],
                 grayed=[json_name(p) for p in grayed],
                 results=[{**json_name(r["image"]), "topk": r["topk"]} for r in results])
    write_json(saved, results_file, indent=2)
    return out
