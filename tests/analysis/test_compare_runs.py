"""tools/analysis/compare_runs.py: mean ± sample std per arm over seeds."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rats_mm.analysis.runs import compare_runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(folder, config, seed, miou, acc):
    os.makedirs(folder)
    with open(os.path.join(folder, 'test_metrics.json'), 'w') as f:
        json.dump({'mIoU': miou, 'aAcc': acc}, f)
    with open(os.path.join(folder, config), 'w') as f:
        f.write(f"model = dict()\nrandomness = dict(seed={seed})\n")
    return str(folder)


def test_three_seeds_give_mean_and_sample_std(tmp_path):
    mious = [45.1, 46.3, 44.8]
    dirs = [_run(tmp_path / f'rats{s}', 'm2f_rats_ade20k.py', s, m, 80.0 + s)
            for s, m in enumerate(mious)]
    out = tmp_path / 'table.md'
    proc = subprocess.run([sys.executable, 'tools/analysis/compare_runs.py', *dirs, '--out',
                           str(out), '--json', str(tmp_path / 'r.json')], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    want_mean, want_std = np.mean(mious), np.std(mious, ddof=1)
    table = out.read_text()
    assert f'| m2f_rats_ade20k | 0, 1, 2 |' in table
    assert f'{want_mean:.2f} ± {want_std:.2f} (n=3)' in table
    figures = json.loads((tmp_path / 'r.json').read_text())['arms']['m2f_rats_ade20k']
    assert figures['metrics']['mIoU']['mean'] == pytest.approx(want_mean)
    assert figures['metrics']['mIoU']['std'] == pytest.approx(want_std)


def test_arms_are_kept_apart_and_a_repeated_seed_is_named(tmp_path):
    a = _run(tmp_path / 'a', 'm2f_rats_ade20k.py', 0, 45.0, 80.0)
    b = _run(tmp_path / 'b', 'm2f_vit_ade20k.py', 0, 44.0, 79.0)
    result = compare_runs([a, b])
    assert set(result['arms']) == {'m2f_rats_ade20k', 'm2f_vit_ade20k'}
    assert result['arms']['m2f_vit_ade20k']['metrics']['mIoU'] == {'mean': 44.0, 'std': None,
                                                                   'n': 1}
    c = _run(tmp_path / 'c', 'm2f_rats_ade20k.py', 0, 46.0, 80.0)
    with pytest.raises(ValueError, match='the same seed 0'):
        compare_runs([a, c])
    with pytest.raises(FileNotFoundError, match='no test_metrics.json'):
        compare_runs([str(tmp_path)])


def test_the_seed_is_the_configs_last_word(tmp_path):
    """A dumped config is read as mmengine reads it: the final ``randomness`` counts (a
    regex over the text took the first assignment), with any other keys beside the seed."""
    from rats_mm.analysis.runs import run_seed
    config = tmp_path / 'cfg.py'
    config.write_text("randomness = dict(seed=1)\nmodel = dict(type='X')\n"
                      "randomness = dict(deterministic=False,\n    seed=2)\n")
    assert run_seed(str(config)) == 2
    config.write_text("model = dict()\n")
    assert run_seed(str(config)) is None
    config.write_text("randomness = dict(seed=\n")
    with pytest.raises(ValueError, match='cfg.py: cannot read the config'):
        run_seed(str(config))


def test_grouped_stats_and_format_stat_against_statistics():
    import statistics

    from rats_mm.analysis.runs import format_stat, grouped_stats
    records = [{'arm': 'b', 'seed': s, 'acc': a, 'iou': i}
               for s, a, i in ((0, 0.5, 0.1), (1, 0.7, None), (2, 0.9, 0.3))]
    records.append({'arm': 'a', 'seed': 0, 'acc': 0.25, 'iou': 0.5})
    out = grouped_stats(records, ['arm'], ['acc', 'iou'])
    assert [(group, count) for group, count, _ in out] == [(('a',), 1), (('b',), 3)]
    stats = out[1][2]
    assert stats['acc']['mean'] == pytest.approx(0.7)
    assert stats['acc']['std'] == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert stats['iou']['n'] == 2                     # the run without the figure is left out
    assert format_stat(stats['acc'], digits=3) == f"0.700 ± {stats['acc']['std']:.3f} (n=3)"
    assert format_stat(out[0][2]['acc']) == '0.25 (n=1)' and format_stat(None) == '-'


def test_compress_study_table_is_the_grouped_stats(tmp_path):
    import runpy
    study = runpy.run_path(os.path.join(ROOT, 'tools', 'analysis', 'compress_study.py'))
    cell = dict(signal='dino', model='rats', compress='attention', logits='cosine',
                embedding='pooled')
    runs = [{**cell, 'seed': s, 'val_acc': v} for s, v in ((0, 0.4), (1, 0.5))]
    row = [line for line in study['table'](runs).splitlines() if '| dino |' in line]
    assert len(row) == 1
    assert '| 2 | 0.450 ± 0.071 (n=2) |' in row[0] and row[0].count(' - ') >= 10
