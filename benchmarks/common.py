"""Measurement helpers shared by the benchmark scripts: alternated timing, peak memory, and
running one measurement in a fresh subprocess."""
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def device():
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def autocast(dev):
    """bf16 autocast on CUDA, nothing on CPU (float32)."""
    return torch.autocast('cuda', dtype=torch.bfloat16) if dev == 'cuda' \
        else contextlib.nullcontext()


def _sync(dev):
    if dev == 'cuda':
        torch.cuda.synchronize()


def interleaved(fns, dev, repeats):
    """Median seconds of each callable, timed in alternation after one warm-up each, so
    every callable sees the same machine noise.

    Args:
        fns (dict): name -> zero-argument callable.
        dev (str): ``'cuda'`` or ``'cpu'``.
        repeats (int): Timed calls per callable.

    Returns:
        dict: name -> median seconds.
    """
    times = {name: [] for name in fns}
    for rep in range(repeats + 1):
        for name, fn in fns.items():
            _sync(dev)
            start = time.perf_counter()
            fn()
            _sync(dev)
            if rep:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_memory_mb(fn, dev):
    """Peak memory of one call of ``fn``: the CUDA allocator's peak, or on CPU the growth of
    this process's peak RSS (so call it in a fresh process, after building the model)."""
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    fn()
    if dev == 'cuda':
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) / 1024


def run_cell(script, cell, options):
    """Run ``script --cell CELL... OPTIONS`` in a fresh process; its last stdout line is JSON.

    Returns:
        The decoded result, or ``{'error': last stderr line}``.
    """
    cmd = [sys.executable, script, '--cell', *map(str, cell), *map(str, options)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {'error': res.stderr.strip().splitlines()[-1] if res.stderr else 'failed'}
    return json.loads(res.stdout.strip().splitlines()[-1])


def timm_vit(dim, depth, heads, patch=16, img=224):
    """timm's ``VisionTransformer`` of a size, the peer every benchmark measures RATS against
    (no head, any input size)."""
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(img_size=img, patch_size=patch, embed_dim=dim, depth=depth,
                             num_heads=heads, num_classes=0, dynamic_img_size=True)


def features_step(model, x, dev, train):
    """A zero-argument callable: ``forward_features`` under ``autocast`` without gradients,
    or with ``train`` forward + backward of its mean."""
    def run():
        with torch.set_grad_enabled(train), autocast(dev):
            out = model.forward_features(x)
        if train:
            out.float().mean().backward()
    return run

