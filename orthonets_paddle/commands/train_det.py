r"""Train a detector with PaddleDetection's trainer and an OrthoNet backbone.

python tools/train_det.py -c configs/det/faster_rcnn_orthonet50_fpn_1x_coco.yml [--eval] \
    [-o TrainDataset.dataset_dir=/data/coco EvalDataset.dataset_dir=/data/coco use_gpu=false ...]

Needs the det extra and PaddleDetection (README, "Detection"); COCO 2017 under
dataset/coco unless overridden.
"""

from . import use_cores
from ..utils.cli import config_path, new_parser, run


def build_parser(prog=None):
    parser = new_parser(__doc__, prog)
    parser.add_argument("-c", "--config", required=True, type=config_path,
                        help="detection YAML (configs/det/, or det/<name> of a shipped one)")
    parser.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. -o epoch=1 TrainReader.batch_size=2")
    parser.add_argument("--eval", action="store_true",
                        help="evaluate on EvalDataset (COCO bbox AP) every snapshot_epoch")
    return parser


def _main(args) -> None:
    try:
        from ..det import load_det_config, train_detector
    except ImportError as exc:  # one clear line with the install command, not a traceback
        raise RuntimeError(str(exc)) from exc
    train_detector(load_det_config(args.config, args.opt), validate=args.eval)


def main(argv=None, prog=None) -> None:
    args = build_parser(prog).parse_args(argv)
    use_cores()
    run(lambda: _main(args))
