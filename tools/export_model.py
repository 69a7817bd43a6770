r"""Export trained weights for deployment: Paddle Inference (inference.json + .pdiparams)
and, with --onnx, ONNX (inference.onnx), into Global.save_inference_dir.

python tools/export_model.py -c configs/orthonet18_cifar10.yaml \
    -o Global.pretrained_model=output/orthonet18_cifar10/best_model.pdparams [--onnx] [--opset 13]
"""
import _bootstrap  # noqa: F401  (sys.path, CPU threads)

from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.config import get_parser, load_config
from orthonets_paddle.deploy.export import DEFAULT_OPSET, export_from_config


def main(args) -> None:
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


if __name__ == "__main__":
    parser = get_parser(__doc__)
    parser.add_argument("--onnx", action="store_true", help="also export inference.onnx (paddle2onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset version (default: {DEFAULT_OPSET})")
    parser.add_argument("--no-check", action="store_true",
                        help="skip comparing the exported outputs with dygraph's")
    args = parser.parse_args()
    if not args.config:
        parser.error("-c/--config is required (e.g. -c configs/orthonet18_cifar10.yaml)")
    run(lambda: main(args))
