"""Inference throughput and latency (dygraph, Paddle Inference, ONNX Runtime), training speed,
and the ratio against a second model.

python tools/benchmark.py -c configs/orthonet18_cifar10.yaml --compare resnet18 --train
python tools/benchmark.py --arch orthonet18 --num-classes 10 --stem cifar --image-size 32
python tools/benchmark.py --suite     # benchmarks/suite.py: every performance target, as ratios
python tools/benchmark.py --data      # images/s of the seed's CIFAR transforms, per backend
"""
from . import use_cores
from ..deploy.benchmark import benchmark, format_benchmark, save_benchmark
from ..models.registry import build_model_from_config, model_channels
from ..utils.cli import get_parser, run
from ..engine.config import load_config


def build_models(args):
    """The models to time (no weights: they do not change the timing) and their input shape:
    the config's Arch at Global.image_shape, or --arch's at its own input_size."""
    if args.config:
        cfg = load_config(args.config, args.override)
        arch, shape = dict(cfg["Arch"]), list(cfg["Global"]["image_shape"])
        if args.image_size is not None:
            shape = [shape[0], args.image_size, args.image_size]
    else:
        arch, shape = {"name": args.arch, "class_num": args.num_classes, "stem": args.stem}, None
        if args.width is not None:
            arch["width"] = args.width
        if args.image_size is not None:
            arch["input_size"] = args.image_size
    if args.compare == arch["name"]:
        raise ValueError(f"--compare {args.compare} is the model being benchmarked; compare "
                         "with another, e.g. --compare resnet18")
    models = {n: build_model_from_config(dict(arch, name=n)).eval()
              for n in [arch["name"], *([args.compare] if args.compare else [])]}
    if shape is None:
        size = getattr(models[arch["name"]], "input_size", 224)
        shape = [model_channels(arch), size, size]
    return models, shape


def _main(args) -> None:
    if args.suite or args.data:
        from benchmarks import suite as perf  # the project's suite, not installed
        if args.data:
            for backend, ips in perf.data_throughput().items():
                print(f"seed CIFAR train transforms, {backend}: {ips:.0f} images/s (one process)")
            return
        result = perf.run_suite(quick=args.quick, log=lambda m: print(m, flush=True))
        print(perf.format_suite(result))
        if args.json:
            print(f"saved: {save_benchmark(result, args.json)}")
        return
    models, shape = build_models(args)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    result = benchmark(models, shape, args.batch_size, args.warmup, args.repeats, args.threads,
                       backends, train=args.train, log=lambda m: print(m, flush=True))
    print(format_benchmark(result))
    if args.json:
        print(f"saved: {save_benchmark(result, args.json)}")


def build_parser(prog=None):
    parser = get_parser(__doc__, prog)
    parser.add_argument("--arch", help="model name instead of -c, e.g. orthonet18")
    parser.add_argument("--num-classes", type=int, default=1000, help="classes (--arch only; default 1000)")
    parser.add_argument("--stem", choices=["imagenet", "cifar"], default="imagenet",
                        help="stem (--arch only; default imagenet)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side (default: the config's image_shape, or the model's input_size)")
    parser.add_argument("--width", type=int, default=None, help="base channels (--arch only; default 64)")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="images per timed batch (default: 128)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed batches per model and backend first (default: 5)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed batches per model and backend, interleaved (default: 20)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--backends", default="dygraph,paddle,onnx",
                        help="comma-separated: dygraph (eager), paddle (Paddle Inference on an "
                             "export), onnx (ONNX Runtime) (default: all three)")
    parser.add_argument("--train", action="store_true", help="also time training steps")
    parser.add_argument("--compare", metavar="ARCH", help="second model, e.g. resnet18")
    parser.add_argument("--json", metavar="PATH",
                        help="save the figures as JSON (RUN_DIR/benchmark.json feeds tools/compare.py)")
    parser.add_argument("--suite", action="store_true",
                        help="run every performance target of docs/PERFORMANCE.md in one run")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (with --suite)")
    parser.add_argument("--data", action="store_true", help="data pipeline throughput only")
    return parser


def main(argv=None, prog=None) -> None:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not (args.suite or args.data) and bool(args.config) == bool(args.arch):
        parser.error("give either -c CONFIG or --arch NAME")
    use_cores()
    run(lambda: _main(args))
