"""What a training epoch logs and records: the loss points of metrics.json, the log line and
the progress bar, against the label-smoothed cross-entropy computed here in numpy."""
import re

import numpy as np
import paddle
import pytest

from orthonets_paddle.engine import env as env_mod
from orthonets_paddle.engine import trainer as trainer_mod
from orthonets_paddle.engine.logger import VisualDLWriter, new_records
from orthonets_paddle.engine.losses import build_loss
from orthonets_paddle.models import build_model_from_config

EPS, K = 0.1, 10


class _Bar:
    """Stands in for the tqdm bar: iterates, and keeps what the trainer writes and posts."""

    def __init__(self, iterable):
        self.iterable, self.lines, self.postfixes = iterable, [], []

    def __iter__(self):
        return iter(self.iterable)

    def write(self, text, file=None):
        self.lines.append(text)

    def set_postfix(self, refresh=True, **kw):
        self.postfixes.append(kw)


def _batches(n, b=4):
    rng = np.random.default_rng(0)
    return [(paddle.to_tensor(rng.standard_normal((b, 3, 32, 32)).astype("float32")),
             paddle.to_tensor(rng.integers(0, K, b).astype("int64"))) for _ in range(n)]


def _numpy_losses(model, data):
    """Each batch's label-smoothed CE (the configs' CELoss epsilon 0.1) from the logits."""
    out = []
    model.train()  # BatchNorm on batch statistics, as in training
    with paddle.no_grad():
        for x, y in data:
            z = model(x).numpy().astype(np.float64)
            logp = z - z.max(1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(1, keepdims=True))
            target = (1 - EPS) * np.eye(K)[y.numpy()] + EPS / K
            out.append(float(-(target * logp).sum(1).mean()))
    return out


def _run_epochs(monkeypatch, data, print_batch_step, epochs):
    paddle.seed(3)
    model = build_model_from_config({"name": "orthonet18", "class_num": K, "stem": "cifar", "width": 4})
    bars = []
    monkeypatch.setattr(trainer_mod, "progress",
                        lambda it, total, desc, enabled: bars.append(_Bar(it)) or bars[-1])
    opt = paddle.optimizer.SGD(0.0, parameters=model.parameters())  # the weights stay
    cfg = {"Global": {"epochs": epochs, "progress_bar": True, "print_batch_step": print_batch_step,
                      "output_dir": "/nonexistent"}, "AMP": {"use_amp": False}}
    records, state = new_records(), {"global_step": 0}
    for epoch in range(epochs):
        trainer_mod.train_one_epoch(model, data, build_loss([{"CELoss": {"epsilon": EPS}}]), opt,
                                    paddle.optimizer.lr.StepDecay(0.0, step_size=1000), epoch,
                                    env_mod.RunEnv(device="cpu"), records, state, cfg,
                                    VisualDLWriter(None))
    return model, records, bars


def test_run_shorter_than_print_batch_step_records_each_epochs_last_step(monkeypatch):
    data = _batches(3)
    model, records, bars = _run_epochs(monkeypatch, data, print_batch_step=10, epochs=2)
    losses = _numpy_losses(model, data)
    train = records["loss_record"]["train"]
    assert train["iter"] == [3, 6]  # each epoch's last step; none is a multiple of 10
    np.testing.assert_allclose(train["loss"], [losses[2], losses[2]], rtol=1e-5)
    # The log line of Iter 0 shows the epoch's running mean: one step's loss there.
    for bar in bars:
        (line,) = bar.lines
        assert "[Iter: 0/3]" in line
        assert float(re.search(r"loss: (\S+),", line).group(1)) == pytest.approx(losses[0], abs=1e-5)


def test_progress_bar_shows_the_log_lines_loss_and_accuracy(monkeypatch):
    data = _batches(3)
    model, records, (bar,) = _run_epochs(monkeypatch, data, print_batch_step=2, epochs=1)
    losses = _numpy_losses(model, data)
    assert [re.search(r"\[Iter: (\d+)/", ln).group(1) for ln in bar.lines] == ["0", "2"]
    for line, post, want in zip(bar.lines, bar.postfixes, (losses[0], np.mean(losses))):
        shown = re.search(r"loss: (\S+), top1: (\S+),", line).groups()
        assert float(shown[0]) == pytest.approx(want, abs=1e-5)  # the running mean
        assert (post["loss"], post["acc"]) == shown  # the bar's figures are the line's
    assert records["loss_record"]["train"]["iter"] == [2, 3]
    np.testing.assert_allclose(records["loss_record"]["train"]["loss"], losses[1:], rtol=1e-5)
