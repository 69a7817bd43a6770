"""Compare finished training runs: a Markdown table (val acc, parameters, throughput) and
their learning curves on one plot.

python tools/compare.py output/orthonet18_cifar10 output/resnet18_cifar10 --out output/compare
"""

from . import use_cores
from ..utils.cli import new_parser, run
from ..engine.runs import compare_runs


def build_parser(prog=None):
    parser = new_parser(__doc__, prog)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training output folders")
    parser.add_argument("--out", default="output/compare", help="folder for comparison.md and the PNG (default: output/compare)")
    return parser


def _main(args) -> None:
    out = compare_runs(args.run_dirs, args.out)
    print(out["markdown"])
    print(f"saved: {out['markdown_file']}, {out['plot_file']}")


def main(argv=None, prog=None) -> None:
    args = build_parser(prog).parse_args(argv)
    use_cores()
    run(lambda: _main(args))
