"""A pipeline of project tools run as a user would run them (``make demo``): each tool a
subprocess from the repository root, a finished training reused instead of resumed, and the
figures each run leaves behind (test metrics, logged scalars)."""
import json
import os
import subprocess
import sys
import time

from mmengine.config import Config

from ..files import write_json

__all__ = ['finetune_and_test', 'last_checkpoint', 'mean_scalar', 'run_tool',
           'train_or_resume']


def run_tool(root, *args):
    """Run ``python ARGS...`` (a project tool) from ``root``; raise if it fails."""
    cmd = [sys.executable, *args]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)


def last_checkpoint(work_dir):
    """The path in ``work_dir/last_checkpoint`` (written by mmengine's checkpoint hook)."""
    with open(os.path.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train_or_resume(root, train_tool, config, work_dir):
    """Train with ``--resume``, unless the run already reached its last iteration (resuming a
    finished run would make mmengine replay the whole data loader for nothing).

    Args:
        root (str): Repository root (tools, configs and relative paths are read from it).
        train_tool (str): ``tools/pretrain.py`` or ``tools/train.py``.
        config (str): The run's config, relative to ``root``.
        work_dir (str): Its work dir, relative to ``root``.

    Returns:
        float: Seconds the training took (recorded in ``work_dir/demo_timing.json``, so a
        reused run reports the time it took when it ran).
    """
    final = f'iter_{Config.fromfile(os.path.join(root, config)).train_cfg.max_iters}.pth'
    timing = os.path.join(root, work_dir, 'demo_timing.json')
    marker = os.path.join(root, work_dir, 'last_checkpoint')
    if (os.path.isfile(marker) and last_checkpoint(os.path.join(root, work_dir)).endswith(final)
            and os.path.isfile(timing)):
        print(f'{work_dir}: already trained ({final})', flush=True)
        with open(timing) as f:
            return json.load(f)['train_seconds']
    start = time.time()
    run_tool(root, train_tool, config, '--work-dir', work_dir, '--resume')
    seconds = round(time.time() - start, 1)
    write_json(timing, {'train_seconds': seconds})
    return seconds


def finetune_and_test(root, config, work_dir):
    """Fine-tune a downstream config (resuming), test its last checkpoint.

    Returns:
        dict: ``work_dir/test_metrics.json`` plus ``seconds`` (the training's).
    """
    seconds = train_or_resume(root, 'tools/train.py', config, work_dir)
    run_tool(root, 'tools/test.py', config, last_checkpoint(os.path.join(root, work_dir)),
             '--work-dir', work_dir)
    with open(os.path.join(root, work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)
    metrics['seconds'] = seconds
    return metrics


def mean_scalar(work_dir, key):
    """Mean of a logged training scalar over every run in ``work_dir`` (a resumed run logs
    into a new timestamped folder; mmengine's LocalVisBackend writes vis_data/scalars.json),
    or None when no run logged it."""
    values = []
    for run in sorted(os.listdir(work_dir)):
        path = os.path.join(work_dir, run, 'vis_data', 'scalars.json')
        if os.path.isfile(path):
            with open(path) as f:
                values += [r[key] for r in map(json.loads, f) if key in r]
    return sum(values) / len(values) if values else None
