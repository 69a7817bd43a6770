"""Data inputs as users write them (issues 28 and 30): list files with a BOM, CRLF or another
encoding, empty sets, skipped file types, corrupt images found before the first step, a
directory given for a file key, a dead DataLoader worker. Each ends in one line."""
import contextlib
import faulthandler
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from data_files import make_idx_files, make_image_folder
from orthonets_paddle.data import DataFileError, FashionMNIST, ImageNetDataset, build_dataloader
from orthonets_paddle.data.datasets import validate_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def images(root, names, size=(6, 5)):
    """Write one PNG per name under ``root``; pixel (0, 0) holds the image's index."""
    os.makedirs(root, exist_ok=True)
    for i, name in enumerate(names):
        img = np.zeros((size[0], size[1], 3), np.uint8)
        img[0, 0] = i
        Image.fromarray(img).save(os.path.join(root, name))
    return str(root)


def section(dataset, mode="train", batch_size=2, **loader):
    return {"dataset": dataset, "sampler": {"batch_size": batch_size},
            "loader": {"num_workers": 0, **loader}}


@contextlib.contextmanager
def captured(caplog, level=logging.WARNING):
    """The package's log records in ``caplog``, once each (its logger stops propagating once
    a run set it up, so its own handler is used)."""
    logger = logging.getLogger("orthonets_paddle")
    old = (logger.level, logger.propagate, caplog.handler.level)
    logger.addHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate, caplog.handler.level = False, level
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old[0])
        logger.propagate, caplog.handler.level = old[1], old[2]


def one_line(err):
    text = str(err.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------- list files
def test_list_file_with_bom_reads_its_first_image(tmp_path):
    root = images(tmp_path / "img", ["a.png", "b.png"])
    listing = tmp_path / "list.txt"
    listing.write_bytes("a.png 0\nb.png 1\n".encode("utf-8-sig"))  # Notepad's "UTF-8 with BOM"
    ds = ImageNetDataset(root, str(listing))
    assert [os.path.basename(p) for p, _ in ds.samples] == ["a.png", "b.png"]
    assert ds.labels.tolist() == [0, 1]


def test_list_file_with_crlf_line_ends(tmp_path):
    root = images(tmp_path / "img", ["a b.png", "c.png"])  # a name holding the delimiter
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a b.png 1\r\nc.png 0\r\n")
    ds = ImageNetDataset(root, str(listing))
    assert [os.path.basename(p) for p, _ in ds.samples] == ["a b.png", "c.png"]
    assert ds.labels.tolist() == [1, 0]


def test_latin1_list_file_is_one_line_naming_the_file_and_the_fix(tmp_path):
    root = images(tmp_path / "img", ["caf\u00e9.png"])
    listing = tmp_path / "list.txt"
    listing.write_bytes("caf\u00e9.png 0\n".encode("latin-1"))
    with pytest.raises(DataFileError) as err:
        ImageNetDataset(root, str(listing))
    text = one_line(err)
    assert str(listing) in text and "not UTF-8" in text and "save it as UTF-8" in text


def test_label_out_of_range_in_a_list_file_names_the_line(tmp_path):
    root = images(tmp_path / "img", ["a.png", "b.png", "c.png"])
    listing = tmp_path / "list.txt"
    listing.write_text("a.png 0\nb.png 1\n\nc.png 10\n")  # a blank line: c.png is line 4
    ds = ImageNetDataset(root, str(listing))
    with pytest.raises(ValueError) as err:
        validate_dataset(ds, 10)
    text = one_line(err)
    assert "label 10 at" in text and "line 4" in text and "Arch.class_num=11" in text


# ----------------------------------------------------------------------------- empty sets
@pytest.mark.parametrize("split,where", [("eval", "DataLoader.Eval"), ("train", "DataLoader.Train")])
def test_a_set_of_zero_images_is_refused_naming_the_key(tmp_path, split, where):
    paths = make_idx_files(tmp_path, n=0)  # valid IDX files holding no image
    key = "test" if split == "eval" else "train"
    cfg = {"name": "FashionMNIST", "image_path": paths[f"{key}_images"],
           "label_path": paths[f"{key}_labels"]}
    with pytest.raises(DataFileError) as err:
        build_dataloader(section(cfg), split)
    text = one_line(err)
    assert f"{where}.dataset" in text and "no samples" in text


def test_all_images_bad_and_skipped_leaves_an_empty_set_refused(tmp_path):
    root = tmp_path / "f" / "c0"
    root.mkdir(parents=True)
    (root / "x.png").write_bytes(b"")
    cfg = {"name": "ImageFolder", "root": str(tmp_path / "f")}
    with pytest.raises(DataFileError) as err:
        build_dataloader(section(cfg, skip_bad_images=True), "eval")
    assert "DataLoader.Eval.dataset (ImageFolder) has no samples" in one_line(err)


def test_evaluation_that_reads_no_sample_is_refused(tmp_path):
    from orthonets_paddle.engine import evaluate
    from orthonets_paddle.engine.losses import build_loss
    from orthonets_paddle.models import build_model
    root = make_image_folder(tmp_path / "f", classes=2, per_class=1)
    for folder, _, files in os.walk(root):
        for name in files:  # a valid header, then nothing: every read fails
            with open(os.path.join(folder, name), "r+b") as f:
                f.truncate(12)
    loader = build_dataloader(section({"name": "ImageFolder", "root": root,
                                       "transform_ops": [{"ToTensor": {}}]},
                                      skip_bad_images=True), "eval")
    model = build_model("resnet18", num_classes=2, stem="cifar", width=4)
    with pytest.raises(DataFileError) as err:
        evaluate(model, loader, build_loss(None))
    assert "evaluation read no samples" in one_line(err)


# ----------------------------------------------------------------------------- file types
def test_skipped_file_types_are_reported_once_with_count_and_example(tmp_path, caplog):
    root = make_image_folder(tmp_path / "f", classes=2, per_class=2)
    for k in range(3):
        Image.new("RGB", (4, 4)).save(os.path.join(root, "class_1", f"anim_{k}.gif"))
    (tmp_path / "f" / "class_0" / "notes.txt").write_text("not an image")
    with captured(caplog, logging.WARNING):
        loader = build_dataloader(section({"name": "ImageFolder", "root": root}), "train")
    assert len(loader.dataset) == 4  # 2 classes x 2 PNG/JPEG images
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "skipped 4 file(s)" in lines[0] and "3 .gif" in lines[0] and "1 .txt" in lines[0]
    assert "e.g. " + os.path.join(root, "class_0", "notes.txt") in lines[0]


# ----------------------------------------------------------------------------- corrupt images
def corrupt_folder(tmp_path, content):
    root = make_image_folder(tmp_path / "f", classes=2, per_class=3)
    bad = os.path.join(root, "class_1", "img_1.jpg")
    with open(bad, "wb") as f:
        f.write(content)
    return root, bad


@pytest.mark.parametrize("content", [b"<html>404 Not Found</html>", b""], ids=["html", "empty"])
def test_a_bad_image_header_stops_at_start_naming_the_file_and_the_option(tmp_path, content):
    root, bad = corrupt_folder(tmp_path, content)
    with pytest.raises(DataFileError) as err:
        build_dataloader(section({"name": "ImageFolder", "root": root}), "train")
    text = one_line(err)
    assert bad in text and "-o DataLoader.Train.loader.skip_bad_images=True" in text
    assert ("0 bytes" if not content else "not an image file") in text


def test_a_bad_image_header_is_left_out_with_one_line_when_skipping(tmp_path, caplog):
    root, bad = corrupt_folder(tmp_path, b"GIF8 no image")
    with captured(caplog, logging.WARNING):
        loader = build_dataloader(section({"name": "ImageFolder", "root": root},
                                          skip_bad_images=True), "eval")
    assert [p for p, _ in loader.dataset.samples if p == bad] == []
    assert len(loader.dataset) == 5 and loader.dataset.labels.tolist() == [0, 0, 0, 1, 1]
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(lines) == 1 and bad in lines[0]
    assert sum(len(b[1]) for b in loader) == 5  # no warnings later: the file is gone


def test_a_bad_list_entry_is_named_with_its_line(tmp_path):
    root = images(tmp_path / "img", ["a.png", "b.png"])
    (tmp_path / "img" / "b.png").write_bytes(b"\x89PNX not a png")
    listing = tmp_path / "list.txt"
    listing.write_text("a.png 0\nb.png 1\n")
    cfg = {"name": "ImageNetDataset", "image_root": root, "cls_label_path": str(listing)}
    with pytest.raises(DataFileError) as err:
        build_dataloader(section(cfg), "eval")
    text = one_line(err)
    assert "b.png" in text and "list.txt line 2" in text and "DataLoader.Eval.loader.skip_bad_images" in text


def test_sets_over_the_header_check_bound_are_read_as_they_go(tmp_path, monkeypatch, caplog):
    from orthonets_paddle.data import loader as loader_module
    root, bad = corrupt_folder(tmp_path, b"")
    monkeypatch.setattr(loader_module, "HEADER_CHECK_MAX", 5)  # the folder holds 6 files
    with captured(caplog, logging.INFO):
        loader = build_dataloader(section({"name": "ImageFolder", "root": root}), "train")
    assert len(loader.dataset) == 6 and "more than the 5 whose headers are checked" in caplog.text


def test_headers_of_every_supported_format_pass(tmp_path):
    from orthonets_paddle.data.images import header_problem
    img = Image.fromarray(np.zeros((4, 4, 3), np.uint8))
    for ext, fmt in [(".jpg", "JPEG"), (".png", "PNG"), (".bmp", "BMP"), (".ppm", "PPM"),
                     (".tif", "TIFF"), (".webp", "WEBP"), (".gif", "GIF")]:
        path = str(tmp_path / f"x{ext}")
        img.save(path, fmt)
        assert header_problem(path) is None, ext
    img.convert("L").save(str(tmp_path / "g.pgm"))
    assert header_problem(str(tmp_path / "g.pgm")) is None
    img.save(str(tmp_path / "jpeg_named.png"), "JPEG")  # PIL reads by content, so do we
    assert header_problem(str(tmp_path / "jpeg_named.png")) is None
    (tmp_path / "riff.webp").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")  # a RIFF that is not WebP
    assert "not an image file" in header_problem(str(tmp_path / "riff.webp"))


def test_an_image_broken_after_its_header_names_the_option_when_read(tmp_path):
    root = make_image_folder(tmp_path / "f", classes=2, per_class=2)
    bad = os.path.join(root, "class_0", "img_0.png")
    with open(bad, "rb") as f:
        head = f.read(40)
    with open(bad, "wb") as f:
        f.write(head)  # a valid signature, then the file ends
    loader = build_dataloader(section({"name": "ImageFolder", "root": root}, batch_size=4), "train")
    with pytest.raises(DataFileError) as err:
        list(loader)
    text = one_line(err)
    assert bad in text and "-o DataLoader.Train.loader.skip_bad_images=True" in text


# ----------------------------------------------------------------------------- directories
@pytest.mark.parametrize("key,stem", [("image_path", "train-images-idx3-ubyte"),
                                      ("label_path", "train-labels-idx1-ubyte")])
def test_a_directory_for_an_idx_file_names_the_file_expected(tmp_path, key, stem):
    paths = make_idx_files(tmp_path, n=4)
    kwargs = {"image_path": paths["train_images"], "label_path": paths["train_labels"]}
    kwargs[key] = str(tmp_path)
    with pytest.raises(DataFileError) as err:
        FashionMNIST(**kwargs)
    text = one_line(err)
    assert f"{key} {tmp_path} is a directory" in text and "does not exist" not in text
    assert f"(e.g. {os.path.join(str(tmp_path), stem)}.gz)" in text


def test_a_directory_for_the_list_file_names_a_list_in_it(tmp_path):
    root = images(tmp_path / "img", ["a.png"])
    (tmp_path / "img" / "val_list.txt").write_text("a.png 0\n")
    with pytest.raises(DataFileError) as err:
        ImageNetDataset(root, root)
    text = one_line(err)
    assert f"cls_label_path {root} is a directory" in text
    assert os.path.join(root, "val_list.txt") in text


# ----------------------------------------------------------------------------- dead workers
class _Loader:
    section = "DataLoader.Train"

    def __init__(self, workers):
        self.workers = workers


def _die(sig):
    faulthandler.disable()  # pytest's and Paddle's handlers would print a dump for SIGBUS
    if sig != signal.SIGKILL:  # SIGKILL cannot be caught; SIGBUS can
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


@pytest.mark.parametrize("sig,fix", [(signal.SIGBUS, "use_shared_memory=False"),
                                     (signal.SIGKILL, "out-of-memory killer")])
def test_worker_failure_names_the_dead_worker_and_the_fix(sig, fix):
    from orthonets_paddle.data.loader import worker_failure
    proc = multiprocessing.get_context("fork").Process(target=_die, args=(sig,))
    proc.start()
    proc.join()
    exc = SystemError("(Fatal) Blocking queue is killed because the data reader raises an "
                      "exception.")
    text = worker_failure(exc, [None, _Loader([proc])])
    assert f"pid {proc.pid}, killed by {sig.name}" in text
    assert "DataLoader.Train" in text and fix in text
    assert worker_failure(ValueError("x"), [_Loader([proc])]) is None
    assert worker_failure(OSError("disk full"), [_Loader([])]) is None
    assert worker_failure(OSError("KeyboardInterrupt"), [_Loader([proc])]) is None


def test_a_shared_memory_failure_in_a_running_loader_names_use_shared_memory():
    from orthonets_paddle.data.loader import worker_failure
    alive = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    alive.start()
    try:
        exc = RuntimeError("DataLoader worker(0) caught OSError: [Errno 28] No space left on "
                           "device: '/dev/shm/paddle_1234'")
        text = worker_failure(exc, [_Loader([alive])])
        assert "worker process failed" in text and "use_shared_memory=False" in text
        # the same words from a full disk while no loader runs are not a worker's failure
        assert worker_failure(exc, [_Loader([])]) is None
        assert worker_failure(OSError("[Errno 28] No space left on device"),
                              [_Loader([alive])]) is None
    finally:
        alive.kill()
        alive.join()


_WORKER_KILLER = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from orthonets_paddle.data import datasets
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine import train
from orthonets_paddle.utils.cli import run
MAIN, orig, count = os.getpid(), datasets.Synthetic.__getitem__, [0]
def item(self, i):
    if os.getpid() != MAIN and self.mode == "train":
        count[0] += 1
        # a worker of epoch 2 (epoch 1 is saved) dies mid-epoch, as the OOM killer does it
        if count[0] == 3 and os.path.exists({states!r}):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
    return orig(self, i)
datasets.Synthetic.__getitem__ = item
run(lambda: train(load_config({cfg!r}, {overrides!r})))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dead_worker_ends_the_run_with_one_line_and_the_resume(tmp_path, workers):
    out = tmp_path / "run"
    synthetic = "{name: Synthetic, num_samples: 16, image_size: 8, transform_ops: [{ToTensor: {}}]}"
    overrides = [f"Global.output_dir={out}", "Global.epochs=3", "Global.progress_bar=False",
                 "Global.use_visualdl=False", "Global.plot=False", "Global.image_shape=[3,8,8]",
                 f"DataLoader.Train.dataset={synthetic}", f"DataLoader.Eval.dataset={synthetic}",
                 "DataLoader.Train.sampler.batch_size=4", "DataLoader.Eval.sampler.batch_size=8",
                 f"DataLoader.Train.loader.num_workers={workers}",
                 "DataLoader.Eval.loader.num_workers=0", "Arch.width=4"]
    script = _WORKER_KILLER.format(root=ROOT, states=str(out / "latest.pdstates"),
                                   cfg=os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml"),
                                   overrides=overrides)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "SystemError" not in proc.stderr, proc.stderr
    assert "exit unexpectedly" not in proc.stderr  # Paddle's own line is folded into ours
    assert len(err) == 1, err
    assert err[0].startswith("error: WorkerError: DataLoader.Train: a DataLoader worker process "
                             "died (pid ") and "killed by SIGKILL" in err[0]
    assert f"last good checkpoint is {out / 'latest'}.*" in err[0]
    assert f"-o Global.checkpoints={out}" in err[0]
    assert "epoch 1/3  lr" in proc.stdout and "epoch 2/3  lr" not in proc.stdout
