"""Image transforms built from PaddleClas-style config lists.

Every op draws its random parameters from Python's global ``random`` module
(seeded by the trainer; Paddle re-seeds it in each DataLoader worker from the
main process's numpy state), so a fixed seed gives a reproducible run. Ops accept
uint8 HWC numpy arrays (``cv2`` backend) or PIL images (``pil`` backend); the
parameters are drawn in the same order on both, and ``ToTensor`` gives the same
float32 CHW array in [0, 1] on both.

Measured with ``measure_transform_throughput`` on the seed CIFAR train pipeline
(RandomCrop, ColorJitter, Flip, Rotation, ToTensor, Normalize; 32x32, one process,
2-core CPU, best of 5): cv2 ~25,000 images/s, PIL ~8,500 images/s (both about half
that when the machine is busy) -> ``cv2`` (numpy arrays) is the default backend.
"""
from __future__ import annotations

import inspect
import math
import numbers
import random
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

try:  # opencv-python-headless is optional: without it the PIL backend is used
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is missing
    cv2 = None

from ..utils.hints import did_you_mean  # noqa: E402

__all__ = ["TRANSFORMS", "BACKENDS", "DEFAULT_BACKEND", "Compose", "build_transforms",
           "transform_params", "measure_transform_throughput", "RandomCrop", "ColorJitter",
           "RandomHorizontalFlip", "RandomRotation", "Resize", "CenterCrop",
           "RandomResizedCrop", "ToTensor", "Normalize"]

BACKENDS = ("cv2", "pil")
DEFAULT_BACKEND = "cv2" if cv2 is not None else "pil"

ImageT = Union[np.ndarray, Image.Image]
SizeT = Union[int, Sequence[int]]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
_CV2_INTERP = ({} if cv2 is None else
               {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
                "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA})
_PIL_INTERP = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
               "bicubic": Image.BICUBIC, "area": Image.BOX}


# ----------------------------------------------------------------------------- helpers
def _pair(value: SizeT, what: str) -> Tuple[int, int]:
    """``int`` -> ``(v, v)``; ``[h, w]`` -> ``(h, w)``."""
    if isinstance(value, numbers.Integral):
        pair = (int(value), int(value))
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{what} must be an int or a [height, width] pair, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return pair


def _hw(img: ImageT) -> Tuple[int, int]:
    if isinstance(img, Image.Image):
        return img.height, img.width
    return img.shape[0], img.shape[1]


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    # cv2 drops the channel axis of single-channel images; put it back.
    return out[:, :, None] if like.ndim == 3 and out.ndim == 2 else out


def _interp(name: str, op: str) -> str:
    if name not in _INTERPOLATIONS:
        raise ValueError(f"{op}: unknown interpolation {name!r}; valid: {list(_INTERPOLATIONS)}")
    return name


def _resize(img: ImageT, h: int, w: int, interpolation: str) -> ImageT:
    if isinstance(img, Image.Image):
        return img.resize((w, h), _PIL_INTERP[interpolation])
    if img.shape[:2] == (h, w):
        return img
    flag = _CV2_INTERP[interpolation]
    if interpolation == "bilinear" and h <= img.shape[0] and w <= img.shape[1]:
        # PIL antialiases when shrinking; cv2's INTER_LINEAR would alias, INTER_AREA does not.
        flag = cv2.INTER_AREA
    return _keep_channels(cv2.resize(img, (w, h), interpolation=flag), img)


def _crop(img: ImageT, top: int, left: int, h: int, w: int) -> ImageT:
    if isinstance(img, Image.Image):
        return img.crop((left, top, left + w, top + h))
    return img[top:top + h, left:left + w]


def _pad(img: ImageT, left: int, top: int, right: int, bottom: int, fill: int) -> ImageT:
    if not (left or top or right or bottom):
        return img
    if isinstance(img, Image.Image):
        return ImageOps.expand(img, (left, top, right, bottom), fill=fill)
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                             value=(fill, fill, fill, fill))
    return _keep_channels(out, img)


# ----------------------------------------------------------------------------- ops
class RandomCrop:
    """Pad by ``padding`` (zeros), then crop a random ``size`` window.

    Args:
        size: output size, int or ``[h, w]``.
        padding: int (all sides), ``[left/right, top/bottom]`` or ``[left, top, right, bottom]``.
        pad_if_needed: pad images smaller than ``size`` instead of failing.
        fill: padding value.
    """

    def __init__(self, size: SizeT, padding: Union[int, Sequence[int]] = 0,
                 pad_if_needed: bool = False, fill: int = 0):
        self.size = _pair(size, "RandomCrop.size")
        if isinstance(padding, numbers.Integral):
            padding = [int(padding)] * 4
        elif isinstance(padding, (list, tuple)) and len(padding) == 2:
            padding = [padding[0], padding[1], padding[0], padding[1]]
        if not (isinstance(padding, (list, tuple)) and len(padding) == 4) or min(padding) < 0:
            raise ValueError(f"RandomCrop.padding must be a non-negative int or a list of 2 or 4 "
                             f"ints, got {padding!r}")
        self.padding = tuple(int(p) for p in padding)
        self.pad_if_needed = pad_if_needed
        self.fill = fill

    def __call__(self, img: ImageT) -> ImageT:
        img = _pad(img, *self.padding, fill=self.fill)
        th, tw = self.size
        h, w = _hw(img)
        if (h < th or w < tw) and self.pad_if_needed:
            img = _pad(img, 0, 0, max(tw - w, 0), max(th - h, 0), fill=self.fill)
            h, w = _hw(img)
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: padded image {h}x{w} is smaller than the crop "
                             f"{th}x{tw}; add a Resize before it or set pad_if_needed: true")
        top = random.randint(0, h - th)
        left = random.randint(0, w - tw)
        return _crop(img, top, left, th, tw)


class ColorJitter:
    """Randomly change brightness, contrast, saturation and hue, in random order.

    Factors are drawn as in torchvision/paddle: ``uniform(max(0, 1 - b), 1 + b)`` for
    brightness/contrast/saturation, hue shift ``uniform(-hue, hue)`` (hue <= 0.5).
    Saturation and hue do nothing on single-channel images.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0):
        for name, v in (("brightness", brightness), ("contrast", contrast),
                        ("saturation", saturation), ("hue", hue)):
            if not isinstance(v, numbers.Real) or v < 0:
                raise ValueError(f"ColorJitter.{name} must be a non-negative number, got {v!r}")
        if hue > 0.5:
            raise ValueError(f"ColorJitter.hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)

    def _params(self) -> List[Tuple[str, float]]:
        ops = []
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if v > 0:
                ops.append((name, random.uniform(max(0.0, 1 - v), 1 + v)))
        if self.hue > 0:
            ops.append(("hue", random.uniform(-self.hue, self.hue)))
        random.shuffle(ops)
        return ops

    def __call__(self, img: ImageT) -> ImageT:
        ops = self._params()
        if not ops:
            return img
        if isinstance(img, Image.Image):
            return self._pil(img, ops)
        return self._np(img, ops)

    @staticmethod
    def _pil(img: Image.Image, ops: List[Tuple[str, float]]) -> Image.Image:
        for name, f in ops:
            if name == "brightness":
                img = ImageEnhance.Brightness(img).enhance(f)
            elif name == "contrast":
                img = ImageEnhance.Contrast(img).enhance(f)
            elif img.mode != "RGB":
                continue
            elif name == "saturation":
                img = ImageEnhance.Color(img).enhance(f)
            else:
                h, s, v = img.convert("HSV").split()
                h = h.point(lambda x, d=int(round(f * 255)): (x + d) % 256)
                img = Image.merge("HSV", (h, s, v)).convert("RGB")
        return img

    @staticmethod
    def _np(img: np.ndarray, ops: List[Tuple[str, float]]) -> np.ndarray:
        # cv2's saturating uint8 arithmetic rounds and clips after every step, as PIL's
        # ImageEnhance does, and is several times faster than float numpy here.
        rgb = img.ndim == 3 and img.shape[2] == 3
        for name, f in ops:
            if name == "brightness":
                out = cv2.addWeighted(img, f, img, 0.0, 0.0)
            elif name == "contrast":
                gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if rgb else img
                mean = float(np.rint(gray.mean()))  # PIL uses the rounded mean of 'L'
                out = cv2.addWeighted(img, f, img, 0.0, (1 - f) * mean)
            elif not rgb:
                continue
            elif name == "saturation":
                gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                out = cv2.addWeighted(img, f, gray, 1 - f, 0.0)
            else:
                # OpenCV's full-range 8-bit HSV stores hue in [0, 256), as PIL's HSV does.
                hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
                hsv[:, :, 0] += np.uint8(int(round(f * 255)) % 256)  # wraps modulo 256
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
            img = _keep_channels(out, img)
        return img


class RandomHorizontalFlip:
    """Mirror left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        if not isinstance(prob, numbers.Real) or not 0 <= prob <= 1:
            raise ValueError(f"RandomHorizontalFlip.prob must be in [0, 1], got {prob!r}")
        self.prob = float(prob)

    def __call__(self, img: ImageT) -> ImageT:
        if random.random() >= self.prob:
            return img
        if isinstance(img, Image.Image):
            return img.transpose(Image.FLIP_LEFT_RIGHT)
        return img[:, ::-1]


class RandomRotation:
    """Rotate by ``uniform(-degrees, degrees)`` (or ``uniform(lo, hi)`` for a pair)
    about the centre, counter-clockwise for positive angles, same size, filled with ``fill``.
    """

    def __init__(self, degrees: Union[float, Sequence[float]], interpolation: str = "nearest",
                 fill: int = 0):
        if isinstance(degrees, numbers.Real):
            if degrees < 0:
                raise ValueError(f"RandomRotation.degrees must be >= 0, got {degrees}")
            degrees = (-float(degrees), float(degrees))
        elif not (isinstance(degrees, (list, tuple)) and len(degrees) == 2):
            raise ValueError(f"RandomRotation.degrees must be a number or [min, max], "
                             f"got {degrees!r}")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation = _interp(interpolation, "RandomRotation")
        self.fill = fill

    def __call__(self, img: ImageT) -> ImageT:
        angle = random.uniform(*self.degrees)
        if isinstance(img, Image.Image):
            return img.rotate(angle, resample=_PIL_INTERP[self.interpolation],
                              fillcolor=self.fill if img.mode == "L" else (self.fill,) * 3)
        h, w = img.shape[:2]
        # Pixel-centre convention ((n - 1) / 2) matches PIL's rotate about w/2, h/2.
        m = cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5), angle, 1.0)
        out = cv2.warpAffine(img, m, (w, h), flags=_CV2_INTERP[self.interpolation],
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(self.fill,) * 4)
        return _keep_channels(out, img)


class Resize:
    """Resize; an int resizes the short side to ``size`` (keeping aspect), ``[h, w]`` is exact."""

    def __init__(self, size: SizeT, interpolation: str = "bilinear"):
        if isinstance(size, numbers.Integral):
            if size < 1:
                raise ValueError(f"Resize.size must be positive, got {size}")
            self.size: Union[int, Tuple[int, int]] = int(size)
        else:
            self.size = _pair(size, "Resize.size")
        self.interpolation = _interp(interpolation, "Resize")

    def __call__(self, img: ImageT) -> ImageT:
        h, w = _hw(img)
        if isinstance(self.size, int):
            s = self.size
            if h <= w:
                nh, nw = s, int(s * w / h)
            else:
                nh, nw = int(s * h / w), s
        else:
            nh, nw = self.size
        return _resize(img, nh, nw, self.interpolation)


class CenterCrop:
    """Crop the central ``size`` window (zero-padding images that are smaller)."""

    def __init__(self, size: SizeT):
        self.size = _pair(size, "CenterCrop.size")

    def __call__(self, img: ImageT) -> ImageT:
        th, tw = self.size
        h, w = _hw(img)
        if h < th or w < tw:
            ph, pw = max(th - h, 0), max(tw - w, 0)
            img = _pad(img, pw // 2, ph // 2, pw - pw // 2, ph - ph // 2, fill=0)
            h, w = _hw(img)
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return _crop(img, top, left, th, tw)


class RandomResizedCrop:
    """Crop a random area fraction ``scale`` and aspect ratio ``ratio``, resize to ``size``
    (the Inception / torchvision sampling, 10 tries then a centre crop)."""

    def __init__(self, size: SizeT, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), interpolation: str = "bilinear"):
        self.size = _pair(size, "RandomResizedCrop.size")
        for name, v in (("scale", scale), ("ratio", ratio)):
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and 0 < v[0] <= v[1]):
                raise ValueError(f"RandomResizedCrop.{name} must be [min, max] with "
                                 f"0 < min <= max, got {v!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = _interp(interpolation, "RandomResizedCrop")

    def _window(self, h: int, w: int) -> Tuple[int, int, int, int]:
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, img: ImageT) -> ImageT:
        top, left, ch, cw = self._window(*_hw(img))
        return _resize(_crop(img, top, left, ch, cw), *self.size, self.interpolation)


class ToTensor:
    """HWC (or HW) image -> float32 CHW numpy array; uint8 is scaled to [0, 1].

    Returns a numpy array, not a ``paddle.Tensor``: the DataLoader's collate turns
    the batch into a tensor once, which is much faster than one tensor per image.
    """

    def __call__(self, img: ImageT) -> np.ndarray:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"ToTensor expects an HWC or HW image, got shape {arr.shape}")
        out = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
        if arr.dtype == np.uint8:
            out *= np.float32(1 / 255)
        return out


class Normalize:
    """``(x - mean) / std`` per channel on a float CHW array (put it after ``ToTensor``)."""

    def __init__(self, mean: Union[float, Sequence[float]], std: Union[float, Sequence[float]]):
        mean_a = np.asarray(mean, dtype=np.float32).reshape(-1)
        std_a = np.asarray(std, dtype=np.float32).reshape(-1)
        if mean_a.size == 0 or std_a.size == 0 or np.any(std_a == 0):
            raise ValueError(f"Normalize needs non-empty mean and non-zero std, got "
                             f"mean={mean!r}, std={std!r}")
        self.mean, self.std = mean_a, std_a
        self._scale = (1.0 / std_a).astype(np.float32)
        self._cache: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}  # channels -> (mean, 1/std)

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != 3:
            raise ValueError("Normalize expects the float32 CHW array made by ToTensor; put "
                             "ToTensor before Normalize in the transforms list")
        c = arr.shape[0]
        if c not in self._cache:
            for name, v in (("mean", self.mean), ("std", self.std)):
                if v.size not in (1, c):
                    raise ValueError(f"Normalize.{name} has {v.size} values but the image has "
                                     f"{c} channels; give {c} values (e.g. 1 for FashionMNIST "
                                     f"with channels: 1)")
            self._cache[c] = (np.broadcast_to(self.mean, (c,)).reshape(c, 1, 1).copy(),
                              np.broadcast_to(self._scale, (c,)).reshape(c, 1, 1).copy())
        mean, scale = self._cache[c]
        arr = arr - mean
        arr *= scale
        return arr


TRANSFORMS: Dict[str, type] = {cls.__name__: cls for cls in (
    RandomCrop, ColorJitter, RandomHorizontalFlip, RandomRotation, Resize, CenterCrop,
    RandomResizedCrop, ToTensor, Normalize)}


# ----------------------------------------------------------------------------- building
class Compose:
    """Apply ops in order after converting the input to the backend's image type.

    Args:
        ops: callables taking and returning an image.
        backend: ``"cv2"`` (uint8 HWC numpy arrays) or ``"pil"`` (PIL images).
    """

    def __init__(self, ops: Sequence[Callable], backend: str = DEFAULT_BACKEND):
        if backend not in BACKENDS:
            raise ValueError(f"unknown transform backend {backend!r}; valid: {list(BACKENDS)}")
        if backend == "cv2" and cv2 is None:
            raise ImportError("transform backend 'cv2' needs OpenCV: pip install "
                              "opencv-python-headless, or use backend 'pil'")
        self.ops = list(ops)
        self.backend = backend

    def __call__(self, img: Any) -> Any:
        if self.backend == "pil" and isinstance(img, np.ndarray):
            img = Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
        elif self.backend == "cv2" and isinstance(img, Image.Image):
            img = np.asarray(img)
            if img.ndim == 2:
                img = img[:, :, None]
        for op in self.ops:
            img = op(img)
        return img

    def __repr__(self) -> str:
        names = ", ".join(type(op).__name__ for op in self.ops)
        return f"Compose([{names}], backend={self.backend!r})"


def transform_params(name: str) -> List[str]:
    """Valid keyword names of transform ``name``.

    Raises:
        ValueError: ``name`` is not a registered transform.
    """
    cls = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def _lookup(name: str) -> type:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; {did_you_mean(name, TRANSFORMS)}valid "
                         f"transforms: {sorted(TRANSFORMS)}")
    return TRANSFORMS[name]


def _parse_entry(entry: Any) -> Tuple[str, dict]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        name, params = next(iter(entry.items()))
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError(f"transform {name!r}: parameters must be a mapping like "
                             f"{{size: 32}}, got {params!r}")
        return name, params
    raise ValueError(f"each transforms entry must be an op name or a one-key mapping "
                     f"'- OpName: {{param: value}}', got {entry!r}")


def build_transforms(ops: Optional[Sequence[Any]], backend: Optional[str] = None
                     ) -> Optional[Compose]:
    """Build a pipeline from a config list such as ``[{"RandomCrop": {"size": 32}}, "ToTensor"]``.

    Args:
        ops: list of entries ``{OpName: {param: value}}``, ``{OpName: None}`` or ``"OpName"``.
            ``None`` or an empty list gives ``None`` (no transform).
        backend: ``"cv2"`` or ``"pil"``; defaults to ``DEFAULT_BACKEND`` (the faster one).

    Returns:
        A ``Compose`` callable, or ``None``.

    Raises:
        ValueError: unknown op (with the nearest valid name) or bad parameters (with the op's
            valid parameters).
    """
    if not ops:
        return None
    if not isinstance(ops, (list, tuple)):
        raise ValueError(f"transforms must be a list of ops, got {type(ops).__name__}: {ops!r}")
    built = []
    for entry in ops:
        name, params = _parse_entry(entry)
        cls = _lookup(name)
        valid = transform_params(name)
        for key in params:
            if key not in valid:
                raise ValueError(f"transform {name}: unknown parameter {key!r}; "
                                 f"{did_you_mean(key, valid)}"
                                 f"valid parameters of {name}: {valid}")
        try:
            built.append(cls(**params))
        except TypeError as err:  # e.g. a missing required parameter
            raise ValueError(f"transform {name}: {err}; valid parameters of {name}: "
                             f"{valid}") from None
    return Compose(built, backend=backend or DEFAULT_BACKEND)


def measure_transform_throughput(ops: Sequence[Any], backend: str, n: int = 2000,
                                 image_size: int = 32, seed: int = 0) -> float:
    """Images per second of a pipeline on random uint8 RGB images, in this process.

    The conversion the dataset would do for the backend (numpy -> PIL for ``pil``)
    is included in the timing, as it is in training.

    Args:
        ops: a transforms config list (as for ``build_transforms``).
        backend: ``"cv2"`` or ``"pil"``.
        n: number of images to time.
        image_size: side of the square test images.
        seed: seed for the images and for ``random``.
    """
    pipeline = build_transforms(ops, backend=backend)
    if pipeline is None:
        raise ValueError("measure_transform_throughput needs a non-empty ops list")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (min(n, 256), image_size, image_size, 3), dtype=np.uint8)
    random.seed(seed)
    for img in images[:16]:  # warm-up (imports, caches)
        pipeline(img)
    start = time.perf_counter()
    for i in range(n):
        pipeline(images[i % len(images)])
    return n / (time.perf_counter() - start)
