"""The seed config's pipelines are the seed notebook's ``paddle.vision.transforms`` pipelines.

Oracle: ``paddle.vision.transforms.Compose`` written here by hand from the seed notebook's
definition (cv2 backend: numpy HWC uint8 images), run on the same images from the same
states of Python's ``random`` and numpy's global RNG. Ours is built from the list in
``configs/orthonet18_cifar10.yaml``. Exact equality is asserted (float32 throughout).
"""
import os
import random

import numpy as np
import paddle
import paddle.vision.transforms as T
import pytest
import yaml

from orthonets_paddle.data import Cifar10, build_transforms

try:
    from data_files import make_cifar_archive
except ImportError:  # tests/ imported as a package
    from tests.data_files import make_cifar_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_FMNIST = "/usr/share/datasets/fashion-mnist"


def _config_ops(split):
    with open(os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")) as f:
        ds = yaml.safe_load(f)["DataLoader"][split]["dataset"]
    return ds.get("transform_ops", ds.get("transforms"))  # the key before/after the schema move


def seed_train():  # the seed notebook's training pipeline
    return T.Compose([T.RandomCrop(32, padding=4), T.ColorJitter(0.2, 0.2, 0.2),
                      T.RandomHorizontalFlip(0.5), T.RandomRotation(20), T.ToTensor(),
                      T.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])])


def seed_eval():
    return T.Compose([T.Resize(32), T.ToTensor(),
                      T.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])])


def _as_numpy(x):
    return x.numpy() if isinstance(x, paddle.Tensor) else np.asarray(x)


def _run(pipe, img, seed):
    random.seed(seed)
    np.random.seed(seed)
    out = _as_numpy(pipe(img))
    return out, random.random(), np.random.random()  # the RNG states after it, too


def _images():
    """Real photos of clothes (Fashion-MNIST, gray replicated to RGB, padded to 32x32) when
    the Debian package is there, plus random colour images (saturation/hue matter)."""
    rng = np.random.default_rng(0)
    imgs = list(rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8))
    path = os.path.join(REAL_FMNIST, "t10k-images-idx3-ubyte.gz")
    if os.path.isfile(path):
        from orthonets_paddle.data import FashionMNIST
        fm = FashionMNIST(mode="test", num_samples=24)
        tint = rng.integers(60, 256, (24, 1, 1, 3))
        for i in range(24):  # a tint per image keeps the channels different
            x = np.pad(fm[i][0], ((2, 2), (2, 2), (0, 0)))
            imgs.append((x.astype(np.int64) * tint[i] // 255).astype(np.uint8))
    return imgs


def assert_same(ours, ref, images, seeds):
    for img, seed in zip(images, seeds):
        a, ra, na = _run(ours, img, seed)
        b, rb, nb = _run(ref, img, seed)
        assert a.dtype == np.float32 and a.shape == b.shape == (3, 32, 32)
        np.testing.assert_array_equal(a, b, err_msg=f"seed {seed}")
        assert (ra, na) == (rb, nb), f"seed {seed}: the pipelines drew different numbers"


def test_train_pipeline_is_the_seeds():
    images = _images()
    assert_same(build_transforms(_config_ops("Train")), seed_train(), images, range(len(images)))


def test_eval_pipeline_is_the_seeds():
    images = _images()
    ours = build_transforms(_config_ops("Eval"))
    assert_same(ours, seed_eval(), images, range(len(images)))
    # Resize keeps the aspect (short side 32), as Paddle's does: a 40x48 photo gives 32x38.
    photo = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_as_numpy(ours(photo)), _as_numpy(seed_eval()(photo)))
    assert _as_numpy(ours(photo)).shape == (3, 32, 38)


def test_a_changed_draw_is_seen():
    """The comparison is not vacuous: one more draw, or two ops swapped, changes the output."""
    images = _images()[:8]
    ref = seed_train()
    extra = T.Compose([lambda x: (random.random(), x)[1], *seed_train().transforms])
    swapped = seed_train()
    swapped.transforms[2], swapped.transforms[3] = swapped.transforms[3], swapped.transforms[2]
    for other in (extra, swapped):
        with pytest.raises(AssertionError):
            assert_same(other, ref, images, range(len(images)))


def test_cifar10_hands_images_as_paddles_cifar10(tmp_path):
    """Our Cifar10 hands the transform what paddle.vision.datasets.Cifar10 (backend cv2)
    hands it, so the seed's pipeline on either dataset gives the same training images."""
    path = make_cifar_archive(tmp_path, num_classes=10, n_train=20, n_test=10)
    ours = Cifar10(path, mode="train", transforms=build_transforms(_config_ops("Train")))
    ref = paddle.vision.datasets.Cifar10(path, mode="train", transform=seed_train(),
                                         backend="cv2")
    seen = []
    ref_plain = paddle.vision.datasets.Cifar10(path, mode="train", backend="cv2",
                                               transform=lambda x: seen.append(x) or x)
    ref_plain[3]
    raw = Cifar10(path, mode="train")[3][0]
    assert seen[0].dtype == raw.dtype == np.uint8 and seen[0].shape == raw.shape == (32, 32, 3)
    np.testing.assert_array_equal(seen[0], raw)  # HWC, RGB, same pixels
    for i in range(len(ours)):
        random.seed(i)
        np.random.seed(i)
        x, y = ours[i]
        random.seed(i)
        np.random.seed(i)
        rx, ry = ref[i]
        np.testing.assert_array_equal(x, _as_numpy(rx))
        assert int(y) == int(ry)
