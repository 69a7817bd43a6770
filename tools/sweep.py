r"""Ablation sweep: a grid of overrides x seeds, one tools/train.py run each, then a summary.

  python tools/sweep.py -c configs/orthonet18_fashionmnist.yaml \
      --grid Arch.squeeze=none,avg,dct,random,ortho --seeds 3 --out output/sweeps/squeeze [--jobs 2]
  python tools/sweep.py --summarize output/sweeps/squeeze [--baseline squeeze-none]
"""
import _bootstrap  # noqa: F401  (sys.path, CPU threads)

from orthonets_paddle.utils.cli import run
from orthonets_paddle.experiments.sweep import main

if __name__ == "__main__":
    run(main)
