r"""Ablation sweep: a grid of overrides x seeds, one tools/train.py run each, then a summary.

  python tools/sweep.py -c configs/orthonet18_fashionmnist.yaml \
      --grid Arch.squeeze=none,avg,dct,random,ortho --seeds 3 --out output/sweeps/squeeze [--jobs 2]
  python tools/sweep.py --summarize output/sweeps/squeeze [--baseline squeeze-none]
"""
from . import use_cores
from ..utils.cli import get_parser, run
from ..experiments.sweep import plan_sweep, run_sweep, summarize


def build_parser(prog=None):
    p = get_parser(__doc__, prog)  # -c, and -o: an override for every run
    p.add_argument("--grid", action="append", default=[], metavar="KEY=v1,v2",
                   help="one axis of the grid, repeatable (the product of the axes is run)")
    p.add_argument("--seeds", default="3", help="a count N (seeds 0..N-1) or a list 0,1,2; "
                   "each sets Global.seed, and Arch.seed unless --grid/-o sets it (default: 3)")
    p.add_argument("--out", help="sweep directory (one folder per run); required unless --summarize")
    p.add_argument("--jobs", type=int, default=1, help="runs at once; the cores are split (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--summarize", metavar="DIR", help="only write the summary of sweep DIR")
    p.add_argument("--baseline", help="variant the paired differences are taken from "
                   "(default: the first grid value)")
    p.add_argument("--no-summary", action="store_true", help="do not summarize after the runs")
    p.add_argument("--no-throughput", action="store_true",
                   help="summary without measuring each variant's inference images/s")
    return p


def _main(args) -> None:
    if args.summarize:
        summarize(args.summarize, baseline=args.baseline, measure_throughput=not args.no_throughput)
        return
    if not args.config or not args.out:
        raise ValueError("a sweep needs -c CONFIG and --out DIR (or use --summarize DIR)")
    run_sweep(plan_sweep(args.config, args.grid, args.seeds, args.out, args.override),
              jobs=args.jobs, dry_run=args.dry_run, summarize_after=not args.no_summary)


def main(argv=None, prog=None) -> None:
    args = build_parser(prog).parse_args(argv)
    use_cores()
    run(lambda: _main(args))
