"""Train a model (a PaddleClas-style YAML config, keys overridable from the command line).

python tools/train.py -c configs/orthonet18_cifar10.yaml [-o Key=value ...]

Ctrl-C stops the run and prints the command that resumes it from the last saved epoch."""
import os
import shlex
import sys

import _bootstrap  # noqa: F401  (sys.path, CPU threads)

from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.config import load_config, parse_args
from orthonets_paddle.engine import train


def resume_hint(argv, output_dir: str) -> str:
    """The line printed on Ctrl-C: this command plus -o Global.checkpoints=<output_dir>
    when an epoch was saved there (latest.pdparams), else the advice to start again."""
    if not os.path.isfile(os.path.join(output_dir, "latest.pdparams")):
        return ("no epoch finished yet, so there is no checkpoint to resume (latest.* is "
                "written at the end of each epoch); run the same command again to restart")
    args = [a for a in argv if not a.startswith("Global.checkpoints=")]
    args = [a for i, a in enumerate(args)  # drop an "-o" left without its value
            if not (a in ("-o", "--override") and (i + 1 == len(args) or args[i + 1] in ("-o", "--override")))]
    cmd = " ".join(shlex.quote(a) for a in ["python", "tools/train.py", *args])
    return f"resume with: {cmd} -o Global.checkpoints={shlex.quote(output_dir)}"


def main(args) -> None:
    cfg = load_config(args.config, args.override)
    try:
        train(cfg)
    except KeyboardInterrupt as exc:  # run() prints "interrupted; <hint>" once, exits 130
        exc.resume_dir, exc.note = None, resume_hint(sys.argv[1:], cfg["Global"]["output_dir"])
        raise


if __name__ == "__main__":
    args = parse_args(__doc__)
    run(lambda: main(args))
