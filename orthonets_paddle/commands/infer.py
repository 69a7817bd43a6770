r"""Predict the classes of images: top-k class names and softmax scores, saved as JSON.

From a training config (dygraph, or the export with --backend paddle|onnx):
  python tools/infer.py -c configs/orthonet18_cifar10.yaml -o Infer.infer_imgs=IMAGE_OR_FOLDER \
      -o Global.pretrained_model=WEIGHTS [--backend dygraph|paddle|onnx] [--strict]
From an export folder alone (its inference.yml; Paddle Inference, or --backend onnx):
  orthonets infer --model-dir output/inference/orthonet18_fashionmnist IMAGES...
From weights alone (dygraph; preprocessing from the model's pretrained_cfg):
  orthonets infer --model orthonet18 --weights W.pdparams [--class-num N] [-o Arch.KEY=VALUE] IMAGES...
On a GPU: --device gpu [--use-tensorrt --precision fp16] (paddle and onnx backends).
(with Infer.transforms null, images of any size are resized and centre-cropped to the model's
input; results go to Global.output_dir, or --output-dir, as infer_results_<backend>.json)
"""
import os

from . import use_cores
from ..utils.cli import get_parser, run
from ..engine.config import load_config
from ..deploy.infer import config_from_export, format_predictions, infer_from_config, printable
from ..deploy.predictors import BACKENDS, add_inference_options, inference_options


def build_parser(prog=None):
    parser = get_parser(__doc__, prog)
    parser.add_argument("images", nargs="*", metavar="IMAGES",
                        help="image files or folders (default with -c: Infer.infer_imgs)")
    parser.add_argument("--model-dir", metavar="DIR",
                        help="an export folder (inference.json/.pdiparams/.onnx + inference.yml) "
                             "instead of -c")
    parser.add_argument("--model", metavar="NAME", help="model name instead of -c, e.g. "
                        "orthonet18 (with --weights)")
    parser.add_argument("--weights", metavar="PDPARAMS", help="weights for --model")
    parser.add_argument("--class-num", type=int, default=None,
                        help="classes of --model (default: read from --weights)")
    parser.add_argument("--topk", type=int, default=None, help="classes shown per image")
    parser.add_argument("--output-dir", default=None,
                        help="where the results JSON goes (default: Global.output_dir, or "
                             "./output without -c)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="dygraph: Arch + Global.pretrained_model in eager mode; paddle: Paddle "
                             "Inference on the export; onnx: ONNX Runtime on inference.onnx "
                             "(default: dygraph, paddle with --model-dir)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unreadable file in a folder (default: skip it "
                             "with a warning naming it)")
    add_inference_options(parser)
    return parser


def _classes_in(weights, name):
    """The classifier's output count in a local ``.pdparams`` (None when it is not there)."""
    from ..models.registry import get_pretrained_cfg
    from ..utils.io import load_paddle_file

    if not os.path.isfile(weights):
        return None
    state = load_paddle_file(weights)
    fc = state.get(f"{get_pretrained_cfg(name).get('classifier', 'fc')}.weight")
    return int(fc.shape[-1]) if getattr(fc, "ndim", 0) == 2 else None


def config_from_weights(args):
    """A config from --model/--weights (and -o overrides): Arch, Global.pretrained_model and
    the model's own input size."""
    from ..models.resnet import pretrained_cfg_for

    n = args.class_num or _classes_in(args.weights, args.model)
    over = [f"Arch.name={args.model}", f"Global.pretrained_model={args.weights}",
            *([f"Arch.class_num={n}"] if n else []), *args.override]
    cfg = load_config(None, over)
    if not any(o.startswith("Global.image_shape=") for o in args.override):
        arch = cfg["Arch"]
        opts = {k: v for k, v in arch.items() if k not in ("name", "class_num")}
        cfg["Global"]["image_shape"] = list(pretrained_cfg_for(
            arch["name"], arch.get("class_num", 1000), **opts)["input_size"])
    return cfg


def load_infer_config(args, parser):
    """The config of the mode asked for: -c, --model-dir or --model/--weights."""
    modes = [m for m, on in (("-c", args.config), ("--model-dir", args.model_dir),
                             ("--model", args.model)) if on]
    if len(modes) != 1:
        parser.error("give one of -c CONFIG, --model-dir EXPORT or --model NAME --weights W"
                     + (f" (got {' and '.join(modes)})" if modes else ""))
    if args.model and not args.weights:
        parser.error("--model needs --weights W.pdparams (the trained weights)")
    if args.model_dir and args.override:
        parser.error("-o applies to a config (-c or --model); an export folder is described "
                     "by its inference.yml")
    if args.config:
        cfg = load_config(args.config, args.override)
    elif args.model_dir:
        cfg = config_from_export(args.model_dir)
    else:
        cfg = config_from_weights(args)
    if args.images:
        cfg["Infer"]["infer_imgs"] = args.images if len(args.images) > 1 else args.images[0]
    if args.topk is not None:
        cfg["Infer"]["PostProcess"]["topk"] = args.topk
    if args.output_dir is not None:
        cfg["Global"]["output_dir"] = args.output_dir
    return cfg


def _main(args, parser) -> None:
    cfg = load_infer_config(args, parser)
    backend = args.backend or ("paddle" if args.model_dir else "dygraph")
    if args.model_dir and backend == "dygraph":
        raise ValueError("--model-dir holds an export: use --backend paddle or onnx (dygraph "
                         "needs -c or --model/--weights)")
    out = infer_from_config(cfg, backend=backend, threads=args.threads, strict=args.strict,
                            options=inference_options(args, cfg["Global"].get("device")))
    print(out["note"] or f"model: {', '.join(out['model_files'])}")
    print(f"runs on: {out['device']}")
    print(format_predictions(out["results"]))
    if out["skipped"]:
        print(f"skipped {len(out['skipped'])} unreadable file(s): "
              f"{', '.join(map(printable, out['skipped']))}")
    print(f"results: {printable(out['results_file'])}")


def main(argv=None, prog=None) -> None:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    use_cores()
    run(lambda: _main(args, parser))
