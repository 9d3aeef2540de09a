"""Export the teacher backbone of a DINO pretraining checkpoint as plain weights.

    python tools/export_backbone.py CKPT OUT [--branch teacher|student]

OUT holds {'state_dict': weights, 'meta': {'rats_mm_backbone': {'compress': ...,
'logits': ..., 'global_pool': ..., 'fc_norm': ..., 'num_registers': ...}}} (the run
config's register-attention options and read-out), written atomically; it loads with
rats_mm.models.load_pretrained (strict=True fits) and into downstream configs through
init_cfg=dict(type='Pretrained', checkpoint=OUT).
"""
import argparse
import sys

from rats_mm.runtime.backbones import export_backbone


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint', help='pretraining checkpoint (e.g. work_dirs/x/iter_1000.pth)')
    p.add_argument('out', help='output file for the backbone weights')
    p.add_argument('--branch', default='teacher', choices=['teacher', 'student'])
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling (only for files you trust)')
    args = p.parse_args()
    try:
        weights = export_backbone(args.checkpoint, args.out, args.branch, args.trust_checkpoint)
    except (FileNotFoundError, KeyError, TypeError, RuntimeError) as err:
        sys.exit(f'export_backbone: {err}')
    params = sum(v.numel() for v in weights.values())
    print(f'wrote {args.out}: {args.branch} backbone, {len(weights)} tensors, '
          f'{params / 1e6:.2f} M values')


if __name__ == '__main__':
    main()
