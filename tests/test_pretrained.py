"""One loader for build_model(pretrained=...), load_pretrained and Global.pretrained_model."""
import logging
import os
import urllib.error
import urllib.request

import numpy as np
import paddle
import pytest

from orthonets_paddle import build_model, load_pretrained
from orthonets_paddle.models.pretrained import WeightsError, cache_dir

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
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_pretrained(model, str(bad))
    np.testing.assert_array_equal(model.fc.weight.numpy(), before)  # nothing half-loaded


def test_offline_url_names_the_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("ORTHONETS_HOME", str(tmp_path / "home"))

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    model = build_model("orthonet18", num_classes=10, **SMALL)
    target = os.path.join(cache_dir(), "orthonet18_cifar.pdparams")
    with pytest.raises(WeightsError, match="place it at " + target.replace(".", r"\.")):
        load_pretrained(model, "https://example.org/w/orthonet18_cifar.pdparams")
    assert not [f for f in os.listdir(cache_dir()) if f.endswith(".part")]  # no partial file left


def test_url_served_from_the_cache_when_present(monkeypatch, tmp_path, saved):
    src, path = saved
    monkeypatch.setenv("ORTHONETS_HOME", str(tmp_path / "home"))
    os.makedirs(cache_dir())
    os.replace(path, os.path.join(cache_dir(), "orthonet18_cifar.pdparams"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download expected"))
    model = build_model("orthonet18", num_classes=10, **SMALL)
    assert load_pretrained(model, "https://example.org/w/orthonet18_cifar.pdparams").clean
    np.testing.assert_array_equal(model.conv1.weight.numpy(), src.conv1.weight.numpy())
