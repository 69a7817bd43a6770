"""PyTorch -> Paddle conversion: numerics against independent references, key
placement, checkpoint wrappers, the CLI and the errors."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
import torch

import orthonets_paddle as op
from orthonets_paddle.convert import (ConversionError, convert_checkpoint, convert_state_dict,
                                      convertible_archs, guess_arch)
from orthonets_paddle.models.pretrained import load_pretrained

import torch_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "tools", "convert_torch_weights.py")

# arch -> (reference constructor, depth, input size the reference's filters are for)
CASES = {
    "orthonet18": (ref.torch_orthonet, 18, 256),
    "orthonet50": (ref.torch_orthonet, 50, 256),
    "orthonet_mod_50": (ref.torch_orthonet_mod, 50, 256),
    "fcanet50": (ref.torch_fcanet, 50, 224),
    "fcanet18": (ref.torch_fcanet, 18, 224),
    "se_resnet18": (ref.torch_se_resnet, 18, 224),
    "resnet18": (ref.torch_resnet, 18, 224),
}

# The authors' published trainable-parameter totals (DESIGN.md): the references
# must have exactly these, or they are not the authors' architectures.
AUTHOR_PARAMS = {"orthonet18": 11_776_552, "orthonet50": 28_071_976,
                 "orthonet_mod_50": 25_714_216}

# arch -> (our key, their key, transposed): names that differ between families.
SPOT_CHECKS = {
    "orthonet50": [("layer2.0.conv3.weight", "layer2.0._process.6.weight", False),
                   ("layer2.0.bn3._variance", "layer2.0._process.7.running_var", False),
                   ("layer4.2.att.filters", "layer4.2.F_C_A.constant_filter", False)],
    "orthonet_mod_50": [("layer2.0.conv2.weight", "layer2.0._preprocess.3.weight", False),
                        ("layer2.0.bn2.weight", "layer2.0._preprocess.4.weight", False),
                        ("layer2.0.conv3.weight", "layer2.0._scale.1.weight", False),
                        ("layer2.0.bn3._variance", "layer2.0._scale.2.running_var", False),
                        ("layer2.0.att.fc2.weight", "layer2.0._excitation.2.weight", True)],
    "fcanet50": [("layer4.2.att.filters", "layer4.2.att.dct_layer.weight", False),
                 ("layer4.2.att.fc1.weight", "layer4.2.att.fc.0.weight", True),
                 ("layer1.0.bn3._mean", "layer1.0.bn3.running_mean", False)],
    "se_resnet18": [("layer3.1.att.fc1.weight", "layer3.1.se.fc.0.weight", True),
                    ("layer3.1.att.fc2.weight", "layer3.1.se.fc.2.weight", True)],
    "resnet18": [("layer2.0.downsample.1._variance", "layer2.0.downsample.1.running_var", False),
                 ("layer4.1.conv2.weight", "layer4.1.conv2.weight", False)],
}


def _images(n: int, size: int, seed: int) -> np.ndarray:
    """Blocky random images plus noise: unlike pure noise, their pooled
    features differ from one image to the next."""
    rng = np.random.default_rng(seed)
    coarse = np.kron(rng.standard_normal((n, 3, 8, 8)), np.ones((size // 8, size // 8)))
    return (coarse + 0.5 * rng.standard_normal((n, 3, size, size))).astype(np.float32)


def _randomise(model: torch.nn.Module, size: int, seed: int) -> torch.nn.Module:
    """Random BN affine terms and running statistics near the true ones.

    Arbitrary statistics would let activations drift until the logits barely
    depend on the input (or the attention); statistics measured on a batch,
    then perturbed, keep every layer live and still expose a swapped key.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
        model.train()(torch.from_numpy(_images(2, size, seed + 100)))
        for m in bns:
            m.running_mean.add_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.mul_(torch.rand(m.num_features, generator=gen) * 0.4 + 0.8)
            m.num_batches_tracked.fill_(1234)
    return model.eval()


def _reference(arch: str, num_classes: int = 1000, seed: int = 0) -> torch.nn.Module:
    fn, depth, size = CASES[arch]
    torch.manual_seed(seed)
    return _randomise(fn(depth, num_classes=num_classes), size, seed)


@pytest.fixture(scope="module", autouse=True)
def _no_onednn_warmup():
    # torch's oneDNN convolutions spend seconds building kernels on a model's
    # first forward; the plain kernels give the same float32 results at once.
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture(scope="module")
def orthonet18_ref():
    return _reference("orthonet18", num_classes=10)


@pytest.fixture(scope="module")
def orthonet18_converted(orthonet18_ref):
    return convert_state_dict(orthonet18_ref.state_dict(), "orthonet18")


# ------------------------------------------------------------------ numerics
@pytest.mark.parametrize("arch", list(CASES))
def test_logits_match_reference(arch):
    _, _, size = CASES[arch]
    torch_model = _reference(arch)
    if arch in AUTHOR_PARAMS:
        assert sum(p.numel() for p in torch_model.parameters()) == AUTHOR_PARAMS[arch]
    torch_state = torch_model.state_dict()
    assert guess_arch(torch_state) == arch

    # One Paddle model serves as both the conversion target and the forward.
    model = op.build_model(arch, num_classes=1000, input_size=size)
    state = convert_state_dict(torch_state, arch, model=model)
    for ours, theirs, transposed in SPOT_CHECKS.get(arch, []):
        value = torch_state[theirs].numpy()
        np.testing.assert_array_equal(state[ours], value.T if transposed else value, err_msg=ours)
    if arch == "orthonet_mod_50":  # attention on planes channels, not 4 * planes
        assert state["layer2.0.att.filters"].shape == (128, 32, 32)
    if arch.endswith("18"):  # cheap enough to also let the converter build the
        # model itself: input_size is inferred from the banks (64 -> 256, 56 -> 224)
        rebuilt = convert_state_dict(torch_state, arch)
        assert list(rebuilt) == list(state)
        assert all(np.array_equal(rebuilt[k], state[k]) for k in state)
    model.set_state_dict(state)
    model.eval()

    x = _images(2, size, seed=1)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    print(f"{arch}: max abs diff {np.abs(got - expected).max():.3g}, relative {rel:.3g}")
    # float32 noise grows with the logits' scale (torch's own float32 result is
    # ~5e-6 off a float64 run for orthonet_mod_50), so the bounds are relative.
    assert rel < 1e-4
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    # Controls, so the match above means something: the logits depend on the
    # image, and zeroing the filter banks (attention -> constant 0.5) moves
    # them far beyond the tolerance.
    def relative(a, b):
        return np.linalg.norm(a - b) / np.linalg.norm(b)

    assert relative(expected[0], expected[1]) > 0.05
    banks = {k: np.zeros_like(v) for k, v in state.items() if k.endswith("att.filters")}
    if not banks:  # resnet, se_resnet
        return
    model.set_state_dict({**state, **banks})
    with paddle.no_grad():
        control = model(paddle.to_tensor(x)).numpy()
    print(f"{arch}: image-to-image {relative(expected[0], expected[1]):.3g}, "
          f"zeroed banks {relative(control, expected):.3g}")
    assert relative(control, expected) > 0.05


# ------------------------------------------------------------------ key placement
def test_tensors_land_where_they_belong(orthonet18_ref, orthonet18_converted):
    t = {k: v.numpy() for k, v in orthonet18_ref.state_dict().items()}
    out = orthonet18_converted
    pairs = {
        "conv1.weight": t["conv1.weight"],
        "bn1._variance": t["bn1.running_var"],
        "layer1.0.conv1.weight": t["layer1.0._process.0.weight"],
        "layer1.0.bn2.bias": t["layer1.0._process.4.bias"],
        "layer1.0.att.fc1.weight": t["layer1.0._excitation.0.weight"].T,
        "layer1.0.att.fc2.weight": t["layer1.0._excitation.2.weight"].T,
        "layer2.0.conv2.weight": t["layer2.0._process.3.weight"],
        "layer2.0.downsample.0.weight": t["layer2.0.downsample.0.weight"],
        "layer2.0.downsample.1._mean": t["layer2.0.downsample.1.running_mean"],
        "layer3.1.att.filters": t["layer3.1.F_C_A.constant_filter"],
        "layer4.1.bn1._mean": t["layer4.1._process.1.running_mean"],
        "fc.weight": t["fc.weight"].T,
        "fc.bias": t["fc.bias"],
    }
    for key, expected in pairs.items():
        assert out[key].dtype == np.float32, key
        np.testing.assert_array_equal(out[key], expected, err_msg=key)
    assert not any("num_batches_tracked" in k for k in out)
    assert list(out) == list(op.build_model("orthonet18", 10, input_size=256).state_dict())


# ------------------------------------------------------------------ files and CLI
def _save(obj, path):
    torch.save(obj, str(path))
    return str(path)


def test_checkpoint_wrappers_and_prefix(tmp_path, orthonet18_ref):
    state = orthonet18_ref.state_dict()
    ddp = {"module." + k: v for k, v in state.items()}
    files = {
        "bare_ddp.pth": ddp,
        "wrapped.pth.tar": {"epoch": 90, "best_acc1": 71.2, "state_dict": ddp,
                            "optimizer": {"state": {}, "param_groups": []}},
        "model.pth": {"model": state},
    }
    model = op.build_model("orthonet18", 10, input_size=256)
    for name, obj in files.items():
        dst = tmp_path / (name + ".pdparams")
        report = convert_checkpoint(_save(obj, tmp_path / name), dst, "orthonet18")
        assert (report.num_classes, report.input_size) == (10, 256)
        assert report.tensors == len(model.state_dict())
        assert report.dropped and report.transposed
        assert not os.path.exists(str(dst) + ".tmp")
        loaded = load_pretrained(model, str(dst), strict=True, verbose=False)
        assert loaded.clean
        np.testing.assert_array_equal(model.state_dict()["layer3.1.att.filters"].numpy(),
                                      state["layer3.1.F_C_A.constant_filter"].numpy())


def _run_cli(*args):
    return subprocess.run([sys.executable, CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_cli(tmp_path, orthonet18_ref):
    src = _save({"state_dict": {"module." + k: v for k, v in orthonet18_ref.state_dict().items()}},
                tmp_path / "ckpt.pth.tar")
    dst = tmp_path / "out" / "orthonet18.pdparams"
    proc = _run_cli(src, dst, "--arch", "orthonet18")
    assert proc.returncode == 0, proc.stderr
    assert "num_classes=10" in proc.stdout and "input_size=256" in proc.stdout
    state = paddle.load(str(dst), return_numpy=True)
    np.testing.assert_array_equal(state["fc.weight"], orthonet18_ref.fc.weight.detach().numpy().T)

    # orthonet18 weights as orthonet34: refused, every problem listed, the
    # existing destination untouched.
    dst.write_bytes(b"a good file")
    proc = _run_cli(src, dst, "--arch", "orthonet34")
    assert proc.returncode != 0
    assert "layer1.2.conv1.weight" in proc.stderr and "layer4.2.att.filters" in proc.stderr
    assert "looks like orthonet18" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert dst.read_bytes() == b"a good file"
    assert not os.path.exists(str(dst) + ".tmp")


# ------------------------------------------------------------------ errors
def test_unknown_arch(orthonet18_ref):
    with pytest.raises(ConversionError, match="convertible archs:.*orthonet50"):
        convert_state_dict(orthonet18_ref.state_dict(), "orthonet51")
    with pytest.raises(ConversionError, match="orthonet_mod_101"):
        convert_checkpoint("unused.pth", "unused.pdparams", "vgg16")
    assert {"orthonet18", "orthonet_mod_50", "fcanet50", "resnet50", "se_resnet50"} <= set(
        convertible_archs())


def test_other_arch_is_refused_and_nothing_written(tmp_path, orthonet18_ref):
    src = _save(orthonet18_ref.state_dict(), tmp_path / "o18.pth")
    dst = tmp_path / "r18.pdparams"
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(src, dst, "resnet18")
    msg = str(info.value)
    assert "missing" in msg and "layer1.0.conv1.weight" in msg
    assert "layer1.0._excitation.0.weight" in msg and "orthonet18" in msg
    assert not dst.exists() and not os.path.exists(str(dst) + ".tmp")


def test_shape_mismatch_is_listed(orthonet18_ref):
    with pytest.raises(ConversionError,
                       match=r"fc.weight: checkpoint \[512, 10\] vs model \[512, 7\]"):
        convert_state_dict(orthonet18_ref.state_dict(), "orthonet18", num_classes=7)
    # A 224 filter size for a 256-trained checkpoint: every bank is listed.
    with pytest.raises(ConversionError, match=r"layer1.0.att.filters: checkpoint \[64, 64, 64\] "
                                              r"vs model \[64, 56, 56\]"):
        convert_state_dict(orthonet18_ref.state_dict(), "orthonet18", input_size=224)


def test_not_a_checkpoint(tmp_path):
    for name, text in (("notes.txt", "these are not weights\n"),
                       ("setup.py", "from setuptools import setup\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConversionError, match="is not a PyTorch checkpoint"):
            convert_checkpoint(tmp_path / name, tmp_path / "x.pdparams", "orthonet18")
    full = _save({"w": torch.zeros(3)}, tmp_path / "full.pth")
    (tmp_path / "cut.pth").write_bytes(open(full, "rb").read()[:100])  # interrupted download
    with pytest.raises(ConversionError, match="is not a PyTorch checkpoint"):
        convert_checkpoint(tmp_path / "cut.pth", tmp_path / "x.pdparams", "orthonet18")
    with pytest.raises(ConversionError, match="not found"):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "x.pdparams", "orthonet18")
    with pytest.raises(ConversionError, match="not a state dict"):
        convert_checkpoint(_save([1, 2, 3], tmp_path / "list.pth"), tmp_path / "x.pdparams",
                           "orthonet18")
    with pytest.raises(ConversionError, match="top-level keys: epoch"):
        convert_checkpoint(_save({"epoch": 3}, tmp_path / "meta.pth"), tmp_path / "x.pdparams",
                           "orthonet18")
    assert not (tmp_path / "x.pdparams").exists()


def test_pickled_objects_need_trust(tmp_path, orthonet18_ref):
    # Training scripts often save their argparse.Namespace next to the weights.
    src = _save({"state_dict": orthonet18_ref.state_dict(), "args": argparse.Namespace(lr=0.1)},
                tmp_path / "with_args.pth.tar")
    dst = tmp_path / "o18.pdparams"
    with pytest.raises(ConversionError, match="trust_pickle=True"):
        convert_checkpoint(src, dst, "orthonet18")
    assert not dst.exists()
    assert convert_checkpoint(src, dst, "orthonet18", trust_pickle=True).num_classes == 10
    assert dst.exists()


def test_num_classes_needs_fc(orthonet18_ref):
    state = {k: v for k, v in orthonet18_ref.state_dict().items() if not k.startswith("fc.")}
    with pytest.raises(ConversionError, match="pass num_classes"):
        convert_state_dict(state, "orthonet18")


def test_missing_torch_is_explained(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        convert_checkpoint(tmp_path / "a.pth", tmp_path / "a.pdparams", "orthonet18")


# ------------------------------------------------------------------ SENet's excitation biases
def _with_se_biases(torch_model, seed=3):
    """Hu et al.'s SE layer: both FC layers with (non-zero) biases, senet.pytorch's names."""
    gen = torch.Generator().manual_seed(seed)
    for module in torch_model.modules():
        if isinstance(module, ref.SELayer):
            lin1, lin2 = module.fc[0], module.fc[2]
            fc = torch.nn.Sequential(torch.nn.Linear(lin1.in_features, lin1.out_features),
                                     torch.nn.ReLU(), torch.nn.Linear(lin2.in_features, lin2.out_features),
                                     torch.nn.Sigmoid())
            with torch.no_grad():
                for lin in (fc[0], fc[2]):
                    lin.weight.normal_(0, 0.3, generator=gen)
                    lin.bias.normal_(0, 0.5, generator=gen)
            module.fc = fc
    return torch_model


def test_se_resnet_has_senets_biases_and_converts_with_and_without_them(tmp_path):
    torch_model = _with_se_biases(_reference("se_resnet18", num_classes=10))
    state = torch_model.state_dict()
    assert "layer2.1.se.fc.0.bias" in state
    model = op.build_model("se_resnet18", num_classes=10)
    converted = convert_state_dict(state, "se_resnet18", model=model)
    np.testing.assert_array_equal(converted["layer2.1.att.fc2.bias"], state["layer2.1.se.fc.2.bias"].numpy())
    model.set_state_dict(converted)
    model.eval()
    x = _images(2, 224, seed=4)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    # senet.pytorch's layer has no biases: they become 0 (the same function) and the
    # report says so; every other tensor is copied.
    plain = _reference("se_resnet18", num_classes=10).state_dict()
    report = convert_checkpoint(_save(plain, tmp_path / "se.pth"), tmp_path / "se.pdparams", "se_resnet18")
    assert len(report.zero_biases) == 2 * 8 and "SE excitation biases set to 0" in report.summary()
    loaded = paddle.load(str(tmp_path / "se.pdparams"), return_numpy=True)
    assert not loaded["layer4.1.att.fc1.bias"].any()
    np.testing.assert_array_equal(loaded["layer4.1.att.fc1.weight"], plain["layer4.1.se.fc.0.weight"].numpy().T)


def test_se_resnet_parameter_count_is_senets():
    # SENet's excitation adds W1 (c x c/16), W2 and the biases c/16 + c to each block of the
    # ResNet; OrthoNet's is the same layer without biases (AUTHOR_PARAMS, exact).
    def trainable(name):
        return sum(int(np.prod(p.shape)) for p in op.build_model(name).parameters() if not p.stop_gradient)

    channels = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # ResNet-50's block outputs
    assert trainable("se_resnet50") == AUTHOR_PARAMS["orthonet50"] + sum(c + c // 16 for c in channels)
    assert trainable("se_resnet50") == 28_088_024  # timm's seresnet50
    assert trainable("se_resnet50", ) - trainable("resnet50") == sum(2 * c * c // 16 + c + c // 16 for c in channels)


# ------------------------------------------------------------------ files that are not what they claim
def test_non_float_or_non_finite_weights_are_refused_naming_the_tensor(tmp_path, orthonet18_ref):
    state = orthonet18_ref.state_dict()
    cases = [  # (key, bad value, what the message says)
        ("layer1.0._process.0.weight", lambda v: v.to(torch.int32), "int32"),  # the issue's
        ("layer2.1._process.4.running_var", lambda v: v.to(torch.int64), "int64"),
        ("fc.weight", lambda v: v.clone().index_fill_(1, torch.tensor([3]), float("nan")), "NaN"),
        ("layer3.0._process.1.bias", lambda v: v.clone().fill_(float("-inf")), "inf"),
        # finite in float64, inf once cast to the model's float32
        ("fc.bias", lambda v: v.double().fill_(1e39), "inf"),
    ]
    ours = {"layer1.0._process.0.weight": "layer1.0.conv1.weight",
            "layer2.1._process.4.running_var": "layer2.1.bn2._variance",
            "layer3.0._process.1.bias": "layer3.0.bn1.bias"}
    for key, corrupt, word in cases:
        bad = dict(state, **{key: corrupt(state[key])})
        with pytest.raises(ConversionError) as info:
            convert_state_dict(bad, "orthonet18")
        msg = str(info.value)
        assert word in msg and ours.get(key, key) in msg and "\n" not in msg, msg
        dst = tmp_path / "bad.pdparams"
        with pytest.raises(ConversionError, match=word):
            convert_checkpoint(_save(bad, tmp_path / "bad.pth"), dst, "orthonet18")
        assert not dst.exists() and os.listdir(tmp_path) == ["bad.pth"]


def test_unwritable_destination_is_refused_before_the_load(tmp_path, orthonet18_ref, monkeypatch):
    src = _save(orthonet18_ref.state_dict(), tmp_path / "o18.pth")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the destination was checked")
    monkeypatch.setattr(torch, "load", no_load)
    for dst, why in ((tmp_path / "a_file" / "o18.pdparams", "is a file, not a folder"),
                     (tmp_path / "a_file" / "sub" / "o18.pdparams", "is a file, not a folder"),
                     (tmp_path / "a_folder", "it is a folder")):
        with pytest.raises(ConversionError, match=f"cannot write {dst}: .*{why}"):
            convert_checkpoint(src, dst, "orthonet18")
    if os.geteuid() != 0:  # root writes through permissions
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(ConversionError, match="not writable"):
            convert_checkpoint(src, tmp_path / "ro" / "o18.pdparams", "orthonet18")
    monkeypatch.undo()
    # the command line: one line, no traceback (it was an OSError traceback)
    proc = _run_cli(src, tmp_path / "a_file" / "o18.pdparams", "--arch", "orthonet18")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "is a file, not a folder" in proc.stderr


def _deflated_copy(src: str, dst: str) -> str:
    """``src`` (torch.save's zip, members stored) with every member deflate-compressed."""
    import zipfile
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return dst


def _deflate_bomb(path, gib: int = 1) -> str:
    """A torch.save-format checkpoint whose one tensor, fc.weight, is ``gib`` GiB of zeros
    stored deflate-compressed (about 1 MB per GiB on disk), as the issue's probe built."""
    import collections
    import pickle
    import zipfile
    numel = (gib << 30) // 4
    storage, tensor = object(), object()

    class Pickler(pickle.Pickler):  # torch.save's data.pkl, without allocating the tensor
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj is storage else None

        def reducer_override(self, obj):
            if obj is tensor:
                return (torch._utils._rebuild_tensor_v2,
                        (storage, 0, (numel,), (1,), False, collections.OrderedDict()))
            return NotImplemented

    pkl = __import__("io").BytesIO()
    Pickler(pkl, protocol=2).dump({"fc.weight": tensor})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pkl.getvalue())
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        with zf.open("archive/data/0", "w", force_zip64=True) as f:
            chunk = bytes(64 << 20)
            for _ in range((gib << 30) // len(chunk)):
                f.write(chunk)
    return str(path)


def test_compressed_checkpoints_convert_and_bombs_are_refused_unread(tmp_path, orthonet18_ref,
                                                                      monkeypatch):
    # A deflated archive of a real checkpoint converts like the original.
    src = _deflated_copy(_save(orthonet18_ref.state_dict(), tmp_path / "o18.pth"),
                         str(tmp_path / "o18_deflated.pth"))
    assert os.path.getsize(src) < os.path.getsize(tmp_path / "o18.pth")
    convert_checkpoint(src, tmp_path / "o18.pdparams", "orthonet18")
    loaded = paddle.load(str(tmp_path / "o18.pdparams"), return_numpy=True)
    np.testing.assert_array_equal(loaded["conv1.weight"], orthonet18_ref.conv1.weight.detach().numpy())

    # 1 GiB of zeros in about 1 MB: refused from the zip's declared sizes, never unpacked
    # (torch allocates each member's declared size). orthonet18 with 1000 classes holds
    # 11,776,552 trainable float32 values (+ BN statistics and small banks): the bound is
    # 4x that + 64 MB, about 244 MB.
    bomb = _deflate_bomb(tmp_path / "bomb.pth")
    assert os.path.getsize(bomb) < 2 << 20

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load unpacked the bomb")
    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(ConversionError, match=r"would unpack to 1,024 MB .* more than") as info:
        convert_checkpoint(bomb, tmp_path / "bomb.pdparams", "orthonet18")
    bound = int(re.search(r"more than (\d+) MB", str(info.value)).group(1))
    assert 4 * 4 * 11_776_552 / 2**20 + 64 <= bound < 4 * 4 * 11_776_552 * 1.05 / 2**20 + 64
    assert not (tmp_path / "bomb.pdparams").exists()


SIGTERM_DRIVER = """
import os, runpy, signal, sys, time
import paddle
real_save, ACTION = paddle.save, sys.argv[1]
def save_then_sigterm(obj, path, *args, **kwargs):  # SIGTERM while the temp file is there
    real_save(obj, path, *args, **kwargs)
    print("temp file", os.path.basename(path), os.path.getsize(path), flush=True)
    if ACTION == "full":  # the disk fills up instead
        raise OSError(28, "No space left on device")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
paddle.save = save_then_sigterm
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python tools/x.py` does
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_sigterm_or_a_full_disk_mid_write_end_in_one_line_leaving_no_temp_file(tmp_path, orthonet18_ref):
    src = _save(orthonet18_ref.state_dict(), tmp_path / "o18.pth")
    out = tmp_path / "out"
    out.mkdir()
    for action, code, last in (("sigterm", 143, "terminated (SIGTERM)"),
                               ("full", 2, f"error: OSError: [Errno 28] cannot write "
                                           f"{out / 'o18.pdparams'}: No space left on device")):
        proc = subprocess.run([sys.executable, "-c", SIGTERM_DRIVER, action, CLI, src,
                               out / "o18.pdparams", "--arch", "orthonet18"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert "temp file .partial-o18.pdparams" in proc.stdout  # it came mid-write
        assert proc.returncode == code, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == last, proc.stderr
        assert not any(w in proc.stderr for w in ("Traceback", "FatalError", "C++"))  # Paddle's
        assert os.listdir(out) == []


def test_sizes_a_model_cannot_have_are_refused_before_anything_is_built(tmp_path, monkeypatch):
    # --input-size 100000 would draw filter banks of 64 x 25000 x 25000 values
    monkeypatch.setattr(op.convert, "build_model", lambda *a, **k: pytest.fail("built a model"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read the checkpoint"))
    for kwargs, message in (({"input_size": 100_000}, "input_size must be an integer >= 1 and <= 8192"),
                            ({"num_classes": 10**10}, "num_classes must be an integer >= 1 and <= 1000000"),
                            ({"num_classes": 0}, "num_classes must be an integer >= 1")):
        with pytest.raises(ConversionError, match=message):
            convert_checkpoint(tmp_path / "a.pth", tmp_path / "a.pdparams", "orthonet18", **kwargs)
        with pytest.raises(ConversionError, match=message):
            convert_state_dict({"fc.weight": torch.zeros(2, 2)}, "orthonet18", **kwargs)
