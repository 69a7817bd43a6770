"""Datasets: CIFAR-10/100, Fashion-MNIST, an image folder, and synthetic images.

Every dataset is a ``paddle.io.Dataset`` whose items are ``(image, label)``:

- ``image`` is the uint8 HWC numpy array (RGB, or one channel) passed through the
  ``transforms`` callable; after ``ToTensor``/``Normalize`` it is a float32 CHW array.
- ``label`` is a 0-d int64 numpy array (shape ``[]``), as ``paddle.vision.datasets``
  returns. Paddle's default collate stacks a batch of them into an int64 tensor of shape
  ``[B]``, which ``F.cross_entropy(logits, label)`` takes directly (reshape to ``[B, 1]``
  for ``paddle.metric.accuracy``).

``num_samples`` keeps only the first N samples (for quick runs); N larger than the
dataset keeps all of it.
"""
from __future__ import annotations

import gzip
import inspect
import os
import pickle
import tarfile
import urllib.request
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.dataset.common  # noqa: F401  (DATA_HOME: Paddle's dataset cache)
from PIL import Image

from ..utils.hints import did_you_mean
from ..utils.io import DigestError, DownloadError, UnsafePickleError, safe_load
from ..utils.io import download as fetch
from ..utils.schema import POSITIVE_INT, Typed
from .images import (MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS_ENV, DataFileError,  # noqa: F401
                     max_image_pixels, read_image_file, walk_files)
from .transforms import build_transforms

__all__ = ["DATASETS", "DataFileError", "build_dataset", "dataset_params", "Cifar10",
           "Cifar100", "FashionMNIST", "ImageFolder", "ImageNetDataset", "Synthetic", "download",
           "check_channels", "validate_dataset", "check_same_classes", "read_image_file", "max_image_pixels"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach "
    "couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster "
    "house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree "
    "motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear "
    "pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel "
    "streetcar sunflower sweet_pepper table tank telephone television tiger tractor train "
    "trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]

# Paddle's own mirror and checksums (paddle.vision.datasets.cifar), so a file already
# in Paddle's cache is reused.
CIFAR_URL_PREFIX = "https://dataset.bj.bcebos.com/cifar/"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
DOWNLOAD_TIMEOUT = 60.0  # seconds per network operation
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian: dataset-fashion-mnist
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- helpers
def _check_num_samples(num_samples: Optional[int], owner: str) -> Optional[int]:
    return Typed("int", min=1, null=True)(f"{owner}: num_samples (null: all samples)", num_samples)


def _check_mode(mode: str, owner: str, eval_name: str = "test") -> str:
    """Map ``train`` / ``val`` / ``test`` / ``eval`` (any case) to ``train`` or ``eval_name``."""
    m = str(mode).lower()
    if m == "train":
        return "train"
    if m in ("test", "val", "eval"):
        return eval_name
    raise ValueError(f"{owner}: unknown mode {mode!r}; use 'train' or '{eval_name}' "
                     f"('val'/'test' are aliases)")


class _ArrayDataset(paddle.io.Dataset):
    """Images held in memory as uint8 ``[N, H, W, C]`` with int64 labels ``[N]``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: Optional[List[str]] = None
    num_classes: Optional[int] = None

    def __init__(self, transforms: Optional[Callable], num_samples: Optional[int]):
        super().__init__()
        self.transforms = transforms
        self.num_samples = _check_num_samples(num_samples, type(self).__name__)

    def _set_arrays(self, images: np.ndarray, labels: np.ndarray) -> None:
        if self.num_samples is not None:
            images, labels = images[:self.num_samples], labels[:self.num_samples]
        self.images = np.ascontiguousarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int64)

    def _image(self, idx: int) -> Any:
        return self.images[idx]

    def __getitem__(self, idx: int) -> Tuple[Any, np.ndarray]:
        img = self._image(idx)
        if self.transforms is not None:
            img = self.transforms(img)
        return img, np.array(self.labels[idx], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)


def check_channels(got: int, expected: int, source: str) -> None:
    """Raise when images have another channel count than the model takes.

    Args:
        got: channels of the images (after the transforms).
        expected: the model's input channels (``Arch.in_channels``, 3 unless set).
        source: where the images come from, for the message.

    Raises:
        ValueError: naming both counts and the settings that fix it.
    """
    if int(got) == int(expected):
        return
    fix = ("read them as grayscale: `channels: 1` on the dataset (FashionMNIST, ImageFolder) "
           "and a 1-value Normalize" if expected == 1 else
           "read them with 3 channels (`channels: 3` on the dataset) and a 3-value Normalize")
    raise ValueError(f"{source} gives {got}-channel images but the model takes {expected} "
                     f"(Arch.in_channels: {expected}); {fix}, or set Arch.in_channels: {got} "
                     f"for a model trained on {got}-channel images")


# ----------------------------------------------------------------------------- download
def _urlopen(url: str, timeout: float):
    """Open ``url`` (a separate function so tests can simulate being offline)."""
    return urllib.request.urlopen(url, timeout=timeout)


def download(url: str, path: str, md5: Optional[str] = None, timeout: float = DOWNLOAD_TIMEOUT,
             hint: str = "") -> str:
    """Download ``url`` to ``path`` (``utils.io.download``: nothing left behind on failure),
    checking ``md5``.

    Raises:
        ConnectionError: the download failed (the message says where to put the file by
            hand; ``hint`` is appended).
        DataFileError: the downloaded file has the wrong checksum.
    """
    print(f"Downloading {url} to {path}", flush=True)
    try:
        return fetch(url, path, _urlopen, timeout, md5, "md5")
    except DownloadError as err:
        raise ConnectionError(
            f"could not download {url} ({err}); this machine seems to be offline. Download "
            f"the file elsewhere and put it at {path}{hint}") from None
    except DigestError:
        raise DataFileError(f"downloaded {url} but its md5 is not {md5} (truncated or "
                            f"changed file); try again, or put a good copy at {path}{hint}") from None


# ----------------------------------------------------------------------------- CIFAR
class Cifar10(_ArrayDataset):
    """CIFAR-10 from the python-version archive ``cifar-10-python.tar.gz``.

    Args:
        data_file: path of the archive. ``None`` uses Paddle's dataset cache
            (``paddle.dataset.common.DATA_HOME/cifar/``, the file ``paddle.vision.datasets``
            uses), downloading it from Paddle's mirror if absent and ``download`` is true.
        mode: ``train`` (50,000 images) or ``test`` (10,000; ``val`` is an alias).
        transforms: callable applied to each uint8 HWC RGB image.
        num_samples: keep only the first N samples.
        download: allow downloading into the cache when ``data_file`` is None.
        backend: ``"cv2"`` (default; images are numpy arrays) or ``"pil"`` (PIL images,
            for ``paddle.vision.transforms`` pipelines with the PIL backend).

    Raises:
        DataFileError: the archive is missing, not a tar file, or lacks the CIFAR members.
        ConnectionError: the archive had to be downloaded and the download failed.
    """

    archive = "cifar-10-python.tar.gz"
    md5 = CIFAR10_MD5
    members = {"train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
               "test": ["cifar-10-batches-py/test_batch"]}
    label_key = b"labels"
    class_names = CIFAR10_CLASSES
    num_classes = 10

    def __init__(self, data_file: Optional[str] = None, mode: str = "train",
                 transforms: Optional[Callable] = None, num_samples: Optional[int] = None,
                 download: bool = True, backend: Optional[str] = None):
        super().__init__(transforms, num_samples)
        name = type(self).__name__
        self.mode = _check_mode(mode, name)
        if backend not in (None, "cv2", "pil"):
            raise ValueError(f"{name}: unknown backend {backend!r}; use 'cv2' or 'pil'")
        self.backend = backend or "cv2"
        self.data_file = self._locate(data_file, download)
        self._set_arrays(*self._read(self.data_file))

    def _locate(self, data_file: Optional[str], allow_download: bool) -> str:
        name = type(self).__name__
        if data_file is not None:
            data_file = os.path.expanduser(str(data_file))
            if os.path.isdir(data_file):  # api helper (issue 19): say it is a folder
                inside = os.path.join(data_file, self.archive)
                hint = (f"use {inside}" if os.path.isfile(inside) else
                        f"give the archive file {self.archive} itself, not its folder")
                raise DataFileError(f"{name}: data_file {data_file} is a folder; {hint}")
            if not os.path.isfile(data_file):
                raise DataFileError(
                    f"{name}: data_file {data_file} does not exist; give the path of the "
                    f"python-version archive {self.archive} (from "
                    f"{CIFAR_URL_PREFIX}{self.archive}), or data_file: null to use Paddle's "
                    f"cache")
            return data_file
        cached = os.path.join(paddle.dataset.common.DATA_HOME, "cifar", self.archive)
        if os.path.isfile(cached):
            return cached
        hint = (f", or give its path once with -o DataLoader.Train.dataset.data_file="
                f"/path/to/{self.archive} (DataLoader.Eval uses the same archive when its "
                f"data_file is null). No network? Train on Fashion-MNIST instead, which the "
                f"Debian package provides offline: apt-get install dataset-fashion-mnist && "
                f"python tools/train.py -c configs/orthonet18_fashionmnist.yaml")
        if not allow_download:
            raise DataFileError(f"{name}: {cached} does not exist and download is false; put "
                                f"{self.archive} there{hint}")
        return download(CIFAR_URL_PREFIX + self.archive, cached, self.md5, hint=hint)

    def _read(self, path: str) -> Tuple[np.ndarray, np.ndarray]:
        name = type(self).__name__
        wanted = self.members[self.mode]
        fix = f"provide the python-version archive {self.archive} (data_file key)"
        batches: Dict[str, dict] = {}
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    if member.name in wanted:
                        if not member.isfile():  # a link could point anywhere
                            raise DataFileError(f"{name}: member {member.name} of {path} is a "
                                                f"link or special file, not data; {fix}")
                        batches[member.name] = safe_load(tar.extractfile(member),
                                                         f"{path}:{member.name}", "bytes")
        except UnsafePickleError as err:
            raise DataFileError(f"{name}: {err}") from None
        except DataFileError:
            raise
        except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError,
                ValueError) as err:
            raise DataFileError(f"{name}: cannot read {path} as a CIFAR tar archive "
                                f"({type(err).__name__}: {err}); {fix}") from None
        missing = [m for m in wanted if m not in batches]
        if missing:
            raise DataFileError(f"{name}: {path} has no member(s) {missing}; is it the right "
                                f"dataset? {fix}")
        images, labels = [], []
        for member in wanted:  # data_batch_1..5 in order, whatever the tar order
            batch = batches[member]
            if b"data" not in batch or self.label_key not in batch:
                raise DataFileError(f"{name}: member {member} of {path} lacks b'data' or "
                                    f"{self.label_key!r}; {fix}")
            try:
                data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                label = np.asarray(batch[self.label_key], dtype=np.int64).reshape(-1)
            except (ValueError, TypeError) as err:
                raise DataFileError(f"{name}: member {member} of {path} is not [N, 3072] uint8 "
                                    f"images with N labels ({err}); {fix}") from None
            if len(data) != len(label):  # mispaired images and labels would train silently
                raise DataFileError(f"{name}: member {member} of {path} has {len(data)} images "
                                    f"but {len(label)} labels; {fix}")
            images.append(data)
            labels.append(label)
        return np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels)

    def _image(self, idx: int) -> Any:
        img = self.images[idx]
        return Image.fromarray(img) if self.backend == "pil" else img


def validate_dataset(dataset: Any, class_num: int, where: str = "DataLoader.Train") -> None:
    """Check a dataset's labels against ``Arch.class_num`` before the first step (else
    Paddle fails mid-epoch with its index message, after the epoch's work).

    Raises:
        ValueError: a label outside ``[0, class_num)``, naming the setting to change.
    """
    labels = getattr(dataset, "labels", None)
    if labels is None or not len(labels):
        return
    labels = np.asarray(labels)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= int(class_num):
        first = ""
        if hasattr(dataset, "describe_label"):  # where the first bad label is written
            bad = int(np.flatnonzero((labels < 0) | (labels >= int(class_num)))[0])
            first = f" (first: label {int(labels[bad])} at {dataset.describe_label(bad)})"
        raise ValueError(f"{where}: the dataset has labels {lo}..{hi}{first} but Arch.class_num "
                         f"is {class_num} (labels must be in 0..{int(class_num) - 1}); set "
                         f"-o Arch.class_num={max(hi + 1, 1)} or fix the labels")


def check_same_classes(train: Any, evaluation: Any) -> None:
    """Folder datasets label by sorted class-folder index: a val split missing (or adding)
    a class would be scored against shifted labels, silently. Refuse that.

    Raises:
        ValueError: naming the classes only one split has.
    """
    train, evaluation = (getattr(d, "dataset", d) for d in (train, evaluation))
    if not (isinstance(train, ImageFolder) and isinstance(evaluation, ImageFolder)):
        return
    a, b = train.class_names, evaluation.class_names
    if a == b:
        return
    only = lambda x, y: ", ".join([c for c in x if c not in y][:5]) or "none"  # noqa: E731
    raise ValueError(f"DataLoader.Eval's class folders ({evaluation.root}) are not "
                     f"DataLoader.Train's ({train.root}): only in train: {only(a, b)}; only in "
                     f"eval: {only(b, a)}. Labels are the index of the sorted folder names, so "
                     f"they would not match; give both splits the same class sub-folders (an "
                     f"empty folder keeps a class's place)")


class Cifar100(Cifar10):
    """CIFAR-100 (fine labels) from ``cifar-100-python.tar.gz``; arguments as ``Cifar10``."""

    archive = "cifar-100-python.tar.gz"
    md5 = CIFAR100_MD5
    members = {"train": ["cifar-100-python/train"], "test": ["cifar-100-python/test"]}
    label_key = b"fine_labels"
    class_names = CIFAR100_CLASSES
    num_classes = 100


# ----------------------------------------------------------------------------- Fashion-MNIST
IDX_MAX_BYTES = 1 << 32  # far above Fashion-MNIST's 47 MB; bounds what a header can claim


def _read_idx(path: str, magic: int, owner: str) -> np.ndarray:
    """Read an IDX file (gzipped or not) with the given magic number as a uint8 array.

    Read as a stream and never past what the header says (+1 byte, to notice extra data):
    a small .gz that expands to gigabytes is refused without being expanded."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    kind = "images (idx3)" if magic == 2051 else "labels (idx1)"
    try:
        with open(path, "rb") as raw_file:
            gz = raw_file.read(2) == b"\x1f\x8b"
            raw_file.seek(0)
            f = gzip.GzipFile(fileobj=raw_file) if gz else raw_file
            head = f.read(header)
            found = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
            if found != magic:
                raise DataFileError(f"{owner}: {path} has magic number {found}, expected {magic} "
                                    f"for {kind}; check that image_path and label_path point to "
                                    f"the right files")
            dims = [int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            expected = int(np.prod(dims, dtype=object)) if len(head) == header else -1
            if expected > IDX_MAX_BYTES:
                raise DataFileError(f"{owner}: {path}'s header says {dims} ({expected:,} bytes), "
                                    f"more than the {IDX_MAX_BYTES:,} read; it is not a "
                                    f"Fashion-MNIST file")
            body = bytearray()
            while len(body) <= expected:
                chunk = f.read(min(1 << 24, expected + 1 - len(body)))
                if not chunk:
                    break
                body += chunk
    except DataFileError:
        raise
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{owner}: cannot read IDX file {path} ({err}); give a "
                            f"Fashion-MNIST IDX file (.gz or not)") from None
    if len(body) > expected:
        raise DataFileError(f"{owner}: {path} holds more than the {expected} data bytes its "
                            f"header says ({dims}); the file is corrupt")
    if len(body) != expected:
        raise DataFileError(f"{owner}: {path} holds {len(body)} data bytes but its header says "
                            f"{dims} ({expected}); the file is truncated or corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


class FashionMNIST(_ArrayDataset):
    """Fashion-MNIST from the standard IDX files (gzipped or not).

    Images are 28x28 grayscale. With ``channels=3`` (default) the gray image is
    replicated to three identical channels, so the 3-channel models, the CIFAR
    transforms and 3-value ``Normalize`` work unchanged. ``channels=1`` keeps one
    channel: use it with ``Arch.in_channels: 1`` and a 1-value ``Normalize``.

    Args:
        image_path: ``*-images-idx3-ubyte[.gz]``. ``None`` uses
            ``/usr/share/datasets/fashion-mnist/{train|t10k}-images-idx3-ubyte.gz``
            (Debian package ``dataset-fashion-mnist``) according to ``mode``.
        label_path: ``*-labels-idx1-ubyte[.gz]``; ``None`` as for ``image_path``.
        mode: ``train`` (60,000) or ``test`` (10,000; ``val`` is an alias).
        transforms: callable applied to each uint8 HWC image.
        num_samples: keep only the first N samples.
        channels: 3 (replicated gray) or 1.

    Raises:
        DataFileError: a file is missing, has the wrong magic number or size, or the
            image and label counts differ.
    """

    class_names = FASHION_MNIST_CLASSES
    num_classes = 10

    def __init__(self, image_path: Optional[str] = None, label_path: Optional[str] = None,
                 mode: str = "train", transforms: Optional[Callable] = None,
                 num_samples: Optional[int] = None, channels: int = 3):
        super().__init__(transforms, num_samples)
        self.mode = _check_mode(mode, "FashionMNIST")
        if channels not in (1, 3):
            raise ValueError(f"FashionMNIST: channels must be 1 or 3, got {channels!r}")
        self.channels = channels
        prefix = "train" if self.mode == "train" else "t10k"
        self.image_path = self._path(image_path, f"{prefix}-images-idx3-ubyte", "image_path")
        self.label_path = self._path(label_path, f"{prefix}-labels-idx1-ubyte", "label_path")
        images = _read_idx(self.image_path, 2051, "FashionMNIST")
        labels = _read_idx(self.label_path, 2049, "FashionMNIST")
        if len(images) != len(labels):
            raise DataFileError(f"FashionMNIST: {self.image_path} has {len(images)} images but "
                                f"{self.label_path} has {len(labels)} labels; give matching "
                                f"files (both train or both t10k)")
        if labels.size and labels.max() >= 10:
            raise DataFileError(f"FashionMNIST: {self.label_path} has label {labels.max()}, "
                                f"expected 0..9; is it a Fashion-MNIST label file?")
        self._set_arrays(images[:, :, :, None], labels)

    @staticmethod
    def _path(path: Optional[str], stem: str, key: str) -> str:
        if path is not None:
            path = os.path.expanduser(str(path))
            if not os.path.isfile(path):
                raise DataFileError(f"FashionMNIST: {key} {path} does not exist; give the path "
                                    f"of {stem}.gz (or unzipped)")
            return path
        for candidate in (os.path.join(FASHION_MNIST_DIR, stem + ".gz"),
                          os.path.join(FASHION_MNIST_DIR, stem)):
            if os.path.isfile(candidate):
                return candidate
        raise DataFileError(f"FashionMNIST: {FASHION_MNIST_DIR}/{stem}.gz not found; install "
                            f"it with `apt-get install dataset-fashion-mnist`, or set the "
                            f"dataset's {key} to your copy of {stem}.gz")

    def _image(self, idx: int) -> np.ndarray:
        img = self.images[idx]
        return np.repeat(img, 3, axis=2) if self.channels == 3 else img


# ----------------------------------------------------------------------------- image folder
class ImageFolder(paddle.io.Dataset):
    """Images in class folders: ``root/<mode>/<class>/*.jpg`` (ImageNet style, modes
    ``train``/``val``) or, if ``root`` has no ``train``/``val`` folders, ``root/<class>/*``.

    Classes are the sorted sub-folder names (label = index); files are found recursively
    and filtered by extension (case-insensitive); they are decoded lazily as RGB.

    Args:
        root: dataset folder.
        mode: ``train`` or ``val`` (``test`` is an alias); ignored without split folders.
        transforms: callable applied to each uint8 HWC RGB image.
        num_samples: keep only the first N samples (in class, then file-name order).
        extensions: file-name endings to include.
        channels: 3 (images decoded as RGB) or 1 (as grayscale, ``Arch.in_channels: 1``).

    Raises:
        DataFileError: ``root`` or the split folder is missing or holds no images; an image
            cannot be decoded (raised when it is loaded, naming the file).
    """

    def __init__(self, root: str, mode: str = "train", transforms: Optional[Callable] = None,
                 num_samples: Optional[int] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, channels: int = 3):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"ImageFolder: channels must be 1 or 3, got {channels!r}")
        self.channels = channels
        self.transforms = transforms
        self.num_samples = _check_num_samples(num_samples, "ImageFolder")
        self.mode = _check_mode(mode, "ImageFolder", eval_name="val")
        root = os.path.expanduser(str(root))
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
        samples: List[Tuple[str, int]] = []
        for label, cls in enumerate(self.class_names):
            for dirpath, dirnames, filenames in sorted(walk_files(os.path.join(self.root, cls))):
                dirnames.sort()
                samples += [(os.path.join(dirpath, f), label) for f in sorted(filenames)
                            if f.lower().endswith(self.extensions)]
        if not samples:
            raise DataFileError(f"ImageFolder: no images with extensions {list(self.extensions)} "
                                f"in class sub-folders of {self.root}")
        self.samples = samples[:self.num_samples] if self.num_samples else samples
        self.labels = np.array([s[1] for s in self.samples], dtype=np.int64)

    def __getitem__(self, idx: int) -> Tuple[Any, np.ndarray]:
        path, label = self.samples[idx]
        img = read_image_file(path, self.channels, "ImageFolder")
        if self.transforms is not None:
            img = self.transforms(img)
        return img, np.array(label, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)


# ----------------------------------------------------------------------------- synthetic
class Synthetic(_ArrayDataset):
    """Random uint8 images with random labels, deterministic from ``seed`` (train and
    test draw from different streams), for smoke tests without any files.

    Args:
        num_samples: number of images (``None``: 64).
        image_size: side of the square images.
        num_classes: labels are drawn from ``0 .. num_classes - 1``.
        channels: image channels.
        mode: ``train`` or ``test`` (``val`` is an alias).
        transforms: callable applied to each uint8 HWC image.
        seed: random seed.
    """

    def __init__(self, num_samples: Optional[int] = 64, image_size: int = 32,
                 num_classes: int = 10, channels: int = 3, mode: str = "train",
                 transforms: Optional[Callable] = None, seed: int = 0):
        # null in a config (as for the file datasets) means the default size.
        super().__init__(transforms, 64 if num_samples is None else num_samples)
        for key, v in (("image_size", image_size), ("num_classes", num_classes),
                       ("channels", channels)):
            POSITIVE_INT(f"Synthetic: {key}", v)
        self.mode = _check_mode(mode, "Synthetic")
        self.num_classes = int(num_classes)
        self.class_names = [str(i) for i in range(self.num_classes)]
        rng = np.random.default_rng([int(seed), 0 if self.mode == "train" else 1])
        n = self.num_samples
        self._set_arrays(rng.integers(0, 256, (n, image_size, image_size, channels), np.uint8),
                         rng.integers(0, num_classes, n))


# ----------------------------------------------------------------------------- ImageNet list
class ImageNetDataset(paddle.io.Dataset):
    """PaddleClas's ImageNetDataset: images listed in ``cls_label_path``, one
    ``relative/path.jpg label`` line each (``delimiter``, default a space), under ``image_root``.

    As in PaddleClas, a pipeline that starts with ``DecodeImage`` gets the file's raw bytes;
    without one the file is decoded here by ``read_image_file`` (RGB uint8 HWC, as
    ImageFolder). Either way the size is checked from the header before decoding.
    Blank lines are skipped.

    Args:
        image_root: folder the listed paths are relative to.
        cls_label_path: the list file (``train_list.txt`` / ``val_list.txt``).
        delimiter: separator of path and label (None: a space, as PaddleClas).
        relabel: map the sorted distinct labels to 0..K-1 (PaddleClas's option).
        transforms: callable applied to each image (built from ``transform_ops``).
        num_samples: keep only the first N lines.

    Raises:
        DataFileError: the list file or image_root is missing, a line is malformed (its line
            number named), or a listed image does not exist (its path named).
    """

    def __init__(self, image_root: str, cls_label_path: str, delimiter: Optional[str] = None,
                 relabel: bool = False, transforms: Optional[Callable] = None,
                 num_samples: Optional[int] = None):
        super().__init__()
        self.num_samples = _check_num_samples(num_samples, "ImageNetDataset")
        self.transforms = transforms
        self.delimiter = " " if delimiter is None else str(delimiter)
        root, listing = os.path.expanduser(str(image_root)), os.path.expanduser(str(cls_label_path))
        if not os.path.isfile(listing):
            raise DataFileError(f"ImageNetDataset: cls_label_path {listing} does not exist; give "
                                f"a list file of 'relative/path.jpg label' lines")
        if not os.path.isdir(root):
            raise DataFileError(f"ImageNetDataset: image_root {root} is not a folder; give the "
                                f"folder the paths in {listing} are relative to")
        self.cls_label_path = listing
        self.lines: List[int] = []  # each sample's line in the list file, for messages
        self.images, labels = self._read_list(root, listing)
        if relabel:
            mapping = {old: new for new, old in enumerate(sorted(set(labels)))}
            labels = [mapping[v] for v in labels]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.class_names = [str(i) for i in range(self.num_classes)]
        self._raw = bool(getattr(transforms, "ops", None)) and \
            type(transforms.ops[0]).__name__ == "DecodeImage"

    def _read_list(self, root: str, listing: str) -> Tuple[List[str], List[int]]:
        images: List[str] = []
        labels: List[int] = []
        with open(listing, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if self.num_samples is not None and len(images) >= self.num_samples:
                    break
                # the label is the last field: a file name may hold the delimiter
                parts = line.strip().rsplit(self.delimiter, 1)
                label = parts[1].strip() if len(parts) == 2 else ""
                if not (label.isascii() and label.isdigit() and len(label) < 10):
                    raise DataFileError(
                        f"ImageNetDataset: {listing} line {number}: expected 'relative/path.jpg "
                        f"label' (delimiter {self.delimiter!r}, label an integer 0..999999999), "
                        f"got {line.strip()[:200]!r}; fix the line or set delimiter")
                path = os.path.join(root, parts[0])
                if not os.path.isfile(path):
                    raise DataFileError(f"ImageNetDataset: {listing} line {number}: image {path} "
                                        f"does not exist; fix image_root or the list")
                images.append(path)
                labels.append(int(label))
                self.lines.append(number)
        if not images:
            raise DataFileError(f"ImageNetDataset: {listing} lists no images")
        return images, labels

    def __getitem__(self, idx: int) -> Tuple[Any, np.ndarray]:
        path = self.images[idx]
        try:
            if self._raw:  # PaddleClas's contract: DecodeImage gets the bytes
                with open(path, "rb") as f:
                    img = f.read()
            else:
                img = read_image_file(path, 3, "ImageNetDataset")
            if self.transforms is not None:
                img = self.transforms(img)
        except OSError as err:
            raise DataFileError(f"ImageNetDataset: cannot read image {path} ({err})") from None
        except Exception as err:  # noqa: BLE001  (named with its file)
            text = str(err)
            if isinstance(err, DataFileError) and path in text:
                raise
            raise DataFileError(f"ImageNetDataset: image {path}: {type(err).__name__}: {text}; "
                                f"delete or replace the file, or fix transform_ops") from None
        return img, np.array(self.labels[idx], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def describe(self, idx: int) -> str:
        return self.images[idx]

    def describe_label(self, idx: int) -> str:
        return f"{self.cls_label_path} line {self.lines[idx]}"


# ----------------------------------------------------------------------------- registry
DATASETS: Dict[str, type] = {"Cifar10": Cifar10, "Cifar100": Cifar100,
                             "FashionMNIST": FashionMNIST, "ImageFolder": ImageFolder,
                             "Synthetic": Synthetic, "ImageNetDataset": ImageNetDataset}


def dataset_params(name: str) -> List[str]:
    """Valid config keywords of dataset ``name`` (constructor arguments but ``transforms``).

    Raises:
        ValueError: ``name`` is not a registered dataset.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; {did_you_mean(name, DATASETS)}valid datasets: "
                         f"{sorted(DATASETS)}")
    params = inspect.signature(DATASETS[name].__init__).parameters
    return [p for p in params if p not in ("self", "transforms")]


def build_dataset(cfg: Dict[str, Any], transforms: Optional[Callable] = None
                  ) -> paddle.io.Dataset:
    """Build a dataset from a config mapping such as
    ``{"name": "Cifar10", "data_file": "...", "mode": "train", "num_samples": 100}``.

    A ``transform_ops`` key holding a config list is built with ``build_transforms`` (then
    the ``transforms`` argument must be None).

    Args:
        cfg: ``name`` plus keyword arguments of that dataset.
        transforms: callable applied to each image.

    Raises:
        ValueError: unknown dataset name or keyword (the message names the nearest valid one).
    """
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"dataset config must be a mapping with a 'name' key (one of "
                         f"{sorted(DATASETS)}), got {cfg!r}")
    kwargs = dict(cfg)
    name = kwargs.pop("name")
    valid = dataset_params(name)
    if "transforms" in kwargs:
        raise ValueError(f"dataset {name}: 'transforms' is now 'transform_ops' (PaddleClas's "
                         f"key); rename it")
    if "transform_ops" in kwargs:
        ops = kwargs.pop("transform_ops")
        if ops and transforms is not None:
            raise ValueError("build_dataset got transforms both in the config and as an "
                             "argument; give only one")
        if ops:
            transforms = build_transforms(ops, backend=kwargs.get("backend"))
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"dataset {name}: unknown keyword {key!r}; {did_you_mean(key, valid)}"
                             f"valid keywords of {name}: {valid}")
    params = inspect.signature(DATASETS[name].__init__).parameters
    missing = [k for k in valid if params[k].default is inspect.Parameter.empty
               and k not in kwargs]
    if missing:
        raise ValueError(f"dataset {name}: missing required keyword(s) {missing}; valid "
                         f"keywords of {name}: {valid}")
    return DATASETS[name](transforms=transforms, **kwargs)
