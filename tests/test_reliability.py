"""Runs never lose or mix work; bad input never hangs and never runs code (issue 12).

Oracles are the files on disk: a refused command leaves every byte of the run folder as it
was, a crafted pickle's payload (a shell command creating a marker file) never runs.
"""
import io
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from data_files import make_cifar_archive
from orthonets_paddle.data import build_dataloader
from orthonets_paddle.data.datasets import Cifar10, DataFileError
from orthonets_paddle.engine import CheckpointError, NonFiniteLossError, load_states, train
from orthonets_paddle.engine.checkpoint import RunFolderError, verify_set
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.utils.io import TMP_MARK, UnsafePickleError, safe_loads, sha256_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                              n_train=16, n_test=8)


def tiny(archive, out, *extra, epochs=1):
    return [f"Global.output_dir={out}", f"Global.epochs={epochs}", "Global.progress_bar=False",
            "Global.use_visualdl=False", "Global.plot=False",
            f"DataLoader.Train.dataset.data_file={archive}",
            f"DataLoader.Eval.dataset.data_file={archive}",
            "DataLoader.Train.sampler.batch_size=8", "DataLoader.Eval.sampler.batch_size=8",
            "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
            "Arch.width=4", "Optimizer.lr={name: Piecewise, decay_epochs: [1], values: [0.1, 0.01]}", *extra]


def snapshot(folder):
    """Every file's bytes (the oracle for 'nothing was written')."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.fixture(scope="module")
def finished(archive, tmp_path_factory):
    """A finished 2-epoch run with epoch_1/epoch_2 sets; tests copy it."""
    out = tmp_path_factory.mktemp("runs") / "done"
    train(load_config(CFG, tiny(archive, out, "Global.save_interval=1", epochs=2)))
    return out


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- bad data
def _image_folder(root, bad_name):
    for c in ("a", "b"):
        os.makedirs(root / c, exist_ok=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    bad = root / "b" / bad_name
    bad.write_bytes(b"" if bad_name.endswith(".jpg") else b"this is text, not a PNG\n")
    return bad


_IMAGES = "[{Resize: {size: 32}}, {ToTensor: {}}]"


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("tool", ["train", "eval"])
def test_unreadable_image_ends_the_command_with_one_message(tmp_path, workers, tool):
    bad = _image_folder(tmp_path / "imgs", "zero.jpg" if workers else "text.png")
    out = tmp_path / "run"
    ds = f"{{name: ImageFolder, root: {tmp_path / 'imgs'}, transforms: {_IMAGES}}}"
    over = [f"Global.output_dir={out}", "Global.epochs=1", "Global.progress_bar=False",
            "Global.use_visualdl=False", "Arch.width=4", "Arch.class_num=2",
            f"DataLoader.Train.dataset={ds}", f"DataLoader.Eval.dataset={ds}",
            "DataLoader.Train.sampler.batch_size=2", "DataLoader.Eval.sampler.batch_size=2",
            "DataLoader.Train.sampler.drop_last=False",
            f"DataLoader.Train.loader.num_workers={workers}", f"DataLoader.Eval.loader.num_workers={workers}"]
    if tool == "eval":
        from orthonets_paddle.models import build_model_from_config
        import paddle
        model = build_model_from_config({"name": "orthonet18", "class_num": 2, "stem": "cifar",
                                         "width": 4})
        paddle.save(model.state_dict(), str(tmp_path / "w.pdparams"))
        over.append(f"Global.pretrained_model={tmp_path / 'w.pdparams'}")
    args = [a for o in over for a in ("-o", o)]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", f"{tool}.py"), "-c", CFG,
                           *args], capture_output=True, text=True, env=ENV, timeout=100)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(bad) in lines[0] and "DataFileError" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Blocking queue" not in proc.stderr


def test_loader_raises_the_dataset_error_in_the_main_process(tmp_path):
    bad = _image_folder(tmp_path / "imgs", "text.png")
    loader = build_dataloader({"dataset": {"name": "ImageFolder", "root": str(tmp_path / "imgs"),
                                           "transform_ops": [{"ToTensor": {}}]},
                               "batch_size": 7, "shuffle": False}, "eval")
    with pytest.raises(DataFileError, match=str(bad)):
        list(loader)
    assert loader.dataset.class_names == ["a", "b"]  # attributes pass through the guard


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_images_leaves_them_out_with_a_warning(tmp_path, workers, caplog):
    bad = _image_folder(tmp_path / "imgs", "text.png")
    (tmp_path / "imgs" / "b" / "zero.jpg").write_bytes(b"")
    loader = build_dataloader({"dataset": {"name": "ImageFolder", "root": str(tmp_path / "imgs"),
                                           "transform_ops": [{"ToTensor": {}}]},
                               "batch_size": 2, "shuffle": False, "num_workers": workers,
                               "skip_bad_images": True}, "eval")
    logger = logging.getLogger("orthonets_paddle")
    logger.addHandler(caplog.handler)
    try:
        batches = list(loader)
    finally:
        logger.removeHandler(caplog.handler)
    # 8 files sorted per class: a/0 a/1 a/2 | b/0 b/1 b/2 b/text.png b/zero.jpg; batches of 2,
    # and the last batch (both bad) is dropped.
    labels = [int(v) for _, y in batches for v in y.numpy()]
    assert labels == [0, 0, 0, 1, 1, 1] and len(batches) == 3
    assert all(len(b) == 2 for b in batches)
    assert loader.skipped == 2
    assert str(bad) in caplog.text and "zero.jpg" in caplog.text and "2 so far" in caplog.text


# ----------------------------------------------------------------------------- run folder
def test_new_run_into_a_finished_run_is_refused(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    with pytest.raises(RunFolderError, match="already holds a run's checkpoints.*Global.overwrite=True"):
        train(load_config(CFG, tiny(archive, run)))
    assert snapshot(run) == before


def test_overwrite_replaces_the_previous_run(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    train(load_config(CFG, tiny(archive, run, "Global.overwrite=True")))
    names = os.listdir(run)
    assert "epoch_2.pdparams" not in names  # the old run's sets are gone, not mixed in
    assert load_states(str(run / "latest.pdstates"))["epoch"] == 0
    assert verify_set(str(run / "latest")) is not None


def test_resume_with_another_architecture_changes_nothing(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    with pytest.raises(CheckpointError) as info:
        train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}",
                                    "Arch.name=resnet18", "Arch.in_channels=1", epochs=3)))
    msg = str(info.value)
    assert "Arch.name: checkpoint 'orthonet18', this run 'resnet18'" in msg
    assert "Arch.in_channels: checkpoint 3, this run 1" in msg
    assert "Arch.width" not in msg  # only the keys that differ
    assert snapshot(run) == before


def test_resume_may_change_the_schedule(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    res = train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}",
                                      "Optimizer.lr.learning_rate=0.05", epochs=3)))
    assert len(res["records"]["epochs"]) == 3
    assert load_states(str(run / "latest.pdstates"))["epoch"] == 2


def test_resume_into_a_foreign_folder_changes_nothing(archive, finished, tmp_path):
    other = copy_run(finished, tmp_path / "other")
    before = snapshot(other)
    with pytest.raises(RunFolderError, match="resuming .* into it would overwrite another run"):
        train(load_config(CFG, tiny(archive, other, f"Global.checkpoints={finished}/epoch_1",
                                    epochs=3)))
    assert snapshot(other) == before


def test_resuming_a_finished_run_says_so(archive, finished, tmp_path, caplog):
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    logger = logging.getLogger("orthonets_paddle")
    logger.addHandler(caplog.handler)
    try:
        res = train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}", epochs=2)))
    finally:
        logger.removeHandler(caplog.handler)
    assert "it has done 2 epoch(s) and Global.epochs is 2, so there is nothing to train" in caplog.text
    assert "continuing at epoch" not in caplog.text
    assert res["final"] is None and snapshot(run) == before


def test_a_second_process_is_refused_and_a_stale_lock_taken_over(archive, tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    before = snapshot(run)
    with pytest.raises(RunFolderError, match=f"in use by another run \\(pid {os.getpid()}"):
        train(load_config(CFG, tiny(archive, run)))
    assert snapshot(run) == before

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    (run / ("latest.pdparams" + TMP_MARK + "x1y2")).write_bytes(b"half a file")
    logger = logging.getLogger("orthonets_paddle")
    logger.addHandler(caplog.handler)
    try:
        train(load_config(CFG, tiny(archive, run)))
    finally:
        logger.removeHandler(caplog.handler)
    assert f"took over the lock of a process that no longer runs (pid {dead.pid})" in caplog.text
    names = os.listdir(run)
    assert "run.lock" not in names and not [n for n in names if TMP_MARK in n]
    assert verify_set(str(run / "latest")) is not None


# ----------------------------------------------------------------------------- sets
def test_mixed_latest_is_refused_naming_the_consistent_sets(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    shutil.copy(run / "epoch_1.pdopt", run / "latest.pdopt")  # a save cut between two parts
    before = snapshot(run)
    with pytest.raises(CheckpointError) as info:
        train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}", epochs=3)))
    msg = str(info.value)
    assert "parts of different saves" in msg
    assert f"{run}/epoch_1, {run}/epoch_2" in msg
    assert snapshot(run) == before


def test_save_cut_before_its_manifest_moved_still_resumes(archive, finished, tmp_path):
    """All parts renamed, the new manifest still staged as -next: the set is whole."""
    run = copy_run(finished, tmp_path / "run")
    os.replace(run / "latest.manifest.json", run / "latest.manifest-next.json")
    shutil.copy(run / "epoch_1.manifest.json", run / "latest.manifest.json")  # the older save's
    manifest = verify_set(str(run / "latest"))
    assert manifest is not None and manifest["epoch"] == 1
    res = train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}", epochs=3)))
    assert len(res["records"]["epochs"]) == 3


def test_a_manifest_of_another_set_does_not_vouch_for_latest(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    shutil.copy(run / "epoch_1.manifest.json", run / "latest.manifest.json")
    assert verify_set(str(run / "latest")) is None
    assert verify_set(str(run / "epoch_1")) is not None


def test_every_manifest_matches_its_files(finished):
    for prefix in ("latest", "epoch_1", "epoch_2", "best_model", "final_model"):
        manifest = json.load(open(finished / f"{prefix}.manifest.json"))
        for name, entry in manifest["files"].items():
            assert sha256_file(str(finished / name)) == entry["sha256"]
    assert json.load(open(finished / "epoch_1.manifest.json"))["epoch"] == 0
    assert json.load(open(finished / "latest.manifest.json"))["epoch"] == 1


# ----------------------------------------------------------------------------- pickles
class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_resume_state_runs_nothing(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    marker = tmp_path / "pwned"
    states = {"epoch": 1, "payload": _Payload(marker)}
    (run / "latest.pdstates").write_bytes(pickle.dumps(states, protocol=4))
    # A careful attacker also fixes the manifest, so only the unpickler stands in the way.
    manifest = json.load(open(run / "latest.manifest.json"))
    manifest["files"]["latest.pdstates"] = {"sha256": sha256_file(str(run / "latest.pdstates")),
                                            "bytes": os.path.getsize(run / "latest.pdstates")}
    (run / "latest.manifest.json").write_text(json.dumps(manifest))
    before = snapshot(run)
    with pytest.raises(CheckpointError, match="refusing .*latest.pdstates: it refers to posix.system"):
        train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}", epochs=3)))
    assert not marker.exists() and snapshot(run) == before


def test_crafted_cifar_member_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataFileError, match="refusing .*test_batch: it refers to posix.system"):
        Cifar10(data_file=str(path), mode="test")
    assert not marker.exists()


def test_safe_unpickler_admits_what_the_files_hold():
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, "x", b"y", None],
           "c": (np.float64(1.5), np.int64(3)), "d": {"e": True}}
    back = safe_loads(pickle.dumps(obj, protocol=4))
    np.testing.assert_array_equal(back["a"], obj["a"])
    assert back["b"] == obj["b"] and back["c"] == obj["c"] and back["d"] == obj["d"]
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        import collections
        safe_loads(pickle.dumps(collections.Counter("ab")))


# ----------------------------------------------------------------------------- messages
def test_nan_in_the_first_epoch_names_no_missing_checkpoint(archive, tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as info:
        train(load_config(CFG, tiny(archive, out, "Optimizer.lr.learning_rate=1e30", epochs=2)))
    assert "No checkpoint was saved yet" in str(info.value)
    assert "latest" not in str(info.value)
    assert not os.path.exists(out / "latest.pdparams")


_INTERRUPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
import paddle
from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine import train
calls = [0]
orig = paddle.Tensor.backward
def backward(self, *a, **k):
    calls[0] += 1
    if calls[0] == {at}:
        {action}
    return orig(self, *a, **k)
paddle.Tensor.backward = backward
run(lambda: train(load_config({cfg!r}, {overrides!r})))
"""


@pytest.mark.parametrize("action", [
    "os.kill(os.getpid(), signal.SIGINT)",
    "raise OSError('(External) KeyboardInterrupt (at backward)')",  # what Paddle raises
])
def test_ctrl_c_exits_130_with_latest_intact(archive, tmp_path, action):
    out = tmp_path / "run"
    # 16 samples / batch 8 = 2 steps per epoch: step 3 is in the second epoch.
    script = _INTERRUPT.format(root=ROOT, at=3, action=action, cfg=CFG,
                               overrides=tiny(archive, str(out), epochs=2))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=ENV, timeout=100)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert verify_set(str(out / "latest")) is not None
    assert load_states(str(out / "latest.pdstates"))["epoch"] == 0
    assert not (out / "run.lock").exists()
