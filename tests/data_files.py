"""Generators of small dataset files in the real on-disk formats, for tests.

The images are deterministic and their label is recoverable from the image (each
class has its own base colour / brightness plus noise), so a tiny model trained on
them learns something: other tests use them for short training runs.
"""
from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
from typing import Dict, Iterator, List, Tuple, Union

import numpy as np
from PIL import Image

PathT = Union[str, os.PathLike]


def class_colours(num_classes: int) -> np.ndarray:
    """Fixed, well-separated RGB base colour per class, uint8 ``[num_classes, 3]``."""
    rng = np.random.default_rng(12345)
    colours = rng.integers(30, 226, (num_classes, 3))
    if num_classes <= 10:  # spread the first channel so even grayscale separates classes
        colours[:, 0] = np.linspace(30, 225, num_classes).round()
    return colours.astype(np.uint8)


def cifar_arrays(num_classes: int, n: int, seed: int, split: str
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """The images (uint8 ``[n, 32, 32, 3]``) and labels (int64 ``[n]``) that
    ``make_cifar_archive`` writes for ``split`` (``"train"`` or ``"test"``)."""
    rng = np.random.default_rng([seed, num_classes, 0 if split == "train" else 1])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    noise = rng.normal(0, 12, (n, 32, 32, 3))
    images = class_colours(num_classes)[labels][:, None, None, :] + noise
    return np.clip(images, 0, 255).round().astype(np.uint8), labels


def _add_pickle(tar: tarfile.TarFile, name: str, obj: dict) -> None:
    data = pickle.dumps(obj, protocol=2)  # the real archives are python-2 pickles
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_cifar_archive(path: PathT, num_classes: int = 10, n_train: int = 50, n_test: int = 20,
                       seed: int = 0) -> str:
    """Write ``cifar-10-python.tar.gz`` (or ``cifar-100-python.tar.gz`` for 100 classes).

    Args:
        path: a folder (the standard file name is used) or the archive's path.
        num_classes: 10 or 100.
        n_train: training images, split over ``data_batch_1..5`` (CIFAR-10).
        n_test: test images.
        seed: seed of the images.

    Returns:
        The archive's path.
    """
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    archive = "cifar-10-python.tar.gz" if num_classes == 10 else "cifar-100-python.tar.gz"
    path = os.fspath(path)
    if os.path.isdir(path) or not path.endswith((".tar.gz", ".tgz", ".tar")):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, archive)
    train_x, train_y = cifar_arrays(num_classes, n_train, seed, "train")
    test_x, test_y = cifar_arrays(num_classes, n_test, seed, "test")

    def rows(x: np.ndarray) -> np.ndarray:  # HWC -> the archive's [N, 3072] R/G/B planes
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    with tarfile.open(path, "w:gz") as tar:
        if num_classes == 10:
            folder, key = "cifar-10-batches-py", b"labels"
            # Real archives are not in name order; reversing checks the reader sorts.
            parts = list(enumerate(zip(np.array_split(train_x, 5), np.array_split(train_y, 5)),
                                   start=1))[::-1]
            for i, (x, y) in parts:
                _add_pickle(tar, f"{folder}/data_batch_{i}",
                            {b"batch_label": b"training batch", b"data": rows(x),
                             key: y.tolist()})
            _add_pickle(tar, f"{folder}/test_batch", {b"data": rows(test_x), key: test_y.tolist()})
            _add_pickle(tar, f"{folder}/batches.meta",
                        {b"label_names": [f"c{i}".encode() for i in range(10)]})
        else:
            folder, key = "cifar-100-python", b"fine_labels"
            for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
                _add_pickle(tar, f"{folder}/{split}", {b"data": rows(x), key: y.tolist(),
                                                       b"coarse_labels": (y // 5).tolist()})
    return path


def _write_idx(path: str, array: np.ndarray, magic: int, gz: bool) -> str:
    header = struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path += ".gz"
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def idx_arrays(n: int, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """The images (uint8 ``[n, 28, 28]``) and labels that ``make_idx_files`` writes."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = class_colours(10)[labels, 0][:, None, None] + rng.normal(0, 8, (n, 28, 28))
    return np.clip(images, 0, 255).round().astype(np.uint8), labels


def make_idx_files(dir: PathT, n: int = 50, gz: bool = True) -> Dict[str, str]:
    """Write Fashion-MNIST-style IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
    with ``n`` samples each (brightness encodes the label).

    Returns:
        Paths by key ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
    """
    dir = os.fspath(dir)
    os.makedirs(dir, exist_ok=True)
    paths = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = idx_arrays(n, split)
        paths[f"{split}_images"] = _write_idx(os.path.join(dir, f"{prefix}-images-idx3-ubyte"),
                                              images, 2051, gz)
        paths[f"{split}_labels"] = _write_idx(os.path.join(dir, f"{prefix}-labels-idx1-ubyte"),
                                              labels, 2049, gz)
    return paths


def make_image_folder(root: PathT, classes: int = 3, per_class: int = 4, splits: bool = False,
                      size: Tuple[int, int] = (40, 36)) -> str:
    """Write ``root/<class_k>/img_i.{png,jpg}`` (or ``root/{train,val}/<class_k>/...`` with
    ``splits``), alternating PNG and JPEG, each class a different colour.

    Returns:
        ``root``.
    """
    root = os.fspath(root)
    colours = class_colours(classes)
    rng = np.random.default_rng(0)
    for split in (("train", "val") if splits else ("",)):
        for k in range(classes):
            folder = os.path.join(root, split, f"class_{k}")
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                pixels = colours[k] + rng.normal(0, 5, (size[0], size[1], 3))
                img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                img.save(os.path.join(folder, f"img_{i}.{'png' if i % 2 == 0 else 'jpg'}"))
    return root


@contextlib.contextmanager
def serve(files: Dict[str, Union[bytes, Tuple[int, bytes]]]) -> Iterator[Tuple[str, List[str]]]:
    """Serve ``files`` ({"/name": body, or (announced Content-Length, body)}) over HTTP on
    127.0.0.1; anything else is a 404. Yields the base URL and the list of paths requested."""
    requested: List[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            requested.append(self.path)
            entry = files.get(self.path)
            if entry is None:
                self.send_error(404)
                return
            length, body = entry if isinstance(entry, tuple) else (len(entry), entry)
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requested
    finally:
        server.shutdown()
        server.server_close()
