"""RATS vs timm's VisionTransformer of the same size: time, peak memory and MACs against image size.

For each (arch, size), one fresh subprocess times RATS and its timm peer in alternation (so
both see the same machine noise) and reports the ratio timm / RATS (the speed-up of RATS,
> 1 is faster); peak memory is measured for each model in its own subprocess, over the
forward+backward where that is timed, else the forward. On CUDA the models run under bf16
autocast and memory is ``torch.cuda.max_memory_allocated``; on CPU they run in float32 and
memory is the growth of the process's peak RSS over the built model.

Usage:
    python benchmarks/backbone_scaling.py [--archs small base] [--sizes 224 512 1024 2048]
        [--backward-max-size 512] [--repeats 5] [--batch-size 1] [--out FILE.json]
"""
import argparse
import json
import os
import platform
import sys

import torch

import common
from common import features_step, interleaved, peak_memory_mb, timm_vit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rats_mm.files import write_json  # noqa: E402
from rats_mm.models import ARCHS, rats_vit, vit  # noqa: E402
from rats_mm.models.complexity import model_macs  # noqa: E402


def build(kind, arch, size):
    """'rats': RatsViT with 8 registers per head; 'timm': timm's ViT of the same size."""
    if kind == 'rats':
        return rats_vit(arch, 16, img_size=224)
    return timm_vit(*ARCHS[arch])


def time_cell(arch, size, batch_size, repeats, backward):
    """Both models at one size in this process, timed in alternation."""
    device = common.device()
    models = {k: build(k, arch, size).to(device) for k in ('rats', 'timm')}
    x = torch.randn(batch_size, 3, size, size, device=device)
    out = {k: {} for k in models}
    for m in models.values():
        m.eval()
    for k, t in interleaved({k: features_step(m, x, device, False) for k, m in models.items()},
                             device, repeats).items():
        out[k]['fwd_s'] = t
    if backward:
        for m in models.values():
            m.train()
        fns = {k: features_step(m, x, device, True) for k, m in models.items()}
        for k, t in interleaved(fns, device, max(1, repeats // 2)).items():
            out[k]['fwd_bwd_s'] = t
    return out


def memory_cell(kind, arch, size, batch_size, backward):
    """Peak memory (MB) of one model's forward (+ backward): CUDA allocator peak, or on CPU
    the growth of this process's peak RSS over the built model."""
    device = common.device()
    model = build(kind, arch, size).to(device)
    x = torch.randn(batch_size, 3, size, size, device=device)
    model.train() if backward else model.eval()
    return peak_memory_mb(features_step(model, x, device, backward),
                          device)


def run_cell(*cell_args, args):
    return common.run_cell(os.path.abspath(__file__), cell_args, [
        '--batch-size', args.batch_size, '--repeats', args.repeats,
        '--backward-max-size', args.backward_max_size])


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else '-'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--archs', nargs='+', default=['small', 'base'], choices=sorted(ARCHS))
    p.add_argument('--sizes', nargs='+', type=int, default=[224, 512, 1024, 2048])
    p.add_argument('--backward-max-size', type=int, default=512,
                   help='largest size for which forward+backward is timed')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--out', default='work_dirs/benchmarks/backbone_scaling.json')
    p.add_argument('--cell', nargs='+', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cell:
        print(json.dumps(_dispatch_cell(args)))
        return
    device = common.device()
    rows = []
    header = (f"{'arch':6} {'size':>5} {'GMACs rats':>10} {'GMACs vit':>10} {'fwd rats s':>10} "
              f"{'fwd vit s':>10} {'fwd x':>6} {'f+b rats s':>10} {'f+b vit s':>10} "
              f"{'f+b x':>6} {'mem rats MB':>11} {'mem vit MB':>10}")
    print(f'device={device} torch={torch.__version__} threads={torch.get_num_threads()} '
          f'batch={args.batch_size} ({"bf16 autocast" if device == "cuda" else "float32"})')
    print(header)
    for arch in args.archs:
        for size in args.sizes:
            macs = {'rats': model_macs(rats_vit(arch, 16), size, size) / 1e9,
                    'timm': model_macs(vit(arch, 16), size, size) / 1e9}  # timm's layout
            cells = run_cell('time', arch, size, args=args)
            r, v = cells.get('rats', {}), cells.get('timm', {})
            for kind, cell in (('rats', r), ('timm', v)):
                cell['peak_mb'] = run_cell('memory', kind, arch, size, args=args)
            row = {'arch': arch, 'size': size, 'device': device, 'gmacs_rats': macs['rats'],
                   'gmacs_vit': macs['timm'], 'rats': r, 'timm': v,
                   'fwd_speedup': _ratio(v, r, 'fwd_s'),
                   'fwd_bwd_speedup': _ratio(v, r, 'fwd_bwd_s')}
            rows.append(row)
            mem = 'peak_mb'
            print(f"{arch:6} {size:5d} {macs['rats']:10.1f} {macs['timm']:10.1f} "
                  f"{fmt(r.get('fwd_s'), '10.3f')} {fmt(v.get('fwd_s'), '10.3f')} "
                  f"{fmt(row['fwd_speedup'], '6.2f')} {fmt(r.get('fwd_bwd_s'), '10.3f')} "
                  f"{fmt(v.get('fwd_bwd_s'), '10.3f')} {fmt(row['fwd_bwd_speedup'], '6.2f')} "
                  f"{fmt(r.get(mem), '11.0f')} {fmt(v.get(mem), '10.0f')}", flush=True)
    write_json(args.out, {'device': device, 'torch': torch.__version__, 'host': platform.node(),
                          'threads': torch.get_num_threads(), 'batch_size': args.batch_size,
                          'rows': rows}, indent=1)
    print(f'wrote {args.out}')


def _dispatch_cell(args):
    what, rest = args.cell[0], args.cell[1:]
    if what == 'time':
        arch, size = rest[0], int(rest[1])
        return time_cell(arch, size, args.batch_size, args.repeats,
                         size <= args.backward_max_size)
    kind, arch, size = rest[0], rest[1], int(rest[2])
    return memory_cell(kind, arch, size, args.batch_size, size <= args.backward_max_size)


def _ratio(vit_cell, rats_cell, key):
    if key in vit_cell and key in rats_cell:
        return vit_cell[key] / rats_cell[key]
    return None


if __name__ == '__main__':
    main()
