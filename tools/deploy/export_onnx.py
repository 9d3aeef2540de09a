"""Export a backbone to ONNX: patch maps of chosen blocks and the final registers, dynamic
batch.

    python tools/deploy/export_onnx.py CONFIG CKPT --out F.onnx [--img-size H W]
        [--out-indices I ...] [--no-norm-maps] [--trust-checkpoint] [--no-check]

CONFIG is any project config (pretraining or downstream); the backbone it describes is built,
CKPT (exported backbone, pretraining or downstream checkpoint) loaded, and F.onnx written with
input ``images`` (B, 3, H, W) (normalised as in training) and outputs ``map_<block>``
(B, D, H/p, W/p) per block of ``--out-indices`` (default: the config's
``model.backbone.out_indices``, else the last block) and ``registers`` (B, N, D). H W default
to the config's ``img_size``. Unless ``--no-check``, onnxruntime runs the file on a random
batch of 3 and the largest difference to PyTorch is printed.
"""
import sys

from rats_mm.analysis.io import make_parser, run_cli
from rats_mm.runtime.backbones import load_backbone, read_config
from rats_mm.runtime.deploy import check_onnx, export_config_backbone


def parse_args(argv=None):
    p = make_parser(__doc__)
    p.add_argument('config', help='any project config (pretraining or downstream)')
    p.add_argument('checkpoint', help='exported backbone, pretraining or downstream ckpt')
    p.add_argument('--out', required=True, help='output .onnx file')
    p.add_argument('--img-size', type=int, nargs=2, metavar=('H', 'W'), default=None)
    p.add_argument('--out-indices', type=int, nargs='+', default=None)
    p.add_argument('--no-norm-maps', action='store_true', help='maps before the final norm')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling of the checkpoint (only files you trust)')
    p.add_argument('--no-check', action='store_true', help='skip the onnxruntime check')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = load_backbone(args.config, args.checkpoint, args.trust_checkpoint)
    reference, names, size = export_config_backbone(
        read_config(args.config), model, args.out, args.img_size, args.out_indices,
        not args.no_norm_maps)
    print(f'wrote {args.out}: images (B, 3, {size[0]}, {size[1]}) -> {", ".join(names)}')
    if not args.no_check:
        print(f'onnxruntime vs PyTorch: max abs difference {check_onnx(args.out, reference, size):.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
