"""Resume is honest about what changed (issue 28) and `Global.checkpoints: auto` (issue 29).

Oracles: the learning rate from the schedule's definition (linear warm-up, then the half
cosine, per optimizer step) at the step an uninterrupted run with the resumed run's shape
would be at; RNG streams compared by their draws; refusals by the files left untouched.
"""
import logging
import math
import os
import pickle
import random
import shutil

import numpy as np
import pytest

from data_files import make_cifar_archive
from orthonets_paddle.engine import CheckpointError, load_states, train
from orthonets_paddle.engine.checkpoint import load_checkpoint
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine.env import global_batch_warning, new_streams_note, rank_rng

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
N_TRAIN = 16
COSINE = "Optimizer.lr={name: Cosine, learning_rate: 0.1, warmup_epoch: 1, warmup_start_lr: 0.01}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                              n_train=N_TRAIN, n_test=8)


def tiny(archive, out, *extra, epochs=1, batch=8):
    return [f"Global.output_dir={out}", f"Global.epochs={epochs}", "Global.progress_bar=False",
            "Global.use_visualdl=False", "Global.plot=False",
            f"DataLoader.Train.dataset.data_file={archive}", f"DataLoader.Eval.dataset.data_file={archive}",
            f"DataLoader.Train.sampler.batch_size={batch}", "DataLoader.Eval.sampler.batch_size=8",
            "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
            "Arch.width=4", *extra]


def run(archive, out, *extra, **kw):
    """train() with the package's log captured: (result, log text)."""
    logger, records = logging.getLogger("orthonets_paddle"), []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logger.addHandler(handler)
    try:
        res = train(load_config(CFG, tiny(archive, out, *extra, **kw)))
    finally:
        logger.removeHandler(handler)
    return res, "\n".join(records)


def warmup_cosine(it, ipe, epochs, base=0.1, warmup_epochs=0, start=0.0):
    """The rate optimizer step ``it`` (0-based) uses: linear warm-up from ``start`` over
    ``warmup_epochs`` epochs, then the half cosine to 0 at the end of the last epoch."""
    warm = warmup_epochs * ipe
    if it < warm:
        return start + (base - start) * it / warm
    return base * 0.5 * (1 + math.cos(math.pi * (it - warm) / (epochs * ipe - warm)))


def snapshot(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}


# ----------------------------------------------------------------------------- schedule
def test_a_smaller_batch_on_resume_continues_the_schedule_by_epoch(archive, tmp_path):
    out = tmp_path / "run"
    run(archive, out, COSINE, "Global.save_interval=1", epochs=3, batch=8)  # 2 steps/epoch
    res, log = run(archive, out, COSINE, f"Global.checkpoints={out}/epoch_1", epochs=3, batch=4)
    # Epoch 1 ran 2 steps at batch 8; the resumed run has 4 steps/epoch, so epoch 2 starts at
    # step 4 of the 3-epoch, 4-steps/epoch schedule; a row's lr is its epoch's last step's.
    lrs = [row["lr"] for row in res["records"]["epochs"]]
    want = [warmup_cosine(it, 4, 3, warmup_epochs=1, start=0.01) for it in (7, 11)]
    np.testing.assert_allclose(lrs[1:], want, rtol=1e-9)
    assert lrs[0] == pytest.approx(warmup_cosine(1, 2, 3, warmup_epochs=1, start=0.01), rel=1e-9)
    line = [l for l in log.splitlines() if l.startswith("resume:")]
    assert len(line) == 1, log
    assert ("1 process(es) x 8 -> 1 x 4 (global batch 8 -> 4, 2 -> 4 steps/epoch); the learning-rate "
            "schedule continues by epoch (global step 2 -> 4, the start of epoch 2)") in line[0]
    st = load_states(str(out / "latest.pdstates"))
    assert st["global_step"] == 12 and st["run"]["steps_per_epoch"] == 4
    assert st["run"]["global_batch"] == 4 and st["run"]["world_size"] == 1


def test_fewer_steps_per_epoch_and_more_epochs_never_train_at_lr_0(archive, tmp_path):
    # The case in one process: 4 steps/epoch for 2 epochs (global step 8), resumed at
    # 2 steps/epoch for 4 epochs. Replaying step 8 against a 4 x 2 = 8-step cosine gave lr 0.
    out = tmp_path / "run"
    run(archive, out, "Optimizer.lr={name: Cosine, learning_rate: 0.1}", epochs=2, batch=4)
    res, log = run(archive, out, "Optimizer.lr={name: Cosine, learning_rate: 0.1}",
                   f"Global.checkpoints={out}", epochs=4, batch=8)
    lrs = [row["lr"] for row in res["records"]["epochs"]]
    # Epochs 3 and 4 are steps 4-5 and 6-7 of the 4-epoch, 2-steps/epoch cosine.
    np.testing.assert_allclose(lrs[2:], [warmup_cosine(it, 2, 4) for it in (5, 7)], rtol=1e-9)
    assert min(lrs[2:]) > 1e-3
    assert "global batch 4 -> 8, 4 -> 2 steps/epoch" in log
    assert "Global.epochs 2 -> 4: the learning-rate schedule is the one for 4 epochs" in log
    assert len([l for l in log.splitlines() if l.startswith("resume:")]) == 1


def test_an_unchanged_resume_says_nothing_and_old_checkpoints_are_read(archive, tmp_path):
    out = tmp_path / "run"
    run(archive, out, COSINE, "Global.save_interval=1", epochs=2)
    # A checkpoint written before states held "run": world 1, steps/epoch from its global step.
    path = out / "epoch_1.pdstates"
    st = pickle.loads(path.read_bytes())
    del st["run"]
    path.write_bytes(pickle.dumps(st, protocol=4))
    res, log = run(archive, out, COSINE, f"Global.checkpoints={out}/epoch_1", epochs=2)
    assert "resume:" not in log and "continuing at epoch 2" in log
    assert res["records"]["epochs"][1]["lr"] == pytest.approx(
        warmup_cosine(3, 2, 2, warmup_epochs=1, start=0.01), rel=1e-9)
    res, log = run(archive, out, COSINE, f"Global.checkpoints={out}/epoch_1", epochs=2, batch=4)
    assert "1 process(es) x ? -> 1 x 4 (global batch ? -> 4, 2 -> 4 steps/epoch)" in log


# ----------------------------------------------------------------------------- RNG streams
def _draws(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    return random.random(), float(np.random.rand())


def test_ranks_without_a_saved_stream_get_their_own(archive, tmp_path):
    out = tmp_path / "run"
    run(archive, out, epochs=1)
    st = load_states(str(out / "latest.pdstates"))  # a 1-process checkpoint
    r0, r1, r2 = (_draws(rank_rng(st, r, seed=42)) for r in range(3))
    assert r0 == _draws(st["rng"])  # rank 0 continues the saved stream
    assert len({r0, r1, r2}) == 3  # no two ranks share augmentations
    assert _draws(rank_rng(st, 1, seed=42)) == r1  # the same on every restart
    assert _draws(rank_rng(st, 1, seed=7)) != r1
    # A 2-process checkpoint on 3 ranks: ranks 0 and 1 keep theirs, rank 2 gets a new one.
    mine = [{"python": random.Random(i).getstate(),
             "numpy": np.random.RandomState(i).get_state()} for i in (10, 11)]
    st2 = dict(st, rank_rng=mine)
    assert _draws(rank_rng(st2, 1, 42)) == _draws(mine[1])
    assert _draws(rank_rng(st2, 2, 42)) not in (_draws(mine[0]), _draws(mine[1]))
    assert new_streams_note(st2, 2) is None
    note = new_streams_note(st2, 3)
    assert "holds 2 process(es)' augmentation streams: rank 2 starts a new one from" in note
    assert "ranks 1-3 start new ones from Global.seed" in new_streams_note(st, 4)


def test_the_global_batch_warning_names_both_batches():
    assert global_batch_warning(1, 64) is None
    msg = global_batch_warning(2, 64)
    assert "global batch 128 (2 processes x 64)" in msg and "reference is 64" in msg
    assert "learning rate is not rescaled" in msg and "\n" not in msg


# ----------------------------------------------------------------------------- optimizer
ADAMW = "Optimizer={name: AdamW, lr: {name: Constant, learning_rate: 0.001}}"
MOMENTUM = "Optimizer={name: Momentum, momentum: 0.9, lr: {name: Constant, learning_rate: 0.1}}"


@pytest.mark.parametrize("first,then,names", [(MOMENTUM, ADAMW, ("Momentum", "AdamW")),
                                              (ADAMW, MOMENTUM, ("AdamW", "Momentum"))])
def test_another_optimizer_on_resume_is_refused_in_one_line(archive, tmp_path, first, then, names):
    out = tmp_path / "run"
    run(archive, out, first)
    before = snapshot(out)
    with pytest.raises(CheckpointError) as info:
        run(archive, out, then, f"Global.checkpoints={out}", epochs=2)
    msg = str(info.value)
    assert f"trained with Optimizer.name={names[0]}, this run has Optimizer.name={names[1]}" in msg
    assert f"-o Optimizer.name={names[0]}" in msg and "\n" not in msg
    assert snapshot(out) == before


def test_an_old_momentum_checkpoint_resumed_as_adamw_is_refused_in_one_line(archive, tmp_path):
    out = tmp_path / "run"
    run(archive, out, MOMENTUM)
    path = out / "latest.pdstates"
    st = pickle.loads(path.read_bytes())
    del st["run"]  # written before the optimizer's name was recorded
    path.write_bytes(pickle.dumps(st, protocol=4))
    before = snapshot(out)
    with pytest.raises(CheckpointError, match="trained with Optimizer.name=Momentum, this run has "
                                              "Optimizer.name=AdamW"):
        run(archive, out, ADAMW, f"Global.checkpoints={out}", epochs=2)
    assert snapshot(out) == before


# ----------------------------------------------------------------------------- auto
def test_checkpoints_auto_starts_fresh_then_resumes(archive, tmp_path):
    out = tmp_path / "run"
    out.mkdir()  # an empty folder is no run: no refusal
    res, log = run(archive, out, "Global.checkpoints=auto", epochs=1)
    assert "resumed from" not in log and len(res["records"]["epochs"]) == 1
    first = load_checkpoint(str(out))["model"]
    res, log = run(archive, out, "Global.checkpoints=auto", epochs=2)
    assert f"resumed from {out}/latest: epoch 1 done" in log
    assert [r["epoch"] for r in res["records"]["epochs"]] == [1, 2]
    assert load_states(str(out / "latest.pdstates"))["epoch"] == 1
    assert any(np.any(first[k] != load_checkpoint(str(out))["model"][k]) for k in first)
    res, log = run(archive, out, "Global.checkpoints=auto", epochs=2)  # finished: nothing to do
    assert "so there is nothing to train" in log and res["final"] is None
    shutil.rmtree(out)  # a folder that does not exist yet: a fresh start too
    res, log = run(archive, out, "Global.checkpoints=auto", epochs=1)
    assert "resumed from" not in log and (out / "final_model.pdparams").is_file()


def test_ranks_that_see_different_checkpoints_are_refused(monkeypatch):
    # Two nodes whose Global.output_dir is not shared: rank 1 finds no checkpoint.
    from orthonets_paddle.engine import env as env_mod
    seen = [("/runs/a/latest", 3), None]
    monkeypatch.setattr(env_mod.paddle.distributed, "all_gather_object",
                        lambda out, value: out.extend(seen))
    two = env_mod.RunEnv(device="cpu", rank=0, world_size=2)
    with pytest.raises(RuntimeError) as info:
        env_mod.check_same_on_ranks(two, seen[0], "the resume checkpoint", "share the folder")
    assert str(info.value) == ("the resume checkpoint differs between ranks (rank 0: "
                               "('/runs/a/latest', 3); rank 1: None); share the folder")
    seen[1] = seen[0]
    env_mod.check_same_on_ranks(two, seen[0], "the resume checkpoint", "share the folder")
