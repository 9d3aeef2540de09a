"""Emergence at GPU scale: DINO-train RATS variants and a plain ViT for the same time each on
one device and measure whether the registers become parts (docs/findings.md, "Emergence at GPU
scale").

    python tools/science.py --minutes 7 --out work_dirs/science            # one GPU
    python tools/science.py --smoke --device cpu --out work_dirs/science_smoke
    python tools/science.py --preset testbed --device cpu --out work_dirs/testbed  # 2 cores

Imports nothing from OpenMMLab: it runs on a machine with PyTorch, torchvision, timm and the
scientific stack only. Writes DIR/summary.json (rewritten at every measurement point),
DIR/backbone_<variant>.pth for each of --variants (read by the analysis tools with
configs/science/<variant>_science.py, or for --preset testbed and demo with
configs/science/*_demo_scale.py plus the variant's options: a '<variant>_<embedding>' one
with its base variant's config and global_pool=<embedding>, a --rats-backbone run with those
arguments too; summary.json's 'configs' names each), DIR/curves.png,
DIR/views.png, DIR/parts.png, DIR/similarity.png, DIR/similarity_<variant>.png and
DIR/log.txt.
"""
import argparse
import ast
import sys
from dataclasses import fields

import torch

from rats_mm.models.embedding import EMBEDDINGS
from rats_mm.science import run_science
from rats_mm.science.presets import PRESET_DEFAULTS, PRESETS
from rats_mm.science.variants import DEFAULT_VARIANTS, VARIANTS
from rats_mm.science.recipe import RATS_CONFIG, VIT_CONFIG, Recipe


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=None,
                        help='training time of all variants together, a cap (default 7; '
                             'smoke 0.5; ' + '; '.join(
                                 f"{name} {d['minutes']:g}" for name, d in
                                 sorted(PRESET_DEFAULTS.items())) + ')')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=['cuda', 'cpu'])
    parser.add_argument('--smoke', action='store_true',
                        help='tiny data, batch and evaluation: every stage in seconds '
                             '(same as --preset smoke)')
    parser.add_argument('--preset', default='gpu', choices=sorted(PRESETS),
                        help="recipe: the GPU run's, the smoke test's, make demo's "
                             "pretraining recipe, or the testbed's (the GPU run's recipe on "
                             'demo-sized models, sized for two CPU cores; docs/findings.md)')
    parser.add_argument('--rats-config', default=None,
                        help="RATS backbone config (default: the preset's, else "
                             f'{RATS_CONFIG})')
    parser.add_argument('--vit-config', default=None,
                        help=f"ViT backbone config (default: the preset's, else {VIT_CONFIG})")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cache-dir', default=None,
                        help='where rendered data are kept (default data/science)')
    parser.add_argument('--variants', '--models', dest='variants',
                        default=None,
                        help=f'comma-separated variants to train (of {",".join(VARIANTS)}; '
                             "'<variant>_<embedding>' is the RATS variant whose head reads "
                             'that embedding, see --embedding), each for an equal share of '
                             f'--minutes (default: {",".join(DEFAULT_VARIANTS)}; testbed '
                             'rats,vit)')
    add_recipe_args(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset = 'smoke'
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f'--minutes must be > 0, got {args.minutes}')
    try:
        args.recipe_set = assignments(args.recipe_set, {f.name for f in fields(Recipe)})
        args.backbone_set = assignments(args.backbone_set)
        args.rats_backbone_set = assignments(args.rats_backbone_set)
    except ValueError as e:
        parser.error(str(e))
    return args


def add_recipe_args(parser):
    """The options that change the recipe, the backbones or the length of a run."""
    parser.add_argument('--local-crops', type=int, default=None,
                        help="number of local views (default: the preset's)")
    parser.add_argument('--centering', default=None, choices=['centering', 'sinkhorn_knopp'],
                        help="teacher centring (default: the preset's, DINO's)")
    parser.add_argument('--embedding', default=None, choices=EMBEDDINGS,
                        help='what the DINO head of every RATS variant without its own '
                             'read-out reads, and its model(x) returns: the register mean '
                             '(pooled, default), every register concatenated (registers), '
                             "each head's registers on its channels (heads), the registers "
                             'and the patch mean (registers_avg), or the patch mean (avg)')
    parser.add_argument('--compile', action='store_true', default=None,
                        help='torch.compile the backbones, one graph per crop size '
                             '(compiled during the probe\'s warm-up steps)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="images per step (default: the preset's)")
    parser.add_argument('--base-lr', type=float, default=None,
                        help="peak learning rate per 256 images (default: the preset's)")
    parser.add_argument('--num-train-images', type=int, default=None,
                        help="rendered training images (default: the preset's)")
    parser.add_argument('--max-steps', type=int, default=None,
                        help='cap on each model\'s training steps')
    parser.add_argument('--set', dest='recipe_set', action='append', default=[],
                        metavar='FIELD=VALUE',
                        help='any other recipe field, VALUE a Python literal (repeatable): '
                             "e.g. --set teacher_temp=0.02 --set warmup_fraction=0.3")
    parser.add_argument('--backbone', dest='backbone_set', action='append', default=[],
                        metavar='KEY=VALUE',
                        help='RatsViT argument set in every model (repeatable): e.g. '
                             '--backbone init_values=1e-5 (LayerScale)')
    parser.add_argument('--rats-backbone', dest='rats_backbone_set', action='append',
                        default=[], metavar='KEY=VALUE',
                        help='RatsViT argument set in the RATS variants only (repeatable): '
                             'e.g. --rats-backbone num_registers=24 (8 registers per head '
                             'on the testbed\'s 3 heads)')


def assignments(items, allowed=None):
    """``['a=1', "b='x'"]`` as ``{'a': 1, 'b': 'x'}`` (values Python literals; a bare word
    is a string); names outside ``allowed`` (when given) are an error."""
    out = {}
    for item in items:
        name, sep, text = item.partition('=')
        name = name.strip()
        if not sep or not name:
            raise ValueError(f'{item!r} is not NAME=VALUE')
        if allowed is not None and name not in allowed:
            raise ValueError(f'{name!r} is not a recipe field (one of {", ".join(sorted(allowed))})')
        text = text.strip()
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            if not text.isidentifier():
                raise ValueError(f'{item!r}: {text!r} is not a Python literal (write a dict '
                                 "as {'key': value}, a tuple as (a, b))") from None
            out[name] = text
    return out


def overrides(args):
    """Recipe fields set on the command line."""
    names = {'local_crops': 'local_crops_number', 'centering': 'centering',
             'batch_size': 'batch_size', 'base_lr': 'base_lr',
             'num_train_images': 'num_train_images', 'embedding': 'embedding',
             'compile': 'compile'}
    named = {field: getattr(args, arg) for arg, field in names.items()
             if getattr(args, arg) is not None}
    return {**args.recipe_set, **named}


def main(argv=None):
    args = parse_args(argv)
    run_science(args.out, args.minutes, device=args.device, preset=args.preset, seed=args.seed,
                cache_dir=args.cache_dir, rats_config=args.rats_config,
                vit_config=args.vit_config, max_steps=args.max_steps,
                backbone_overrides=args.backbone_set, rats_overrides=args.rats_backbone_set,
                variants=[v.strip() for v in (args.variants or '').split(',') if v.strip()]
                or None,
                overrides=overrides(args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
