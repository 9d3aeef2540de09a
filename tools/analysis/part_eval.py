"""Unsupervised part segmentation scored against part masks (mIoU, NMI, ARI).

    python tools/analysis/part_eval.py CONFIG CKPT --data-root D
        [--method registers|kmeans] [--assignment cosine|broadcast] [--num-clusters K]
        [--mode hungarian|majority]
        [--background-threshold T] [--split SUBDIR] [--max-images M] [--size S]
        [--out FILE.json]

D is the generic layout: D/images/** and D/parts/<same relative stem>.png (uint8 part ids,
0 background, 255 ignore; any image size, ids up to 254). ``registers``: each patch goes to
its most similar register (cosine), or to an extra background segment when its best
similarity is below T; with ``--assignment broadcast`` each patch goes instead to the register
it reads most from in the last block's broadcast step (RATS only). ``kmeans``: k-means on
the patch features of all images jointly (K defaults to the number of registers). Patch
labels are upsampled (nearest) to the image, which, like its mask, is centre-cropped to a
multiple of the patch size (after an optional resize of the short side to S). Background (id 0) is scored as one ground-truth class like any
part; a thresholded background segment is matched like any other segment. ``num_gt`` is the
largest part id seen + 1. ``ari`` is clipped at 0 (chance level) so all three scores are
fractions in [0, 1]; the signed value is kept as ``ari_raw``.
"""
from rats_mm.analysis.io import make_parser, run_cli, write_json
from rats_mm.runtime.backbones import add_model_args, model_from_args
from rats_mm.analysis.parts.part_eval import evaluate_parts


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = add_model_args(make_parser(__doc__))
    p.add_argument('--data-root', required=True, help='folder with images/ and parts/')
    p.add_argument('--method', default=None, choices=['registers', 'kmeans'],
                   help='default: registers if the model has them, else kmeans')
    p.add_argument('--assignment', default='cosine', choices=['cosine', 'broadcast'],
                   help='registers: most similar final register (cosine), or the register '
                        'the patch reads most from in the last broadcast step')
    p.add_argument('--num-clusters', type=int, default=None,
                   help='k-means K (default: the registers N, or for a model without '
                        'registers the number of ground-truth part classes present)')
    p.add_argument('--mode', default='hungarian', choices=['hungarian', 'majority'])
    p.add_argument('--background-threshold', type=float, default=None,
                   help='registers: best cosine below this -> background segment')
    p.add_argument('--split', default=None, help='only images under images/SPLIT')
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--seed', type=int, default=0, help='k-means seed')
    p.add_argument('--out', default=None, help='JSON file for the scores')
    return p.parse_args(argv)


def main(argv=None):
    """Score the predicted part maps of a dataset and print / write the result."""
    args = parse_args(argv)
    model = model_from_args(args)
    result = evaluate_parts(
        model, args.data_root, mode=args.mode, method=args.method, assignment=args.assignment,
        num_clusters=args.num_clusters, background_threshold=args.background_threshold,
        split=args.split, max_images=args.max_images, size=args.size, seed=args.seed)
    result.update(background_threshold=args.background_threshold, size=args.size,
                  split=args.split, config=args.config, checkpoint=args.checkpoint,
                  data_root=args.data_root)
    print(f"{result['method']} ({args.mode}) on {result['num_images']} images, "
          f"{result['num_pred']} segments vs {result['num_gt']} classes: "
          f"mIoU {100 * result['miou']:.2f}  NMI {100 * result['nmi']:.2f}  "
          f"ARI {100 * result['ari']:.2f}  pixel acc. {100 * result['pixel_accuracy']:.2f}")
    if args.out:
        print(f'wrote {write_json(args.out, result)}')
    return result


if __name__ == '__main__':
    run_cli(main)
