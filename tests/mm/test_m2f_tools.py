"""tools/train.py, tools/test.py and tools/dist_train.sh on the demo configs, end to end."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEG = 'configs/demo/m2f_rats_synthetic_seg.py'
INS = 'configs/demo/m2f_rats_synthetic_ins.py'
SMALL = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False', 'default_hooks.checkpoint.interval=2']


def options(data, max_iters):
    return ['--cfg-options', f'train_cfg.max_iters={max_iters}',
            f'train_cfg.val_interval={max_iters}', *SMALL,
            f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}']


def run(args, timeout=600, env=None):
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return out


def test_seg_demo_killed_resumed_and_tested(synthetic_root, tmp_path):
    work = tmp_path / 'seg'
    cmd = [sys.executable, 'tools/train.py', SEG, '--work-dir', str(work),
           *options(synthetic_root, 1000)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (work / 'last_checkpoint').exists() and time.time() < deadline:
        assert proc.poll() is None, 'training died before its first checkpoint'
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = int(re.search(r'iter_(\d+)', (work / 'last_checkpoint').read_text()).group(1))
    out = run([*cmd[:-len(options(synthetic_root, 1000))], '--resume',
               *options(synthetic_root, killed_at + 2)])
    assert f'resumed epoch: 0, iter: {killed_at}' in out
    ckpt = work / f'iter_{killed_at + 2}.pth'
    out = run([sys.executable, 'tools/test.py', SEG, str(ckpt), '--work-dir', str(work),
               '--show-dir', str(tmp_path / 'show'),
               '--cfg-options', f'test_dataloader.dataset.data_root={synthetic_root}'])
    miou = float(re.search(r'^mIoU: (\S+)$', out, re.M).group(1))
    assert json.loads((work / 'test_metrics.json').read_text())['mIoU'] == miou
    assert list((tmp_path / 'show').rglob('*.png'))


def test_instance_demo_trains_and_reports_segm_map(synthetic_root, tmp_path):
    work = tmp_path / 'ins'
    run([sys.executable, 'tools/train.py', INS, '--work-dir', str(work),
         *options(synthetic_root, 2)])
    out = run([sys.executable, 'tools/test.py', INS, str(work / 'iter_2.pth'),
               '--work-dir', str(work),
               '--cfg-options', f'test_dataloader.dataset.data_root={synthetic_root}'])
    assert re.search(r'^coco/segm_mAP: ', out, re.M)
    metrics = json.loads((work / 'test_metrics.json').read_text())
    assert -1 <= metrics['coco/segm_mAP'] <= 1


def test_two_process_gloo_training(synthetic_root, tmp_path):
    work = tmp_path / 'dist'
    env = dict(os.environ, PORT=str(30500 + os.getpid() % 1000))
    out = run(['bash', 'tools/dist_train.sh', SEG, '2', '--work-dir', str(work),
               *options(synthetic_root, 2)], env=env)
    assert 'Distributed training: True' in out
    assert (work / 'iter_2.pth').exists()
