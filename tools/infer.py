"""Predict the classes of images: top-k class names and softmax scores, saved as JSON.

python tools/infer.py -c configs/orthonet18_cifar10.yaml -o Infer.infer_imgs=IMAGE_OR_FOLDER \
    -o Global.pretrained_model=WEIGHTS [--backend dygraph|paddle|onnx]
(paddle and onnx run the model tools/export_model.py wrote to Global.save_inference_dir)
"""
import _bootstrap  # noqa: F401  (sys.path, CPU threads)

from orthonets_paddle.utils.cli import run
from orthonets_paddle.engine.config import get_parser, load_config
from orthonets_paddle.deploy.infer import format_predictions, infer_from_config
from orthonets_paddle.deploy.predictors import BACKENDS


def main(args) -> None:
    cfg = load_config(args.config, args.override)
    out = infer_from_config(cfg, backend=args.backend, threads=args.threads)
    print(format_predictions(out["results"]))
    print(f"results: {out['results_file']}")


if __name__ == "__main__":
    parser = get_parser(__doc__)
    parser.add_argument("--backend", choices=BACKENDS, default="dygraph")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args()
    if not args.config:
        parser.error("-c/--config is required (e.g. -c configs/orthonet18_cifar10.yaml)")
    run(lambda: main(args))
