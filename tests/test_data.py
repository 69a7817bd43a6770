"""Datasets, transforms and loaders on generated files (and the real Fashion-MNIST)."""
import hashlib
import gzip
import io
import os
import tarfile
import time

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from orthonets_paddle.data import (DATASETS, Cifar10, Cifar100, DataFileError, FashionMNIST,
                                   ImageFolder, Synthetic, build_dataloader,
                                   build_dataset, build_transforms, dataset_params,
                                   loader_params, set_epoch, transform_params)
from orthonets_paddle.data import datasets as datasets_mod

try:
    from data_files import (cifar_arrays, idx_arrays, make_cifar_archive, make_idx_files,
                            make_image_folder, serve)
except ImportError:  # tests/ imported as a package
    from tests.data_files import (cifar_arrays, idx_arrays, make_cifar_archive, make_idx_files,
                                  make_image_folder, serve)

SEED_TRAIN_OPS = [
    {"RandomCrop": {"size": 32, "padding": 4}},
    {"ColorJitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2}},
    {"RandomHorizontalFlip": {"prob": 0.5}},
    {"RandomRotation": {"degrees": 20}},
    {"ToTensor": {}},
    {"Normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}},
]
REAL_FMNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="module")
def cifar10_file(tmp_path_factory):
    return make_cifar_archive(tmp_path_factory.mktemp("c10"), num_classes=10, n_train=50,
                              n_test=20)


@pytest.fixture(scope="module")
def cifar100_file(tmp_path_factory):
    return make_cifar_archive(tmp_path_factory.mktemp("c100"), num_classes=100, n_train=30,
                              n_test=10)


# ----------------------------------------------------------------------------- CIFAR
def test_cifar10_reads_generated_archive(cifar10_file):
    train = Cifar10(cifar10_file, mode="train")
    test = Cifar10(cifar10_file, mode="test")
    assert (len(train), len(test)) == (50, 20)
    img, label = train[3]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert label.dtype == np.int64 and label.shape == ()
    # Pixels and labels round-trip through the archive's CHW row layout and batch order.
    want_x, want_y = cifar_arrays(10, 50, 0, "train")
    np.testing.assert_array_equal(train.images, want_x)
    np.testing.assert_array_equal(train.labels, want_y)
    assert train.num_classes == 10 and train.class_names[0] == "airplane"
    assert train.class_names[-1] == "truck"
    assert len(Cifar10(cifar10_file, mode="val")) == 20  # alias of test


def test_cifar_num_samples_and_modes(cifar10_file):
    full = Cifar10(cifar10_file)
    part = Cifar10(cifar10_file, num_samples=7)
    assert len(part) == 7
    np.testing.assert_array_equal(part.labels, full.labels[:7])
    assert len(Cifar10(cifar10_file, num_samples=1000)) == 50
    for bad in (0, -3):
        with pytest.raises(ValueError, match="num_samples"):
            Cifar10(cifar10_file, num_samples=bad)
    with pytest.raises(ValueError, match="mode"):
        Cifar10(cifar10_file, mode="training")


def test_cifar_pil_backend_gives_pil_images(cifar10_file):
    # backend: pil hands PIL images, so Paddle's transforms run their PIL functions.
    img, _ = Cifar10(cifar10_file, backend="pil")[0]
    assert img.size == (32, 32) and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), Cifar10(cifar10_file)[0][0])


def test_cifar100_fine_labels(cifar100_file):
    ds = Cifar100(cifar100_file, mode="train")
    assert len(ds) == 30 and len(Cifar100(cifar100_file, mode="test")) == 10
    np.testing.assert_array_equal(ds.labels, cifar_arrays(100, 30, 0, "train")[1])
    assert ds.num_classes == 100 and len(ds.class_names) == 100
    assert len(set(ds.class_names)) == 100


def test_cifar_missing_and_corrupt_files(tmp_path, cifar10_file):
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(DataFileError, match="nope.tar.gz.*does not exist"):
        Cifar10(str(missing))
    not_tar = tmp_path / "cifar-10-python.tar.gz"
    not_tar.write_bytes(b"this is not a tar archive" * 10)
    with pytest.raises(DataFileError, match=f"cannot read {not_tar}"):
        Cifar10(str(not_tar))
    cut = tmp_path / "cut.tar.gz"  # a download cut short
    cut.write_bytes(open(cifar10_file, "rb").read()[:5000])
    with pytest.raises(DataFileError, match=f"^Cifar10: cannot read {cut} as a CIFAR tar archive"):
        Cifar10(str(cut), mode="test")
    # A valid tar of the wrong dataset: CIFAR-100 members asked of a CIFAR-10 archive.
    with pytest.raises(DataFileError, match="no member.*cifar-100-python/train"):
        Cifar100(cifar10_file)
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(DataFileError, match="data_batch_1"):
        Cifar10(str(empty))


class _Unfilled:
    """Pickles as numpy's array constructor called with a shape and no data (no BUILD)."""

    def __init__(self, rows):
        self.rows = rows

    def __reduce__(self):
        return (np.ndarray.__reduce__(np.zeros(1, np.uint8))[0],
                (np.ndarray, (self.rows, 3072), np.dtype(np.uint8)))


def test_cifar_batch_whose_array_the_file_does_not_hold_is_refused(tmp_path):
    """A 200 KB member claiming 300 MB of images (never filled from the file): refused before
    the images are copied, not concatenated into 300 MB of memory."""
    import pickle
    rows = 100_000
    data = pickle.dumps({b"data": _Unfilled(rows), b"labels": [0] * rows}, protocol=2)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert len(data) < 300_000
    with pytest.raises(DataFileError, match="test_batch of .* is not a CIFAR batch"):
        Cifar10(str(path), mode="test")


def test_cifar_offline_download_fails_at_once_naming_the_file_and_its_place(tmp_path, monkeypatch):
    monkeypatch.setattr(paddle.dataset.common, "DATA_HOME", str(tmp_path))
    monkeypatch.setattr(Cifar10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # refused
    target = os.path.join(str(tmp_path), "cifar", "cifar-10-python.tar.gz")
    start = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        Cifar10(mode="test")
    assert time.monotonic() - start < 2  # no retries (Paddle's sleep 1 s between its three)
    msg = str(info.value)
    assert "\n" not in msg and "offline" in msg and Cifar10.url in msg and target in msg
    assert "data_file" in msg
    assert os.listdir(tmp_path) == []  # nothing made
    with pytest.raises(DataFileError, match="download is false"):
        Cifar10(mode="test", download=False)


def test_cifar_download_checked_by_md5_and_cached(tmp_path, monkeypatch, cifar10_file):
    """Through paddle.utils.download from a local server: a file with another md5 than
    Paddle's is not kept; with the right md5 it is downloaded once and then read from the
    cache; a wrong file put in the cache by hand is named, not replaced."""
    monkeypatch.setattr(paddle.dataset.common, "DATA_HOME", str(tmp_path))
    payload = open(cifar10_file, "rb").read()
    target = tmp_path / "cifar" / "cifar-10-python.tar.gz"
    with serve({"/c/cifar-10-python.tar.gz": payload}) as (base, requested):
        monkeypatch.setattr(Cifar10, "url", base + "/c/cifar-10-python.tar.gz")
        with pytest.raises(DataFileError, match="does not have the expected md5 " + Cifar10.md5):
            Cifar10(mode="test")  # the md5 is the real archive's
        assert not target.exists() and 1 <= len(requested) <= 3  # Paddle tries up to 3 times
        monkeypatch.setattr(Cifar10, "md5", hashlib.md5(payload).hexdigest())
        requested.clear()
        assert len(Cifar10(mode="test")) == 20 and target.read_bytes() == payload
        assert len(Cifar10(mode="train")) == 50  # from the cache
        assert requested == ["/c/cifar-10-python.tar.gz"]
    target.write_bytes(payload[:-10])
    with pytest.raises(DataFileError, match=f"{target} does not have the expected md5.*delete it"):
        Cifar10(mode="test")
    assert target.read_bytes() == payload[:-10]


# ----------------------------------------------------------------------------- Fashion-MNIST
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx(tmp_path, gz):
    p = make_idx_files(tmp_path, n=30, gz=gz)
    ds = FashionMNIST(p["train_images"], p["train_labels"])
    assert len(ds) == 30
    img, label = ds[0]
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 2])  # gray replicated
    want_x, want_y = idx_arrays(30, "train")
    np.testing.assert_array_equal(img[..., 0], want_x[0])
    np.testing.assert_array_equal(ds.labels, want_y)
    assert label.dtype == np.int64
    one = FashionMNIST(p["test_images"], p["test_labels"], mode="test", channels=1,
                       num_samples=5)
    assert len(one) == 5 and one[0][0].shape == (28, 28, 1)
    assert one.class_names[0] == "T-shirt/top" and one.class_names[9] == "Ankle boot"


def test_fashion_mnist_bad_files(tmp_path):
    p = make_idx_files(tmp_path, n=10, gz=True)
    with pytest.raises(DataFileError, match="magic number 2049, expected 2051"):
        FashionMNIST(p["train_labels"], p["train_labels"])  # labels given as images
    raw = gzip.decompress(open(p["train_images"], "rb").read())
    trunc = tmp_path / "trunc-idx3-ubyte"
    trunc.write_bytes(raw[:-100])
    with pytest.raises(DataFileError, match="truncated"):
        FashionMNIST(str(trunc), p["train_labels"])
    other = make_idx_files(tmp_path / "other", n=12, gz=False)
    with pytest.raises(DataFileError, match="10 images but .* 12 labels"):
        FashionMNIST(p["train_images"], other["train_labels"])
    with pytest.raises(DataFileError, match="does not exist"):
        FashionMNIST(str(tmp_path / "missing.gz"), p["train_labels"])
    with pytest.raises(ValueError, match="channels"):
        FashionMNIST(p["train_images"], p["train_labels"], channels=2)


def test_fashion_mnist_default_path_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets_mod, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataFileError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST()


@pytest.mark.skipif(not os.path.isdir(REAL_FMNIST),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train = FashionMNIST(mode="train")
    test = FashionMNIST(mode="test", channels=1)
    assert (len(train), len(test)) == (60000, 10000)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    # Published facts of the dataset: the first labels (ankle boot, T-shirt, ...) and the
    # pixel mean / std used to normalise it (0.2860 / 0.3530 of 255).
    assert train.labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert test.labels[:5].tolist() == [9, 2, 1, 1, 6]
    assert train.images.mean() / 255 == pytest.approx(0.2860, abs=5e-5)
    assert train.images.std() / 255 == pytest.approx(0.3530, abs=5e-5)
    img, _ = train[0]
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    x, y = build_transforms(["ToTensor", {"Normalize": {"mean": [0.5], "std": [0.5]}}])(
        test[0][0]), test[0][1]
    assert x.shape == (1, 28, 28) and y == 9
    np.testing.assert_allclose(x[0], test.images[0, :, :, 0] / 127.5 - 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- ImageFolder
def test_image_folder_flat_and_split(tmp_path):
    flat = ImageFolder(make_image_folder(tmp_path / "flat", classes=3, per_class=4))
    assert len(flat) == 12 and flat.class_names == ["class_0", "class_1", "class_2"]
    assert flat.num_classes == 3
    assert flat.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    img, label = flat[5]
    assert img.shape == (40, 36, 3) and img.dtype == np.uint8 and int(label) == 1
    root = make_image_folder(tmp_path / "split", classes=2, per_class=3, splits=True)
    val = ImageFolder(root, mode="val", num_samples=4,
                      transforms=build_transforms([{"Resize": {"size": [16, 20]}}, "ToTensor"]))
    assert len(val) == 4 and val.root.endswith("val")
    x, _ = val[0]
    assert x.shape == (3, 16, 20) and x.dtype == np.float32
    assert len(ImageFolder(root, mode="test")) == 6  # test is an alias of val


def test_image_folder_errors(tmp_path):
    root = make_image_folder(tmp_path / "f", classes=2, per_class=2)
    (tmp_path / "f" / "class_0" / "notes.txt").write_text("ignored: not an image extension")
    bad = tmp_path / "f" / "class_1" / "zz_broken.png"
    bad.write_text("not really a png")
    ds = ImageFolder(root)
    assert len(ds) == 5  # the .txt is skipped, the broken .png is listed
    with pytest.raises(DataFileError, match="zz_broken.png"):
        ds[4]
    with pytest.raises(DataFileError, match="is not a folder"):
        ImageFolder(str(tmp_path / "missing"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataFileError, match="no images"):
        ImageFolder(str(tmp_path / "empty"))


@pytest.mark.timeout(60)
def test_image_folder_with_links_to_its_parents_lists_each_file_once(tmp_path):
    """Paddle's DatasetFolder walks with followlinks=True: two links to '..' make it run for
    minutes; ours lists the links without entering them."""
    root = make_image_folder(tmp_path / "f", classes=2, per_class=2)
    for name in ("up1", "up2"):
        os.symlink("..", os.path.join(root, "class_0", name))
    ds = ImageFolder(root)
    assert len(ds) == 4 and len({p for p, _ in ds.samples}) == 4


# ----------------------------------------------------------------------------- Synthetic
def test_synthetic_is_deterministic():
    a, b = Synthetic(num_samples=8, seed=3), Synthetic(num_samples=8, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    t = Synthetic(num_samples=8, seed=3, mode="test")
    assert not np.array_equal(a.images, t.images)
    img, label = Synthetic(num_samples=2, image_size=16, channels=1, num_classes=4)[1]
    assert img.shape == (16, 16, 1) and 0 <= int(label) < 4
    with pytest.raises(ValueError, match="num_samples"):
        Synthetic(num_samples=0)


# ----------------------------------------------------------------------------- registry
def test_build_dataset_and_errors(cifar10_file):
    ds = build_dataset({"name": "Cifar10", "data_file": cifar10_file, "mode": "test",
                        "num_samples": 5, "transform_ops": ["ToTensor"]})
    x, _ = ds[0]
    assert len(ds) == 5 and x.shape == (3, 32, 32) and x.dtype == np.float32
    assert set(DATASETS) == {"Cifar10", "Cifar100", "FashionMNIST", "ImageFolder", "Synthetic",
                             "ImageNetDataset"}
    with pytest.raises(ValueError, match="did you mean 'Cifar10'.*valid datasets"):
        build_dataset({"name": "cifar10"})
    with pytest.raises(ValueError, match="unknown keyword 'data_fle'; did you mean 'data_file'"):
        build_dataset({"name": "Cifar10", "data_fle": cifar10_file})
    with pytest.raises(ValueError, match="missing required keyword.*root"):
        build_dataset({"name": "ImageFolder"})
    with pytest.raises(ValueError, match="'transforms' is now 'transform_ops'"):
        build_dataset({"name": "Cifar10", "data_file": cifar10_file, "transforms": ["ToTensor"]})
    assert dataset_params("FashionMNIST") == ["image_path", "label_path", "mode", "num_samples",
                                              "channels"]
    assert "transforms" not in dataset_params("Synthetic")


# ----------------------------------------------------------------------------- transforms
def test_names_are_paddles_transforms():
    """Every Paddle name builds Paddle's own class (ToTensor: ours, a numpy result)."""
    import paddle.vision.transforms as T
    pipe = build_transforms([{"RandomCrop": {"size": 32, "padding": 4}}, "RandomHorizontalFlip",
                             {"ColorJitter": {"brightness": 0.2}}, {"Resize": {"size": 20}},
                             "ToTensor", {"Normalize": {"mean": 0.5, "std": 0.5}}])
    assert [type(op) for op in pipe.ops[:5]] == [T.RandomCrop, T.RandomHorizontalFlip,
                                                 T.ColorJitter, T.Resize, type(pipe.ops[4])]
    assert issubclass(type(pipe.ops[4]), T.ToTensor) and type(pipe.ops[5]) is T.Normalize
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    # ToTensor + Normalize: numpy, the values of Paddle's tensors exactly.
    ref = T.Compose([T.ToTensor(), T.Normalize(0.5, 0.5)])(img).numpy()
    ours = build_transforms(["ToTensor", {"Normalize": {"mean": 0.5, "std": 0.5}}])(img)
    assert isinstance(ours, np.ndarray)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_allclose(ours, img.transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    gray = build_transforms(["ToTensor"])(img[:, :, 0])
    assert gray.shape == (1, 40, 60)
    assert build_transforms([{"ToTensor": {"data_format": "HWC"}}])(img).shape == (40, 60, 3)
    # `- ToTensor`, `- ToTensor: null` and `- ToTensor: {}` are the same op.
    for entry in ("ToTensor", {"ToTensor": None}, {"ToTensor": {}}):
        assert build_transforms([entry])(img).shape == (3, 40, 60)
    assert build_transforms([]) is None and build_transforms(None) is None


def test_transform_errors():
    with pytest.raises(ValueError, match="did you mean 'RandomCrop'.*valid transforms"):
        build_transforms([{"RandomCrp": {"size": 32}}])
    with pytest.raises(ValueError, match="RandomCrop: unknown parameter 'paddding'; did you "
                                         "mean 'padding'"):
        build_transforms([{"RandomCrop": {"size": 32, "paddding": 4}}])
    with pytest.raises(ValueError, match="Resize.*valid parameters"):
        build_transforms([{"Resize": {}}])
    with pytest.raises(ValueError, match="Normalize has 3 mean / 3 std values but the image has "
                                         "1 channel"):
        build_transforms(["ToTensor", {"Normalize": {"mean": 0.5, "std": 0.5}}])(
            np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="one-key mapping"):
        build_transforms([5])
    with pytest.raises(ValueError, match="parameters must be a mapping"):
        build_transforms([{"Resize": 5}])
    assert transform_params("RandomCrop")[:2] == ["size", "padding"]
    assert transform_params("ColorJitter", clas=False) == ["brightness", "contrast",
                                                           "saturation", "hue"]
    assert transform_params("ColorJitter", clas=True)[0] == "prob"
    assert "keys" not in transform_params("Normalize")


# ----------------------------------------------------------------------------- loader
def _loader_cfg(path, ops=SEED_TRAIN_OPS, **sampler):
    smp = {"name": "DistributedBatchSampler", "batch_size": 8, "shuffle": True, "drop_last": True}
    smp.update(sampler)
    return {"dataset": {"name": "Cifar10", "data_file": path, "mode": "train",
                        "transform_ops": ops},
            "sampler": smp, "loader": {"num_workers": 0}}


def _epoch_labels(loader, epoch):
    set_epoch(loader, epoch)
    return np.concatenate([y.numpy() for _, y in loader])


def test_loader_batches_and_reproducible_order(cifar10_file):
    loader = build_dataloader(_loader_cfg(cifar10_file), "train", seed=7)
    x, y = next(iter(loader))
    assert x.shape == [8, 3, 32, 32] and x.dtype == paddle.float32
    assert y.shape == [8] and y.dtype == paddle.int64
    loss = F.cross_entropy(paddle.zeros([8, 10]), y)  # labels fit cross_entropy as is
    assert abs(float(loss) - np.log(10)) < 1e-5
    assert len(loader) == 6  # 50 // 8 with drop_last
    again = build_dataloader(_loader_cfg(cifar10_file), "train", seed=7)
    e3 = _epoch_labels(loader, 3)
    np.testing.assert_array_equal(e3, _epoch_labels(again, 3))
    assert not np.array_equal(e3, _epoch_labels(again, 4))
    # The order is default_rng(seed + epoch).permutation(n), as documented.
    want = cifar_arrays(10, 50, 0, "train")[1][np.random.default_rng(7 + 3).permutation(50)]
    np.testing.assert_array_equal(e3, want[:48])
    other_seed = build_dataloader(_loader_cfg(cifar10_file), "train", seed=8)
    assert not np.array_equal(e3, _epoch_labels(other_seed, 3))
    # BatchSampler and one rank of the distributed sampler see the same order.
    plain = build_dataloader(_loader_cfg(cifar10_file, name="BatchSampler"), "train", seed=7)
    np.testing.assert_array_equal(e3, _epoch_labels(plain, 3))
    dist = build_dataloader(_loader_cfg(cifar10_file), "train", seed=7, distributed=True)
    np.testing.assert_array_equal(e3, _epoch_labels(dist, 3))


def test_loader_eval_defaults_and_errors(cifar10_file):
    cfg = {"dataset": {"name": "Cifar10", "data_file": cifar10_file,
                       "transform_ops": ["ToTensor"]}, "sampler": {"batch_size": 6}}
    loader = build_dataloader(cfg, "Eval")
    assert len(loader.dataset) == 20  # mode defaults to test for an eval loader
    labels = np.concatenate([y.numpy() for _, y in loader])
    np.testing.assert_array_equal(labels, cifar_arrays(10, 20, 0, "test")[1])  # no shuffle
    # Keys are checked by the config layer (tests/test_config.py); called directly, the
    # builders' signatures refuse what they do not take.
    with pytest.raises(TypeError, match="'batch_size'"):
        build_dataloader({"dataset": cfg["dataset"], "batch_size": 4}, "train")
    with pytest.raises(TypeError, match="'batchsize'"):
        build_dataloader({"dataset": cfg["dataset"], "sampler": {"batchsize": 4}}, "train")
    with pytest.raises(ValueError, match="unknown name 'PKSampler'"):
        build_dataloader({"dataset": cfg["dataset"], "sampler": {"name": "PKSampler",
                                                                 "batch_size": 4}}, "train")
    with pytest.raises(ValueError, match="'transforms' is now 'transform_ops'"):
        build_dataloader({"dataset": {"name": "Synthetic", "transforms": []},
                          "sampler": {"batch_size": 4}}, "train")
    with pytest.raises(ValueError, match="fewer than sampler.batch_size"):
        build_dataloader(_loader_cfg(cifar10_file, batch_size=64), "train")
    with pytest.raises(TypeError, match="batch_size"):
        build_dataloader({"dataset": cfg["dataset"], "sampler": {}}, "train")
    with pytest.raises(ValueError, match="training only"):
        build_dataloader({"dataset": dict(cfg["dataset"], batch_transform_ops=[
            {"MixupOperator": {"alpha": 0.2}}]), "sampler": {"batch_size": 4}}, "eval")
    assert list(loader_params()) == ["dataset", "sampler", "loader"]


def _mixed_sizes(tmp_path):
    """An image folder with one non-square photo and one 1x1 image among squares."""
    from PIL import Image
    root = tmp_path / "imgs" / "a"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / f"sq{i}.png")
    Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(root / "wide.png")
    Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)).save(root / "zz_tiny.png")
    return str(tmp_path / "imgs")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_collate_error_ends_at_once_naming_the_file(tmp_path, workers):
    """Images of two sizes in one batch (Resize {size: N} keeps the aspect) end the loop
    with one line naming the file and the fix, with and without workers (no hang)."""
    cfg = {"dataset": {"name": "ImageFolder", "root": _mixed_sizes(tmp_path),
                       "transform_ops": [{"Resize": {"size": 8}}, "ToTensor"]},
           "sampler": {"batch_size": 5, "shuffle": False}, "loader": {"num_workers": workers}}
    with pytest.raises(DataFileError) as info:
        for _ in build_dataloader(cfg, "train"):
            pass
    msg = str(info.value)
    assert "\n" not in msg and "wide.png" in msg and "3x8x13" in msg and "3x8x8" in msg
    assert "CenterCrop" in msg and "CropImage" in msg
    # The fix works: a fixed-size crop after the resize makes every batch.
    cfg["dataset"]["transform_ops"] = [{"Resize": {"size": 8}}, {"CenterCrop": {"size": 8}},
                                       "ToTensor"]
    batches = list(build_dataloader(cfg, "train"))
    assert [list(b[0].shape) for b in batches] == [[5, 3, 8, 8]]


def test_transform_error_names_the_file(tmp_path):
    """Images smaller than the seed's RandomCrop(32, padding=4) crop: one line naming one."""
    cfg = {"dataset": {"name": "ImageFolder", "root": _mixed_sizes(tmp_path),
                       "transform_ops": SEED_TRAIN_OPS},
           "sampler": {"batch_size": 5, "shuffle": False}, "loader": {"num_workers": 0}}
    with pytest.raises(DataFileError) as info:
        list(build_dataloader(cfg, "train"))
    msg = str(info.value)
    assert "\n" not in msg and "sq0.png" in msg and "ValueError" in msg and "Resize" in msg


def test_a_failing_transform_is_named_by_its_place_in_transform_ops():
    from orthonets_paddle.data.transforms import build_transforms
    pipe = build_transforms([{"Resize": {"size": 8}}, {"RandomCrop": {"size": 16}}, "ToTensor"])
    img = np.zeros((10, 12, 3), np.uint8)  # Resize(8) keeps the aspect: 8x9, smaller than 16
    with pytest.raises(ValueError, match=r"^transform_ops\[1\] RandomCrop: "):
        pipe(img)
    assert tuple(build_transforms([{"Resize": {"size": [8, 8]}}, "ToTensor"])(img).shape) == (3, 8, 8)
