r"""Evaluate trained weights on DataLoader.Eval: top-1, top-5, loss (and per-class accuracy).

python tools/eval.py -c configs/orthonet18_cifar10.yaml \
    -o Global.pretrained_model=output/orthonet18_cifar10/best_model.pdparams \
    [--per-class] [--confusion output/orthonet18_cifar10/confusion.png]
"""
from . import use_cores
from ..utils.cli import get_parser, parse_args, run
from ..engine.config import load_config
from ..engine.metrics import evaluate_from_config, format_eval


def build_parser(prog=None):
    parser = get_parser(__doc__, prog)
    parser.add_argument("--per-class", action="store_true", help="also report each class's accuracy")
    parser.add_argument("--confusion", metavar="PNG", help="save a confusion-matrix plot there")
    return parser


def _main(args) -> None:
    cfg = load_config(args.config, args.override)
    print(format_eval(evaluate_from_config(cfg, per_class=args.per_class,
                                           confusion_path=args.confusion)))


def main(argv=None, prog=None) -> None:
    args = parse_args(build_parser(prog), argv)
    use_cores()
    run(lambda: _main(args))
