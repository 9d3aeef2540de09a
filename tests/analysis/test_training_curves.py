import json

import numpy as np
import pytest
from PIL import Image

from rats_mm.analysis import read_scalars, render_training_curves


def write_run(work, stamp, records):
    folder = work / stamp / 'vis_data'
    folder.mkdir(parents=True)
    with open(folder / 'scalars.json', 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)


def test_read_scalars_joins_resumed_runs_and_takes_knn_from_its_file(tmp_path):
    write_run(tmp_path, '20260101_000000', [{'iter': 10, 'loss': 5.0, 'knn_top1': 0.1},
                                            {'iter': 20, 'loss': 4.0, 'knn_top1': 0.1}])
    # resumed from iteration 10: its iteration 20 replaces the first run's
    write_run(tmp_path, '20260101_010000', [{'iter': 20, 'loss': 3.5}, {'iter': 30, 'loss': 3.0}])
    (tmp_path / 'knn.json').write_text(json.dumps(
        [{'iter': 15, 'knn_top1': 0.3, 'knn_top1_student': 0.2},
         {'iter': 30, 'knn_top1': 0.4, 'knn_top1_student': 0.25}]))
    series = read_scalars(str(tmp_path))
    assert series['loss'] == [(10, 5.0), (20, 3.5), (30, 3.0)]
    assert series['knn_top1'] == [(15, 0.3), (30, 0.4)]
    assert series['knn_top1_student'] == [(15, 0.2), (30, 0.25)]


def test_read_scalars_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        read_scalars(str(tmp_path))
    write_run(tmp_path, 'run', [{'iter': 1, 'loss': 1.0}])
    with open(tmp_path / 'run' / 'vis_data' / 'scalars.json', 'a') as f:
        f.write('{broken\n')
    with pytest.raises(ValueError, match=r'scalars.json:2'):
        read_scalars(str(tmp_path))


def test_render_training_curves_draws_each_run(tmp_path):
    runs = {}
    for name, offset in (('RATS', 0.0), ('ViT', 1.0)):
        runs[name] = {'loss': [(i, 6.0 - offset - i / 100) for i in range(0, 200, 20)],
                      'teacher_entropy': [(i, 3.0) for i in range(0, 200, 20)],
                      'teacher_entropy_ratio': [(i, 0.5) for i in range(0, 200, 20)],
                      'teacher_batch_entropy_ratio': [(i, 0.8) for i in range(0, 200, 20)],
                      'knn_top1': [(100, 0.3), (200, 0.4)]}
    path = render_training_curves(runs, str(tmp_path / 'curves.png'))
    pixels = np.asarray(Image.open(path).convert('RGB')).reshape(-1, 3)
    # matplotlib's C0 (blue) and C1 (orange) lines are both drawn
    assert (np.abs(pixels - [31, 119, 180]).sum(1) < 30).sum() > 50
    assert (np.abs(pixels - [255, 127, 14]).sum(1) < 30).sum() > 50
