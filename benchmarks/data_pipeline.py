"""Which one bounds a training run: the data pipeline or the model step?

Prints the images/s of the config's training data pipeline (its ``transform_ops`` through
the package's DataLoader, on random images of ``Global.image_shape``, no model) for each
``--workers`` count, against the images/s of one training step of ``Arch`` (forward,
backward and optimizer step at ``--batch``) on this machine's device. The run goes no
faster than the smaller of the two; on a GPU, raise ``num_workers`` until the data figure
is above the step's.

    python benchmarks/data_pipeline.py [-c configs/orthonet18_cifar10.yaml] [--workers 0 1 2 4]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if __name__ == "__main__":  # run from a checkout: use this checkout's package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import orthonets_paddle  # noqa: E402,F401  (first: it silences Paddle's import notices)
import paddle  # noqa: E402

from orthonets_paddle.data import build_dataloader  # noqa: E402
from orthonets_paddle.engine.config import load_config  # noqa: E402
from orthonets_paddle.models import build_model_from_config  # noqa: E402
from orthonets_paddle.utils.threads import setup_threads  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_images_per_sec(train: dict, shape, workers: int, batch: int, images: int) -> float:
    """The Train section's transforms (and batch ops) on ``images`` random images."""
    ds = {k: v for k, v in train["dataset"].items() if k in ("transform_ops", "batch_transform_ops")}
    ds.update(name="Synthetic", num_samples=images, image_size=shape[-1], channels=shape[0])
    loader = build_dataloader({"dataset": ds, "sampler": {"batch_size": batch, "drop_last": True},
                               "loader": {"num_workers": workers}}, "train")
    it = iter(loader)
    next(it)  # start-up (worker processes) is not the pipeline's rate
    start, seen = time.perf_counter(), 0
    for x, _ in it:
        seen += x.shape[0]
    return seen / (time.perf_counter() - start)


def step_images_per_sec(arch: dict, shape, batch: int, steps: int) -> float:
    """Forward + backward + Momentum step of ``arch`` on one random batch, after a warm-up."""
    model = build_model_from_config(arch)
    opt = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    x = paddle.randn([batch, *shape])
    y = paddle.randint(0, int(arch.get("class_num", 10)), [batch])
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = paddle.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)  # wait for the device
        if i:  # the first step is the warm-up
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default=os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml"))
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--images", type=int, default=8192, help="images per data measurement")
    ap.add_argument("--steps", type=int, default=3, help="timed model steps (median)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    shape = cfg["Global"]["image_shape"]
    gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    paddle.set_device("gpu" if gpu else "cpu")
    threads, _ = setup_threads(0, "gpu" if gpu else "cpu")  # the step with a run's threads
    cores = os.cpu_count() or 1
    print(f"{os.path.relpath(args.config)}: {cfg['Arch']['name']}, input {shape}, batch "
          f"{args.batch}, {cores} CPU cores", flush=True)
    data = {}
    for w in args.workers:
        data[w] = data_images_per_sec(cfg["DataLoader"]["Train"], shape, w, args.batch, args.images)
        print(f"  data pipeline, {w} worker(s): {data[w]:8,.0f} images/s", flush=True)
    step = step_images_per_sec(cfg["Arch"], shape, args.batch, args.steps)
    where = "GPU" if gpu else f"CPU, {threads} thread(s)"
    print(f"  model step ({where}): {step:8,.0f} images/s (forward, backward, step)", flush=True)
    best = max(data, key=data.get)
    bound = "the model step" if data[best] > step else "the data pipeline"
    print(f"bound: {bound} (best data rate {data[best]:,.0f} images/s with {best} worker(s), "
          f"{data[best] / step:.1f}x the step)")
    if not gpu:
        print("On a GPU the step is far faster than here: run this there (it times the step on "
              "the GPU) and set DataLoader.Train.loader.num_workers so that the data rate "
              "stays above it; each worker adds about the 1-worker rate, up to the cores.")


if __name__ == "__main__":
    main()
