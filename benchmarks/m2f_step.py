"""Mask2Former training step: RATS-S/16 + register queries vs plain ViT-S/16 + learned queries.

Settings: ADE20K (mmseg, 512 px, configs/m2f_{rats,vit}_ade20k.py) and COCO instances (mmdet,
1024 px, configs/m2f_{rats,vit}_coco.py), random weights and random ground truth. One fresh
subprocess per setting times both models in alternation (loss + backward + AdamW step); peak
memory is measured per model in its own subprocess (CUDA allocator peak, or on CPU the growth
of peak RSS over the built model). On CUDA the step runs under bf16 autocast.

Usage:
    python benchmarks/m2f_step.py [--settings ade20k coco] [--steps 2] [--batch-size 1]
        [--out FILE.json]
"""
import argparse
import json
import os
import sys

import torch

import common
from common import autocast, interleaved, peak_memory_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from rats_mm.files import write_json  # noqa: E402

SETTINGS = {'ade20k': ('mmseg', 512), 'coco': ('mmdet', 1024)}


def build(kind, setting):
    """The model of ``configs/m2f_{kind}_{setting}.py`` (no pretrained weights)."""
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(os.path.join(ROOT, f'configs/m2f_{kind}_{setting}.py'))
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.backbone.init_cfg = None
    if SETTINGS[setting][0] == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return MODELS.build(cfg.model)


def make_batch(setting, batch_size, device):
    """Random images and ground truth: 8 regions / instances per image."""
    lib, size = SETTINGS[setting]
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, size, size, generator=gen)
    meta = dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=(size, size),
                batch_input_shape=(size, size))
    samples = []
    for _ in range(batch_size):
        blocks = torch.randint(0, 8, (size // 64, size // 64), generator=gen)
        labels = blocks.repeat_interleave(64, 0).repeat_interleave(64, 1)    # (size, size)
        if lib == 'mmseg':
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            s = SegDataSample(metainfo=meta)
            s.gt_sem_seg = PixelData(data=labels[None].to(device))
        else:
            from mmdet.structures import DetDataSample
            from mmengine.structures import InstanceData
            from mmdet.structures.mask import BitmapMasks
            masks = torch.stack([labels == k for k in range(8)]).numpy().astype('uint8')
            s = DetDataSample(metainfo=meta)
            s.gt_instances = InstanceData(
                labels=torch.arange(8, device=device),
                bboxes=torch.tensor([[0., 0., size, size]] * 8, device=device),
                masks=BitmapMasks(masks, size, size))
        samples.append(s)
    return images.to(device), samples


def step_fn(model, images, samples, device):
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        with autocast(device):
            losses = model.loss(images, samples)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
    return step


def time_cell(setting, batch_size, steps):
    device = common.device()
    images, samples = make_batch(setting, batch_size, device)
    fns = {k: step_fn(build(k, setting).to(device).train(), images, samples, device)
           for k in ('rats', 'vit')}
    return interleaved(fns, device, steps)


def memory_cell(kind, setting, batch_size):
    device = common.device()
    images, samples = make_batch(setting, batch_size, device)
    return peak_memory_mb(step_fn(build(kind, setting).to(device).train(), images, samples,
                                  device), device)


def run_cell(args, *cell):
    return common.run_cell(os.path.abspath(__file__), cell,
                           ['--batch-size', args.batch_size, '--steps', args.steps])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument('--steps', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--out', default='work_dirs/benchmarks/m2f_step.json')
    p.add_argument('--cell', nargs='+', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cell:
        what = args.cell[0]
        result = (time_cell(args.cell[1], args.batch_size, args.steps) if what == 'time'
                  else memory_cell(args.cell[1], args.cell[2], args.batch_size))
        print(json.dumps(result))
        return
    device = common.device()
    print(f'device={device} threads={torch.get_num_threads()} batch={args.batch_size}')
    print(f"{'setting':8} {'px':>5} {'rats s/step':>11} {'vit s/step':>10} {'speed-up':>8} "
          f"{'rats MB':>8} {'vit MB':>8}")
    rows = []
    for setting in args.settings:
        times = run_cell(args, 'time', setting)
        mem = {k: run_cell(args, 'memory', k, setting) for k in ('rats', 'vit')}
        row = {'setting': setting, 'size': SETTINGS[setting][1], 'step_s': times,
               'peak_mb': mem}
        rows.append(row)
        if 'error' in times:
            print(f'{setting:8} failed: {times["error"]}')
            continue
        print(f"{setting:8} {SETTINGS[setting][1]:5d} {times['rats']:11.2f} "
              f"{times['vit']:10.2f} {times['vit'] / times['rats']:8.2f} "
              f"{mem['rats'] if isinstance(mem['rats'], float) else -1:8.0f} "
              f"{mem['vit'] if isinstance(mem['vit'], float) else -1:8.0f}", flush=True)
    write_json(args.out, {'device': device, 'batch_size': args.batch_size, 'rows': rows},
               indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
