"""DINO training-step throughput, RATS-S vs ViT-S under the same recipe and crops, and the data
pipeline's throughput alone (to show the loader is not the bottleneck).

Model steps run on pre-made random crops (no loader in the loop), interleaved RATS / ViT in
one process; the pipeline is timed separately (multi-crop augmentation + collate through a
DataLoader) on generated synthetic images. On CUDA the step uses bf16 autocast.

Usage:
    python benchmarks/pretrain_throughput.py [--batch-size 8] [--steps 3] [--local-crops 8]
        [--global-size 224] [--local-size 96] [--out-dim 65536] [--workers 2]
        [--out FILE.json]
"""
import argparse
import os
import sys
import tempfile
import time

import torch

import common
from common import autocast, interleaved

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rats_mm.data import generate_dataset  # noqa: E402
from rats_mm.files import write_json  # noqa: E402
from rats_mm.pretrain.pipeline import ImageFolderDataset, multicrop_collate  # noqa: E402
from rats_mm.pretrain.dino import DINOOptimWrapper, DINOPretrainer  # noqa: E402

BACKBONES = {
    'rats_s16': dict(embed_dim=384, depth=12, num_heads=6, num_registers=48, attn_mode='rats'),
    'vit_s16': dict(embed_dim=384, depth=12, num_heads=6, num_registers=0, attn_mode='full',
                    class_token=True),
}


def build(name, args, device):
    model = DINOPretrainer(dict(img_size=args.global_size, patch_size=16, **BACKBONES[name]),
                           head=dict(out_dim=args.out_dim),
                           data_preprocessor=dict(type='BaseDataPreprocessor')).to(device)
    params = [p for p in model.student.parameters() if p.requires_grad]
    # the configs' optim wrapper: DINO's per-parameter clipping (configs/_base_/dino_runtime.py)
    return model, DINOOptimWrapper(torch.optim.AdamW(params, lr=1e-4),
                                   clip_grad=dict(type='per_parameter', max_norm=3.0))


def time_steps(args, device):
    """Median seconds per training step for each backbone, interleaved."""
    crops = [torch.randn(args.batch_size, 3, args.global_size, args.global_size)] * 2 + \
            [torch.randn(args.batch_size, 3, args.local_size, args.local_size)] * args.local_crops
    batch = {'inputs': [c.to(device) for c in crops], 'data_samples': {'skipped': 0}}

    def step_fn(model, optim):
        def step():
            with autocast(device):
                model.train_step(batch, optim)
        return step
    fns = {name: step_fn(*build(name, args, device)) for name in BACKBONES}
    return interleaved(fns, device, args.steps)


def time_pipeline(args):
    """Images per second of multi-crop augmentation + collate through a DataLoader."""
    with tempfile.TemporaryDirectory() as root:
        generate_dataset(root, num_images=args.pipeline_images, size=args.image_size, seed=0,
                         val_fraction=0.0)
        ds = ImageFolderDataset(root, dict(
            type='MultiCropAugmentation', global_crop_size=args.global_size,
            local_crop_size=args.local_size, local_crops_number=args.local_crops),
            ann_file='labels/training.txt')
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size,
                                             num_workers=args.workers,
                                             collate_fn=multicrop_collate)
        start, seen = time.perf_counter(), 0
        for batch in loader:
            seen += batch['inputs'][0].shape[0]
        return seen / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--local-crops', type=int, default=8)
    p.add_argument('--global-size', type=int, default=224)
    p.add_argument('--local-size', type=int, default=96)
    p.add_argument('--out-dim', type=int, default=65536)
    p.add_argument('--workers', type=int, default=2, help='DataLoader workers (pipeline)')
    p.add_argument('--pipeline-images', type=int, default=128)
    p.add_argument('--image-size', type=int, default=256, help='generated image size')
    p.add_argument('--out', default='work_dirs/benchmarks/pretrain_throughput.json')
    args = p.parse_args()
    device = common.device()
    steps = time_steps(args, device)
    pipeline = time_pipeline(args)
    rows = {name: args.batch_size / t for name, t in steps.items()}
    print(f'device={device} threads={torch.get_num_threads()} batch={args.batch_size} '
          f'crops=2x{args.global_size}+{args.local_crops}x{args.local_size} '
          f'out_dim={args.out_dim}')
    print(f"{'what':24} {'s/step':>8} {'images/s':>9}")
    for name, t in steps.items():
        print(f'{"train step " + name:24} {t:8.3f} {rows[name]:9.2f}')
    print(f'{"data pipeline":24} {"-":>8} {pipeline:9.2f}   ({args.workers} workers)')
    print(f"RATS / ViT step throughput: {rows['rats_s16'] / rows['vit_s16']:.2f}x")
    write_json(args.out, {'device': device, 'args': vars(args), 'step_seconds': steps,
                          'images_per_s': rows, 'pipeline_images_per_s': pipeline}, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
