"""Can this architecture's registers specialise at all? A diagnostic, not a training recipe.

    python tools/analysis/attention_probe.py CONFIG --data-root D [--iters N]
        [--split training] [--val-split validation] [--batch-size 64] [--lr 5e-4]
        [--interval 100] [--seed 0] [--embedding pooled|registers] [--max-images M]
        [--out F.json] [--save-backbone B.pth]

Builds CONFIG's backbone (random init, any project config; ``model.backbone.compress`` and
``model.backbone.logits`` choose the compress step and the logits) and trains it briefly,
with a linear classifier on its image embedding (``--embedding pooled``) or on every register
(``--embedding registers``, RATS only), with cross-entropy on the image categories
of D (``labels/*.txt``, as the synthetic generator writes), a signal strong enough to learn
attention in minutes on a CPU, unlike DINO at this scale. Every ``--interval`` iterations it
measures on ``--val-split``: accuracy, per block the register attention statistics
(``compress_entropy``, ``compress_peak``, ``compress_map_similarity`` (near 1: all
registers of a head read the same patches), ``communicate_entropy``,
``communicate_self_weight``, ``broadcast_entropy``) and ``registers_in_use``. F.json holds
``history`` (every point), ``final`` and its ``attention_by_block``; ``--save-backbone``
writes the trained backbone (with its compress step) for the other analysis tools.
"""
import torch

from rats_mm.analysis.registers.attention_probe import (ProbeSettings, labelled_images,
                                              train_attention_probe)
from rats_mm.analysis.io import make_parser, run_cli, write_json
from rats_mm.models.weights import backbone_options, save_backbone
from rats_mm.models import RatsViT
from rats_mm.runtime.backbones import backbone_kwargs


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = make_parser(__doc__)
    p.add_argument('config', help='any project config (its model.backbone is trained)')
    p.add_argument('--data-root', required=True, help='folder with images/ and labels/')
    p.add_argument('--iters', type=int, default=800)
    p.add_argument('--split', default='training', help='training images: images/SPLIT')
    p.add_argument('--val-split', default='validation', help='measured on images/VAL_SPLIT')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=5e-4)
    p.add_argument('--interval', type=int, default=100)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--embedding', default='pooled', choices=['pooled', 'registers'],
                   help='what the classifier reads: the image embedding (register mean or '
                        '[CLS]) or every register concatenated (RATS)')
    p.add_argument('--max-images', type=int, default=None, help='first images of each split')
    p.add_argument('--val-images', type=int, default=128, help='held-out images measured')
    p.add_argument('--out', default=None, help='JSON file for the figures')
    p.add_argument('--save-backbone', default=None, help='write the trained backbone here')
    return p.parse_args(argv)


def main(argv=None):
    """Train the probe, print a line per measurement, write the JSON."""
    args = parse_args(argv)
    settings = ProbeSettings(iters=args.iters, batch_size=args.batch_size, lr=args.lr,
                             interval=min(args.interval, args.iters), seed=args.seed,
                             embedding=args.embedding)
    kwargs = backbone_kwargs(args.config)
    torch.manual_seed(args.seed)
    model = RatsViT(**kwargs)
    size, patch = model.grid_size[0] * model.patch_size, model.patch_size
    train = labelled_images(args.data_root, args.split, size, patch, args.max_images)
    val = labelled_images(args.data_root, args.val_split, size, patch,
                          min(args.max_images or args.val_images, args.val_images))
    result = train_attention_probe(model, train, val, settings)
    result.update(config=args.config, data_root=args.data_root,
                  compress=kwargs.get('compress', 'attention'),
                  logits=kwargs.get('logits', 'dot'), embedding=args.embedding,
                  attn_mode=kwargs.get('attn_mode', 'rats'),
                  attention_by_block=result['final'].get('attention_by_block'))
    if args.save_backbone:
        save_backbone(model.state_dict(), args.save_backbone, backbone_options(model))
    if args.out:
        print(f'wrote {write_json(args.out, result)}')
    return result


if __name__ == '__main__':
    run_cli(main)
