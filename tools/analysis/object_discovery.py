"""Unsupervised single-object discovery scored by CorLoc (LOST, or the RATS registers).

    python tools/analysis/object_discovery.py CONFIG CKPT --data-root D --ann-file A
        [--method lost|registers] [--img-dir SUBDIR] [--size S] [--k-patches K]
        [--max-images M] [--vis-dir DIR] [--num-vis V] [--out F.json]

A is a COCO-style json (one or more ``bbox`` per image, ``file_name`` relative to D/images,
or to D/SUBDIR with --img-dir), a folder of Pascal VOC XML files, or a VOC image-set list
(D/ImageSets/Main/trainval.txt, XML in D/Annotations, images in D/JPEGImages). One box is
predicted per image; it is correct when its IoU with any annotated box is at least 0.5, and
CorLoc is the fraction of correct images. ``lost``: LOST on the last block's patch keys (any
ViT, RATS included); ``registers``: the foreground of the registers that do not own the
image border (models with registers; docs/evaluation.md says why). PNGs of the first images
(annotated boxes green, predicted box red) go to --vis-dir (default: next to --out).
"""
import os

from rats_mm.analysis.discovery.objects import DISCOVERY_METHODS, discover_objects
from rats_mm.analysis.io import make_parser, run_cli, write_json
from rats_mm.runtime.backbones import add_model_args, model_from_args


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = add_model_args(make_parser(__doc__))
    p.add_argument('--data-root', required=True, help='dataset folder')
    p.add_argument('--ann-file', required=True,
                   help='COCO json, VOC XML folder or VOC image-set list')
    p.add_argument('--method', default='lost', choices=DISCOVERY_METHODS)
    p.add_argument('--img-dir', default=None, help='image folder relative to --data-root')
    p.add_argument('--k-patches', type=int, default=100, help="LOST's expansion size")
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--vis-dir', default=None, help='folder for the drawn boxes')
    p.add_argument('--num-vis', type=int, default=8, help='images drawn')
    p.add_argument('--out', default=None, help='JSON file for the result')
    return p.parse_args(argv)


def main(argv=None):
    """Discover one object per image, score CorLoc, print and write the result."""
    args = parse_args(argv)
    vis_dir = args.vis_dir
    if vis_dir is None and args.out:
        vis_dir = os.path.splitext(args.out)[0] + '_boxes'
    result = discover_objects(
        model_from_args(args), args.data_root, args.ann_file, method=args.method,
        img_dir=args.img_dir, size=args.size, k_patches=args.k_patches,
        max_images=args.max_images, vis_dir=vis_dir, num_vis=args.num_vis)
    result.update(config=args.config, checkpoint=args.checkpoint, data_root=args.data_root,
                  ann_file=args.ann_file, size=args.size, vis_dir=vis_dir)
    print(f"{args.method}: CorLoc {100 * result['corloc']:.2f} "
          f"({result['num_correct']} / {result['num_images']} images)")
    if args.out:
        print(f'wrote {write_json(args.out, result)}')
    return result


if __name__ == '__main__':
    run_cli(main)
