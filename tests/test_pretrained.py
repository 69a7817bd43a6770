"""One loader for build_model(pretrained=...), load_pretrained and Global.pretrained_model."""
import logging
import os
import urllib.error
import urllib.request

import numpy as np
import paddle
import pytest

from orthonets_paddle import build_model, load_pretrained
from orthonets_paddle.models.pretrained import WeightsError, cache_dir, cache_path

SMALL = dict(stem="cifar", width=4)


@pytest.fixture()
def saved(tmp_path):
    model = build_model("orthonet18", num_classes=10, seed=3, **SMALL)
    path = tmp_path / "w.pdparams"
    paddle.save(model.state_dict(), str(path))
    return model, str(path)


def test_suffix_optional_and_filters_come_from_the_file(saved):
    src, path = saved
    model = build_model("orthonet18", num_classes=10, pretrained=path[: -len(".pdparams")], **SMALL)
    np.testing.assert_array_equal(model.layer3[0].att.filters.numpy(), src.layer3[0].att.filters.numpy())
    np.testing.assert_array_equal(model.fc.weight.numpy(), src.fc.weight.numpy())


def test_other_class_count_skips_classifier_and_says_so(saved, caplog):
    _, path = saved
    model = build_model("orthonet18", num_classes=3, **SMALL)
    logger = logging.getLogger("orthonets_paddle")  # may not propagate once the trainer set it up
    logger.addHandler(caplog.handler)
    try:
        report = load_pretrained(model, path)
    finally:
        logger.removeHandler(caplog.handler)
    assert report.skipped_classifier and not report.mismatched and not report.missing
    assert "classifier skipped" in report.summary()
    assert "classifier skipped" in caplog.text  # a warning, not lost at debug level
    with pytest.raises(WeightsError, match="fc.weight file \\[32, 10\\] vs model \\[32, 3\\]"):
        load_pretrained(build_model("orthonet18", num_classes=3, **SMALL), path, strict=True)


def test_other_arch_lists_mismatches_and_strict_refuses(saved):
    _, path = saved
    model = build_model("resnet18", num_classes=10, **SMALL)
    report = load_pretrained(model, path, verbose=False)
    assert "layer1.0.att.fc1.weight" in report.unexpected and report.loaded
    with pytest.raises(WeightsError, match="unexpected in file"):
        load_pretrained(model, path, strict=True)


def test_missing_and_corrupt_files_are_clear_errors(saved, tmp_path):
    _, path = saved
    model = build_model("orthonet18", num_classes=10, **SMALL)
    with pytest.raises(WeightsError, match="weights file not found: .*nope"):
        load_pretrained(model, str(tmp_path / "nope"))
    data = open(path, "rb").read()
    bad = tmp_path / "truncated.pdparams"
    bad.write_bytes(data[: len(data) // 3])
    before = model.fc.weight.numpy().copy()
    with pytest.raises(WeightsError, match="truncated or (corrupt|crafted)"):
        load_pretrained(model, str(bad))
    np.testing.assert_array_equal(model.fc.weight.numpy(), before)  # nothing half-loaded


def test_offline_url_names_the_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("ORTHONETS_HOME", str(tmp_path / "home"))

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    model = build_model("orthonet18", num_classes=10, **SMALL)
    url = "https://example.org/w/orthonet18_cifar.pdparams"
    target = cache_path(url)
    assert target.startswith(cache_dir()) and target.endswith("orthonet18_cifar.pdparams")
    with pytest.raises(WeightsError, match="place it at " + target.replace(".", r"\.")):
        load_pretrained(model, url)
    # No partial file, no empty folder left behind.
    assert not os.path.exists(cache_dir()) or not [
        f for _, _, files in os.walk(cache_dir()) for f in files] and not os.listdir(cache_dir())


def test_url_served_from_the_cache_when_present(monkeypatch, tmp_path, saved):
    src, path = saved
    monkeypatch.setenv("ORTHONETS_HOME", str(tmp_path / "home"))
    url = "https://example.org/w/orthonet18_cifar.pdparams"
    os.makedirs(os.path.dirname(cache_path(url)))
    os.replace(path, cache_path(url))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download expected"))
    model = build_model("orthonet18", num_classes=10, **SMALL)
    assert load_pretrained(model, url).clean
    np.testing.assert_array_equal(model.conv1.weight.numpy(), src.conv1.weight.numpy())


class _Served:
    """A fake HTTP response serving ``data``."""

    def __init__(self, data):
        import io
        self.stream = io.BytesIO(data)

    def read(self, *a):
        return self.stream.read(*a)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_cache_is_keyed_by_the_full_url(monkeypatch, tmp_path):
    """Two URLs with the same file name are two cache entries, each with its own weights."""
    monkeypatch.setenv("ORTHONETS_HOME", str(tmp_path / "home"))
    sources, blobs = [], {}
    for i, url in enumerate(("https://one.example/x/w.pdparams", "https://two.example/y/w.pdparams")):
        paddle.seed(10 + i)  # different classifier initialisations
        model = build_model("orthonet18", num_classes=10, **SMALL)
        p = tmp_path / f"{i}.pdparams"
        paddle.save(model.state_dict(), str(p))
        sources.append(model)
        blobs[url] = p.read_bytes()
    assert not np.array_equal(sources[0].fc.weight.numpy(), sources[1].fc.weight.numpy())
    served = []

    def fake(url, timeout=None):
        served.append(url)
        return _Served(blobs[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake)
    for url, src in zip(blobs, sources):
        model = build_model("orthonet18", num_classes=10, **SMALL)
        load_pretrained(model, url)
        np.testing.assert_array_equal(model.fc.weight.numpy(), src.fc.weight.numpy())
    assert served == list(blobs)  # each URL downloaded once, neither served from the other's file
    assert len({cache_path(u) for u in blobs}) == 2


def test_download_checked_against_sha256(monkeypatch, tmp_path, saved):
    import hashlib
    _, path = saved
    data = open(path, "rb").read()
    monkeypatch.setenv("ORTHONETS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _Served(data))
    url = "https://example.org/w/good.pdparams"
    model = build_model("orthonet18", num_classes=10, **SMALL)
    with pytest.raises(WeightsError, match="does not have the expected sha256"):
        load_pretrained(model, url, sha256="0" * 64)
    assert not os.path.exists(cache_path(url))  # the wrong file is not cached
    good = hashlib.sha256(data).hexdigest()
    assert load_pretrained(model, url, sha256=good).clean
    assert os.path.isfile(cache_path(url))


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``: a real attack's shape."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_crafted_weights_file_runs_nothing(tmp_path):
    import pickle
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pdparams"
    state = {"conv1.weight": np.zeros((4, 3, 3, 3), "float32"), "x": _Payload(str(marker))}
    bad.write_bytes(pickle.dumps(state, protocol=4))
    model = build_model("orthonet18", num_classes=10, **SMALL)
    with pytest.raises(WeightsError, match="refusing .*evil.pdparams: it refers to posix.system.*can run code"):
        load_pretrained(model, str(bad))
    assert not marker.exists()


def test_se_weights_without_excitation_biases_say_how_to_load_them(tmp_path):
    from orthonets_paddle.models import build_model
    from orthonets_paddle.models.pretrained import load_pretrained
    small = dict(num_classes=3, stem="cifar", width=8)
    old = build_model("se_resnet18", excitation_bias=False, **small)
    path = str(tmp_path / "old_se.pdparams")
    paddle.save(old.state_dict(), path)
    with pytest.raises(WeightsError, match=r"no excitation biases: .*-o Arch\.excitation_bias=False"):
        load_pretrained(build_model("se_resnet18", **small), path, strict=True, verbose=False)
    again = build_model("se_resnet18", excitation_bias=False, **small)  # the fix it names
    assert load_pretrained(again, path, strict=True, verbose=False).clean
