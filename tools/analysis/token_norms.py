"""Patch-token norms per layer and the fraction of high-norm outliers, for one or more models.

    python tools/analysis/token_norms.py CONFIG CKPT [CONFIG2 CKPT2 ...] --data-root D
        --out-dir O [--max-images M] [--labels A B ...] [--outlier-factor F] [--size S]

For each model: the L2 norm of every patch token after every block (raw residual stream, the
quantity of "Vision Transformers Need Registers"), over the images of D/images/** (or D/**);
a token is an outlier when its norm exceeds F x its layer's median (default 2). Writes
O/norms_<label>.png (one histogram per layer), O/outlier_fraction.png (all models, per layer)
and O/token_norms.json ({label: per-layer statistics}). Labels default to the config names.
"""
import os
import re
from types import SimpleNamespace


import torch

from rats_mm.analysis import (dataset_token_norms, render_norm_histograms,
                              render_outlier_fractions, token_norm_stats)
from rats_mm.analysis.io import image_files, make_parser, run_cli, write_json
from rats_mm.runtime.backbones import model_from_args


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments, ``models`` as (config, checkpoint) pairs.
    """
    p = make_parser(__doc__)
    p.add_argument('models', nargs='+', metavar='CONFIG CKPT', help='config/checkpoint pairs')
    p.add_argument('--data-root', required=True)
    p.add_argument('--out-dir', required=True)
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--labels', nargs='+', default=None, help='one name per model')
    p.add_argument('--outlier-factor', type=float, default=2.0)
    p.add_argument('--split', default=None, help='only images under images/SPLIT')
    p.add_argument('--size', type=int, default=None, help='resize the short side first')
    p.add_argument('--trust-checkpoint', action='store_true')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = p.parse_args(argv)
    if len(args.models) % 2:
        p.error(f'expected CONFIG CKPT pairs, got {len(args.models)} paths')
    args.models = list(zip(args.models[::2], args.models[1::2]))
    if args.labels is not None and len(args.labels) != len(args.models):
        p.error(f'{len(args.labels)} --labels for {len(args.models)} models')
    return args


def model_labels(models, labels):
    """File-safe unique label per (config, checkpoint): given, else the config's name."""
    if labels is None:
        labels = [os.path.splitext(os.path.basename(c))[0] for c, _ in models]
        if len(set(labels)) < len(labels):
            labels = [f'{lab}-{os.path.splitext(os.path.basename(k))[0]}'
                      for lab, (_, k) in zip(labels, models)]
    labels = [re.sub(r'[^A-Za-z0-9_.-]+', '_', lab) for lab in labels]
    if len(set(labels)) < len(labels):
        labels = [f'{i}_{lab}' for i, lab in enumerate(labels)]
    return labels


def main(argv=None):
    """Measure, plot and write the norm statistics of every model."""
    args = parse_args(argv)
    files = image_files(args.data_root, args.split, args.max_images)
    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    for label, (config, ckpt) in zip(model_labels(args.models, args.labels), args.models):
        model = model_from_args(SimpleNamespace(config=config, checkpoint=ckpt,
                                                trust_checkpoint=args.trust_checkpoint,
                                                device=args.device))
        stats = token_norm_stats(dataset_token_norms(model, files, args.size, args.device),
                                 outlier_factor=args.outlier_factor)
        png = render_norm_histograms(stats, os.path.join(args.out_dir, f'norms_{label}.png'))
        results[label] = dict(stats, config=config, checkpoint=ckpt, png=png,
                              num_registers=model.num_registers, attn_mode=model.attn_mode,
                              class_token=model.has_class_token, num_images=len(files))
        print(f'{label}: outlier fraction per block ' + ' '.join(
            f"{100 * s['outlier_fraction']:.2f}%" for s in stats['layers']) + f' -> {png}')
    render_outlier_fractions(results, os.path.join(args.out_dir, 'outlier_fraction.png'))
    print(f"wrote {write_json(os.path.join(args.out_dir, 'token_norms.json'), results)}")


if __name__ == '__main__':
    run_cli(main)
