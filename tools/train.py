"""Train a model: python tools/train.py -c configs/orthonet18_cifar10.yaml [-o Key=value ...]"""
import _bootstrap  # noqa: F401  (sys.path, CPU threads)

from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.config import load_config, parse_args
from orthonets_paddle.engine import train

if __name__ == "__main__":
    args = parse_args(__doc__)
    run(lambda: train(load_config(args.config, args.override)))
