"""Train a model (a PaddleClas-style YAML config, keys overridable from the command line).

python tools/train.py -c configs/orthonet18_cifar10.yaml [-o Key=value ...]

Ctrl-C stops the run and prints the command that resumes it from the last saved epoch."""
import os
import shlex
import sys

from . import use_cores
from ..utils.cli import get_parser, parse_args, run
from ..engine.config import load_config
from ..engine import train


def resume_hint(argv, output_dir: str, prog=None) -> str:
    """The line printed on Ctrl-C: this command (``prog``, default the script) plus
    -o Global.checkpoints=<output_dir> when an epoch was saved there (latest.pdparams), else
    the advice to start again."""
    if not os.path.isfile(os.path.join(output_dir, "latest.pdparams")):
        return ("no epoch finished yet, so there is no checkpoint to resume (latest.* is "
                "written at the end of each epoch); run the same command again to restart")
    args = [a for a in argv if not a.startswith("Global.checkpoints=")]
    args = [a for i, a in enumerate(args)  # drop an "-o" left without its value
            if not (a in ("-o", "--override") and (i + 1 == len(args) or args[i + 1] in ("-o", "--override")))]
    cmd = " ".join(shlex.quote(a) for a in [*(prog.split() if prog else ["python", "tools/train.py"]), *args])
    return f"resume with: {cmd} -o Global.checkpoints={shlex.quote(output_dir)}"


def build_parser(prog=None):
    return get_parser(__doc__, prog)


def _main(args, argv, prog) -> None:
    cfg = load_config(args.config, args.override)
    try:
        train(cfg)
    except KeyboardInterrupt as exc:  # run() prints "interrupted; <hint>" once, exits 130
        exc.resume_dir, exc.note = None, resume_hint(argv, cfg["Global"]["output_dir"], prog)
        raise


def main(argv=None, prog=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(build_parser(prog), argv)
    use_cores()
    run(lambda: _main(args, argv, prog))


if __name__ == "__main__":  # python -m orthonets_paddle.commands.train (tools/sweep.py's runs)
    main()
