"""The export folder, tried as a careful stranger would (issue 27): planted links are never
followed, the folder keeps a normal mode, a folder that is not the export's own is refused in
one line, nothing is deleted by its name alone, and a kill at any file operation leaves a
model that the paddle backend reads whole (the old one or the new one)."""
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import paddle
import pytest

from orthonets_paddle import build_model
from orthonets_paddle.deploy.export import ExportError, export_model
from orthonets_paddle.deploy.predictors import create_predictor

SHAPE = [3, 8, 8]
FILES = ("inference.json", "inference.pdiparams")


def _model(width, seed=0):
    paddle.seed(seed)
    return build_model("resnet18", num_classes=3, stem="cifar", width=width).eval()


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory):
    """Exports of two models (A: width 4, B: width 8) and their outputs on a fixed batch."""
    root = tmp_path_factory.mktemp("exports")
    x = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype(np.float32)
    refs = []
    for i, width in enumerate((4, 8)):
        model = _model(width, i)
        refs.append(model(paddle.to_tensor(x)).numpy())
        export_model(model, str(root / "AB"[i]), SHAPE, check=False)
    return root, x, refs


def _which(out, two_exports):
    """0 (A) or 1 (B): the model the paddle backend runs from ``out``, by its outputs."""
    _, x, refs = two_exports
    got = create_predictor("paddle", save_dir=str(out), threads=1).predict(x)
    hits = [i for i, ref in enumerate(refs) if got.shape == ref.shape
            and np.allclose(got, ref, atol=1e-4)]
    assert len(hits) == 1, "the export read is neither the whole old model nor the whole new one"
    return hits[0]


def _fake_save(src):
    """paddle.jit.save writing the files of the export in ``src`` (no Paddle work, so a
    forked child can run the whole export_model)."""
    def save(layer, path, input_spec=None, **kw):
        for name in FILES:
            shutil.copyfile(os.path.join(src, name), path + name[len("inference"):])
    return save


def test_a_planted_link_in_the_export_folder_is_not_followed(two_exports, tmp_path):
    """A ``data -> elsewhere`` link is not copied, a link to ``..`` does not recurse: the
    export is refused in one line naming them, and nothing changes on disk."""
    root = two_exports[0]
    out = tmp_path / "inf"
    shutil.copytree(root / "A", out)
    elsewhere = tmp_path / "dataset"
    elsewhere.mkdir()
    (elsewhere / "big.bin").write_bytes(b"x" * 1000)
    os.symlink(elsewhere, out / "data")
    os.symlink("..", out / "up")
    before = sorted(os.walk(tmp_path))  # os.walk does not follow links
    with pytest.raises(ExportError) as info:
        export_model(_model(8), str(out), SHAPE, check=False)
    msg = str(info.value)
    assert "\n" not in msg and "data" in msg and "up" in msg
    assert sorted(os.walk(tmp_path)) == before
    assert os.readlink(out / "data") == str(elsewhere) and os.readlink(out / "up") == ".."
    assert _which(out, two_exports) == 0


@pytest.mark.timeout(120)
def test_a_link_to_the_parent_does_not_recurse(two_exports, tmp_path):
    out = tmp_path / "inf"
    shutil.copytree(two_exports[0] / "A", out)
    os.symlink("..", out / "loop")
    with pytest.raises(ExportError, match="loop"):
        export_model(_model(8), str(out), SHAPE, check=False)
    assert sorted(os.listdir(tmp_path)) == ["inf"]


def test_the_export_folder_has_the_umask_mode_or_keeps_its_own(two_exports, tmp_path):
    """A model server running as another user can read it: 0755 under umask 022 (not
    mkdtemp's 0700); an existing folder keeps its mode across exports."""
    old = os.umask(0o022)
    try:
        export_model(_model(4), str(tmp_path / "new"), SHAPE, check=False)
        assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o755
        os.chmod(tmp_path / "new", 0o750)
        export_model(_model(8, 1), str(tmp_path / "new"), SHAPE, check=False)
        assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o750
    finally:
        os.umask(old)
    assert _which(tmp_path / "new", two_exports) == 1


@pytest.mark.parametrize("where", [".", ".."])
def test_a_folder_holding_the_current_folder_is_refused(tmp_path, monkeypatch, where):
    """``save_inference_dir=.`` (or a folder above it) would swap the working folder away."""
    work = tmp_path / "proj"
    work.mkdir()
    monkeypatch.chdir(work)
    ino = os.stat(work).st_ino
    with pytest.raises(ExportError, match="current folder") as info:
        export_model(_model(4), where, SHAPE, check=False)
    assert "\n" not in str(info.value)
    assert os.stat(work).st_ino == ino and os.listdir(work) == []
    assert sorted(os.listdir(tmp_path)) == ["proj"]


def test_a_folder_with_other_files_is_refused_naming_them(tmp_path):
    """A folder holding the weights, the config or any file not of an export is not an
    export folder: refused in one line, nothing moved or deleted."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "best_model.pdparams").write_bytes(b"weights")
    (out / "config.yaml").write_text("Global: {}\n")
    with pytest.raises(ExportError, match=r"best_model.pdparams, config.yaml.*new or empty folder"):
        export_model(_model(4), str(out), SHAPE, check=False)
    assert sorted(os.listdir(out)) == ["best_model.pdparams", "config.yaml"]
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_mount_point_or_a_link_as_the_folder_is_refused_clearly(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    with pytest.raises(ExportError, match="symbolic link"):
        export_model(_model(4), str(tmp_path / "link"), SHAPE, check=False)
    mounted = str(tmp_path / "real")
    monkeypatch.setattr(os.path, "ismount", lambda p: os.path.abspath(p) == mounted)
    with pytest.raises(ExportError, match=r"mount point.*real/inference"):
        export_model(_model(4), mounted, SHAPE, check=False)
    assert os.listdir(real) == []


def test_a_users_folder_named_like_a_staging_folder_is_kept(two_exports, tmp_path):
    """Nothing is deleted for its name: a folder called like a killed export's staging
    folder (of a process that no longer runs) survives an export beside it."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = tmp_path / f".inf.export-{dead.pid}-notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    export_model(_model(4), str(tmp_path / "inf"), SHAPE, check=False)
    assert (mine / "keep.txt").read_text() == "mine"


# Every file operation an export could make; the child dies at the k-th one.
_OPS = [(os, "rename"), (os, "replace"), (os, "mkdir"), (os, "makedirs"), (os, "chmod"),
        (os, "remove"), (os, "unlink"), (os, "rmdir"), (os, "link"), (os, "symlink"),
        (shutil, "rmtree"), (shutil, "copytree"), (shutil, "copyfile"), (shutil, "move")]


def _killed_export(two_exports, out, k):
    """Export B over ``out`` in a forked child that os._exit()s at its k-th file operation
    (k=0: never). Returns the number of operations the child made."""
    root = two_exports[0]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the killed process: file operations only, no Paddle work
        try:
            os.close(r)
            paddle.jit.save = _fake_save(str(root / "B"))
            calls = [0]

            def hook(orig):
                def f(*a, **kw):
                    calls[0] += 1
                    if calls[0] == k:
                        os._exit(9)
                    return orig(*a, **kw)
                return f
            for mod, name in _OPS:
                setattr(mod, name, hook(getattr(mod, name)))
            export_model(paddle.nn.Identity(), str(out), SHAPE, check=False)
            os.write(w, str(calls[0]).encode())
        except BaseException as exc:  # noqa: BLE001 (reported to the parent)
            os.write(w, f"E{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    made = os.read(r, 1000).decode()
    os.close(r)
    assert not made.startswith("E"), made
    return int(made or 0)


def test_an_export_killed_at_any_file_operation_leaves_a_whole_model(two_exports, tmp_path,
                                                                      monkeypatch):
    """The folder holds export A; an export of B is killed at each of its file operations in
    turn. The paddle backend then runs the whole A or the whole B (A until the swap, B after),
    and the next export succeeds and is the one read, leaving nothing new beside it."""
    root = two_exports[0]
    setup = tmp_path / "count"
    shutil.copytree(root / "A", setup / "inf")
    total = _killed_export(two_exports, setup / "inf", 0)
    assert total >= 3 and _which(setup / "inf", two_exports) == 1
    seen = []
    for k in range(1, total + 1):
        parent = tmp_path / str(k)
        shutil.copytree(root / "A", parent / "inf")
        _killed_export(two_exports, parent / "inf", k)
        seen.append(_which(parent / "inf", two_exports))
        after_kill = set(os.listdir(parent))
        monkeypatch.setattr(paddle.jit, "save", _fake_save(str(root / "A")))
        export_model(paddle.nn.Identity(), str(parent / "inf"), SHAPE, check=False)
        monkeypatch.undo()
        assert _which(parent / "inf", two_exports) == 0
        assert set(os.listdir(parent)) <= after_kill | {"inf"}
        assert sorted(os.listdir(parent / "inf")) == list(FILES)
    assert seen[0] == 0 and seen[-1] == 1 and seen == sorted(seen), seen  # old, then new
