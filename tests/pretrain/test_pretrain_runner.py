"""End to end through tools/: train, get killed, resume, export; and 2-process gloo."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from rats_mm.models import RatsViT

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'tests/pretrain/configs/tiny_dino.py'
BACKBONE = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_registers=4)


def pretrain_cmd(work, data, max_iters, *extra):
    return [sys.executable, 'tools/pretrain.py', CONFIG, '--work-dir', str(work), *extra,
            '--cfg-options', f'train_cfg.max_iters={max_iters}',
            'default_hooks.checkpoint.interval=2', f'train_dataloader.dataset.data_root={data}']


def run(cmd, timeout=300):
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return out


def schedule_lines(log):
    """iteration -> (lr, teacher_momentum, teacher_temp) from the logger's lines."""
    values = {}
    for m in re.finditer(r'Iter\(train\) \[\s*(\d+)/\d+\].*?lr: (\S+).*?teacher_momentum: (\S+)'
                         r'.*?teacher_temp: (\S+)', log):
        values[int(m.group(1))] = m.groups()[1:]
    return values


def kill_after_checkpoint(cmd, work, timeout=240):
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    marker = work / 'last_checkpoint'
    deadline = time.time() + timeout
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), proc.stdout.read()[-4000:]
    return int(re.search(r'iter_(\d+)\.pth', marker.read_text()).group(1))


def test_killed_run_resumes_and_exports(tmp_path, make_image_folder):
    data = make_image_folder(str(tmp_path / 'data'), corrupt=('truncated',))
    work = tmp_path / 'work'
    killed_at = kill_after_checkpoint(pretrain_cmd(work, data, 1000), work)
    resumed = run(pretrain_cmd(work, data, killed_at + 4, '--resume'))
    assert f'resumed epoch: 0, iter: {killed_at}' in resumed
    final = work / f'iter_{killed_at + 4}.pth'
    ckpt = torch.load(final, map_location='cpu', weights_only=True)  # plain checkpoint
    assert ckpt['meta']['iter'] == killed_at + 4
    assert 'criterion.center' in ckpt['state_dict']
    assert any(k.startswith('teacher.backbone.') for k in ckpt['state_dict'])
    # schedules continue exactly as in an uninterrupted run of the same length
    straight = run(pretrain_cmd(tmp_path / 'straight', data, killed_at + 4))
    want, got = schedule_lines(straight), schedule_lines(resumed)
    assert set(got) == set(range(killed_at + 1, killed_at + 5))
    assert all(got[i] == want[i] for i in got)
    # and so does the state: teacher, centre and optimiser follow the uninterrupted run's. The
    # resumed run reads the same images (its sampler restarts where the killed run stopped)
    # but draws its own random crops, since nothing is replayed: they agree to ~2e-3, while a
    # centre or moment lost on resume would differ by ~0.1
    straight_ckpt = torch.load(tmp_path / 'straight' / f'iter_{killed_at + 4}.pth',
                               map_location='cpu', weights_only=True)
    for key in ('teacher.backbone.registers', 'teacher.head.last_layer.parametrizations.'
                'weight.original1', 'student.backbone.blocks.0.attn.qkv.weight',
                'criterion.center'):
        assert torch.allclose(ckpt['state_dict'][key], straight_ckpt['state_dict'][key],
                              atol=1e-2), key
    moments = [s['exp_avg'] for s in ckpt['optimizer']['state'].values()]
    want_moments = [s['exp_avg'] for s in straight_ckpt['optimizer']['state'].values()]
    assert len(moments) == len(want_moments) > 0
    # moments restarted from zero on resume would be about a third smaller after 4 steps
    # (1 - 0.9^4 of the carried ones); other crops move them by ~10 %
    norm = torch.cat([m.flatten() for m in moments]).norm()
    want_norm = torch.cat([m.flatten() for m in want_moments]).norm()
    assert 0.85 * want_norm < norm < 1.2 * want_norm
    # the unreadable file was skipped and counted, and the k-NN monitor ran after training
    assert re.search(r'skipped_images: 1\b', straight)
    assert 'k-NN (k=3) top-1' in straight and (tmp_path / 'straight' / 'knn.json').exists()
    out = tmp_path / 'backbone.pth'
    run([sys.executable, 'tools/export_backbone.py', str(final), str(out)])
    saved = torch.load(out, weights_only=True)
    # the config's options; global_pool at RatsViT's default, the register mean
    assert saved['meta'] == {'rats_mm_backbone': {'compress': 'attention', 'logits': 'dot',
                                                  'global_pool': 'token', 'fc_norm': False,
                                                  'num_registers': 4}}
    weights = saved['state_dict']
    model = RatsViT(**BACKBONE)
    model.load_state_dict(weights, strict=True)
    assert torch.equal(model.registers, ckpt['state_dict']['teacher.backbone.registers'])


def test_two_process_gloo_pretraining(tmp_path, make_image_folder):
    data = make_image_folder(str(tmp_path / 'data'))
    work = tmp_path / 'dist'
    env = dict(os.environ, PORT=str(29500 + os.getpid() % 1000))
    cmd = ['bash', 'tools/dist_pretrain.sh', CONFIG, '2', '--work-dir', str(work),
           '--cfg-options', 'train_cfg.max_iters=2', f'train_dataloader.dataset.data_root={data}']
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    log = res.stdout + res.stderr
    assert 'Distributed training: True' in log and re.search(r'GPU number: 2\b', log), log[-2000:]
    ckpt = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 2
    sd = ckpt['state_dict']
    # two optimiser steps and EMA updates happened: student and teacher have moved apart
    key = 'backbone.blocks.0.attn.qkv.weight'
    assert not torch.equal(sd[f'student.{key}'], sd[f'teacher.{key}'])
    # images_per_s counts both processes' batches
    assert re.search(r'images_per_s: \d', log)


def test_readme_folder_command_on_unlabelled_images(tmp_path):
    """The README's "any image folder" command: the demo config on a plain folder with
    sub-folders and a junk .jpg trains, reports the skipped file, and skips the k-NN monitor
    (no labels there) instead of failing."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    data = tmp_path / 'photos'
    for i in range(6):
        folder = data / ('holiday' if i % 2 else 'garden/2024')
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (80, 72, 3), dtype=np.uint8)).save(
            folder / f'img{i}.png')
    (data / 'holiday' / 'junk.jpg').write_text('not an image')
    work = tmp_path / 'work'
    out = run([sys.executable, 'tools/pretrain.py', 'configs/demo/dino_rats_synthetic.py',
               '--work-dir', str(work), '--cfg-options',
               f'train_dataloader.dataset.data_root={data}',
               'train_dataloader.dataset.ann_file=None', 'train_cfg.max_iters=3',
               'default_hooks.logger.interval=1'])
    assert 'k-NN monitor skipped' in out and 'training.txt' in out
    assert 'junk.jpg' in out
    assert re.search(r'skipped_images: [1-9]', out)
    assert (work / 'iter_3.pth').exists() and not (work / 'knn.json').exists()
