"""Activation checkpointing (``with_cp`` / ``set_grad_checkpointing``): memory saved and time
paid by one forward + backward of the backbone.

RATS-S/16 (48 registers) at 1024 px, batch 1, the settings of configs/m2f_rats_coco.py. Peak
memory is measured per setting in its own fresh subprocess (CUDA allocator peak, or on CPU the
growth of peak RSS over the built model); time is the median of alternated steps in one more
subprocess. On CUDA the step runs under bf16 autocast.

Usage:
    python benchmarks/grad_checkpointing.py [--size 1024] [--repeats 2] [--out FILE.json]
"""
import argparse
import json
import os

import torch

import common
from common import autocast, interleaved, peak_memory_mb

from rats_mm.files import write_json
from rats_mm.models import rats_small_patch16

SCRIPT = os.path.abspath(__file__)


def build(size, with_cp, dev):
    torch.manual_seed(0)
    model = rats_small_patch16(img_size=size).to(dev).train()
    model.set_grad_checkpointing(with_cp)
    x = torch.randn(1, 3, size, size, device=dev)

    def step():
        with autocast(dev):
            out = model.forward_tokens(x)
            loss = out['x_norm_patchtokens'].float().pow(2).mean() + \
                out['x_norm_regtokens'].float().pow(2).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
    return step


def cell(args):
    """One measurement in this (fresh) process; prints its JSON result."""
    dev = common.device()
    kind, with_cp = args.cell[0], args.cell[1] == 'cp'
    if kind == 'memory':
        step = build(args.size, with_cp, dev)
        result = {'peak_mb': peak_memory_mb(step, dev)}
    else:
        steps = {'plain': build(args.size, False, dev), 'cp': build(args.size, True, dev)}
        result = interleaved(steps, dev, args.repeats)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=1024)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--out', default=None)
    parser.add_argument('--cell', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        return cell(args)
    options = ['--size', args.size, '--repeats', args.repeats]
    memory = {name: common.run_cell(SCRIPT, ['memory', name], options)
              for name in ('plain', 'cp')}
    times = common.run_cell(SCRIPT, ['time', 'both'], options)
    rows = {'device': common.device(), 'size': args.size, 'model': 'rats_small_patch16',
            'peak_mb': {k: v.get('peak_mb') for k, v in memory.items()},
            'step_s': times, 'errors': [v['error'] for v in (*memory.values(), times)
                                        if 'error' in v]}
    print(f"{'setting':<24}{'peak MB':>10}{'step s':>10}")
    for name, label in (('plain', 'no checkpointing'), ('cp', 'with_cp=True')):
        print(f"{label:<24}{rows['peak_mb'][name] or float('nan'):>10.0f}"
              f"{times.get(name, float('nan')):>10.2f}")
    if rows['peak_mb']['plain'] and rows['peak_mb']['cp']:
        print(f"memory ratio cp / plain: {rows['peak_mb']['cp'] / rows['peak_mb']['plain']:.2f}"
              f"; time ratio: {times.get('cp', float('nan')) / times.get('plain', 1):.2f}")
    if args.out:
        write_json(args.out, rows, indent=1)


if __name__ == '__main__':
    main()
