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
from orthonets_paddle.engine.checkpoint import RunFolderError, load_checkpoint
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.utils.io import UnsafePickleError, safe_load
from orthonets_paddle.utils.io import file_digest as sha256_file

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
    # an image header, then no image: found when read (bad headers stop at start)
    bad.write_bytes(b"\xff\xd8\xff" if bad_name.endswith(".jpg") else b"\x89PNG\r\n\x1a\nthis is text\n")
    return bad


_IMAGES = "[{Resize: {size: 32}}, {ToTensor: {}}]"


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("tool", ["train", "eval"])
def test_unreadable_image_ends_the_command_with_one_message(tmp_path, workers, tool):
    bad = _image_folder(tmp_path / "imgs", "zero.jpg" if workers else "text.png")
    out = tmp_path / "run"
    ds = f"{{name: ImageFolder, root: {tmp_path / 'imgs'}, transform_ops: {_IMAGES}}}"
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
                               "sampler": {"batch_size": 7, "shuffle": False}}, "eval")
    with pytest.raises(DataFileError, match=str(bad)):
        list(loader)
    assert loader.dataset.class_names == ["a", "b"]  # attributes pass through the guard


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_images_leaves_them_out_with_a_warning(tmp_path, workers, caplog):
    bad = _image_folder(tmp_path / "imgs", "text.png")
    (tmp_path / "imgs" / "b" / "zero.jpg").write_bytes(b"\xff\xd8\xff")
    loader = build_dataloader({"dataset": {"name": "ImageFolder", "root": str(tmp_path / "imgs"),
                                           "transform_ops": [{"ToTensor": {}}]},
                               "sampler": {"batch_size": 2, "shuffle": False},
                               "loader": {"num_workers": workers, "skip_bad_images": True}}, "eval")
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
    assert load_checkpoint(str(run))["states"]["epoch"] == 0


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


def test_a_second_process_is_refused_and_a_dead_ones_lock_is_not(archive, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import filelock, sys, time\n"
                               f"lock = filelock.FileLock({str(run / 'run.lock')!r})\n"
                               "lock.acquire()\n"
                               "print('held', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(run)
        with pytest.raises(RunFolderError, match=f"in use by another run \\(it holds {run}/run.lock"):
            train(load_config(CFG, tiny(archive, run)))
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
    train(load_config(CFG, tiny(archive, run)))  # the killed holder's lock file does not block
    assert load_checkpoint(str(run))["states"]["epoch"] == 0


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


def test_every_states_file_binds_its_set(finished):
    for prefix, epoch in (("latest", 1), ("epoch_1", 0), ("epoch_2", 1)):
        st = safe_load(str(finished / f"{prefix}.pdstates"))
        assert st["epoch"] == epoch and st["format"] == 2
        for suffix in (".pdparams", ".pdopt"):
            assert st["digests"][suffix] == sha256_file(str(finished / (prefix + suffix)))
    final, latest = (safe_load(str(finished / f"{p}.pdparams"), encoding="latin1")
                     for p in ("final_model", "latest"))
    assert all(np.array_equal(final[k], latest[k]) for k in latest)  # one commit


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
    back = safe_load(pickle.dumps(obj, protocol=4))
    np.testing.assert_array_equal(back["a"], obj["a"])
    assert back["b"] == obj["b"] and back["c"] == obj["c"] and back["d"] == obj["d"]
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        import collections
        safe_load(pickle.dumps(collections.Counter("ab")))


# ----------------------------------------------------------------------------- messages
def test_nan_in_the_first_epoch_names_no_missing_checkpoint(archive, tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as info:
        train(load_config(CFG, tiny(archive, out, "Optimizer.lr.values=[1e30,1e30]", epochs=2)))
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
    assert load_checkpoint(str(out))["states"]["epoch"] == 0
    RunLock(str(out)).acquire().release()  # released


# ----------------------------------------------------------------------------- issue 20
# Each test below failed on the code before issue 20 (checked against main's tree).
import signal as _signal  # noqa: E402

from orthonets_paddle.engine.checkpoint import RunLock, load_checkpoint, save_checkpoint  # noqa: E402


def _save(prefix, model, opt, epoch):
    """A checkpoint set as train() writes it (states of ``epoch``)."""
    import paddle
    from orthonets_paddle.engine.logger import new_records
    from orthonets_paddle.engine.trainer import _states
    state = {"best_acc": 0.5, "best_epoch": epoch, "global_step": epoch}
    save_checkpoint(prefix, model, opt, _states(epoch, state, new_records(),
                                                paddle.optimizer.lr.StepDecay(0.1, 10)))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_a_kill_at_any_step_of_a_save_leaves_a_resumable_run(tmp_path, k):
    """os._exit at the k-th paddle.save or rename of a save (1-2: staging the files, 3: the
    commit rename, 4-6: moving them in): the run resumes from the old or the new set, never
    from a mix, a start rolls a committed set forward and the next save clears the rest."""
    import paddle
    from orthonets_paddle.engine.checkpoint import roll_forward
    prefix = str(tmp_path / "latest")
    model = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.SGD(parameters=model.parameters())
    _save(prefix, model, opt, 0)
    pid = os.fork()
    if pid == 0:  # the killed process
        try:
            calls = [0]

            def hook(orig):
                def f(*a, **kw):
                    calls[0] += 1
                    if calls[0] == k:
                        os._exit(9)
                    return orig(*a, **kw)
                return f
            os.replace, os.rename, paddle.save = hook(os.replace), hook(os.rename), hook(paddle.save)
            model.weight.set_value(model.weight + 1)
            _save(prefix, model, opt, 1)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    before = load_checkpoint(str(tmp_path))["states"]["epoch"]
    lock = RunLock(str(tmp_path)).acquire()
    roll_forward(str(tmp_path))
    lock.release()
    after = load_checkpoint(str(tmp_path))["states"]["epoch"]
    assert before == after == (0 if k <= 3 else 1)
    _save(prefix, model, opt, 2)  # a later save clears what the kill left
    assert sorted(os.listdir(tmp_path)) == ["latest.pdopt", "latest.pdparams", "latest.pdstates",
                                            "run.lock"]


def test_outputs_honour_the_umask(tmp_path):
    from orthonets_paddle.utils.io import write_text
    old = os.umask(0o027)
    try:
        write_text("x", str(tmp_path / "a.txt"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o640


def test_sigterm_stops_training_like_ctrl_c(archive, tmp_path):
    out = tmp_path / "run"
    script = _INTERRUPT.format(root=ROOT, at=3, action="os.kill(os.getpid(), signal.SIGTERM)",
                               cfg=CFG, overrides=tiny(archive, str(out), epochs=2))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=ENV, timeout=100)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "C++" not in proc.stderr and "Traceback" not in proc.stderr
    assert f"-o Global.checkpoints={out}" in proc.stderr.strip().splitlines()[-1]
    assert load_checkpoint(str(out))["states"]["epoch"] == 0
    RunLock(str(out)).acquire().release()  # released


def test_pickle_bombs_are_refused_before_allocating():
    bytearray_bomb = b"\x80\x02cbuiltins\nbytearray\nJ\x00\x00\x00\x60\x85R."  # 1.6 GB
    length_bomb = b"\x80\x04\x8e" + (5 << 30).to_bytes(8, "little") + b"abc."  # claims 5 GB
    # one 1 MB string latin1-encoded 200 times through the memo: 200 MB from 1 MB
    s = pickle.dumps("x" * (1 << 20), protocol=2)[2:-1]
    memo = (b"\x80\x02(" + s + b"q\x00" + b"c_codecs\nencode\nq\x01"
            + b"h\x01h\x00X\x06\x00\x00\x00latin1\x86R" * 1 + b"0"
            + b"h\x01h\x00X\x06\x00\x00\x00latin1\x86R0" * 200 + b"l.")
    for bomb in (bytearray_bomb, memo):
        with pytest.raises(UnsafePickleError):
            safe_load(bomb)
    with pytest.raises(EOFError):  # read from memory: the claim stops short, nothing allocated
        safe_load(length_bomb)


def _config_with(tmp_path, text):
    src = open(CFG).read() + text
    path = tmp_path / "c.yaml"
    path.write_text(src)
    return str(path)


def test_yaml_alias_bomb_fails_fast_with_a_short_line(tmp_path):
    levels = ["&l0 [" + ", ".join(["lol"] * 10) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = _config_with(tmp_path, "\nInfer:\n  class_names: [" + ", ".join(levels) + "]\n")
    assert os.path.getsize(path) < 5000
    with pytest.raises(ValueError, match="expand to more than") as err:
        load_config(path)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize("text,key", [("\nGlobal:\n  epochs: 7\n", "Global"),
                                      (None, "epochs")])
def test_duplicate_yaml_keys_and_sections_are_refused_with_the_line(tmp_path, text, key):
    path = _config_with(tmp_path, text or "")
    if text is None:  # a key repeated inside a section
        src = open(path).read().replace("Global:\n", "Global:\n  epochs: 3\n  epochs: 5\n", 1)
        open(path, "w").write(src)
    lines = open(path).read().splitlines()
    second = [i for i, l in enumerate(lines) if l.strip().startswith(key + ":")][1] + 1
    with pytest.raises(ValueError, match=rf"c.yaml:{second}: duplicate key '{key}'"):
        load_config(path)


def test_a_numeric_output_dir_override_is_a_path():
    assert load_config(CFG, ["Global.output_dir=2024"])["Global"]["output_dir"] == "2024"


def _cifar_tar(path, batch=None, link=False):
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + [
                "cifar-10-batches-py/test_batch"]:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
                continue
            data = pickle.dumps(batch, protocol=2)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_cifar_batch_with_fewer_labels_than_images_names_the_member(tmp_path):
    path = _cifar_tar(tmp_path / "c.tar.gz", {b"data": np.zeros((4, 3072), np.uint8),
                                             b"labels": [1, 2, 3]})
    with pytest.raises(DataFileError, match="data_batch_1 .* 4 images but 3 labels"):
        Cifar10(path)


def test_cifar_member_that_is_a_link_is_one_error(tmp_path):
    with pytest.raises(DataFileError, match="is a link"):
        Cifar10(_cifar_tar(tmp_path / "c.tar.gz", link=True))


def test_class_num_below_the_labels_fails_before_the_first_step(archive, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"labels 0\.\.9 but Arch.class_num is 5"):
        train(load_config(CFG, tiny(archive, str(out), "Arch.class_num=5")))
    assert not out.exists()


@pytest.mark.parametrize("dtype", ["float16", "float64", "int64", "nan", "intkey"])
def test_weights_of_other_dtypes_nan_or_int_keys(tmp_path, dtype):
    from orthonets_paddle import build_model
    from orthonets_paddle.models.pretrained import WeightsError, load_pretrained
    model = build_model("resnet18", num_classes=10, stem="cifar", width=4)
    ref = {k: v.numpy() for k, v in model.state_dict().items()}
    state = {k: v.astype(dtype if dtype not in ("nan", "intkey") else "float32")
             for k, v in ref.items()}
    if dtype == "nan":
        state["fc.weight"][0, 0] = np.nan
    if dtype == "intkey":
        state[5] = np.zeros(3, np.float32)
    path = str(tmp_path / "w.pdparams")
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=4)
    if dtype in ("float16", "float64"):
        load_pretrained(model, path, strict=True, verbose=False)
        got = model.state_dict()["fc.weight"]
        assert str(got.dtype) == "paddle.float32"
        np.testing.assert_allclose(got.numpy(), state["fc.weight"].astype(np.float32))
    else:
        with pytest.raises(WeightsError, match={"int64": "non-float", "nan": "NaN/inf",
                                                "intkey": "keys must be"}[dtype]):
            load_pretrained(model, path, strict=True, verbose=False)


def test_a_transform_entry_that_is_a_number_is_one_error(tmp_path):
    src = open(CFG).read()
    i = src.index("transform_ops:")
    j = src.index("\n", i)
    indent = src[j + 1:].split("-")[0]
    path = tmp_path / "t.yaml"
    path.write_text(src[:j + 1] + indent + "- 5\n" + src[j + 1:])
    with pytest.raises(ValueError, match=r"transform_ops\[0\] is 5; each entry is one op"):
        load_config(str(path))


def test_infer_reads_images_as_training_does(tmp_path):
    """Infer's reader is the datasets' one: a 16-bit PNG is scaled (32768 -> 128), not clipped
    to 255; an EXIF-rotated photo is read as displayed; a file claiming too many pixels is one
    InferError naming it, before it is decoded."""
    from PIL import Image

    from orthonets_paddle.deploy.infer import InferError, read_image

    p16 = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 6), 32768, np.uint16)).save(p16)
    assert read_image(str(p16), channels=1).max() == 128
    rot = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.fromarray(np.zeros((4, 8, 3), np.uint8)).save(rot, exif=exif)
    assert read_image(str(rot)).shape[:2] == (8, 4)
    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(big)
    os.environ["ORTHONETS_MAX_IMAGE_PIXELS"] = "1000000"
    try:
        with pytest.raises(InferError, match="big.png"):
            read_image(str(big))
    finally:
        del os.environ["ORTHONETS_MAX_IMAGE_PIXELS"]


# ----------------------------------------------------------------------------- issue 20, round 4
from orthonets_paddle.data import check_loader_samples  # noqa: E402


def _odd_folder(root, odd_name, odd_hw, size=40):
    """a/0..2, b/0..2 of size x size, and one odd image b/<odd_name> of odd_hw (h, w)."""
    for c in ("a", "b"):
        os.makedirs(root / c, exist_ok=True)
        for i in range(3):
            Image.fromarray(np.full((size, size, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    odd = root / "b" / odd_name
    Image.fromarray(np.zeros((*odd_hw, 3), np.uint8)).save(odd)
    return odd


def _folder_loader(root, ops, workers=0, batch=7):
    return build_dataloader({"dataset": {"name": "ImageFolder", "root": str(root),
                                         "transform_ops": ops},
                             "sampler": {"batch_size": batch, "shuffle": False},
                             "loader": {"num_workers": workers}}, "train",
                            image_shape=[3, 32, 32])


@pytest.mark.parametrize("odd_hw,ops", [
    ((40, 60), [{"Resize": {"size": 32}}, {"ToTensor": {}}]),       # a non-square photo
    ((1, 1), [{"CenterCrop": {"size": 32}}, {"ToTensor": {}}]),     # a crop larger than it
])
def test_a_probed_sample_of_another_size_is_one_line_before_the_first_step(tmp_path, odd_hw, ops):
    # 7 files sorted: a/0 a/1 a/2 b/0 b/1 b/2 b/odd -> the last is probed (first, middle, last)
    odd = _odd_folder(tmp_path / "imgs", "zz.png", odd_hw)
    loader = _folder_loader(tmp_path / "imgs", ops)
    with pytest.raises(DataFileError) as info:
        check_loader_samples(loader, 3, "DataLoader.Train", [3, 32, 32])
    msg = str(info.value)
    h, w = (32, 48) if odd_hw == (40, 60) else (1, 1)
    assert "\n" not in msg and str(odd) in msg and f"is 3x{h}x{w} after transform_ops" in msg
    assert "Global.image_shape is [3, 32, 32]" in msg and "Resize: {size: [32, 32]}" in msg
    assert "Global.image_shape=[3," not in msg  # one odd file: the config's shape is right


def test_transforms_giving_another_size_suggest_both_fixes(tmp_path):
    _odd_folder(tmp_path / "imgs", "3.png", (40, 40))
    loader = _folder_loader(tmp_path / "imgs", [{"Resize": {"size": 28}}, {"ToTensor": {}}])
    with pytest.raises(DataFileError, match=r"is 3x28x28 .* or set -o Global.image_shape="
                                            r"\[3,28,28\]"):
        check_loader_samples(loader, 3, "DataLoader.Train", [3, 32, 32])
    ok = _folder_loader(tmp_path / "imgs", [{"Resize": {"size": [32, 32]}}, {"ToTensor": {}}])
    check_loader_samples(ok, 3, "DataLoader.Train", [3, 32, 32])  # no error
    hwc = _folder_loader(tmp_path / "imgs", [{"Resize": {"size": [32, 32]}}])
    with pytest.raises(DataFileError, match="channels last.*ToTensor"):
        check_loader_samples(hwc, 3, "DataLoader.Train", [3, 32, 32])


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unprobed_sample_of_another_size_names_its_file_in_the_loader(tmp_path, workers):
    # b/0 (index 3, the middle) and b/2 (the last) are probed; b/1 is the wide one
    for c in ("a", "b"):
        os.makedirs(tmp_path / "imgs" / c, exist_ok=True)
        for i in range(3):
            hw = (40, 60) if (c, i) == ("b", 1) else (40, 40)
            Image.fromarray(np.zeros((*hw, 3), np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    loader = _folder_loader(tmp_path / "imgs", [{"Resize": {"size": 32}}, {"ToTensor": {}}],
                            workers, batch=1)  # batch 1: no other image to compare with
    check_loader_samples(loader, 3, "DataLoader.Train", [3, 32, 32])
    with pytest.raises(DataFileError, match=r"imgs/b/1.png \(sample 4\) is 3x32x48 .*"
                                            r"Global.image_shape is \[3, 32, 32\]"):
        list(loader)


def _poison(run, prefix, key_part, suffix=".pdparams"):
    """Put a NaN into the first tensor of ``prefix + suffix`` whose name contains key_part,
    and fix the set's digests (so only the NaN check stands in the way)."""
    import paddle
    path = str(run / (prefix + suffix))
    state = paddle.load(path, return_numpy=True)
    key = next(k for k in state if key_part in k and np.asarray(state[k]).dtype.kind == "f")
    state[key] = np.asarray(state[key]).copy()
    state[key].reshape(-1)[0] = np.nan
    paddle.save(state, path)
    if (run / f"{prefix}.pdstates").exists():
        _edit_states(run / f"{prefix}.pdstates", lambda st: st["digests"].update({suffix: sha256_file(path)}))
    return key


def _edit_states(path, edit):
    st = safe_load(str(path))
    edit(st)
    path.write_bytes(pickle.dumps(st, protocol=4))


def test_resuming_nan_weights_is_refused_naming_tensor_and_file(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    key = _poison(run, "latest", "fc.weight")
    before = snapshot(run)
    with pytest.raises(CheckpointError) as info:
        train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}", epochs=3)))
    msg = str(info.value)
    assert f"{run}/latest.pdparams holds NaN/inf values in {key} (1 of" in msg
    assert f"Global.checkpoints={run}/epoch_2" in msg and "\n" not in msg
    assert snapshot(run) == before


def test_pretrained_nan_weights_end_train_and_eval_with_one_line(archive, finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    key = _poison(run, "best_model", "conv")
    weights = f"Global.pretrained_model={run}/best_model.pdparams"
    from orthonets_paddle.models.pretrained import WeightsError
    from orthonets_paddle.engine.metrics import evaluate_from_config
    with pytest.raises(WeightsError, match=f"NaN/inf values: {key}"):
        evaluate_from_config(load_config(CFG, ["Arch.width=4", weights]))
    with pytest.raises(WeightsError, match=f"NaN/inf values: {key}"):
        train(load_config(CFG, tiny(archive, tmp_path / "o", weights)))
    assert not (tmp_path / "o").exists()


def _imagenet_list(root, files):
    """files: {relative name: (array, label)} -> the list file's path."""
    lines = []
    for name, (arr, label, *save) in files.items():
        Image.fromarray(arr).save(root / name, **(save[0] if save else {}))
        lines.append(f"{name} {label}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return str(root / "list.txt")


@pytest.mark.parametrize("decode", [None, "cv2", "pil"])
def test_imagenet_dataset_and_decode_image_read_as_the_datasets_do(tmp_path, decode, monkeypatch):
    """Without DecodeImage, and with it (either backend): a 16-bit PNG is scaled
    (32768 -> 128), an EXIF-rotated photo is read as displayed, a file claiming too many
    pixels is one DataFileError naming it."""
    from orthonets_paddle.data import ImageNetDataset
    from orthonets_paddle.data.transforms import build_transforms
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    listing = _imagenet_list(tmp_path, {
        "deep.png": (np.full((4, 6), 32768, np.uint16), 0),
        "rot.jpg": (np.zeros((4, 8, 3), np.uint8), 1, {"exif": exif}),
        "my big.png": (np.zeros((40, 40), np.uint8), 1)})  # a space in the name
    pipe = build_transforms([{"DecodeImage": {"backend": decode}}]) if decode else None
    ds = ImageNetDataset(str(tmp_path), listing, transforms=pipe)
    img = lambda i: ds[i][0].transpose(1, 2, 0) if decode else ds[i][0]  # noqa: E731
    assert img(0).max() == 128 and img(0).shape == (4, 6, 3)
    assert img(1).shape == (8, 4, 3)
    monkeypatch.setenv("ORTHONETS_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataFileError, match=r"my big.png.* is 40x40 \(1,600 pixels\), more than"):
        ds[2]


def test_imagenet_labels_are_checked_naming_the_list_line(tmp_path):
    from orthonets_paddle.data import ImageNetDataset
    from orthonets_paddle.data.datasets import validate_dataset
    small = np.zeros((4, 4, 3), np.uint8)
    listing = _imagenet_list(tmp_path, {"a.png": (small, 0), "b.png": (small, 4), "c.png": (small, 1)})
    with pytest.raises(ValueError, match=r"labels 0\.\.4 \(first: label 4 at .*list.txt line 2\) "
                                         r"but Arch.class_num is 3"):
        validate_dataset(ImageNetDataset(str(tmp_path), listing), 3)
    (tmp_path / "huge.txt").write_text("a.png 0\nb.png 99999999999999999999\n")
    with pytest.raises(DataFileError, match=r"huge.txt line 2: expected"):
        ImageNetDataset(str(tmp_path), str(tmp_path / "huge.txt"))


# ----------------------------------------------------------------------------- re-probe (round 4)
def test_a_named_pipe_with_an_image_name_is_not_opened(tmp_path):
    """Opening a FIFO blocks forever: folders list regular files only (train and infer)."""
    from orthonets_paddle.data import ImageFolder
    from orthonets_paddle.deploy.infer import list_images
    _image_folder(tmp_path / "imgs", "2.png")
    os.mkfifo(tmp_path / "imgs" / "b" / "pipe.png")
    ds = ImageFolder(str(tmp_path / "imgs"))
    assert len(ds) == 6 and "pipe.png" not in [os.path.basename(p) for p, _ in ds.samples]
    assert "pipe.png" not in [os.path.basename(p) for p in list_images(str(tmp_path / "imgs"))]
    with pytest.raises(FileNotFoundError, match="pipe.png is not a regular file"):
        list_images(str(tmp_path / "imgs" / "b" / "pipe.png"))


def test_a_small_gzip_idx_that_expands_to_gigabytes_is_refused_unexpanded(tmp_path):
    import gzip
    import resource
    import struct
    from orthonets_paddle.data.datasets import _read_idx
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:  # 512 MB of zeros after a 10-image header
        f.write(struct.pack(">IIII", 2051, 10, 28, 28))
        zeros = b"\0" * (1 << 24)
        for _ in range(32):
            f.write(zeros)
    assert os.path.getsize(path) < 4_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataFileError, match="holds more than the 7840 data bytes its header says"):
        _read_idx(str(path), 2051, "FashionMNIST")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB
    claims = tmp_path / "claims.gz"
    with gzip.open(claims, "wb") as f:
        f.write(struct.pack(">IIII", 2051, 1 << 20, 1 << 10, 1 << 10))
    with pytest.raises(DataFileError, match="more than the .* read; it is not a Fashion-MNIST"):
        _read_idx(str(claims), 2051, "FashionMNIST")


def test_train_and_val_folders_with_other_classes_are_refused(tmp_path):
    for split, classes in (("train", "abc"), ("val", "ac")):
        for c in classes:
            os.makedirs(tmp_path / split / c)
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / split / c / "0.png")
    ds = f"{{name: ImageFolder, root: {tmp_path}, transform_ops: [{{ToTensor: {{}}}}]}}"
    with pytest.raises(ValueError, match="only in train: b; only in eval: none"):
        train(load_config(CFG, [f"Global.output_dir={tmp_path}/o", "Arch.class_num=3",
                                "Arch.width=4", f"DataLoader.Train.dataset={ds}",
                                f"DataLoader.Eval.dataset={ds}",
                                "DataLoader.Train.sampler.batch_size=2"]))
    assert not (tmp_path / "o").exists()


def test_a_tilde_in_global_paths_is_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    g = load_config(CFG, ["Global.output_dir=~/runs/a", "Global.checkpoints=~/runs/a",
                          "Global.pretrained_model=https://x/~w.pdparams"])["Global"]
    assert g["output_dir"] == g["checkpoints"] == f"{tmp_path}/runs/a"
    assert g["pretrained_model"] == "https://x/~w.pdparams"


def test_a_zero_std_or_non_finite_samples_are_refused_before_training(tmp_path):
    from orthonets_paddle.data.transforms import build_transforms
    for name in ("Normalize", "NormalizeImage"):
        with pytest.raises(ValueError, match=f"transform {name}: std must be positive"):
            build_transforms([{name: {"mean": [0.5] * 3, "std": [0.5, 0, 0.5]}}])
    # a transform giving NaN (here a Lambda-like op) is caught on the probed samples
    loader = build_dataloader({"dataset": {"name": "Synthetic", "num_samples": 4, "image_size": 8,
                                           "transform_ops": [{"ToTensor": {}}]},
                               "sampler": {"batch_size": 2}}, "train")
    inner = loader.dataset.dataset
    inner.transforms.ops.append(lambda x: x / 0.0)
    with np.errstate(all="ignore"), pytest.raises(DataFileError, match="sample 0 has NaN/inf values"):
        check_loader_samples(loader, 3, "DataLoader.Train", [3, 8, 8])


def test_eval_warns_when_the_val_folders_are_not_the_models_classes(tmp_path, caplog):
    import paddle
    from orthonets_paddle.engine.metrics import evaluate_from_config
    from orthonets_paddle.models import build_model_from_config
    for c in "ac":
        os.makedirs(tmp_path / "val" / c)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "val" / c / "0.png")
    os.makedirs(tmp_path / "train")
    model = build_model_from_config({"name": "orthonet18", "class_num": 3, "stem": "cifar", "width": 4})
    paddle.save(model.state_dict(), str(tmp_path / "w.pdparams"))
    ds = f"{{name: ImageFolder, root: {tmp_path}, transform_ops: [{{ToTensor: {{}}}}]}}"
    logger = logging.getLogger("orthonets_paddle")
    logger.addHandler(caplog.handler)
    try:
        evaluate_from_config(load_config(CFG, [
            f"Global.output_dir={tmp_path}/o", "Arch.class_num=3", "Arch.width=4",
            f"Global.pretrained_model={tmp_path}/w.pdparams", f"DataLoader.Eval.dataset={ds}",
            "DataLoader.Eval.loader.num_workers=0"]))
    finally:
        logger.removeHandler(caplog.handler)
    assert "has 2 class folders but Arch.class_num is 3" in caplog.text


# ----------------------------------------------------------------------------- issue 27
# Files planted in a run folder by a careful stranger; each test failed on the manifest era.
def _victim(tmp_path, name="victim.txt"):
    path = tmp_path / name
    path.write_text("the user's own file\n")
    return path


def test_a_planted_staging_record_moves_nothing_outside_the_run(archive, tmp_path):
    """A manifest-era "pending set" naming ../../victim.txt, and the staging folders planted
    as links to a folder of the user's: a new run moves, deletes and writes none of them."""
    run = tmp_path / "a" / "run"
    run.mkdir(parents=True)
    victim = _victim(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "latest.pdparams").write_text("mine\n")
    entry = {"sha256": sha256_file(str(victim)), "bytes": victim.stat().st_size}
    (run / "latest.manifest-next.json").write_text(json.dumps({"format": 1, "files": {
        "latest.pdparams": dict(entry, staged="../../victim.txt")}}))
    os.symlink(mine, run / ".commit-partial")
    os.symlink(mine, run / ".commit")
    train(load_config(CFG, tiny(archive, run)))
    assert victim.read_text() == "the user's own file\n"
    assert sorted(os.listdir(mine)) == ["latest.pdparams"] and (mine / "latest.pdparams").read_text() == "mine\n"
    assert load_checkpoint(str(run))["states"]["epoch"] == 0


def test_user_files_named_like_temporaries_are_kept(archive, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.tmp-backup.txt").write_text("mine")
    (run / ".partial-old.csv").write_text("mine too")
    train(load_config(CFG, tiny(archive, run)))
    assert (run / "notes.tmp-backup.txt").read_text() == "mine"
    assert (run / ".partial-old.csv").read_text() == "mine too"


def test_outputs_replace_a_planted_link_and_never_write_through_it(archive, tmp_path):
    """loss.png, metrics.json, config.yaml, run.lock, compare.py's files and eval's
    confusion matrix planted as links to the user's files: each output replaces its link."""
    from orthonets_paddle.engine.metrics import plot_confusion_matrix
    from orthonets_paddle.engine.runs import compare_runs
    run = tmp_path / "run"
    run.mkdir()
    names = ["loss.png", "metrics.json", "config.yaml", "run.lock"]
    for name in names:
        os.symlink(_victim(tmp_path, "v-" + name), run / name)
    train(load_config(CFG, tiny(archive, run)[:-1] + ["Global.plot=True"]))
    cmp_dir = tmp_path / "cmp"
    cmp_dir.mkdir()
    for name in ("learning_curves.png", "comparison.md", "confusion.png"):
        os.symlink(_victim(tmp_path, "v-" + name), cmp_dir / name)
        names.append(name)
    compare_runs([str(run)], str(cmp_dir))
    plot_confusion_matrix(np.eye(3), save_path=str(cmp_dir / "confusion.png"))
    for name in names:
        assert (tmp_path / ("v-" + name)).read_text() == "the user's own file\n", name
        assert not os.path.islink((run if name in names[:4] else cmp_dir) / name), name
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"


def _states_edit(run, key, value):
    """latest.pdstates with ``key`` set to ``value``; a manifest-era folder gets its
    manifest fixed too (so only the states check stands in the way)."""
    path = run / "latest.pdstates"
    st = pickle.loads(path.read_bytes())  # the test's own file: plain pickle is fine here
    st[key] = value
    path.write_bytes(pickle.dumps(st, protocol=4))
    manifest = run / "latest.manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        m["files"]["latest.pdstates"] = {"sha256": sha256_file(str(path)),
                                         "bytes": path.stat().st_size}
        if key in ("format", "epoch"):
            m[key] = value
        manifest.write_text(json.dumps(m))


@pytest.mark.parametrize("key,value,shown", [
    ("epoch", -5, "epoch: -5"), ("format", 99, "format: 99"), ("best_acc", "x", "best_acc: 'x'"),
    ("global_step", 2.5, "global_step: 2.5"), ("records", None, "records: None"),
    ("best_epoch", 7, "best_epoch: 7")])
def test_a_malformed_states_file_is_refused_in_one_line(archive, finished, tmp_path, key, value, shown):
    run = copy_run(finished, tmp_path / "run")
    _states_edit(run, key, value)
    before = snapshot(run)
    with pytest.raises(CheckpointError) as info:
        train(load_config(CFG, tiny(archive, run, f"Global.checkpoints={run}", epochs=3)))
    msg = str(info.value)
    assert f"latest.pdstates: {shown} (expected" in msg or f"latest.pdstates: {shown};" in msg, msg
    assert "\n" not in msg and snapshot(run) == before


_HINT = """
import os, runpy, signal, sys
import paddle
calls = [0]
orig = paddle.Tensor.backward
def backward(self, *a, **k):
    calls[0] += 1
    if calls[0] == 3:
        os.kill(os.getpid(), signal.SIGINT)
    return orig(self, *a, **k)
paddle.Tensor.backward = backward
sys.argv = [{tool!r}, "-c", {cfg!r}] + [a for o in {overrides!r} for a in ("-o", o)]
sys.path.insert(0, os.path.dirname({tool!r}))
runpy.run_path({tool!r}, run_name="__main__")
"""


def test_ctrl_c_in_tools_train_prints_one_resume_hint(archive, tmp_path):
    out = tmp_path / "run"
    script = _HINT.format(tool=os.path.join(ROOT, "tools", "train.py"), cfg=CFG,
                          overrides=tiny(archive, str(out), epochs=2))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=ENV, timeout=100)
    assert proc.returncode == 130, proc.stderr[-2000:]
    hints = [ln for ln in proc.stderr.splitlines() if "resume with" in ln]
    assert len(hints) == 1 and hints[0].endswith(f"-o Global.checkpoints={out}"), proc.stderr
