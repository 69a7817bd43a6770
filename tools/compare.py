"""Compare finished training runs: a Markdown table (val acc, parameters, throughput) and
their learning curves on one plot.

python tools/compare.py output/orthonet18_cifar10 output/resnet18_cifar10 --out output/compare
"""
import _bootstrap  # noqa: F401  (sys.path, CPU threads)

import argparse

from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.runs import compare_runs


def main(args) -> None:
    out = compare_runs(args.run_dirs, args.out)
    print(out["markdown"])
    print(f"saved: {out['markdown_file']}, {out['plot_file']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training output folders")
    parser.add_argument("--out", default="output/compare", help="folder for comparison.md and the PNG (default: output/compare)")
    args = parser.parse_args()
    run(lambda: main(args))
