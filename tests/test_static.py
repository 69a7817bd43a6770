"""Global.to_static: the traced program trains to dygraph's losses (engine/static.py)."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle.jit.dy2static.program_translator import StaticFunction

from data_files import make_cifar_archive
from orthonets_paddle.engine.config import ConfigError, load_config
from orthonets_paddle.engine.static import apply_to_static
from orthonets_paddle.engine import train
from orthonets_paddle.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")


def _losses(name, to_static, steps=4, **kw):
    """Losses of ``steps`` Momentum steps on fixed batches."""
    paddle.seed(0)
    model = build_model(name, 5, stem="cifar", width=4, reduction=2, **kw)
    model.train()
    model = apply_to_static(model, to_static)
    opt = paddle.optimizer.Momentum(0.02, momentum=0.9, parameters=model.parameters())
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        x = paddle.to_tensor(rng.standard_normal((8, 3, 16, 16)).astype("float32"))
        y = paddle.to_tensor(rng.integers(0, 5, 8).astype("int64"))
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        out.append(float(loss))
    return np.array(out)


# The traced program squeezes with the same matmul as dygraph in training: equal up to
# rounding. Batch-statistics BN of a width-4 bottleneck at batch 8 amplifies rounding
# (2e-5 after one step, 30% after three), so orthonet_mod_50 trains with running
# statistics (frozen_bn).
@pytest.mark.parametrize("name,kw", [("orthonet18", {}), ("resnet18", {}),
                                     ("orthonet_mod_50", {"norm": "frozen_bn"})])
def test_to_static_training_gives_the_dygraph_losses(name, kw):
    dy, st = _losses(name, False, **kw), _losses(name, True, **kw)
    assert np.ptp(dy) > 1e-3  # the steps change the model, so a frozen one would not pass
    np.testing.assert_allclose(st, dy, rtol=1e-4, atol=1e-5)


def test_to_static_off_returns_the_model_and_bad_values_are_clear():
    model = build_model("resnet18", 5, stem="cifar", width=4)
    assert apply_to_static(model, False) is model
    assert not isinstance(model.forward, StaticFunction)
    assert isinstance(apply_to_static(model, True).forward, StaticFunction)
    with pytest.raises(TypeError, match="Global.to_static must be true or false"):
        apply_to_static(model, "yes")


@pytest.mark.slow
@pytest.mark.timeout(300)  # two train() runs with tracing: 70 s on a loaded 2-core machine
def test_trainer_reads_global_to_static(tmp_path, monkeypatch):
    archive = make_cifar_archive(str(tmp_path / "cifar-10-python.tar.gz"), n_train=32, n_test=16)
    import orthonets_paddle.engine.trainer as trainer_mod
    seen = []
    real = trainer_mod.apply_to_static
    monkeypatch.setattr(trainer_mod, "apply_to_static", lambda m, on: seen.append(on) or real(m, on))
    runs = {}
    for flag in (False, True):
        over = [f"Global.output_dir={tmp_path / str(flag)}", "Global.epochs=1", "Global.progress_bar=False",
                "Global.plot=False", "Global.use_visualdl=False", "Global.print_batch_step=1",
                f"Global.to_static={flag}",
                f"DataLoader.Train.dataset.data_file={archive}", f"DataLoader.Eval.dataset.data_file={archive}",
                "DataLoader.Train.sampler.batch_size=8", "DataLoader.Eval.sampler.batch_size=8",
                "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
                "DataLoader.Train.sampler.shuffle=False", "Arch.width=4"]
        runs[flag] = train(load_config(CFG, over))
    assert seen == [False, True]
    losses = [runs[f]["records"]["loss_record"]["train"]["loss"] for f in (False, True)]
    assert len(losses[0]) >= 4
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="to_static"):
        load_config(CFG, ["Global.to_static=maybe"])
