r"""Evaluate trained weights on DataLoader.Eval: top-1, top-5, loss (and per-class accuracy).

python tools/eval.py -c configs/orthonet18_cifar10.yaml \
    -o Global.pretrained_model=output/orthonet18_cifar10/best_model.pdparams \
    [--per-class] [--confusion output/orthonet18_cifar10/confusion.png]
"""
import _bootstrap  # noqa: F401  (sys.path, CPU threads)

from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.config import get_parser, load_config, parse_args
from orthonets_paddle.engine.metrics import evaluate_from_config, format_eval


def main(args) -> None:
    cfg = load_config(args.config, args.override)
    print(format_eval(evaluate_from_config(cfg, per_class=args.per_class,
                                           confusion_path=args.confusion)))


if __name__ == "__main__":
    parser = get_parser(__doc__)
    parser.add_argument("--per-class", action="store_true", help="also report each class's accuracy")
    parser.add_argument("--confusion", metavar="PNG", help="save a confusion-matrix plot there")
    args = parse_args(parser)
    run(lambda: main(args))
