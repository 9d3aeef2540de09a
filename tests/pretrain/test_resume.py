"""Runs that survive being killed (rats_mm.runtime.resume): atomic checkpoints, a resume that
steps over an unreadable checkpoint, and a resume that does not replay the data loader."""
import os
import re
import subprocess
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.runner.checkpoint import save_checkpoint
from torch.utils.data import DataLoader, Dataset

from rats_mm.runtime.resume import (ResumableIterBasedTrainLoop, checkpoint_problem,
                                    resume_checkpoint)

from test_pretrain_runner import ROOT, pretrain_cmd, run  # noqa: E402 (pytest's rootdir path)


class CountingDataset(Dataset):
    """Records every index read (a read is an image decoded and cropped in a real run)."""

    def __init__(self, size=10):
        self.size, self.reads = size, []

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        self.reads.append(i)
        return i


def _loop(dataset, batch_size=4):
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=0,
                        sampler=InfiniteSampler(dataset, shuffle=True, seed=3))
    runner = SimpleNamespace(visualizer=SimpleNamespace(dataset_meta=None))
    return ResumableIterBasedTrainLoop(runner, loader, max_iters=100)


def test_resume_reads_no_image_and_continues_the_uninterrupted_stream():
    straight = _loop(CountingDataset())
    want = [next(straight.dataloader_iterator).tolist() for _ in range(7)]
    dataset = CountingDataset()
    resumed = _loop(dataset)
    resumed._iter = 5   # what mmengine's resume sets before run()
    dataset.reads.clear()
    assert resumed._skip_trained_samples()
    assert dataset.reads == []  # nothing read to get there (mmengine reads 5 batches)
    got = [next(resumed.dataloader_iterator).tolist() for _ in range(2)]
    assert got == want[5:]
    assert len(dataset.reads) == 8


def _save(path, value):
    save_checkpoint({'meta': {'iter': value}, 'state_dict': {'w': torch.full((64,), value)}},
                    str(path), backend_args=dict(backend='atomic_local'))


def test_a_write_killed_part_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """mmengine's save through the 'atomic_local' backend: a write that dies after part of
    the bytes (the kill) leaves the previous file whole and no partial file."""
    path = tmp_path / 'iter_2.pth'
    _save(path, 2.0)
    (tmp_path / 'last_checkpoint').write_text(str(path))

    def dying_fsync(fd):
        raise KeyboardInterrupt('SIGKILL during the write')
    monkeypatch.setattr(os, 'fsync', dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path / 'iter_4.pth', 4.0)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth', 'last_checkpoint']
    assert checkpoint_problem(str(path)) is None
    assert resume_checkpoint(str(tmp_path)) == (str(path), [])


def test_auto_resume_skips_a_truncated_checkpoint_and_names_every_unreadable_one(tmp_path):
    for step in (2, 4):
        _save(tmp_path / f'iter_{step}.pth', float(step))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_4.pth').write_bytes(data[:len(data) // 2])
    path, warnings = resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_2.pth')
    assert len(warnings) == 1 and 'iter_4.pth' in warnings[0] and 'unreadable' in warnings[0]
    (tmp_path / 'iter_2.pth').write_bytes(b'PK\x03\x04 cut')
    with pytest.raises(RuntimeError, match=r'no readable checkpoint(.|\n)*iter_4\.pth'
                                           r'(.|\n)*iter_2\.pth'):
        resume_checkpoint(str(tmp_path))
    with pytest.raises(RuntimeError, match=r'--resume .*iter_2\.pth: cannot resume'):
        resume_checkpoint(str(tmp_path), str(tmp_path / 'iter_2.pth'))
    assert resume_checkpoint(str(tmp_path / 'empty')) == (None, [])


def test_pretraining_resumes_past_a_truncated_checkpoint_without_replay(tmp_path,
                                                                       make_image_folder):
    """End to end: 4 iterations with a checkpoint every 2, iter_4.pth cut to half, then
    --resume to 6: the run resumes from iter_2.pth, logs the skip, never advances the loader,
    and writes iter_6.pth; an explicit --resume of a cut checkpoint fails with a message."""
    data = make_image_folder(str(tmp_path / 'data'))
    work = tmp_path / 'work'
    run(pretrain_cmd(work, data, 4))
    ckpt = work / 'iter_4.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:ckpt.stat().st_size // 2])
    out = run(pretrain_cmd(work, data, 6, '--resume'))
    assert re.search(r'skipped \S*iter_4\.pth: unreadable', out)
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'Advance dataloader' not in out
    assert 'Resumed at iteration 2: the sampler restarts after the 8 samples' in out
    assert (work / 'iter_6.pth').is_file()
    assert not [p for p in work.iterdir() if p.name.endswith('.tmp')]
    logs = list(work.glob('*/*.log'))
    assert any('iter_4.pth' in p.read_text() for p in logs)  # the run's own log names it
    cut = work / 'cut.pth'  # iter_4.pth was written again, whole, by the resumed run
    cut.write_bytes((work / 'iter_6.pth').read_bytes()[:1000])
    explicit = run_failing(pretrain_cmd(work, data, 8, '--resume', str(cut)))
    assert f'--resume {cut}: cannot resume from it' in explicit


def run_failing(cmd):
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    return res.stdout + res.stderr
