"""Write docs/MODELS.md: trainable params, FLOPs (our Conv2D/Linear count) and CPU latency (Paddle
Inference and ONNX Runtime, batch 1 and 8) of every registered model, each depth's models
timed interleaved with the ResNet of that depth.

python tools/model_table.py                      # quick: 1 warm-up + 3 timed calls
python tools/model_table.py --repeats 20 --threads 2 --models 'orthonet*' 'resnet*'
"""
import shlex
import sys
import time

from . import use_cores
from ..deploy.model_table import format_table, measure_models
from ..models import list_models
from ..utils.cli import new_parser, run
from ..utils.io import write_text


def build_parser(prog=None):
    parser = new_parser(__doc__, prog)
    parser.add_argument("--models", nargs="+", default=None,
                        help="name patterns as list_models takes them, e.g. 'orthonet*' "
                             "(default: every registered model)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8],
                        help="batch sizes timed per backend (default: 1 8)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed calls per model and batch (default: 1)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per model and batch (default: 3, quick on a busy "
                             "machine; 20 for firm figures)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of each predictor (default: 1)")
    parser.add_argument("--no-latency", action="store_true",
                        help="params and FLOPs only (no export, no timing)")
    parser.add_argument("--output", default="docs/MODELS.md",
                        help="where to write the table (default: docs/MODELS.md)")
    return parser


def _main(args, argv, prog) -> None:
    names = list_models(args.models) if args.models else list_models()
    if not names:
        raise ValueError(f"--models {' '.join(args.models)} matches no registered model; "
                         f"registered: {', '.join(list_models())}")
    start = time.time()
    rows = measure_models(names, args.batch_sizes, args.warmup, args.repeats, args.threads,
                          latency=not args.no_latency)
    command = (prog or "python tools/model_table.py") + " " + " ".join(map(shlex.quote, argv))
    text = format_table(rows, command.strip(), args.threads, args.warmup, args.repeats,
                        args.batch_sizes, time.time() - start)
    print(text)
    print(f"written: {write_text(text, args.output)}")


def main(argv=None, prog=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog).parse_args(argv)
    use_cores()
    run(lambda: _main(args, argv, prog))
