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
the patch features of all images jointly (K defaults to the number of registers). Patch labels are upsampled (nearest) to the image,
which, like its mask, is centre-cropped to a multiple of the patch size (after an optional
resize of the short side to S). Background (id 0) is scored as one ground-truth class like any
part; a thresholded background segment is matched like any other segment. ``num_gt`` is the
largest part id seen + 1. ``ari`` is clipped at 0 (chance level) so all three scores are
fractions in [0, 1]; the signed value is kept as ``ari_raw``.
"""
import os


import numpy as np
import torch

from rats_mm.analysis import (clustering_scores, kmeans, part_miou,
                              register_assignment, upsample_labels)
from rats_mm.engine.backbone_io import (add_model_args, features, make_parser,
                                        model_from_args, part_items, prepare_image,
                                        prepare_labels, run_cli, write_json)

IGNORE = 255


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


def segment(model, args):
    """Segment every image's patches.

    Args:
        model (RatsViT): The backbone (eval mode).
        args (argparse.Namespace): Parsed arguments.

    Returns:
        tuple: per image (L,) int64 patch labels, (h, w) grids and (H, W) uint8 masks aligned
        with the prepared image; and num_pred, the number of segment ids.
    """
    N, p = model.num_registers, model.patch_size
    args.method = args.method or ('registers' if N else 'kmeans')
    if args.method == 'registers' and N == 0:
        raise ValueError(f'the model of {args.config} has no registers (num_registers=0): '
                         'use --method kmeans')
    broadcast = args.method == 'registers' and args.assignment == 'broadcast'
    if broadcast and model.attn_mode != 'rats':
        raise ValueError(f"--assignment broadcast needs a RATS model (attn_mode='rats'); the "
                         f'model of {args.config} has attn_mode={model.attn_mode!r}')
    K = args.num_clusters if args.num_clusters is not None else N
    if args.method == 'kmeans' and args.num_clusters is not None and K < 1:
        raise ValueError(f'--num-clusters {K} must be at least 1')
    items, count = part_items(args.data_root, args.split, args.max_images)
    if count == 0:
        raise FileNotFoundError(f'no images to evaluate under {args.data_root} '
                                f'(split={args.split})')
    labels, grids, masks = [], [], []
    device = next(model.parameters()).device
    for item in items:
        image = prepare_image(item['image'], p, args.size)
        out = features(model, image)
        masks.append(prepare_labels(item['parts'], p, args.size))
        grids.append(out['grid_size'])
        if broadcast:
            labels.append(model.last_broadcast_weights(image.to(device))[0].argmax(-1).cpu())
        elif args.method == 'registers':
            labels.append(register_assignment(out['x_norm_patchtokens'], out['x_norm_regtokens'],
                                              args.background_threshold)[0])
        else:
            labels.append(out['x_norm_patchtokens'][0])                     # (L, D) for now
    if args.method == 'kmeans':
        if K < 1:  # no registers to take K from: as many clusters as part classes present
            K = len(set().union(*(np.unique(m[m != IGNORE]).tolist() for m in masks)))
        flat = torch.cat(labels)                                            # (sum L, D)
        if K > flat.shape[0]:
            raise ValueError(f'--num-clusters {K} exceeds the {flat.shape[0]} patches')
        _, assign = kmeans(flat, K, seed=args.seed)
        labels = list(torch.split(assign, [t.shape[0] for t in labels]))
    num_pred = K if args.method == 'kmeans' else N + int(args.background_threshold is not None)
    return labels, grids, masks, num_pred


def pixel_maps(labels, grids, masks):
    """Lazily upsample (L,) patch labels to each mask's (H, W): whole-dataset pixel maps are
    never held in memory at once."""
    for lab, grid, mask in zip(labels, grids, masks):
        yield upsample_labels(lab[None], grid, mask.shape)[0].numpy()


def main(argv=None):
    """Score the predicted part maps of a dataset and print / write the result."""
    args = parse_args(argv)
    if not os.path.isdir(args.data_root):
        raise FileNotFoundError(f'data root {args.data_root} does not exist')
    model = model_from_args(args)
    labels, grids, masks, num_pred = segment(model, args)
    if all((m == IGNORE).all() for m in masks):
        raise ValueError(f'every mask pixel under {args.data_root} is ignore ({IGNORE})')
    num_gt = max(int(m[m != IGNORE].max(initial=0)) for m in masks) + 1
    res = part_miou(pixel_maps(labels, grids, masks), masks, num_pred, num_gt,
                    ignore_index=IGNORE, mode=args.mode)
    cs = clustering_scores(pixel_maps(labels, grids, masks), masks, ignore_index=IGNORE)
    result = {
        'miou': res['miou'], 'nmi': cs['nmi'], 'ari': max(0.0, cs['ari']), 'ari_raw': cs['ari'],
        'pixel_accuracy': res['pixel_accuracy'], 'per_class_iou': res['per_class_iou'],
        'present_classes': res['present_classes'], 'assignment': res['assignment'],
        'method': args.method, 'patch_assignment': args.assignment, 'mode': args.mode,
        'num_images': len(masks),
        'num_pred': num_pred, 'num_gt': num_gt, 'num_pixels': cs['num_pixels'],
        'background_threshold': args.background_threshold, 'size': args.size,
        'split': args.split, 'config': args.config, 'checkpoint': args.checkpoint,
        'data_root': args.data_root}
    print(f"{args.method} ({args.mode}) on {len(masks)} images, {num_pred} segments vs "
          f"{num_gt} classes: mIoU {100 * res['miou']:.2f}  NMI {100 * cs['nmi']:.2f}  "
          f"ARI {100 * cs['ari']:.2f}  pixel acc. {100 * res['pixel_accuracy']:.2f}")
    if args.out:
        print(f'wrote {write_json(args.out, result)}')
    return result


if __name__ == '__main__':
    run_cli(main)
