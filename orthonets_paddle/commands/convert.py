"""Convert a PyTorch checkpoint (OrthoNet, OrthoNet-MOD, FcaNet, ResNet) to .pdparams.

    python tools/convert_torch_weights.py orthonet50.pth.tar orthonet50.pdparams --arch orthonet50
"""
import sys

from . import use_cores
from ..utils.cli import new_parser, run
from ..convert import ConversionError, convert_checkpoint


def build_parser(prog=None):
    parser = new_parser(__doc__, prog)
    parser.add_argument("src", metavar="SRC", help="PyTorch checkpoint (.pth / .pth.tar)")
    parser.add_argument("dst", metavar="DST", help="Paddle weights to write (.pdparams)")
    parser.add_argument("--arch", required=True,
                        help="target model, e.g. orthonet50, orthonet_mod_50, fcanet50, resnet50")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classifier outputs (default: from the checkpoint's fc.weight)")
    parser.add_argument("--stem", default="imagenet", choices=["imagenet", "cifar"],
                        help="the checkpoint's stem: imagenet (7x7/2 conv + max pool) or cifar "
                             "(3x3/1 conv) (default: imagenet)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="training size (default: from the checkpoint's filter banks)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow checkpoints that pickle Python objects (trusted files only)")
    return parser


def _convert(args) -> None:
    try:
        report = convert_checkpoint(args.src, args.dst, args.arch, num_classes=args.num_classes,
                                    stem=args.stem, input_size=args.input_size,
                                    trust_pickle=args.trust_pickle)
    except (ConversionError, ImportError) as exc:  # in full: a mismatch lists every key
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(report.summary())


def main(argv=None, prog=None) -> int:
    args = build_parser(prog).parse_args(argv)
    use_cores()
    # run(): one line for a failed write; SIGTERM ends like Ctrl-C (the temp file is
    # removed, no Paddle C++ dump)
    run(lambda: _convert(args))
    return 0
