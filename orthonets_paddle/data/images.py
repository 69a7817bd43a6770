"""Image files: one reader (for datasets, ``DecodeImage`` and inference) and the datasets of
image files (``ImageFolder``, PaddleClas's ``ImageNetDataset``)."""
from __future__ import annotations

import collections
import io
import logging
import os
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
from PIL import Image, ImageOps

from ..utils.schema import Typed

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class DataFileError(ValueError):
    """A dataset file is missing, unreadable or not in the expected format."""


def check_image_pixels(width: int, height: int, name: str, owner: str) -> None:
    """Refuse, before decoding, an image over ``$ORTHONETS_MAX_IMAGE_PIXELS`` pixels (default
    PIL's warning threshold; PIL refuses only at twice that): a small file can claim gigapixels."""
    value = os.environ.get("ORTHONETS_MAX_IMAGE_PIXELS") or "89478485"
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"ORTHONETS_MAX_IMAGE_PIXELS={value!r} must be an integer") from None
    if width * height > limit:
        raise DataFileError(
            f"{owner}: image {name} is {width}x{height} ({width * height:,} pixels), more than "
            f"the {limit:,} read without decoding it whole; shrink it, or raise the limit "
            f"with ORTHONETS_MAX_IMAGE_PIXELS=<pixels>")


def read_image_file(path: Union[str, bytes, bytearray, memoryview], channels: int = 3,
                    owner: str = "image") -> np.ndarray:
    """Decode an image (a path, or the file's bytes) as displayed (EXIF orientation applied,
    16/32-bit scaled to 8 bits, not clipped), uint8 HWC: RGB, or ``[H, W, 1]`` if ``channels``
    is 1. Raises ``DataFileError`` naming the file when it cannot be decoded or is too large."""
    name = path if isinstance(path, str) else f"({len(path)} bytes)"
    try:
        with Image.open(path if isinstance(path, str) else io.BytesIO(bytes(path))) as im:
            check_image_pixels(*im.size, name, owner)
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im).astype(np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or arr.max() <= 65535 else arr.max()
                im = Image.fromarray(np.clip(np.rint(arr * 255.0 / top), 0, 255).astype(np.uint8))
            img = np.asarray(im.convert("RGB" if channels == 3 else "L"))
    except DataFileError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataFileError(f"{owner}: cannot read image {name} ({err}); delete or replace "
                            "the file") from None
    return img[:, :, None] if img.ndim == 2 else img  # HWC with one channel, as FashionMNIST


def walk_files(top: str) -> Iterator[Tuple[str, List[str], List[str]]]:
    """``os.walk`` listing regular files only (opening a named pipe called ``x.png`` blocks)
    and not entering symlinked folders (a link to ``..`` never ends)."""
    dirs, files = [], []
    try:
        with os.scandir(top) as entries:
            for entry in entries:
                try:
                    if entry.is_dir():
                        dirs.append(entry.name)
                    elif entry.is_file():  # cached d_type: no stat per regular file
                        files.append(entry.name)
                except OSError:
                    continue
    except OSError:
        return
    yield top, dirs, files
    for name in dirs:
        path = os.path.join(top, name)
        if not os.path.islink(path):
            yield from walk_files(path)


# The first bytes of each image format read here (PIL opens a file by these, whatever its
# extension): a file without them is found at start, not when a batch reaches it.
SIGNATURES = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",), "BMP": (b"BM",),
              "PNM": tuple(b"P%d" % k for k in range(1, 8)), "GIF": (b"GIF87a", b"GIF89a"),
              "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), "WebP": (b"RIFF",)}
_CHECKED = IMAGE_EXTENSIONS + (".gif",)  # other extensions (PIL plugins) are left to the decoder


def header_problem(path: str) -> Optional[str]:
    """Why the file at ``path`` is not an image, from its first 16 bytes (None: it may be).
    Only files with an extension of ``IMAGE_EXTENSIONS`` (or .gif) are judged."""
    if not path.lower().endswith(_CHECKED):
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        return f"cannot be opened ({err.strerror or err})"
    if not head:
        return "is empty (0 bytes)"
    for kind, starts in SIGNATURES.items():
        if head.startswith(starts) and (kind != "WebP" or head[8:12] == b"WEBP"):
            return None
    return (f"is not an image file (it starts with {head[:8]!r}, no "
            f"{'/'.join(SIGNATURES)} header)")


def read_text_lines(path: str, owner: str) -> Iterator[str]:
    """The lines of a text file as users save it: UTF-8 with or without a BOM, LF or CRLF
    line ends; ``DataFileError`` naming the file and the fix when it is not UTF-8."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # utf-8-sig: a leading BOM is dropped
            yield from f
    except UnicodeDecodeError as err:
        raise DataFileError(f"{owner}: {path} is not UTF-8 text ({err.reason} at byte "
                            f"{err.start}); save it as UTF-8") from None


def num_samples_arg(value: Optional[int], owner: str) -> Optional[int]:
    return Typed("int", min=1, null=True)(f"{owner}: num_samples (null: all samples)", value)


CHANNELS = Typed("choice", choices=(1, 3))


def mode_arg(mode: str, owner: str, eval_name: str = "test") -> str:
    m = str(mode).lower()
    if m not in ("train", "test", "val", "eval"):
        raise ValueError(f"{owner}: unknown mode {mode!r}; use 'train' or '{eval_name}' "
                         f"('val'/'test' are aliases)")
    return "train" if m == "train" else eval_name


class ImageDataset(paddle.io.Dataset):
    """Items ``(transform(self._image(i)), 0-d int64 label)`` over ``self.labels``."""

    transform: Optional[Callable] = None
    samples: Optional[List[Tuple[str, int]]] = None  # files' (path, label); the loader names them
    channels = 3

    def _keep(self, images: np.ndarray, labels: np.ndarray, num_samples: Optional[int]) -> None:
        self.images = np.ascontiguousarray(images[:num_samples], dtype=np.uint8)
        self.labels = np.asarray(labels[:num_samples], dtype=np.int64)

    def _image(self, idx: int) -> Any:
        if self.samples is None:  # held in memory
            return self.images[idx]
        return read_image_file(self.samples[idx][0], self.channels, type(self).__name__)

    def __getitem__(self, idx: int):
        img = self._image(idx)
        if self.transform is not None:
            try:
                img = self.transform(img)
            except DataFileError as err:  # DecodeImage's, given bytes: name the file
                if self.samples is None or self.samples[idx][0] in str(err):
                    raise
                raise DataFileError(f"{type(self).__name__}: image {self.samples[idx][0]}: "
                                    f"{err}") from None
        return img, np.array(self.labels[idx], dtype=np.int64)  # no float cast, unlike Paddle's

    def __len__(self) -> int:
        return len(self.labels)

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only the samples at ``indices`` (files found bad before training)."""
        self.samples = [self.samples[i] for i in indices]
        self.labels = np.asarray(self.labels, dtype=np.int64)[list(indices)]
        if getattr(self, "lines", None) is not None:
            self.lines = [self.lines[i] for i in indices]

    @property
    def transforms(self) -> Optional[Callable]:
        """``transform`` (Paddle's name) under the name of the constructor argument."""
        return self.transform


class ImageFolder(ImageDataset):
    """Images in ``root/<mode>/<class>/**`` (mode ``train`` or ``val``, ``test`` an alias) or,
    without split folders, ``root/<class>/**``; label = index of the sorted class folder. Not
    Paddle's ``DatasetFolder``: see ``walk_files``. ``channels``: 3 (RGB) or 1 (gray)."""

    def __init__(self, root: str, mode: str = "train", transforms: Optional[Callable] = None,
                 num_samples: Optional[int] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, channels: int = 3):
        super().__init__()
        self.channels, self.transform = CHANNELS("ImageFolder: channels", channels), transforms
        self.mode = mode_arg(mode, "ImageFolder", eval_name="val")
        n, root = num_samples_arg(num_samples, "ImageFolder"), os.path.expanduser(str(root))
        if not os.path.isdir(root):
            raise DataFileError(f"ImageFolder: root {root} is not a folder; give a folder with "
                                f"train/<class>/ and val/<class>/ (or <class>/) sub-folders")
        split = os.path.join(root, self.mode)
        has_splits = any(os.path.isdir(os.path.join(root, s)) for s in ("train", "val"))
        if has_splits and not os.path.isdir(split):
            raise DataFileError(f"ImageFolder: {root} has split folders but no {split}; create "
                                f"it or use mode 'train'/'val' accordingly")
        self.root = split if has_splits else root
        self.extensions = tuple(e.lower() for e in extensions)
        self.class_names = sorted(d.name for d in os.scandir(self.root) if d.is_dir())
        self.num_classes = len(self.class_names)
        samples, skipped = [], []
        for label, cls in enumerate(self.class_names):
            for folder, subfolders, files in sorted(walk_files(os.path.join(self.root, cls))):
                subfolders.sort()
                for f in sorted(files):
                    if f.lower().endswith(self.extensions):
                        samples.append((os.path.join(folder, f), label))
                    else:
                        skipped.append(os.path.join(folder, f))
        if skipped:  # once, so a folder of .gif files is not left out silently
            kinds = collections.Counter(os.path.splitext(f)[1].lower() or "no extension"
                                        for f in skipped)
            logging.getLogger("orthonets_paddle").warning(
                "WARNING ImageFolder: skipped %d file(s) in %s that are not of the read types "
                "%s (%s), e.g. %s; convert them (e.g. to PNG) to use them", len(skipped),
                self.root, " ".join(self.extensions),
                ", ".join(f"{n} {k}" for k, n in kinds.most_common()), skipped[0])
        if not samples:
            raise DataFileError(f"ImageFolder: no images with extensions {list(self.extensions)} "
                                f"in class sub-folders of {self.root}")
        self.samples = samples[:n]
        self.labels = np.array([s[1] for s in self.samples], dtype=np.int64)


class ImageNetDataset(ImageDataset):
    """PaddleClas's ImageNetDataset: ``relative/path.jpg label`` lines (the label is the last
    field) in ``cls_label_path``, under ``image_root``; ``relabel`` maps the sorted labels to
    0..K-1. A pipeline starting with ``DecodeImage`` gets the file's bytes (PaddleClas's
    contract), any other the decoded image."""

    def __init__(self, image_root: str, cls_label_path: str, delimiter: Optional[str] = None,
                 relabel: bool = False, transforms: Optional[Callable] = None,
                 num_samples: Optional[int] = None):
        super().__init__()
        n = num_samples_arg(num_samples, "ImageNetDataset")
        self.transform, sep = transforms, " " if delimiter is None else str(delimiter)
        root, listing = os.path.expanduser(str(image_root)), os.path.expanduser(str(cls_label_path))
        if os.path.isdir(listing):
            lists = sorted(e.name for e in os.scandir(listing) if e.name.endswith(".txt"))
            raise DataFileError(f"ImageNetDataset: cls_label_path {listing} is a directory; "
                                f"expected a list file of 'relative/path.jpg label' lines in it "
                                f"(e.g. {os.path.join(listing, (lists or ['train_list.txt'])[0])})")
        if not os.path.isfile(listing):
            raise DataFileError(f"ImageNetDataset: cls_label_path {listing} does not exist; give "
                                f"a list file of 'relative/path.jpg label' lines")
        if not os.path.isdir(root):
            raise DataFileError(f"ImageNetDataset: image_root {root} is not a folder; give the "
                                f"folder the paths in {listing} are relative to")
        self.cls_label_path, self.samples, self.lines = listing, [], []
        lines = read_text_lines(listing, "ImageNetDataset: cls_label_path")
        for number, line in ((k, s.strip()) for k, s in enumerate(lines, 1) if s.strip()):
            if n is not None and len(self.samples) >= n:
                break
            parts = line.rsplit(sep, 1)  # a file name may hold the delimiter
            label = parts[1].strip() if len(parts) == 2 else ""
            if not (label.isascii() and label.isdigit() and len(label) < 10):
                raise DataFileError(
                    f"ImageNetDataset: {listing} line {number}: expected 'relative/path.jpg "
                    f"label' (delimiter {sep!r}, label an integer 0..999999999), got "
                    f"{line[:200]!r}; fix the line or set delimiter")
            path = os.path.join(root, parts[0])
            if not os.path.isfile(path):
                raise DataFileError(f"ImageNetDataset: {listing} line {number}: image {path} "
                                    f"does not exist; fix image_root or the list")
            self.samples.append((path, int(label)))
            self.lines.append(number)
        if not self.samples:
            raise DataFileError(f"ImageNetDataset: {listing} lists no images")
        if relabel:
            new = np.unique([s[1] for s in self.samples], return_inverse=True)[1]
            self.samples = [(path, int(k)) for (path, _), k in zip(self.samples, new)]
        self.labels = np.asarray([s[1] for s in self.samples], dtype=np.int64)
        self.num_classes = int(self.labels.max()) + 1
        self.class_names = [str(i) for i in range(self.num_classes)]
        ops = getattr(transforms, "ops", None)
        self._raw = bool(ops) and type(ops[0]).__name__ == "DecodeImage"

    def _image(self, idx: int) -> Any:
        if not self._raw:
            return super()._image(idx)
        with open(self.samples[idx][0], "rb") as f:
            return f.read()

    def describe_label(self, idx: int) -> str:
        return f"{self.cls_label_path} line {self.lines[idx]}"
