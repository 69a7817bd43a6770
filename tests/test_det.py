"""OrthoNet as a PaddleDetection backbone: the shipped Faster R-CNN FPN configs build,
train a few steps and evaluate on a tiny COCO-format set written here, the backbone's
maps agree with its out_shape, and a classification checkpoint loads into it with only
the classifier left out. CI installs PaddleDetection; without it these tests FAIL."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "det", "faster_rcnn_orthonet50_fpn_1x_coco.yml")
MOD_CONFIG = os.path.join(ROOT, "configs", "det", "faster_rcnn_orthonet_mod_50_fpn_1x_coco.yml")
H, W = 96, 128          # tiny images (multiples of 32: no padding)
SMALL = ["OrthoNet.width=8", "FPN.out_channel=32", "TwoFCHead.out_channel=64",
         "num_classes=2", "use_gpu=false", "pretrain_weights=null"]


@pytest.fixture(scope="module")
def det():
    try:
        import orthonets_paddle.det as det_module
    except ImportError as exc:
        pytest.fail(f"PaddleDetection is required for the detection tests (CI installs it): {exc}",
                    pytrace=False)
    return det_module


def _write_coco(root, names, rng):
    """Images with one or two filled rectangles (class 1 bright, class 2 dark) on noise,
    and their COCO annotations (bbox = [x, y, w, h])."""
    import cv2
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, annos = [], []
    for i, name in enumerate(names, start=1):
        img = rng.integers(90, 160, size=(H, W, 3), dtype=np.uint8)
        for k, cat in enumerate((1, 2)[: 1 + i % 2]):
            x, y = 8 + 56 * k + i, 10 + 4 * i
            w, h = 36, 48
            img[y:y + h, x:x + w] = 240 if cat == 1 else 20
            annos.append({"id": len(annos) + 1, "image_id": i, "category_id": cat,
                          "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        cv2.imwrite(os.path.join(root, "images", name), img)
        images.append({"id": i, "file_name": name, "height": H, "width": W})
    return {"images": images, "annotations": annos,
            "categories": [{"id": 1, "name": "bright"}, {"id": 2, "name": "dark"}]}


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco"))
    os.makedirs(os.path.join(root, "annotations"))
    data = _write_coco(root, ["a.jpg", "b.jpg"], np.random.default_rng(0))
    for split in ("train", "val"):
        with open(os.path.join(root, "annotations", f"{split}.json"), "w") as f:
            json.dump(data, f)
    return root, data


def _data_overrides(root):
    tf = ("[{Decode: {}}, {NormalizeImage: {is_scale: true, mean: [0.485, 0.456, 0.406], "
          "std: [0.229, 0.224, 0.225]}}, {Permute: {}}]")
    out = []
    for mode, split in (("Train", "train"), ("Eval", "val")):
        out += [f"{mode}Dataset.dataset_dir={root}", f"{mode}Dataset.image_dir=images",
                f"{mode}Dataset.anno_path=annotations/{split}.json",
                f"{mode}Reader.sample_transforms={tf}", f"{mode}Reader.batch_size=2"]
    return out + ["TrainReader.shuffle=false", "worker_num=0"]


def test_config_builds_and_out_shape_matches_features(det):
    from ppdet.core.workspace import create
    cfg = det.load_det_config(CONFIG, SMALL)
    model = create(cfg.architecture)
    backbone = model.backbone
    assert type(backbone).__name__ == "OrthoNet" and backbone.squeeze == "ortho"
    # ResNet-50 at width 8: 4 * 8 * 2**i channels, strides 4..32 (stage i = res{i+2}).
    assert [(s.channels, s.stride) for s in backbone.out_shape] == [(32, 4), (64, 8), (128, 16), (256, 32)]
    backbone.eval()
    feats = backbone({"image": paddle.randn([1, 3, H, W])})
    assert [list(f.shape) for f in feats] == [
        [1, s.channels, math.ceil(H / s.stride), math.ceil(W / s.stride)] for s in backbone.out_shape]
    # the FPN was built from out_shape: its lateral convs take those channels
    lateral = [model.neck.lateral_convs[i].weight.shape[1] for i in range(4)]
    assert lateral == [s.channels for s in backbone.out_shape]

    # freeze_at=0: stem and res2 frozen; freeze_norm: BN scale/shift frozen, running stats used
    body = backbone.body
    assert all(p.stop_gradient for layer in (body.conv1, body.bn1, body.layer1) for p in layer.parameters())
    assert not body.layer2[0].conv1.weight.stop_gradient
    assert body.layer3[0].bn1.weight.stop_gradient and body.layer3[0].bn1._use_global_stats

    # other return_idx / freeze_at / lr_mult_list, and the MOD config
    cfg = det.load_det_config(MOD_CONFIG, SMALL + [
        "OrthoNet.return_idx=[1, 3]", "OrthoNet.freeze_at=-1", "OrthoNet.freeze_norm=false",
        "OrthoNet.lr_mult_list=[0.1, 0.2, 0.3, 0.4]"])
    backbone = create("OrthoNet")
    assert backbone.position == "mod" and backbone.body.layer3[0].att.fc1.weight.shape[0] == 8 * 4
    assert [(s.channels, s.stride) for s in backbone.out_shape] == [(64, 8), (256, 32)]
    feats = backbone({"image": paddle.randn([1, 3, H, W])})
    assert [list(f.shape) for f in feats] == [[1, 64, 12, 16], [1, 256, 3, 4]]
    assert not backbone.body.conv1.weight.stop_gradient and not backbone.body.bn1.weight.stop_gradient
    assert backbone.body.layer4[0].conv2.weight.optimize_attr["learning_rate"] == pytest.approx(0.4)
    assert backbone.body.layer2[1].conv1.weight.optimize_attr["learning_rate"] == pytest.approx(0.2)
    # norm_decay (0 in the config): the BN scale/shift get their own L2 decay, not the optimizer's 1e-4
    assert backbone.body.layer3[2].bn2.weight.regularizer._coeff == 0.0
    # stages after the last returned one are not built (nothing without a gradient)
    short = det.OrthoNet(depth=18, width=4, return_idx=[0, 1, 2])
    assert short.body.layer4 is None and not any(k.startswith("body.layer4") for k in short.state_dict())
    assert [list(f.shape) for f in short({"image": paddle.randn([1, 3, 64, 64])})] == [
        [1, 4, 16, 16], [1, 8, 8, 8], [1, 16, 4, 4]]
    # norm types: sync_bn builds SyncBatchNorm; frozen_bn is freeze_norm (running statistics)
    sync = det.OrthoNet(depth=18, width=4, norm_type="sync_bn", freeze_norm=False, freeze_at=-1)
    assert isinstance(sync.body.layer1[0].bn1, paddle.nn.SyncBatchNorm) and not sync.body.bn1.weight.stop_gradient
    frozen = det.OrthoNet(depth=18, width=4, norm_type="frozen_bn", freeze_norm=False, freeze_at=-1)
    assert frozen.body.layer4[1].bn2._use_global_stats and frozen.body.layer4[1].bn2.weight.stop_gradient


def test_paddle3_compat_restores_one_element_conversions(det):
    # PaddleDetection 2.6 relies on Paddle 2.4 behaviour: shape-[1] tensors as Python numbers
    # and joining the 0-D results of paddle.shape(x)[0]; importing det makes both work again.
    assert int(paddle.to_tensor([7])) == 7 and float(paddle.to_tensor([2.5])) == 2.5
    assert list(range(paddle.to_tensor([3], dtype="int32"))) == [0, 1, 2]
    with pytest.raises(TypeError):  # more than one element is still an error
        int(paddle.to_tensor([1, 2]))
    joined = paddle.concat([paddle.to_tensor(4), paddle.to_tensor([5, 6])])
    np.testing.assert_array_equal(joined.numpy(), [4, 5, 6])
    np.testing.assert_array_equal(paddle.concat(x=[paddle.to_tensor(1.5)] * 2).numpy(), [1.5, 1.5])
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 1))  # ordinary calls unchanged
    out = paddle.concat([paddle.to_tensor(a), paddle.to_tensor(b)], axis=1)
    np.testing.assert_array_equal(out.numpy(), np.concatenate([a, b], axis=1))


def test_bad_options_are_clear_errors(det, tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_torch_weights.py.*pretrain_weights=null"):
        det.train.check_pretrain_weights({"pretrain_weights": str(tmp_path / "missing.pdparams")})
    with pytest.raises(FileNotFoundError, match="no_coco/annotations/instances_val2017.json"):
        det.check_coco_layout(det.load_det_config(CONFIG, [f"EvalDataset.dataset_dir={tmp_path}/no_coco"]),
                              ("Eval",))
    with pytest.raises(ValueError, match="did you mean 'return_idx'"):
        det.load_det_config(CONFIG, ["OrthoNet.retrun_idx=[0]"])
    with pytest.raises(ValueError, match="OrthoNet backbone: position 'mod' needs Bottleneck"):
        det.OrthoNet(depth=18, position="mod")
    with pytest.raises(ValueError, match="OrthoNet backbone: unknown squeeze 'orth'.*valid:"):
        det.OrthoNet(depth=18, squeeze="orth")
    with pytest.raises(ValueError, match="OrthoNet backbone: unknown model 'resnet19'"):
        det.OrthoNet(depth=19)
    with pytest.raises(ValueError, match="valid: bn, sync_bn, frozen_bn"):
        det.OrthoNet(depth=18, norm_type="gn")


def test_classification_checkpoint_loads_without_classifier(det, tmp_path):
    from ppdet.core.workspace import create
    from ppdet.utils.checkpoint import load_pretrain_weight
    from orthonets_paddle import build_model
    # seed 1: its filter banks differ from the backbone's own (seed 0), so loading must bring them
    cls = build_model("orthonet50", num_classes=10, width=8, seed=1)
    saved = {k: v.numpy() for k, v in cls.state_dict().items()}
    paddle.save(cls.state_dict(), str(tmp_path / "cls.pdparams"))
    det.load_det_config(CONFIG, SMALL)
    model = create("FasterRCNN")
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    assert not np.allclose(before["backbone.body.layer1.0.att.filters"], saved["layer1.0.att.filters"])
    load_pretrain_weight(model, str(tmp_path / "cls"))
    after = {k: v.numpy() for k, v in model.state_dict().items()}
    expected = {"backbone.body." + k for k in saved if not k.startswith("fc.")}
    assert {"fc.weight", "fc.bias"} <= set(saved) and len(expected) == len(saved) - 2
    assert expected == {k for k in after if k.startswith("backbone.")}   # every backbone key
    for k in after:
        if k in expected:
            np.testing.assert_array_equal(after[k], saved[k[len("backbone.body."):]], err_msg=k)
        else:  # neck and heads untouched; the classifier went nowhere
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_train_steps_and_evaluate_on_tiny_coco(det, coco, tmp_path):
    from ppdet.engine.callbacks import Callback
    from orthonets_paddle import build_model
    paddle.seed(0)
    root, data = coco
    steps = 6
    out = str(tmp_path / "out")
    cls = build_model("orthonet50", num_classes=10, width=8, seed=3)
    saved = {k: v.numpy() for k, v in cls.state_dict().items()}
    paddle.save(cls.state_dict(), str(tmp_path / "imagenet.pdparams"))
    cfg = det.load_det_config(CONFIG, SMALL + _data_overrides(root) + [
        f"pretrain_weights={tmp_path / 'imagenet.pdparams'}",
        f"epoch={steps}", f"snapshot_epoch={steps}", f"save_dir={out}", f"output_eval={out}/eval",
        "log_iter=100", "LearningRate.base_lr=0.01", "LearningRate.schedulers[1].steps=1",
        # fixed batch and fixed sampling: a reliable decrease of the loss
        "RPNHead.rpn_target_assign.use_random=false", "BBoxAssigner.use_random=false"])

    class Losses(Callback):  # PaddleDetection passes the trainer as `model`
        def __init__(self, model):
            super().__init__(model)
            self.values, self.start = [], {}

        def on_train_begin(self, status):
            self.start = {k: v.numpy() for k, v in self.model.model.backbone.state_dict().items()}

        def on_step_end(self, status):  # also called by the evaluation loop: keep training steps
            if status["mode"] == "train":
                self.values.append(float(status["training_staus"].meters["loss"].value))

    trainer = det.train_detector(cfg, validate=True, callbacks=[Losses])
    losses = next(c for c in trainer._callbacks if isinstance(c, Losses))
    assert len(losses.values) == steps
    assert all(np.isfinite(losses.values)), losses.values
    assert losses.values[-1] < losses.values[0] and np.mean(losses.values[-2:]) < np.mean(losses.values[:2]), \
        losses.values
    # evaluation ran: COCO bbox stats (12 numbers, AP in [0, 1] or -1 when undefined) and a
    # prediction file whose boxes belong to our images and categories
    stats = trainer.eval_results["bbox"]
    assert len(stats) == 12 and all(s == -1 or 0 <= s <= 1 for s in stats)
    with open(os.path.join(out, "eval", "bbox.json")) as f:
        dets = json.load(f)
    ids = {im["id"] for im in data["images"]}
    assert dets, "no detections above the score threshold"
    for d in dets:
        x, y, w, h = d["bbox"]
        assert d["image_id"] in ids and d["category_id"] in (1, 2)
        assert -1e-3 <= x and -1e-3 <= y and x + w <= W + 1e-3 and y + h <= H + 1e-3
    assert os.path.isfile(os.path.join(out, "faster_rcnn_orthonet50_fpn_1x_coco", "model_final.pdparams"))
    # what freeze_at=0 and freeze_norm froze did not move; the rest of the backbone trained
    end = {k: v.numpy() for k, v in trainer.model.backbone.state_dict().items()}
    frozen = [k for k in end if k.startswith(("body.conv1.", "body.bn1.", "body.layer1."))
              or k.endswith(("_mean", "_variance", "att.filters")) or ".bn" in k or "downsample.1." in k]
    assert len(frozen) > 100
    for k in frozen:  # loaded from pretrain_weights at the start, then kept
        np.testing.assert_array_equal(losses.start[k], saved[k[len("body."):]], err_msg=k)
        np.testing.assert_array_equal(end[k], losses.start[k], err_msg=k)
    assert not np.array_equal(end["body.layer4.0.conv1.weight"], losses.start["body.layer4.0.conv1.weight"])
    assert not np.array_equal(end["body.layer2.0.att.fc1.weight"], losses.start["body.layer2.0.att.fc1.weight"])


def test_train_det_tool_without_coco_names_path_and_layout(det, tmp_path):
    missing = str(tmp_path / "no_coco")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_det.py"), "-c", CONFIG,
         "-o", f"TrainDataset.dataset_dir={missing}", "use_gpu=false"],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert os.path.join(missing, "annotations/instances_train2017.json") in proc.stderr
    assert "train2017/*.jpg" in proc.stderr and "TrainDataset.dataset_dir=" in proc.stderr


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pretrain_weights_are_refused_before_paddledetection_reads_them(det, tmp_path):
    import pickle
    from orthonets_paddle.utils.io import UnsafePickleError
    marker = tmp_path / "pwned"
    weights = tmp_path / "evil.pdparams"
    weights.write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}, protocol=4))
    with pytest.raises(UnsafePickleError, match="posix.system"):
        det.train.check_pretrain_weights({"pretrain_weights": str(weights)})
    assert not marker.exists()
