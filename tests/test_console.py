"""The `orthonets <command>` console entry point: the dispatcher, the shipped configs, and a
`pip install` (not editable) into a fresh venv run end to end outside the checkout."""
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from PIL import Image

from orthonets_paddle.commands import main
from orthonets_paddle.utils.cli import config_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = "/usr/share/datasets/fashion-mnist"
# The command names and the tool each stands for.
COMMANDS = {"train": "train.py", "eval": "eval.py", "infer": "infer.py", "export": "export_model.py",
            "convert": "convert_torch_weights.py", "benchmark": "benchmark.py",
            "compare": "compare.py", "sweep": "sweep.py", "model-table": "model_table.py",
            "train-det": "train_det.py"}
# Fashion-MNIST's classes, in label order (the dataset's README).
FMNIST_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                "Sneaker", "Bag", "Ankle boot"]


def _call(argv):
    """(exit code, stdout, stderr) of ``orthonets *argv`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ORTHONETS_DEBUG")}
    return dict(env, MPLBACKEND="Agg")


def test_help_lists_every_command_without_importing_paddle():
    script = ("import sys; from orthonets_paddle.commands import main; code = main(['-h']); "
              "print('paddle imported:', any(m.split('.')[0] == 'paddle' for m in sys.modules)); "
              "import orthonets_paddle; orthonets_paddle.orthonet18; from orthonets_paddle import *; "
              "build_model; print('later:', 'paddle' in sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    listed = [ln.split()[0] for ln in lines if ln.startswith("  ")]
    assert listed == list(COMMANDS)
    assert all(len(ln.split()) > 2 for ln in lines if ln.startswith("  "))  # a summary each
    assert "paddle imported: False" in lines and "later: True" in lines
    # python -m orthonets_paddle: the same list
    proc = subprocess.run([sys.executable, "-m", "orthonets_paddle", "-h"], capture_output=True,
                          text=True, cwd=ROOT, env=_env(), timeout=120)
    assert proc.returncode == 0 and [ln.split()[0] for ln in proc.stdout.splitlines()
                                     if ln.startswith("  ")] == list(COMMANDS)


@pytest.mark.parametrize("argv, problem", [([], "a command is needed"),
                                           (["trian", "-c", "x"], "did you mean 'train'")])
def test_no_or_unknown_command_is_one_line_and_the_list(argv, problem):
    code, out, err = _call(argv)
    assert code == 2 and out == ""
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errors) == 1 and problem in errors[0]
    assert [ln.split()[0] for ln in err.splitlines() if ln.startswith("  ")] == list(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_is_its_tool_with_its_examples_rewritten(command):
    # the module the tool wraps (read from the tool), and its options as the tool has them
    tool = open(os.path.join(ROOT, "tools", COMMANDS[command])).read()
    module = tool.split("from orthonets_paddle.commands.")[1].split()[0]
    import importlib
    parser = importlib.import_module(f"orthonets_paddle.commands.{module}").build_parser()
    options = {s for a in parser._actions for s in a.option_strings}
    code, out, _ = _call([command, "-h"])
    assert code == 0 and out.startswith(f"usage: orthonets {command} ")
    shown = {w.strip(",") for ln in out.split("options:")[1].splitlines()
             for w in ln.split() if w.startswith("-")}
    assert options <= shown
    # the description's examples name the console command, not the checkout's script
    assert "tools/" not in out.split("options:")[0] and f"orthonets {command} " in out


def test_configs_resolve_to_the_shipped_copy_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = os.path.join(ROOT, "configs")
    for given, name in [("orthonet18_fashionmnist", "orthonet18_fashionmnist.yaml"),
                        ("configs/orthonet18_cifar10.yaml", "orthonet18_cifar10.yaml"),
                        ("det/faster_rcnn_orthonet50_fpn_1x_coco", "det/faster_rcnn_orthonet50_fpn_1x_coco.yml")]:
        with open(config_path(given), "rb") as got, open(os.path.join(shipped, name), "rb") as want:
            assert got.read() == want.read(), given
    # the user's own file of that name wins
    os.makedirs("configs")
    with open("configs/orthonet18_cifar10.yaml", "w") as f:
        f.write("Global: {}\n")
    assert config_path("configs/orthonet18_cifar10.yaml") == "configs/orthonet18_cifar10.yaml"
    code, _, err = _call(["train", "-c", "orthonet18_fmnist"])
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert code == 2 and len(errors) == 1 and "did you mean 'orthonet18_fashionmnist'" in errors[0]


def test_resume_hint_names_the_command_the_user_ran(tmp_path):
    from orthonets_paddle.commands.train import resume_hint
    (tmp_path / "latest.pdparams").write_bytes(b"")
    argv = ["-c", "orthonet18_fashionmnist", "-o", "Global.epochs=3"]
    assert resume_hint(argv, str(tmp_path), "orthonets train") == (
        f"resume with: orthonets train -c orthonet18_fashionmnist -o Global.epochs=3 "
        f"-o Global.checkpoints={tmp_path}")


def _fmnist_image(path, index=0):
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    Image.fromarray(data[index], "L").save(path)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(not os.path.isdir(FMNIST), reason="needs dataset-fashion-mnist")
def test_pip_installed_command_runs_end_to_end_outside_the_checkout(tmp_path):
    # What `pip install .` builds from: the package, its configs, setup.py and the README.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy2(os.path.join(ROOT, name), src / name)
    for name in ("configs", "orthonets_paddle"):
        shutil.copytree(os.path.join(ROOT, name), src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    # system site packages: Paddle, pip, setuptools and the rest come from the system (the
    # venv's own ensurepip setuptools may be too old to build a wheel); the package goes into
    # the venv
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", str(src)], capture_output=True, text=True,
                         cwd=work, env=_env(), timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]

    def run(*args):
        proc = subprocess.run([str(venv / "bin" / args[0]), *map(str, args[1:])], cwd=work,
                              capture_output=True, text=True, env=_env(), timeout=300)
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        return proc.stdout

    where = run("python", "-c", "import orthonets_paddle; print(orthonets_paddle.__file__)")
    assert where.strip().startswith(str(venv)), where
    tiny = ["-o", "Arch.width=4", "-o", "Global.print_batch_step=1",
            "-o", "DataLoader.Train.dataset.num_samples=32", "-o", "DataLoader.Train.sampler.batch_size=16",
            "-o", "DataLoader.Eval.dataset.num_samples=16"]
    run("orthonets", "train", "-c", "orthonet18_fashionmnist", "-o", "Global.epochs=1", *tiny)
    weights = work / "output" / "orthonet18_fashionmnist" / "best_model.pdparams"
    assert weights.is_file()
    tiny += ["-o", f"Global.pretrained_model={weights}"]
    # the README's path form works too, with no configs/ here
    out = run("orthonets", "eval", "-c", "configs/orthonet18_fashionmnist.yaml", *tiny)
    assert "(16 samples)" in out
    run("orthonets", "export", "-c", "orthonet18_fashionmnist", *tiny)
    assert (work / "output" / "inference" / "orthonet18_fashionmnist" / "inference.pdiparams").is_file()
    _fmnist_image(work / "shoe.png")
    out = run("orthonets", "infer", "-c", "orthonet18_fashionmnist", *tiny,
              "-o", "Infer.infer_imgs=shoe.png", "--backend", "paddle")
    results = json.load(open(work / "output" / "orthonet18_fashionmnist" / "infer_results_paddle.json"))
    top = results["results"][0]["topk"]
    assert len(top) == 3 and all(t["class_name"] in FMNIST_NAMES for t in top)
    assert f"shoe.png: {top[0]['class_name']} " in out
