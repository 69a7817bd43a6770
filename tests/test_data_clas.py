"""PaddleClas's ops, ImageNetDataset and batch ops, against oracles from PaddleClas's
documented semantics (ppcls/data/preprocess/ops/operators.py, batch_operators.py)."""
import io
import math
import random

import cv2
import numpy as np
import paddle
import paddle.vision.transforms as T
import pytest
from PIL import Image

from orthonets_paddle.data import (DataFileError, ImageNetDataset, build_batch_transforms,
                                   build_dataloader, build_transforms, is_clas_pipeline)
from orthonets_paddle.data.clas_ops import PCALighting, parse_scale

RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)  # a non-square RGB "photo"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def png_bytes(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def seeded(seed):
    random.seed(seed)
    np.random.seed(seed)


# ----------------------------------------------------------------------------- single ops
def test_decode_image():
    raw = png_bytes(PHOTO)
    np.testing.assert_array_equal(build_transforms(["DecodeImage"]).ops[0](raw), PHOTO)
    bgr = build_transforms([{"DecodeImage": {"to_rgb": False}}]).ops[0](raw)
    np.testing.assert_array_equal(bgr, PHOTO[:, :, ::-1])  # OpenCV's own order
    chw = build_transforms([{"DecodeImage": {"channel_first": True}}]).ops[0](raw)
    np.testing.assert_array_equal(chw, PHOTO.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="cannot decode"):
        build_transforms(["DecodeImage"]).ops[0](b"not an image at all")


def test_resize_crop_flip_normalize():
    op = lambda entry: build_transforms([entry]).ops[0]  # noqa: E731
    # resize_short: short side 20, the other rounded (60 * 0.5); cv2 bilinear by default.
    out = op({"ResizeImage": {"resize_short": 20}})(PHOTO)
    np.testing.assert_array_equal(out, cv2.resize(PHOTO, (30, 20), interpolation=cv2.INTER_LINEAR))
    assert op({"ResizeImage": {"resize_short": 17}})(PHOTO).shape == (17, round(60 * 17 / 40), 3)
    assert op({"ResizeImage": {"size": [12, 10]}})(PHOTO).shape == (10, 12, 3)  # [w, h]
    # CropImage: centre, start (side - crop) // 2.
    np.testing.assert_array_equal(op({"CropImage": {"size": 25}})(PHOTO), PHOTO[7:32, 17:42])
    np.testing.assert_array_equal(op({"CropImage": {"size": [30, 20]}})(PHOTO), PHOTO[10:30, 15:45])
    with pytest.raises(ValueError, match="smaller than the crop.*ResizeImage"):
        op({"CropImage": {"size": 50}})(PHOTO)
    # RandFlipImage flips when random.randint(0, 1) == 1.
    flip = op({"RandFlipImage": {"flip_code": 1}})
    for seed in range(6):
        random.seed(seed)
        want = random.randint(0, 1) == 1
        random.seed(seed)
        np.testing.assert_array_equal(flip(PHOTO), PHOTO[:, ::-1] if want else PHOTO)
    random.seed(0)
    vflip = op({"RandFlipImage": {"flip_code": 0}})
    outs = {vflip(PHOTO).tobytes() for _ in range(10)}
    assert outs == {PHOTO.tobytes(), PHOTO[::-1].tobytes()}
    # NormalizeImage: (x * scale - mean) / std, order '' = HWC, chw = CHW.
    norm = op({"NormalizeImage": {"scale": "1.0/255.0", "mean": MEAN, "std": STD, "order": ""}})
    want = (PHOTO / 255.0 - np.array(MEAN)) / np.array(STD)
    got = norm(PHOTO)
    assert got.dtype == np.float32 and got.shape == (40, 60, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    chw = op({"NormalizeImage": {"scale": 0.00392156862745098, "order": "chw"}})(
        PHOTO.transpose(2, 0, 1))
    np.testing.assert_allclose(chw, want.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)
    # channel_num 4: a zero channel after the three normalised ones, in either order
    four = op({"NormalizeImage": {"order": "", "channel_num": 4}})(PHOTO)
    assert four.shape == (40, 60, 4) and not four[..., 3].any()
    np.testing.assert_allclose(four[..., :3], want, rtol=1e-5, atol=1e-5)
    four = op({"NormalizeImage": {"order": "chw", "channel_num": 4}})(PHOTO.transpose(2, 0, 1))
    assert four.shape == (4, 40, 60) and not four[3].any()
    np.testing.assert_array_equal(op("ToCHWImage")(PHOTO), PHOTO.transpose(2, 0, 1))


def test_scale_is_parsed_not_evaluated():
    assert parse_scale("1.0/255.0") == 1.0 / 255.0
    assert parse_scale("0.5") == 0.5 and parse_scale(None) == 1.0 / 255.0
    for bad in ("__import__('os').getcwd()", "1/0", "2**8"):
        with pytest.raises(ValueError, match="scale"):
            parse_scale(bad)


def test_rand_crop_image_draws_as_paddleclas():
    op = build_transforms([{"RandCropImage": {"size": 16}}]).ops[0]
    for seed in range(10):
        random.seed(seed)
        # The definition: aspect ~ U(3/4, 4/3); area fraction ~ U(scale) clipped to the
        # bound where the window fits; w, h truncated; corner uniform; resize to size.
        aspect = random.uniform(3 / 4, 4 / 3)
        bound = min((60 / 40) / aspect, (40 / 60) * aspect)
        area = 60 * 40 * random.uniform(min(0.08, bound), min(1.0, bound))
        w, h = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
        i, j = random.randint(0, 60 - w), random.randint(0, 40 - h)
        want = cv2.resize(PHOTO[j:j + h, i:i + w], (16, 16), interpolation=cv2.INTER_LINEAR)
        random.seed(seed)
        np.testing.assert_array_equal(op(PHOTO), want)


def test_pca_lighting_and_colorjitter_in_a_paddleclas_pipeline():
    img = PHOTO.astype(np.float32)
    np.random.seed(3)
    alpha = np.random.normal(0, 0.1, 3).astype(np.float32)
    shift = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                      [-0.5836, -0.6948, 0.4203]]) @ (alpha * np.array([0.2175, 0.0188, 0.0045]))
    np.random.seed(3)
    np.testing.assert_allclose(PCALighting()(img), img + shift, rtol=1e-6, atol=1e-4)
    # ColorJitter in a PaddleClas pipeline: a numpy draw for prob, then Paddle's
    # ColorJitter on the PIL image (PaddleClas's semantics), back to numpy.
    pipe = build_transforms(["DecodeImage", {"ColorJitter": {"brightness": 0.4, "saturation": 0.4}},
                             {"NormalizeImage": {"order": ""}}])
    assert type(pipe.ops[1]).__name__ == "ClasColorJitter" and pipe.chw_at_end
    jit = pipe.ops[1]
    seeded(5)
    got, got_next = jit(PHOTO), np.random.random()
    seeded(5)
    np.random.random()  # PaddleClas's prob draw, taken even with the default prob 2
    want = np.asarray(T.ColorJitter(brightness=0.4, saturation=0.4)(Image.fromarray(PHOTO)))
    np.testing.assert_array_equal(got, want)
    assert got_next == np.random.random()  # the numpy stream advanced by that one draw
    # A Paddle pipeline keeps Paddle's ColorJitter (cv2 on numpy, no prob draw).
    assert type(build_transforms([{"ColorJitter": {"brightness": 0.4}}]).ops[0]) is T.ColorJitter


def test_paddleclas_pipeline_kind_and_layout():
    resnet50_train = [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                      {"RandCropImage": {"size": 24}}, {"RandFlipImage": {"flip_code": 1}},
                      {"NormalizeImage": {"scale": "1.0/255.0", "mean": MEAN, "std": STD,
                                          "order": ""}}]
    assert is_clas_pipeline(resnet50_train) and not is_clas_pipeline(["ToTensor"])
    out = build_transforms(resnet50_train)(png_bytes(PHOTO))
    assert out.shape == (3, 24, 24) and out.dtype == np.float32  # the dataset's transpose
    infer = [{"DecodeImage": {}}, {"ResizeImage": {"resize_short": 32}},
             {"CropImage": {"size": 24}}, {"NormalizeImage": {"order": ""}}, "ToCHWImage"]
    out = build_transforms(infer)(png_bytes(PHOTO))
    assert out.shape == (3, 24, 24)  # ToCHWImage already: not transposed twice
    with pytest.raises(ValueError, match="PaddleClas's own Pad"):
        build_transforms(["DecodeImage", {"Pad": {"padding": 2}}])
    with pytest.raises(ValueError, match="RandCropImage: unknown parameter 'sise'; did you mean "
                                         "'size'"):
        build_transforms([{"RandCropImage": {"sise": 4}}])
    with pytest.raises(ValueError, match="ResizeImage.*size or resize_short"):
        build_transforms([{"ResizeImage": {}}])


# ----------------------------------------------------------------------------- ImageNetDataset
def make_imagenet(tmp_path, n=6, sizes=None):
    root = tmp_path / "ILSVRC"
    (root / "train").mkdir(parents=True)
    lines = []
    for i in range(n):
        shape = sizes[i] if sizes else (20 + 2 * i, 30, 3)
        img = np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(img).save(root / "train" / f"img_{i}.png")
        lines.append(f"train/img_{i}.png {i % 3}")
    (root / "train_list.txt").write_text("\n".join(lines) + "\n\n")
    return str(root), str(root / "train_list.txt")


def test_imagenet_dataset(tmp_path):
    root, listing = make_imagenet(tmp_path)
    plain = ImageNetDataset(root, listing)
    img, label = plain[2]
    assert img.shape == (24, 30, 3) and img.dtype == np.uint8 and int(label) == 2
    assert len(plain) == 6 and plain.labels.tolist() == [0, 1, 2, 0, 1, 2]
    # A pipeline starting with DecodeImage gets the file's bytes (PaddleClas's contract).
    seen = []
    pipe = build_transforms(["DecodeImage"])
    pipe.ops.append(lambda x: seen.append(x) or x)
    ds = ImageNetDataset(root, listing, transforms=pipe)
    raw = ds[2][0]
    np.testing.assert_array_equal(raw.transpose(1, 2, 0), img)  # HWC after ops -> CHW
    assert seen[0].shape == (24, 30, 3)
    assert len(ImageNetDataset(root, listing, num_samples=4)) == 4


def test_imagenet_dataset_errors(tmp_path):
    root, listing = make_imagenet(tmp_path, n=3)
    with pytest.raises(DataFileError, match="cls_label_path .*nope.txt does not exist"):
        ImageNetDataset(root, str(tmp_path / "nope.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("train/img_0.png 0\ntrain/img_1.png\n")
    with pytest.raises(DataFileError, match="bad.txt line 2: expected 'relative/path.jpg label'"):
        ImageNetDataset(root, str(bad))
    missing = tmp_path / "missing.txt"
    missing.write_text("train/img_0.png 0\ntrain/gone.jpg 1\n")
    with pytest.raises(DataFileError, match="line 2: image .*gone.jpg does not exist"):
        ImageNetDataset(root, str(missing))
    tabs = tmp_path / "tabs.txt"
    tabs.write_text("train/img_0.png\t7\ntrain/img_1.png\t3\n")
    ds = ImageNetDataset(root, str(tabs), delimiter="\t", relabel=True)
    assert ds.labels.tolist() == [1, 0]
    (tmp_path / "ILSVRC" / "train" / "img_2.png").write_bytes(b"broken")
    with pytest.raises(DataFileError, match=r"cannot read image .*img_2\.png"):
        ImageNetDataset(root, listing)[2]


# ----------------------------------------------------------------------------- batch ops
def _batch(n=6, k=4):
    rng = np.random.default_rng(1)
    return [(rng.normal(size=(3, 8, 8)).astype(np.float32), np.array(i % k, np.int64))
            for i in range(n)]


def test_mixup_and_cutmix_as_paddleclas():
    batch = _batch()
    imgs = np.stack([b[0] for b in batch])
    eye = np.eye(4, dtype=np.float32)[[b[1] for b in batch]]
    np.random.seed(0)
    perm, lam = np.random.permutation(6), np.random.beta(0.4, 0.4)
    np.random.seed(0)
    out = build_batch_transforms([{"MixupOperator": {"alpha": 0.4}}], class_num=4)(batch)
    np.testing.assert_allclose(np.stack([o[0] for o in out]),
                               lam * imgs + (1 - lam) * imgs[perm], rtol=1e-5, atol=1e-6)
    y = np.stack([o[1] for o in out])
    assert y.dtype == np.float32 and y.shape == (6, 4)
    np.testing.assert_allclose(y, lam * eye + (1 - lam) * eye[perm], rtol=1e-6)
    # Cutmix: box of sides int(8 * sqrt(1 - lam)) around a uniform centre, clipped.
    np.random.seed(1)
    perm, lam = np.random.permutation(6), np.random.beta(1.0, 1.0)
    cut = int(8 * np.sqrt(1 - lam))
    cx, cy = np.random.randint(8), np.random.randint(8)
    x1, y1 = np.clip(cx - cut // 2, 0, 8), np.clip(cy - cut // 2, 0, 8)
    x2, y2 = np.clip(cx + cut // 2, 0, 8), np.clip(cy + cut // 2, 0, 8)
    want = imgs.copy()
    want[:, :, x1:x2, y1:y2] = imgs[perm, :, x1:x2, y1:y2]
    kept = 1 - (x2 - x1) * (y2 - y1) / 64
    np.random.seed(1)
    out = build_batch_transforms([{"CutmixOperator": {"alpha": 1.0}}], class_num=4)(batch)
    np.testing.assert_array_equal(np.stack([o[0] for o in out]), want)
    np.testing.assert_allclose(np.stack([o[1] for o in out]), kept * eye + (1 - kept) * eye[perm],
                               rtol=1e-6)


def test_opsampler_and_errors():
    batch = _batch()
    sampler = build_batch_transforms([{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5},
                                                     "CutmixOperator": {"alpha": 1.0,
                                                                        "prob": 0.5}}}],
                                     class_num=4)
    random.seed(0)
    kinds = {np.asarray(sampler(batch)[0][1]).shape for _ in range(20)}
    assert kinds == {(4,)}  # probs add to 1: always mixed
    half = build_batch_transforms([{"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5}}}],
                                  class_num=4)
    random.seed(0)
    kinds = {np.asarray(half(batch)[0][1]).shape for _ in range(30)}
    assert kinds == {(4,), ()}  # else the batch is left as it is (hard labels)
    with pytest.raises(ValueError, match="Arch.class_num"):
        build_batch_transforms([{"MixupOperator": {"alpha": 0.2}}])
    with pytest.raises(ValueError, match="add up to 1.5"):
        build_batch_transforms([{"OpSampler": {"MixupOperator": {"prob": 1.0},
                                               "CutmixOperator": {"prob": 0.5}}}], class_num=4)
    with pytest.raises(ValueError, match="unknown parameter 'alfa'; did you mean 'alpha'"):
        build_batch_transforms([{"MixupOperator": {"alfa": 0.2}}], class_num=4)
    with pytest.raises(ValueError, match="label 3 is outside \\[0, 2\\)"):
        build_batch_transforms([{"MixupOperator": {"alpha": 0.2}}], class_num=2)(batch)


def test_paddleclas_loader_end_to_end(tmp_path):
    """ResNet50.yaml's train section shape, on a tiny ImageNet layout: CHW float batches and
    float32 [B, class_num] soft labels from batch_transform_ops."""
    root, listing = make_imagenet(tmp_path, n=8)
    cfg = {"dataset": {"name": "ImageNetDataset", "image_root": root, "cls_label_path": listing,
                       "transform_ops": [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                                         {"RandCropImage": {"size": 16}},
                                         {"RandFlipImage": {"flip_code": 1}},
                                         {"NormalizeImage": {"scale": "1.0/255.0", "mean": MEAN,
                                                             "std": STD, "order": ""}}],
                       "batch_transform_ops": [{"MixupOperator": {"alpha": 0.2}}]},
           "sampler": {"name": "DistributedBatchSampler", "batch_size": 4, "drop_last": False,
                       "shuffle": True},
           "loader": {"num_workers": 0, "use_shared_memory": True}}
    x, y = next(iter(build_dataloader(cfg, "train", seed=0, class_num=5)))
    assert x.shape == [4, 3, 16, 16] and x.dtype == paddle.float32
    assert y.shape == [4, 5] and y.dtype == paddle.float32
    np.testing.assert_allclose(y.numpy().sum(1), 1.0, rtol=1e-6)
