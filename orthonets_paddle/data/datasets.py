"""``paddle.vision.datasets``' CIFAR-10/100 and Fashion-MNIST read safely, synthetic images,
and the registry. Items are (``transforms(uint8 HWC image)``, 0-d int64 label)."""
from __future__ import annotations

import gzip
import inspect
import os
import pickle
import struct
import tarfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import paddle
import paddle.dataset.common  # noqa: F401  (DATA_HOME: Paddle's dataset cache)
import paddle.vision.datasets as pvd
from paddle.vision.datasets.cifar import CIFAR10_MD5, CIFAR10_URL, CIFAR100_MD5, CIFAR100_URL
from PIL import Image

from ..utils.download import DigestError, download
from ..utils.hints import did_you_mean
from ..utils.schema import POSITIVE_INT
from .images import (CHANNELS, IMAGE_EXTENSIONS, DataFileError, ImageDataset,  # noqa: F401
                     ImageFolder, ImageNetDataset, mode_arg, num_samples_arg, read_image_file,
                     walk_files)
from .transforms import build_transforms

CIFAR10_CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()
CIFAR100_CLASSES = (  # the archive's fine_label_names, in label order
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian: dataset-fashion-mnist
IDX_MAX_BYTES = 1 << 32  # far above Fashion-MNIST's 47 MB; bounds what a header can claim


class _BatchUnpickler(pickle.Unpickler):
    """A CIFAR batch holds arrays in plain containers: any other global (code a crafted file
    would run; Paddle's Cifar10 runs it, with ``pickle.load``) is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataFileError(f"refusing {self.what}: it refers to {module}.{name}, and a CIFAR "
                            f"batch holds only arrays (loading it could run code); do not use it")


class Cifar10(ImageDataset, pvd.Cifar10):
    """``paddle.vision.datasets.Cifar10`` from ``cifar-10-python.tar.gz`` (``data_file``, or
    Paddle's cache ``DATA_HOME/cifar/``, downloaded there if ``download``), read safely.
    ``backend``: ``cv2`` (numpy images, the seed's) or ``pil``."""

    archive, url, md5, label_key = "cifar-10-python.tar.gz", CIFAR10_URL, CIFAR10_MD5, b"labels"
    members = {"train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
               "test": ["cifar-10-batches-py/test_batch"]}
    class_names, num_classes = CIFAR10_CLASSES, 10

    def __init__(self, data_file: Optional[str] = None, mode: str = "train",
                 transforms: Optional[Callable] = None, num_samples: Optional[int] = None,
                 download: bool = True, backend: Optional[str] = None):
        self.num_samples = num_samples_arg(num_samples, type(self).__name__)
        super().__init__(self._locate(data_file, download), mode_arg(mode, type(self).__name__),
                         transforms, False, backend or "cv2")  # Paddle checks the backend

    def _locate(self, data_file: Optional[str], allow_download: bool) -> str:
        name = type(self).__name__
        if data_file is not None:
            data_file = os.path.expanduser(str(data_file))
            inside = os.path.join(data_file, self.archive)
            if os.path.isdir(data_file):
                fix = (f"use {inside}" if os.path.isfile(inside) else
                       f"give the archive file {self.archive} itself")
                raise DataFileError(f"{name}: data_file {data_file} is a folder; {fix}")
            if not os.path.isfile(data_file):
                raise DataFileError(f"{name}: data_file {data_file} does not exist; give the path "
                                    f"of the python-version archive {self.archive} (from "
                                    f"{self.url}), or data_file: null to use Paddle's cache")
            return data_file
        folder = os.path.join(paddle.dataset.common.DATA_HOME, "cifar")
        hint = (f", or give its path once with -o DataLoader.Train.dataset.data_file=/path/to/"
                f"{self.archive} (DataLoader.Eval uses the same archive when its data_file is "
                f"null). No network? Train on Fashion-MNIST instead, which the Debian package "
                f"provides offline: apt-get install dataset-fashion-mnist && python "
                f"tools/train.py -c configs/orthonet18_fashionmnist.yaml")
        if not allow_download and not os.path.isfile(os.path.join(folder, self.archive)):
            raise DataFileError(f"{name}: {folder}/{self.archive} does not exist and download is "
                                f"false; put the archive there{hint}")
        try:
            return download(self.url, folder, md5=self.md5, hint=hint)
        except DigestError as err:
            raise DataFileError(f"{name}: {err}") from None

    def _load_data(self) -> None:  # Paddle's: pickle.load of each tar member
        name, path, wanted = type(self).__name__, self.data_file, self.members[self.mode]
        fix = f"give the python-version archive {self.archive} (data_file)"
        batches: Dict[str, Any] = {}
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in (m for m in tar if m.name in wanted):
                    if not member.isfile():
                        raise DataFileError(f"{name}: member {member.name} of {path} is a link "
                                            f"or special file, not data; {fix}")
                    unpickler = _BatchUnpickler(tar.extractfile(member), encoding="bytes")
                    unpickler.what = f"{path}:{member.name}"
                    batches[member.name] = self._arrays(unpickler.load(), member, fix)
        except DataFileError:
            raise
        except Exception as err:  # noqa: BLE001  (tar, gzip and pickle fail in many ways)
            raise DataFileError(f"{name}: cannot read {path} as a CIFAR tar archive "
                                f"({type(err).__name__}: {err}); {fix}") from None
        missing = [m for m in wanted if m not in batches]
        if missing:
            raise DataFileError(f"{name}: {path} has no member(s) {missing}; is it the right "
                                f"dataset? {fix}")
        images, labels = zip(*(batches[m] for m in wanted))  # data_batch_1..5 in order
        self._keep(np.concatenate(images), np.concatenate(labels), self.num_samples)

    def _arrays(self, batch: Any, member: tarfile.TarInfo, fix: str
                ) -> Tuple[np.ndarray, np.ndarray]:  # images [N, 32, 32, 3], int64 labels
        where = f"{type(self).__name__}: member {member.name} of {self.data_file}"
        data, label = (batch.get(b"data"), batch.get(self.label_key)) if isinstance(
            batch, dict) else (None, None)
        # its bytes are in the member: an array larger than that was never filled from it
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == 3072 and data.nbytes <= member.size
                and isinstance(label, list)):
            raise DataFileError(f"{where} is not a CIFAR batch (a uint8 [N, 3072] b'data' and a "
                                f"{self.label_key!r} list); {fix}")
        if len(data) != len(label):  # mispaired images and labels would train silently
            raise DataFileError(f"{where} has {len(data)} images but {len(label)} labels; {fix}")
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(label, np.int64)

    def _image(self, idx: int) -> Any:
        return Image.fromarray(self.images[idx]) if self.backend == "pil" else self.images[idx]


class Cifar100(Cifar10):
    """CIFAR-100 (fine labels) from ``cifar-100-python.tar.gz``; arguments as ``Cifar10``."""

    archive, url, md5 = "cifar-100-python.tar.gz", CIFAR100_URL, CIFAR100_MD5
    members = {"train": ["cifar-100-python/train"], "test": ["cifar-100-python/test"]}
    label_key, class_names, num_classes = b"fine_labels", CIFAR100_CLASSES, 100


def _read_idx(path: str, magic: int, owner: str) -> np.ndarray:
    """An IDX file (gzipped or not) as uint8, read no further than its header says (+1 byte):
    a small .gz that expands to gigabytes is refused unexpanded."""
    header = 4 + 4 * (magic & 0xFF)
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw) if gz else raw
            head = f.read(header)
            found, *dims = struct.unpack(f">{len(head) // 4}I", head[:len(head) // 4 * 4]) or [None]
            if found != magic:
                raise DataFileError(f"{owner}: {path} has magic number {found}, expected {magic}; "
                                    f"check that image_path and label_path are the right files")
            expected = int(np.prod(dims, dtype=object)) if len(head) == header else -1
            if expected > IDX_MAX_BYTES:
                raise DataFileError(f"{owner}: {path}'s header says {dims} ({expected:,} bytes), "
                                    f"more than the {IDX_MAX_BYTES:,} read; it is not a "
                                    f"Fashion-MNIST file")
            body = f.read(max(expected + 1, 0))
    except (OSError, EOFError, ValueError) as err:  # BadGzipFile is an OSError
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(f"{owner}: cannot read IDX file {path} ({err}); give a "
                            f"Fashion-MNIST IDX file (.gz or not)") from None
    if len(body) != expected:
        state = "more than" if len(body) > expected else f"{len(body)} data bytes but"
        raise DataFileError(f"{owner}: {path} holds {state} the {expected} data bytes its header "
                            f"says ({dims}); the file is truncated or corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


class FashionMNIST(ImageDataset, pvd.FashionMNIST):
    """``paddle.vision.datasets.FashionMNIST`` read with a bound (Paddle's reads a whole .gz),
    gzipped or not; paths default to the Debian package's files in ``FASHION_MNIST_DIR``.
    ``channels``: 3 (the gray replicated) or 1."""

    class_names, num_classes = FASHION_MNIST_CLASSES, 10

    def __init__(self, image_path: Optional[str] = None, label_path: Optional[str] = None,
                 mode: str = "train", transforms: Optional[Callable] = None,
                 num_samples: Optional[int] = None, channels: int = 3):
        self.num_samples = num_samples_arg(num_samples, "FashionMNIST")
        self.channels = CHANNELS("FashionMNIST: channels", channels)
        mode = mode_arg(mode, "FashionMNIST")
        prefix = "train" if mode == "train" else "t10k"
        super().__init__(self._path(image_path, f"{prefix}-images-idx3-ubyte", "image_path"),
                         self._path(label_path, f"{prefix}-labels-idx1-ubyte", "label_path"),
                         mode, transforms, False, "cv2")

    @staticmethod
    def _path(path: Optional[str], stem: str, key: str) -> str:
        default = os.path.join(FASHION_MNIST_DIR, stem)
        for candidate in ([os.path.expanduser(str(path))] if path else [default + ".gz", default]):
            if os.path.isfile(candidate):
                return candidate
        if path and os.path.isdir(candidate):
            inside = [os.path.join(candidate, stem + e) for e in (".gz", "")]
            found = next((f for f in inside if os.path.isfile(f)), inside[0])
            raise DataFileError(f"FashionMNIST: {key} {path} is a directory; expected the file "
                                f"{stem}.gz (or unzipped) in it (e.g. {found})")
        if path:
            raise DataFileError(f"FashionMNIST: {key} {path} does not exist; give the path of "
                                f"{stem}.gz (or unzipped)")
        raise DataFileError(f"FashionMNIST: {default}.gz not found; install it with `apt-get "
                            f"install dataset-fashion-mnist`, or set the dataset's {key} to your "
                            f"copy of {stem}.gz")

    def _parse_dataset(self, buffer_size: int = 100) -> None:  # Paddle's reads all, unbounded
        images = _read_idx(self.image_path, 2051, "FashionMNIST")
        labels = _read_idx(self.label_path, 2049, "FashionMNIST")
        if len(images) != len(labels):
            raise DataFileError(f"FashionMNIST: {self.image_path} has {len(images)} images but "
                                f"{self.label_path} has {len(labels)} labels; give matching files "
                                f"(both train or both t10k)")
        if labels.size and labels.max() >= 10:
            raise DataFileError(f"FashionMNIST: {self.label_path} has label {labels.max()}, "
                                f"expected 0..9; is it a Fashion-MNIST label file?")
        self._keep(images[:, :, :, None], labels, self.num_samples)

    def _image(self, idx: int) -> np.ndarray:
        return np.repeat(self.images[idx], 3, axis=2) if self.channels == 3 else self.images[idx]


class Synthetic(ImageDataset):
    """Random images and labels from ``seed`` (train and test other streams), for smoke tests."""

    def __init__(self, num_samples: Optional[int] = 64, image_size: int = 32,
                 num_classes: int = 10, channels: int = 3, mode: str = "train",
                 transforms: Optional[Callable] = None, seed: int = 0):
        super().__init__()
        n = num_samples_arg(64 if num_samples is None else num_samples, "Synthetic")
        for key, value in (("image_size", image_size), ("num_classes", num_classes),
                           ("channels", channels)):
            POSITIVE_INT(f"Synthetic: {key}", value)
        self.mode, self.transform = mode_arg(mode, "Synthetic"), transforms
        self.num_classes, self.class_names = int(num_classes), [str(i) for i in range(num_classes)]
        rng = np.random.default_rng([int(seed), 0 if self.mode == "train" else 1])
        self._keep(rng.integers(0, 256, (n, image_size, image_size, channels), np.uint8),
                   rng.integers(0, num_classes, n), n)


def check_channels(got: int, expected: int, source: str) -> None:
    """Raise ``ValueError`` when images (``source``) have ``got`` channels but the model takes
    ``expected`` (``Arch.in_channels``), naming the settings that fix it."""
    if int(got) == int(expected):
        return
    fix = ("read them as grayscale: `channels: 1` on the dataset (FashionMNIST, ImageFolder) "
           "and a 1-value Normalize" if expected == 1 else
           "read them with 3 channels (`channels: 3` on the dataset) and a 3-value Normalize")
    raise ValueError(f"{source} gives {got}-channel images but the model takes {expected} "
                     f"(Arch.in_channels: {expected}); {fix}, or set Arch.in_channels: {got} "
                     f"for a model trained on {got}-channel images")


def validate_dataset(dataset: Any, class_num: int, where: str = "DataLoader.Train") -> None:
    """Raise ``ValueError`` naming the setting to change when a label is outside
    ``[0, class_num)``: before the first step, not mid-epoch in Paddle's index check."""
    labels = np.asarray(getattr(dataset, "labels", []))
    if not labels.size:
        return
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
    """Raise ``ValueError`` when two ImageFolder splits have other class folders: labels are
    the sorted folder index, so eval would be scored against shifted labels, silently."""
    train, evaluation = (getattr(d, "dataset", d) for d in (train, evaluation))
    if not (isinstance(train, ImageFolder) and isinstance(evaluation, ImageFolder)):
        return
    a, b = train.class_names, evaluation.class_names
    if a != b:
        only = lambda x, y: ", ".join([c for c in x if c not in y][:5]) or "none"  # noqa: E731
        raise ValueError(f"DataLoader.Eval's class folders ({evaluation.root}) are not "
                         f"DataLoader.Train's ({train.root}): only in train: {only(a, b)}; only "
                         f"in eval: {only(b, a)}. Labels are the index of the sorted folder "
                         f"names, so they would not match; give both splits the same class "
                         f"sub-folders (an empty folder keeps a class's place)")


DATASETS: Dict[str, type] = {d.__name__: d for d in (Cifar10, Cifar100, FashionMNIST, ImageFolder,
                                                     Synthetic, ImageNetDataset)}


def dataset_params(name: str, required: bool = False) -> List[str]:
    """Config keywords of dataset ``name`` (its constructor's arguments but ``transforms``),
    or only those without a default if ``required``; ``ValueError`` for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; {did_you_mean(name, DATASETS)}valid datasets: "
                         f"{sorted(DATASETS)}")
    params = inspect.signature(DATASETS[name].__init__).parameters.values()
    return [p.name for p in params if p.name not in ("self", "transforms")
            and not (required and p.default is not p.empty)]


def build_dataset(cfg: Dict[str, Any], transforms: Optional[Callable] = None) -> paddle.io.Dataset:
    """A dataset from ``{"name": "Cifar10", <its keywords>, "transform_ops": [...]}``; a
    ``ValueError`` names an unknown name or keyword (and the nearest valid one)."""
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"dataset config must be a mapping with a 'name' key (one of "
                         f"{sorted(DATASETS)}), got {cfg!r}")
    name, kwargs = cfg["name"], {k: v for k, v in cfg.items() if k != "name"}
    valid = dataset_params(name)
    if "transforms" in kwargs:
        raise ValueError(f"dataset {name}: 'transforms' is now 'transform_ops' (PaddleClas's "
                         f"key); rename it")
    ops = kwargs.pop("transform_ops", None)
    if ops and transforms is not None:
        raise ValueError("build_dataset got transforms both in the config and as an argument; "
                         "give only one")
    transforms = build_transforms(ops, backend=kwargs.get("backend")) if ops else transforms
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"dataset {name}: unknown keyword {key!r}; {did_you_mean(key, valid)}"
                             f"valid keywords of {name}: {valid}")
    missing = [k for k in dataset_params(name, required=True) if k not in kwargs]
    if missing:
        raise ValueError(f"dataset {name}: missing required keyword(s) {missing}; valid "
                         f"keywords of {name}: {valid}")
    return DATASETS[name](transforms=transforms, **kwargs)
