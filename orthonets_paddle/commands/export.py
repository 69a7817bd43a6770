r"""Export trained weights for deployment: Paddle Inference (inference.json + .pdiparams)
and, with --onnx, ONNX (inference.onnx), into Global.save_inference_dir.

python tools/export_model.py -c configs/orthonet18_cifar10.yaml \
    -o Global.pretrained_model=output/orthonet18_cifar10/best_model.pdparams [--onnx] [--opset 13]
"""
from . import use_cores
from ..utils.cli import get_parser, parse_args, run
from ..engine.config import load_config
from ..deploy.export import DEFAULT_OPSET, export_from_config


def build_parser(prog=None):
    parser = get_parser(__doc__, prog)
    parser.add_argument("--onnx", action="store_true", help="also export inference.onnx (paddle2onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset version (default: {DEFAULT_OPSET})")
    parser.add_argument("--no-check", action="store_true",
                        help="skip comparing the exported outputs with dygraph's")
    return parser


def _main(args) -> None:
    cfg = load_config(args.config, args.override)
    out = export_from_config(cfg, onnx=args.onnx, opset_version=args.opset,
                             check=not args.no_check)
    for kind, path in out["files"].items():
        print(f"{kind:>6}: {path}")
    if out["check"]:
        c = out["check"]
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in c["max_abs_diff"].items())
        print(f"checked against dygraph (batch sizes {c['batch_sizes']}): max abs diff {diffs} "
              f"(allowed {c['tolerance']:.1e})")


def main(argv=None, prog=None) -> None:
    args = parse_args(build_parser(prog), argv)
    use_cores()
    run(lambda: _main(args))
