import matplotlib

matplotlib.use("Agg")  # headless, whatever the environment says

import numpy as np
import paddle
import pytest
from matplotlib.figure import Figure

from orthonets_paddle.layers import dct, orthogonal
from orthonets_paddle.plotting import (comparison_table, plot_attention, plot_curves_together,
                                       plot_filters, plot_gram_matrix, plot_learning_curve)


def _record(n_epochs=5, steps_per_epoch=40, seed=0):
    rng = np.random.default_rng(seed)
    train_iter = list(range(10, n_epochs * steps_per_epoch + 1, 10))
    val_iter = [steps_per_epoch * (e + 1) for e in range(n_epochs)]
    return {
        "train": {"loss": list(2.0 / np.sqrt(np.arange(1, len(train_iter) + 1))),
                  "acc": list(rng.uniform(0.3, 0.9, len(train_iter))),
                  "iter": train_iter},
        "val": {"loss": list(np.linspace(1.8, 0.6, n_epochs)),
                "acc": list(np.linspace(0.4, 0.85, n_epochs)),
                "iter": val_iter},
    }


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curve(tmp_path):
    record = _record()
    path = tmp_path / "sub" / "loss.png"
    fig = plot_learning_curve(record, save_path=str(path))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["train", "val"]
    assert ax.get_title() == "Learning curve of loss"
    assert ax.get_xlabel() == "Training steps" and ax.get_ylabel() == "CE Loss"
    for line, split in zip(ax.get_lines(), ("train", "val")):
        np.testing.assert_array_equal(line.get_xdata(), record[split]["iter"])
        np.testing.assert_array_equal(line.get_ydata(), record[split]["loss"])
    lo, hi = ax.get_ylim()
    values = record["train"]["loss"] + record["val"]["loss"]
    assert lo < min(values) and hi > max(values)  # a margin around the data
    assert ax.get_legend() is not None
    _assert_png(path)


def test_learning_curve_skips_missing_split_and_accepts_tensors():
    record = _record()
    record["val"] = {"acc": [], "iter": []}
    record["train"]["acc"] = [paddle.to_tensor(v) for v in record["train"]["acc"]]
    fig = plot_learning_curve(record, title="acc", ylabel="Accuracy")
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]
    assert fig.axes[0].get_ylabel() == "Accuracy"


def test_learning_curve_errors():
    record = _record()
    record["val"]["iter"] = record["val"]["iter"][:-1]
    with pytest.raises(ValueError, match=r"5 'loss' values but 4 'iter'"):
        plot_learning_curve(record)
    with pytest.raises(ValueError, match="pass title= one of the recorded metrics"):
        plot_learning_curve(_record(), title="top1")


def test_curves_together(tmp_path):
    records = {"orthonet18": _record(seed=0), "resnet18": _record(seed=1)}
    path = tmp_path / "together.png"
    fig = plot_curves_together(records, metric="acc", split="val", save_path=path)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2
    for line, name in zip(ax.get_lines(), ("orthonet18", "resnet18")):
        np.testing.assert_array_equal(line.get_xdata(), records[name]["val"]["iter"])
        np.testing.assert_array_equal(line.get_ydata(), records[name]["val"]["acc"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["orthonet18", "resnet18"]
    assert ax.get_title() == "Validation acc: orthonet18 vs resnet18"
    assert ax.get_xlabel() == "Training steps"
    assert ax.get_ylabel() == "Validation Accuracy (axis from 0)" and ax.get_ylim()[0] == 0
    _assert_png(path)
    del records["resnet18"]["val"]["acc"]
    with pytest.raises(ValueError, match="run 'resnet18' has no 'acc' values in split 'val'"):
        plot_curves_together(records, metric="acc")


def test_filters(tmp_path):
    bank = orthogonal(64, 8, 8)
    path = tmp_path / "filters.png"
    fig = plot_filters(paddle.to_tensor(bank), max_filters=12, ncols=6, save_path=path)
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(image_axes) == 12 and len(fig.axes) == 13  # 12 filters + colorbar
    assert [ax.get_title() for ax in image_axes[:3]] == ["ch 0", "ch 1", "ch 2"]
    vmin, vmax = image_axes[0].get_images()[0].get_clim()
    assert vmin == -vmax  # diverging scale centred on 0
    assert "12 of 64" in fig._suptitle.get_text()
    _assert_png(path)
    with pytest.raises(ValueError, match=r"shape \[channels, h, w\]"):
        plot_filters(bank[0])


def test_gram_matrix(tmp_path):
    path = tmp_path / "gram.png"
    fig = plot_gram_matrix(orthogonal(64, 8, 8), title="OrthoNet", save_path=path)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # image + colorbar
    gram = ax.get_images()[0].get_array()
    assert gram.shape == (64, 64)
    np.testing.assert_allclose(gram, np.eye(64), atol=1e-5)
    assert ax.get_title().startswith("OrthoNet (64 channels)")
    assert "max |off-diagonal|" in ax.get_title()
    assert ax.get_xlabel() == "channel"
    _assert_png(path)

    # 128 channels of 4x4: groups of 16, identity within groups only; capped at 64 channels.
    fig = plot_gram_matrix(orthogonal(128, 4, 4), group_size=16)
    title = fig.axes[0].get_title()
    assert fig.axes[0].get_images()[0].get_array().shape == (64, 64)
    assert "first 64 of 128" in title
    within = float(title.rsplit(": ", 1)[1])
    assert within < 1e-5


def test_attention(tmp_path):
    rng = np.random.default_rng(0)
    weights = 1 / (1 + np.exp(-rng.normal(size=(6, 32))))
    path = tmp_path / "attention.png"
    fig = plot_attention(weights, title="layer4", save_path=path,
                         class_names=["cat", "dog"], labels=[0, 1, 0, 1, 1, 0])
    ax_map, ax_mean, cax = fig.axes
    assert ax_map.get_images()[0].get_array().shape == (6, 32)
    assert ax_map.get_title() == "layer4"
    assert [t.get_text() for t in ax_map.get_yticklabels()][:2] == ["cat", "dog"]
    (mean_line,) = ax_mean.get_lines()
    np.testing.assert_allclose(mean_line.get_ydata(), weights.mean(axis=0))
    assert ax_mean.get_xlabel() == "channel" and ax_mean.get_legend() is not None
    _assert_png(path)

    # The SE layer's [b, c, 1, 1] shape and a paddle Tensor are accepted.
    fig = plot_attention(paddle.to_tensor(weights[:, :, None, None].astype("float32")))
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="labels has 2 entries but weights has 6"):
        plot_attention(weights, labels=[0, 1])
    with pytest.raises(ValueError, match="class_names is given but labels is not"):
        plot_attention(weights, class_names=["cat", "dog"])
    with pytest.raises(ValueError, match=r"weights\[None\]"):
        plot_attention(weights[0])


def _parse_table(markdown):
    """Markdown table -> (header cells, rows of cells), checking the separator row."""
    lines = markdown.splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    assert all(set(c) <= set("-:") and c for c in cells[1])  # the separator row
    assert len({len(c) for c in cells}) == 1  # every row has every column
    return cells[0], cells[2:]


def test_comparison_table_numbers_read_back_equal_the_inputs():
    rng = np.random.default_rng(0)
    rows = [{"model": f"net{i}", "val_acc": float(rng.uniform(0, 1)),
             "params": int(rng.integers(1e5, 1e8)), "throughput": float(rng.uniform(1, 5000))}
            for i in range(5)]
    rows.append({"model": "resnet18", "val_acc": None, "params": 11183562})
    reference = [{"model": "orthonet18", "val_acc": 0.9406, "throughput": 2214}]
    header, body = _parse_table(comparison_table(rows, reference=reference))
    assert header == ["Model", "Val acc", "Parameters", "Throughput (images/s)"]
    assert len(body) == len(rows) + 2  # the rows, a reference heading, the reference row

    def read(cell, kind):
        if cell == "-":
            return None
        return int(cell.replace(",", "")) if kind == "params" else float(cell)

    for row, cells in zip(rows + [None] + reference, body):
        if row is None:
            assert "reference" in cells[0] and cells[1:] == ["", "", ""]
            continue
        assert cells[0].startswith(row["model"])
        assert read(cells[2], "params") == row.get("params")
        for col, key, tol in ((1, "val_acc", 5e-5), (3, "throughput", 0.05)):
            got = read(cells[col], key)
            if row.get(key) is None:
                assert got is None, (row, key)
            else:
                assert got == pytest.approx(row[key], abs=tol), (row, key)
    assert body[-1][0] == "orthonet18 (seed, GPU)"
    # Without a reference: the header, separator and one line per row.
    assert len(comparison_table(rows).splitlines()) == len(rows) + 2


def test_comparison_table_errors():
    with pytest.raises(ValueError, match="did you mean 'val_acc'"):
        comparison_table([{"model": "m", "acc": 0.9}])
    with pytest.raises(ValueError, match="divide it by 100"):
        comparison_table([{"model": "m", "val_acc": 94.06}])
    with pytest.raises(ValueError, match="has no 'model' name"):
        comparison_table([{"val_acc": 0.9}])


def test_dct_bank_plots():
    bank = dct(64, 7, 7)
    assert len(plot_filters(bank).axes) == 17
    assert plot_gram_matrix(bank).axes[0].get_images()[0].get_array().shape == (64, 64)


def _one_epoch(val_acc, step=192):
    """A 1-epoch run's acc_record: one train and one validation value, both at its last step."""
    return {"train": {"acc": [0.7], "iter": [step]}, "val": {"acc": [val_acc], "iter": [step]}}


def test_one_point_per_curve_is_a_labelled_bar_from_zero():
    """A 1-epoch run's epoch figures are one value per curve at one step: no lone dots on an
    axis like 182.5-202.5, but one bar per curve from 0, its value written on it."""
    cases = ((plot_learning_curve(_one_epoch(0.74), title="acc"), ["train", "val"], [0.7, 0.74]),
             (plot_curves_together({"a": _one_epoch(0.739), "b": _one_epoch(0.742)}),
              ["a", "b"], [0.739, 0.742]))
    for fig, names, values in cases:
        ax = fig.axes[0]
        assert [p.get_height() for p in ax.patches] == pytest.approx(values)
        assert all(p.get_y() == 0 for p in ax.patches) and ax.get_ylim()[0] == 0
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert sorted(t.get_text() for t in ax.texts) == [f"{v:.4f}" for v in sorted(values)]
        assert ax.get_xlabel() == "after 192 training steps"


def test_integer_step_ticks_on_a_short_run():
    record = {"train": {"loss": [2.0, 1.9, 1.7], "iter": [1, 2, 3]}}
    ax = plot_learning_curve(record).axes[0]
    fig_ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert fig_ticks and all(float(t).is_integer() for t in fig_ticks)  # not 1.5, 2.5


def test_comparison_of_runs_starts_at_zero_and_says_so():
    """0.739 against 0.742: on an axis zoomed to 0.739-0.742 the 0.003 fills the figure."""
    two = {"orthonet18": _record(2, seed=0), "resnet18": _record(2, seed=0)}
    two["resnet18"]["val"]["acc"] = [0.739, 0.742]
    two["orthonet18"]["val"]["acc"] = [0.740, 0.741]
    ax = plot_curves_together(two).axes[0]
    lo, hi = ax.get_ylim()
    assert lo == 0 and 0.742 < hi <= 0.742 * 1.1
    assert "from 0" in ax.get_ylabel()
    # zoomed on request
    ax = plot_curves_together(two, y_from=None).axes[0]
    assert ax.get_ylim()[0] > 0.7 and "from" not in ax.get_ylabel()


def test_filters_every_kth_channel_titled_by_channel():
    """FcaNet's DCT bank at 128 channels: 16 frequencies, each on 8 consecutive channels.
    Every 8th channel shows each distinct filter once; the panels must say which channel
    they are (the notebook's title: panel ch 8k stands for channels 8k to 8k+7)."""
    bank = dct(128, 16, 16)
    for k in range(16):  # the claim the title makes, checked on the bank
        np.testing.assert_array_equal(bank[8 * k:8 * k + 8], np.repeat(bank[8 * k][None], 8, 0))
    fig = plot_filters(bank, max_filters=16, step=8)
    panels = [ax for ax in fig.axes if ax.get_images()][:16]
    assert [ax.get_title() for ax in panels] == [f"ch {8 * k}" for k in range(16)]
    for k, ax in enumerate(panels):
        np.testing.assert_allclose(ax.get_images()[0].get_array(), bank[8 * k])
    assert "ch 0, 8, ..., 120" in fig._suptitle.get_text()


def test_paired_runs_legend_is_readable():
    from orthonets_paddle.plotting import plot_paired_runs
    runs = {"random": {0: 0.84, 1: 0.85}, "ortho": {0: 0.85, 1: 0.86}}
    ax = plot_paired_runs(runs, ("ortho", "random")).axes[0]
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 9
