"""Is our numpy ``ToTensor`` worth keeping? The seed's CIFAR training pipeline through a
``paddle.io.DataLoader`` (batch 256, 0 and 2 workers), once with Paddle's own ``ToTensor``
(a ``paddle.Tensor`` per image) and once with ours (a numpy array per image, one tensor per
batch from collate). Prints images/s of each and the ratio ours / Paddle's.

    python benchmarks/data_tail.py [--images 4096] [--workers 0 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":  # run from a checkout: use this checkout's package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import paddle  # noqa: E402
import paddle.vision.transforms as T  # noqa: E402

from orthonets_paddle.data import Synthetic, build_transforms  # noqa: E402

SEED_OPS = [{"RandomCrop": {"size": 32, "padding": 4}},
            {"ColorJitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2}},
            {"RandomHorizontalFlip": {"prob": 0.5}}, {"RandomRotation": {"degrees": 20}},
            {"ToTensor": {}}, {"Normalize": {"mean": [0.5] * 3, "std": [0.5] * 3}}]


def images_per_sec(transforms, n: int, workers: int) -> float:
    ds = Synthetic(num_samples=n, image_size=32, transforms=transforms)
    loader = paddle.io.DataLoader(ds, batch_size=256, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)  # start-up (workers, imports) is not what is compared
    start, seen = time.perf_counter(), 0
    for x, _ in it:
        seen += x.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    paddle.set_device("cpu")
    ours = build_transforms(SEED_OPS)
    theirs = build_transforms(SEED_OPS)
    theirs.ops[4] = T.ToTensor()  # Paddle's own: a paddle.Tensor per image
    for workers in args.workers:
        a = images_per_sec(theirs, args.images, workers)
        b = images_per_sec(ours, args.images, workers)
        print(f"num_workers={workers}: paddle ToTensor {a:,.0f} images/s, numpy ToTensor "
              f"{b:,.0f} images/s, ratio {b / a:.2f}", flush=True)


if __name__ == "__main__":
    main()
