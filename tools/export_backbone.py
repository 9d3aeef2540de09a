"""Export the teacher backbone of a DINO pretraining checkpoint as plain weights.

    python tools/export_backbone.py CKPT OUT [--branch teacher|student]

OUT loads into RatsViT with strict=True and into downstream configs through
init_cfg=dict(type='Pretrained', checkpoint=OUT).
"""
import argparse
import os
import sys


import torch

from rats_mm.models.weights import extract_backbone, load_checkpoint_file


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint', help='pretraining checkpoint (e.g. work_dirs/x/iter_1000.pth)')
    p.add_argument('out', help='output file for the backbone weights')
    p.add_argument('--branch', default='teacher', choices=['teacher', 'student'])
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling (only for files you trust)')
    args = p.parse_args()
    if not os.path.isfile(args.checkpoint):
        sys.exit(f'checkpoint {args.checkpoint!r} does not exist')
    ckpt = load_checkpoint_file(args.checkpoint, trust_checkpoint=args.trust_checkpoint)
    weights = extract_backbone(ckpt, args.branch)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(weights, args.out)
    params = sum(v.numel() for v in weights.values())
    print(f'wrote {args.out}: {args.branch} backbone, {len(weights)} tensors, '
          f'{params / 1e6:.2f} M values')


if __name__ == '__main__':
    main()
