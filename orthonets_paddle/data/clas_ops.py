"""PaddleClas's image ops (``ppcls/data/preprocess/ops/operators.py``), with its semantics:
numpy HWC images, sizes as ``[width, height]``, draws from Python's ``random`` (crops,
flips) or numpy's (ColorJitter/RandomRotation gates, PCA noise). An op's ``layout`` tells
the pipeline whether it still needs PaddleClas's dataset transpose.
"""
from __future__ import annotations

import io
import math
import numbers
import random
from typing import Any, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import paddle.vision.transforms as T
from PIL import Image

from .images import check_image_pixels, read_image_file

__all__ = ["CLAS_OPS", "CLAS_OVERRIDES", "DecodeImage", "ResizeImage", "CropImage", "RandCropImage",
           "RandFlipImage", "NormalizeImage", "ToCHWImage", "PCALighting", "ClasColorJitter",
           "ClasRandomRotation", "parse_scale"]

_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
               "area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC,
               "lanczos": cv2.INTER_LANCZOS4}
_PIL_INTERP = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
               "box": Image.BOX, "lanczos": Image.LANCZOS, "hamming": Image.HAMMING}


def parse_scale(value: Union[str, float, None]) -> float:
    """``0.00392``, ``'1.0/255.0'`` (PaddleClas ``eval``s it; here only ``number/number``)
    or None (1/255)."""
    if value is None:
        return 1.0 / 255.0
    x = value
    try:
        if isinstance(x, str) and x.count("/") <= 1:
            num, _, den = x.partition("/")
            x = float(num) / float(den or 1)
        if isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x):
            return float(x)
    except (ValueError, ZeroDivisionError):
        pass
    raise ValueError(f"NormalizeImage.scale must be a number or 'number/number' such as "
                     f"'1.0/255.0', got {value!r}")


def _wh(size: Union[int, Sequence[int]], op: str) -> Tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        pair = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"{op}.size must be an int or [width, height], got {size!r}")
    if min(pair) < 1:
        raise ValueError(f"{op}.size must be positive, got {size!r}")
    return pair


class _Resizer:
    """PaddleClas's UnifiedResize: cv2 (default bilinear) or PIL, to ``(w, h)``."""

    def __init__(self, interpolation: Optional[str], backend: str, op: str):
        backend = str(backend).lower()
        table = {"cv2": _CV2_INTERP, "pil": _PIL_INTERP}.get(backend)
        if table is None:
            raise ValueError(f"{op}.backend must be 'cv2' or 'pil', got {backend!r}")
        name = "bilinear" if interpolation is None else str(interpolation).lower()
        if name not in table:
            raise ValueError(f"{op}: unknown interpolation {interpolation!r} for backend "
                             f"{backend}; valid: {sorted(table)}")
        self.backend, self.flag = backend, table[name]

    def __call__(self, img: np.ndarray, wh: Tuple[int, int]) -> np.ndarray:
        if self.backend == "cv2":
            out = cv2.resize(img, wh, interpolation=self.flag)
            return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out
        return np.asarray(Image.fromarray(img).resize(wh, self.flag))


def _array(img: Any) -> np.ndarray:
    return np.asarray(img) if isinstance(img, Image.Image) else img


def _check_header(data: bytes) -> None:
    try:  # check_image_pixels from the header (formats PIL cannot identify pass)
        with Image.open(io.BytesIO(bytes(data))) as im:
            size = im.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return  # OpenCV may still read it, or says it cannot
    check_image_pixels(*size, f"({len(data)} bytes)", "DecodeImage")


class DecodeImage:
    """File bytes -> HWC uint8 (RGB when ``to_rgb``; CHW when ``channel_first``), decoded by
    OpenCV as BGR or PIL; an array (CIFAR, Fashion-MNIST) passes through."""

    def __init__(self, to_np: bool = True, to_rgb: bool = True, channel_first: bool = False,
                 backend: str = "cv2"):
        if str(backend).lower() not in ("cv2", "pil"):
            raise ValueError(f"DecodeImage.backend must be 'cv2' or 'pil', got {backend!r}")
        if not to_np:
            raise ValueError("DecodeImage.to_np: false (PIL images) is not supported here; "
                             "the ops after it take numpy arrays, remove to_np")
        self.to_rgb, self.channel_first = bool(to_rgb), bool(channel_first)
        self.backend = str(backend).lower()
        self.layout = "chw" if channel_first else "hwc"

    def __call__(self, img: Any) -> np.ndarray:
        if isinstance(img, (bytes, bytearray, memoryview)):
            if not len(img):
                raise ValueError("DecodeImage: empty file")
            # the datasets' reader: size checked from the header before decoding, EXIF
            # orientation applied, 16-bit scaled (OpenCV does the last two itself)
            if self.backend == "pil":
                img = read_image_file(img, 3, "DecodeImage")[:, :, ::-1]
            else:
                _check_header(img)
                img = cv2.imdecode(np.frombuffer(img, np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError("DecodeImage: OpenCV cannot decode the file (not an image "
                                     "or corrupt)")
            if self.to_rgb:
                img = img[:, :, ::-1]
        else:
            img = _array(img)
        if self.channel_first:
            img = img.transpose((2, 0, 1))
        return img


class ResizeImage:
    """Short side to ``resize_short`` (aspect kept), else exactly ``size`` (int or ``[w, h]``)."""

    def __init__(self, size: Union[int, Sequence[int], None] = None,
                 resize_short: Optional[int] = None, interpolation: Optional[str] = None,
                 backend: str = "cv2", return_numpy: bool = True):
        if resize_short is not None and resize_short > 0:
            self.resize_short, self.wh = int(resize_short), None
        elif size is not None:
            self.resize_short, self.wh = None, _wh(size, "ResizeImage")
        else:
            raise ValueError("ResizeImage needs size or resize_short, e.g. {resize_short: 256}")
        if not return_numpy:
            raise ValueError("ResizeImage.return_numpy: false is not supported here; remove it")
        self._resize = _Resizer(interpolation, backend, "ResizeImage")

    def __call__(self, img: Any) -> np.ndarray:
        img = _array(img)
        h, w = img.shape[:2]
        if self.resize_short is not None:
            percent = float(self.resize_short) / min(w, h)
            wh = (int(round(w * percent)), int(round(h * percent)))
        else:
            wh = self.wh
        return self._resize(img, wh)


class CropImage:
    """Centre crop to ``size`` (int or ``[w, h]``); the start is ``(side - crop) // 2``."""

    def __init__(self, size: Union[int, Sequence[int]]):
        self.wh = _wh(size, "CropImage")

    def __call__(self, img: Any) -> np.ndarray:
        img = _array(img)
        w, h = self.wh
        ih, iw = img.shape[:2]
        if ih < h or iw < w:
            raise ValueError(f"CropImage: image {ih}x{iw} is smaller than the crop {h}x{w}; "
                             f"put a ResizeImage with resize_short >= {max(w, h)} before it")
        top, left = (ih - h) // 2, (iw - w) // 2
        return img[top:top + h, left:left + w]


class RandCropImage:
    """PaddleClas's random-resized crop: one try at aspect ``uniform(ratio)`` (log-uniform
    with ``use_log_aspect``), area ``uniform(scale)`` clipped to fit; resized to ``size``."""

    def __init__(self, size: Union[int, Sequence[int]], progress_size: Any = None,
                 scale: Optional[Sequence[float]] = None, ratio: Optional[Sequence[float]] = None,
                 interpolation: Optional[str] = None, use_log_aspect: bool = False,
                 backend: str = "cv2"):
        if progress_size is not None:
            raise ValueError("RandCropImage.progress_size (progressive resizing) is not "
                             "supported here; remove it")
        self.wh = _wh(size, "RandCropImage")
        self.scale = [0.08, 1.0] if scale is None else [float(s) for s in scale]
        self.ratio = [3. / 4., 4. / 3.] if ratio is None else [float(r) for r in ratio]
        for name, v in (("scale", self.scale), ("ratio", self.ratio)):
            if len(v) != 2 or not 0 < v[0] <= v[1]:
                raise ValueError(f"RandCropImage.{name} must be [min, max] with 0 < min <= max, "
                                 f"got {v!r}")
        self.use_log_aspect = bool(use_log_aspect)
        self._resize = _Resizer(interpolation, backend, "RandCropImage")

    def __call__(self, img: Any) -> np.ndarray:
        img = _array(img)
        if self.use_log_aspect:
            aspect = math.exp(random.uniform(*map(math.log, self.ratio)))
        else:
            aspect = random.uniform(*self.ratio)
        ih, iw = img.shape[:2]
        bound = min((float(iw) / ih) / aspect, (float(ih) / iw) * aspect)
        area = iw * ih * random.uniform(min(self.scale[0], bound), min(self.scale[1], bound))
        w, h = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
        left, top = random.randint(0, iw - w), random.randint(0, ih - h)
        return self._resize(img[top:top + h, left:left + w], self.wh)


class RandFlipImage:
    """Flip with probability 1/2 (``random``) by OpenCV's ``flip_code`` (1 horizontal)."""

    def __init__(self, flip_code: int = 1):
        if flip_code not in (-1, 0, 1):
            raise ValueError(f"RandFlipImage.flip_code must be 1, 0 or -1, got {flip_code!r}")
        self.flip_code = flip_code

    def __call__(self, img: Any) -> np.ndarray:
        img = _array(img)
        if random.randint(0, 1) == 1:
            out = cv2.flip(img, self.flip_code)
            return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out
        return img


class NormalizeImage:
    """``(img * scale - mean) / std`` in float32; ``order`` other than ``chw`` means HWC;
    ``channel_num: 4`` appends a zero channel."""

    def __init__(self, scale: Union[str, float, None] = None,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 order: str = "chw", output_fp16: bool = False, channel_num: int = 3):
        if channel_num not in (3, 4):
            raise ValueError(f"NormalizeImage.channel_num must be 3 or 4, got {channel_num!r}")
        self.scale = np.float32(parse_scale(scale))
        self.chw = order == "chw"
        shape = (-1, 1, 1) if self.chw else (1, 1, -1)
        mean = [0.485, 0.456, 0.406] if mean is None else mean
        std = [0.229, 0.224, 0.225] if std is None else std
        self.mean = np.asarray(mean, np.float32).reshape(shape)
        self.std = np.asarray(std, np.float32).reshape(shape)
        self.dtype, self.channel_num = np.float16 if output_fp16 else np.float32, channel_num

    def __call__(self, img: Any) -> np.ndarray:
        img = (np.asarray(img).astype(np.float32) * self.scale - self.mean) / self.std
        if self.channel_num == 4:  # a zero channel appended
            img = np.pad(img, [(0, 1), (0, 0), (0, 0)] if self.chw else [(0, 0), (0, 0), (0, 1)])
        return img.astype(self.dtype)


class ToCHWImage:
    layout = "chw"  # HWC -> CHW

    def __call__(self, img: Any) -> np.ndarray:
        return _array(img).transpose((2, 0, 1))


class PCALighting:
    """AlexNet's PCA colour noise on HWC: add ``eigvec @ (alpha * eigval)``, ``alpha ~ N(0,
    0.1)`` (numpy), with ImageNet's eigen-decomposition as PaddleClas (no parameters)."""
    eigval = np.array([0.2175, 0.0188, 0.0045], np.float32)
    eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], np.float32)
    alphastd = 0.1

    def __call__(self, img: Any) -> np.ndarray:
        alpha = np.random.normal(0, self.alphastd, size=3).astype(np.float32)
        rgb = (self.eigvec * alpha[None, :] * self.eigval[None, :]).sum(1)
        return np.asarray(img) + rgb.reshape(1, 1, 3)


class ClasColorJitter(T.ColorJitter):
    """PaddleClas's ColorJitter: Paddle's on a PIL copy with probability ``prob`` (numpy;
    the default 2: always), back to numpy."""

    def __init__(self, prob: float = 2, brightness: float = 0, contrast: float = 0,
                 saturation: float = 0, hue: float = 0):
        super().__init__(brightness, contrast, saturation, hue)
        self.prob = prob

    def __call__(self, img: Any) -> Any:
        if np.random.random() < self.prob:
            if not isinstance(img, Image.Image):
                img = Image.fromarray(np.ascontiguousarray(img))
            img = np.asarray(self._apply_image(img))
        return img


class ClasRandomRotation(T.RandomRotation):
    """PaddleClas's RandomRotation: Paddle's, applied with probability ``prob`` (numpy)."""

    def __init__(self, prob: float = 0.5, degrees: Any = 0, interpolation: str = "nearest",
                 expand: bool = False, center: Any = None, fill: Any = 0):
        super().__init__(degrees, interpolation, expand, center, fill)
        self.prob = prob

    def __call__(self, img: Any) -> Any:
        return self._apply_image(img) if np.random.random() < self.prob else img


# Names only PaddleClas has: any of them makes a pipeline a PaddleClas pipeline.
CLAS_OPS = {c.__name__: c for c in (DecodeImage, ResizeImage, CropImage, RandCropImage,
                                     RandFlipImage, NormalizeImage, ToCHWImage, PCALighting)}
# Names both libraries have; inside a PaddleClas pipeline they mean PaddleClas's op.
CLAS_OVERRIDES = {"ColorJitter": ClasColorJitter, "RandomRotation": ClasRandomRotation}
# PaddleClas redefines these with other semantics and they are not written here.
CLAS_UNSUPPORTED = ("Pad", "RandomErasing")
