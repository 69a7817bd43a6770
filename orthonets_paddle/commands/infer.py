r"""Predict the classes of images: top-k class names and softmax scores, saved as JSON.

python tools/infer.py -c configs/orthonet18_cifar10.yaml -o Infer.infer_imgs=IMAGE_OR_FOLDER \
    -o Global.pretrained_model=WEIGHTS [--backend dygraph|paddle|onnx] [--strict]
(paddle and onnx run the model tools/export_model.py wrote to Global.save_inference_dir;
with Infer.transforms null, images of any size are resized and centre-cropped to
Global.image_shape as the model's pretrained_cfg says; results go to
Global.output_dir/infer_results_<backend>.json)
"""
from . import use_cores
from ..utils.cli import get_parser, parse_args, run
from ..engine.config import load_config
from ..deploy.infer import format_predictions, infer_from_config
from ..deploy.predictors import BACKENDS


def build_parser(prog=None):
    parser = get_parser(__doc__, prog)
    parser.add_argument("--backend", choices=BACKENDS, default="dygraph",
                        help="dygraph: Arch + Global.pretrained_model in eager mode; paddle: Paddle "
                             "Inference on the export; onnx: ONNX Runtime on inference.onnx "
                             "(default: dygraph)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unreadable file in a folder (default: skip it "
                             "with a warning naming it)")
    return parser


def _main(args) -> None:
    cfg = load_config(args.config, args.override)
    out = infer_from_config(cfg, backend=args.backend, threads=args.threads, strict=args.strict)
    print(out["note"] or f"model: {', '.join(out['model_files'])}")
    print(format_predictions(out["results"]))
    if out["skipped"]:
        print(f"skipped {len(out['skipped'])} unreadable file(s): {', '.join(out['skipped'])}")
    print(f"results: {out['results_file']}")


def main(argv=None, prog=None) -> None:
    args = parse_args(build_parser(prog), argv)
    use_cores()
    run(lambda: _main(args))
