"""The GPU measurements of the project in one command (docs/benchmarks.md, "Device suite").

For a GPU machine with PyTorch, timm and numpy only (no OpenMMLab); sized to take a few
minutes on one H200. In bf16 autocast with the flash SDPA kernel, against timm's ViT of the same size measured in the same process and
timed in alternation,
  1. inference and training (forward + backward) images/s and peak memory, RATS-S/B vs
     ViT-S/B, at 224, 512, 1024 and 2048 px, batch sized to the chip (halved on OOM);
  2. DINO-step images/s of RATS-S vs ViT-S at ImageNet's crops (2 x 224 + 8 x 96 px, as the
     configs train) on synthetic tensors (student forward + backward, teacher forward, head, loss, EMA);
  3. the register-attention share of a RATS block's forward time;
  4. bf16 + flash outputs against fp32 math SDPA on the same inputs and weights.
Writes DIR/device_suite.json and DIR/device_suite.md.

    python benchmarks/device_suite.py --out work_dirs/device_suite      # GPU
    python benchmarks/device_suite.py --smoke --out /tmp/suite           # CPU, < 60 s
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # common.py and rats_mm, from any working dir
from common import autocast, features_step, interleaved, timm_vit  # noqa: E402
from rats_mm.files import write_json  # noqa: E402
from rats_mm.models import RatsViT, enable_tf32  # noqa: E402
from rats_mm.ssl.distill import (DINODistillation, StepSettings, build_optimizer,  # noqa: E402
                                 train_step)

FULL = dict(archs={'S': (384, 12, 6), 'B': (768, 12, 12)}, patch=16, sizes=(224, 512, 1024, 2048),
            tokens_per_batch=2 ** 17,
            dino=dict(batch=64, crops=(224, 96), local_crops=8, head=65536),
            repeats=5)
SMOKE = dict(archs={'S': (64, 2, 2)}, patch=8, sizes=(32, 64), tokens_per_batch=2 ** 9,
             dino=dict(batch=4, crops=(32, 16), local_crops=8, head=256), repeats=2)


def _models(dim, depth, heads, patch, img):
    """RATS (8 registers per head) and timm's ViT of the same size."""
    rats = RatsViT(img_size=img, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                   num_registers=8 * heads)
    return {'rats': rats, 'vit': timm_vit(dim, depth, heads, patch, img)}


def _peak_mb(fn, device):
    if device != 'cuda':
        return None  # the CPU suite times only (RSS peaks need a process per model)
    torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated() / 2 ** 20


def _with_batch(build_fn, batch):
    """Run ``build_fn(batch)``, halving the batch on CUDA OOM; (result, batch used)."""
    while True:
        try:
            return build_fn(batch), batch
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch == 1:
                raise
            batch //= 2


def scaling(cfg, device):
    """Part 1: rows of images/s and peak memory per (arch, size, mode)."""
    rows = []
    for arch, (dim, depth, heads) in cfg['archs'].items():
        models = {k: m.to(device) for k, m in _models(dim, depth, heads, cfg['patch'],
                                                      cfg['sizes'][0]).items()}
        for size in cfg['sizes']:
            tokens = (size // cfg['patch']) ** 2
            for train in (False, True):
                def measure(batch):
                    x = torch.randn(batch, 3, size, size, device=device)
                    fns = {k: features_step(m.train(train), x, device, train)
                           for k, m in models.items()}
                    secs = interleaved(fns, device, cfg['repeats'])
                    return {k: (batch / s, _peak_mb(fns[k], device)) for k, s in secs.items()}
                start = max(1, cfg['tokens_per_batch'] // tokens // (2 if train else 1))
                res, batch = _with_batch(measure, start)
                rows.append({'arch': arch, 'size': size, 'mode': 'train' if train else 'infer',
                             'batch': batch, 'rats_img_s': res['rats'][0],
                             'vit_img_s': res['vit'][0], 'rats_peak_mb': res['rats'][1],
                             'vit_peak_mb': res['vit'][1],
                             'speedup': res['rats'][0] / res['vit'][0]})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def dino_step(cfg, device):
    """Part 2: DINO-step images/s of RATS vs ViT (2 global + ``local_crops`` local crops)."""
    dim, depth, heads = cfg['archs']['S']
    d = cfg['dino']
    g, loc = d['crops']
    steps = {}
    for name, kwargs in (('rats', dict(num_registers=8 * heads)),
                         ('vit', dict(num_registers=0, attn_mode='full', class_token=True))):
        torch.manual_seed(0)
        backbone = RatsViT(img_size=g, patch_size=cfg['patch'], embed_dim=dim, depth=depth,
                           num_heads=heads, **kwargs)
        model = DINODistillation(backbone, head=dict(out_dim=d['head'])).to(device).train()
        opt = build_optimizer(model.student, 1e-4, 0.04)
        views = ([torch.randn(d['batch'], 3, g, g, device=device) for _ in range(2)]
                 + [torch.randn(d['batch'], 3, loc, loc, device=device)
                    for _ in range(d['local_crops'])])
        settings = StepSettings(lr=1e-4, weight_decay=0.04, momentum=0.996, teacher_temp=0.04)
        dtype = torch.bfloat16 if device == 'cuda' else None
        steps[name] = (lambda m=model, o=opt: train_step(m, o, views, settings, dtype))
    secs = interleaved(steps, device, cfg['repeats'])
    out = {f'{k}_img_s': d['batch'] / s for k, s in secs.items()}
    out['speedup'] = out['rats_img_s'] / out['vit_img_s']
    print(json.dumps({'dino_step': out}), flush=True)
    return out


def attention_share(cfg, device):
    """Part 3: register attention's share of one RATS block's forward, per size."""
    dim, depth, heads = cfg['archs']['S']
    out = {}
    for size in cfg['sizes']:
        blk = _models(dim, 1, heads, cfg['patch'], size)['rats'].blocks[0].to(device).eval()
        n = blk.attn.num_registers
        batch = max(1, cfg['tokens_per_batch'] // (size // cfg['patch']) ** 2)
        x = torch.randn(batch, n + (size // cfg['patch']) ** 2, dim, device=device)

        def whole():
            with torch.no_grad(), autocast(device):
                blk(x)

        def attention():
            with torch.no_grad(), autocast(device):
                blk.attn(blk.norm1(x))
        secs = interleaved({'block': whole, 'attention': attention}, device, cfg['repeats'])
        out[size] = secs['attention'] / secs['block']
    print(json.dumps({'attention_share': out}), flush=True)
    return out


def precision(cfg, device):
    """Part 4: bf16 (+ flash on CUDA) against fp32 math SDPA: relative error of the outputs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    dim, depth, heads = cfg['archs']['S']
    size = cfg['sizes'][0]
    torch.manual_seed(0)
    model = _models(dim, depth, heads, cfg['patch'], size)['rats'].to(device).eval()
    x = torch.randn(4, 3, size, size, device=device)
    with torch.no_grad():
        with sdpa_kernel(SDPBackend.MATH):
            ref = model.forward_tokens(x)
        fast_backends = ([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                          SDPBackend.MATH] if device == 'cuda' else [SDPBackend.MATH])
        with sdpa_kernel(fast_backends), torch.autocast(device, dtype=torch.bfloat16):
            fast = model.forward_tokens(x)
    out = {}
    for key in ('x_norm_patchtokens', 'x_norm_regtokens'):
        a, b = fast[key].float(), ref[key].float()
        out[key] = {'max_abs': (a - b).abs().max().item(),
                    'relative_l2': ((a - b).norm() / b.norm()).item()}
    print(json.dumps({'precision': out}), flush=True)
    return out


def markdown(result):
    """The result as markdown tables."""
    lines = [f"Device suite on {result['device']} (torch {result['torch']}), "
             f"{result['seconds']:.0f} s.", '',
             '| arch | size | mode | batch | RATS img/s | ViT img/s | RATS / ViT speed | '
             'RATS peak MiB | ViT peak MiB |', '|---|---|---|---|---|---|---|---|---|']
    for r in result['scaling']:
        mem = [f'{v:.0f}' if v is not None else '-' for v in (r['rats_peak_mb'], r['vit_peak_mb'])]
        lines.append(f"| {r['arch']} | {r['size']} | {r['mode']} | {r['batch']} | "
                     f"{r['rats_img_s']:.1f} | {r['vit_img_s']:.1f} | {r['speedup']:.2f} | "
                     f'{mem[0]} | {mem[1]} |')
    d = result['dino_step']
    dino = result['config']['dino']
    lines += ['', f"DINO step (2 x {dino['crops'][0]} + {dino['local_crops']} x "
              f"{dino['crops'][1]} px): RATS {d['rats_img_s']:.1f} img/s, "
              f"ViT {d['vit_img_s']:.1f} img/s, ratio {d['speedup']:.2f}.",
              'Register attention share of a block: ' + ', '.join(
                  f'{k} px {v:.2f}' for k, v in result['attention_share'].items()) + '.',
              'bf16 vs fp32 math, relative L2: ' + ', '.join(
                  f"{k} {v['relative_l2']:.2e}" for k, v in result['precision'].items()) + '.']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--smoke', action='store_true', help='tiny sizes on the CPU (< 60 s)')
    args = parser.parse_args(argv)
    device = 'cuda' if torch.cuda.is_available() and not args.smoke else 'cpu'
    if device == 'cuda':
        enable_tf32()
    cfg = SMOKE if args.smoke else FULL
    start = time.perf_counter()
    result = {'device': torch.cuda.get_device_name() if device == 'cuda'
              else f'cpu ({platform.machine()}, {torch.get_num_threads()} threads)',
              'torch': torch.__version__, 'config': cfg}
    for name, part in (('scaling', scaling), ('dino_step', dino_step),
                       ('attention_share', attention_share), ('precision', precision)):
        result[name] = part(cfg, device)
    result['seconds'] = time.perf_counter() - start
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, 'device_suite.json'), result, indent=1)
    with open(os.path.join(args.out, 'device_suite.md'), 'w') as f:
        f.write(markdown(result))
    print(markdown(result))
    return result


if __name__ == '__main__':
    main()
