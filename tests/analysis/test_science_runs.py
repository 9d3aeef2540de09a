"""The science-run tables: records read from summary.json files written here, their gains,
grouping over seeds and the rows a time budget cut."""
import importlib.util
import json
import os

import pytest

from rats_mm.analysis.runs.science import read_science_runs, science_tables

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def compare_runs_main(argv):
    path = os.path.join(REPO, 'tools', 'analysis', 'compare_runs.py')
    spec = importlib.util.spec_from_file_location('compare_runs_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _summary(seed, knn_rats, knn_vit, stopped=None):
    point = dict(knn_top1=0.5, knn_top1_student=0.5, loss=3.0, teacher_entropy_ratio=0.4)
    rats_last = {**point, 'knn_top1': knn_rats[1], 'register_within_head_similarity': 0.3,
                 'register_last_block_communicate_entropy': 0.7,
                 'register_last_block_broadcast_entropy': 0.8,
                 'register_last_block_compress_entropy': 0.9}
    return {
        'seed': seed, 'recipe': {'local_crops_number': 4, 'batch_size': 128, 'base_lr': 2e-3,
                                 'embedding': 'pooled'},
        'backbone_overrides': {}, 'rats_overrides': {'num_registers': 24},
        'history': {'rats_cosine_registers': [{**point, 'knn_top1': knn_rats[0]}, rats_last],
                    'vit': [{**point, 'knn_top1': knn_vit[0]},
                            {**point, 'knn_top1': knn_vit[1]}]},
        'embedding_rats_cosine_registers': 'registers',
        'embedding_width_rats_cosine_registers': 2304,
        'embedding_vit': 'pooled', 'embedding_width_vit': 96,
        'train_rats_cosine_registers': {'steps': 900, 'steps_planned': 900,
                                        'stopped_early': None},
        'train_vit': {'steps': 600 if stopped else 900, 'steps_planned': 900,
                      'stopped_early': stopped},
        'probe_rats_cosine_registers': {'knn_top1': {'embedding': knn_rats[1],
                                                     'register_mean': 0.45},
                                        'linear_top1': {'embedding': 0.7}},
        'part_miou_rats_cosine_registers': 0.04, 'part_miou_vit_kmeans': 0.05,
        'part_miou_single_segment': 0.02}


@pytest.fixture
def run_dirs(tmp_path):
    dirs = []
    for seed, rats, vit, stopped in ((0, (0.5, 0.62), (0.4, 0.6), None),
                                     (1, (0.5, 0.58), (0.4, 0.64), None),
                                     (2, (0.5, 0.6), (0.4, 0.5), 'time budget exceeded')):
        folder = tmp_path / f'seed{seed}'
        folder.mkdir()
        (folder / 'summary.json').write_text(json.dumps(_summary(seed, rats, vit, stopped)))
        dirs.append(str(folder))
    return dirs


def test_records_hold_gain_probes_width_and_cut_runs(run_dirs):
    records = read_science_runs(run_dirs)
    assert [(r['run'], r['model']) for r in records] == [
        ('seed0', 'rats_cosine_registers'), ('seed0', 'vit'), ('seed1', 'rats_cosine_registers'),
        ('seed1', 'vit'), ('seed2', 'rats_cosine_registers'), ('seed2', 'vit')]
    rats = records[0]
    assert rats['knn_gain'] == pytest.approx(0.12)
    assert (rats['width'], rats['embedding'], rats['overrides']) == (2304, 'registers',
                                                                     'num_registers=24')
    assert rats['knn_register_mean'] == 0.45 and rats['miou_registers'] == pytest.approx(4.0)
    assert records[1]['overrides'] == '-'  # RATS overrides do not reach the ViT
    assert [r['full'] for r in records] == [True, True, True, True, True, False]


def test_grouped_table_leaves_out_cut_runs(run_dirs):
    table = science_tables(read_science_runs(run_dirs))
    assert '600/900 (cut)' in table
    grouped = table.split('\n\n')[1]
    vit_row = next(line for line in grouped.splitlines() if line.startswith('| vit |'))
    # seeds 0 and 1 only: end k-NN 0.62 ± 0.028 (sample std of 0.60 and 0.64)
    assert '| 2 |' in vit_row and '0.620 ± 0.028 (2)' in vit_row
    rats_row = next(line for line in grouped.splitlines()
                    if line.startswith('| rats_cosine_registers |'))
    assert '0.600 ± 0.020 (3)' in rats_row


def test_compare_runs_writes_the_science_readme(run_dirs, tmp_path):
    out = tmp_path / 'README.md'
    compare_runs_main([*run_dirs, '--out', str(out), '--title', 'Local crops',
                       '--command', 'python tools/science.py --local-crops 4'])
    text = out.read_text()
    assert text.startswith('# Local crops\n')
    assert 'python tools/science.py --local-crops 4' in text
    assert sum(line.startswith('| seed') for line in text.splitlines()) == 6


def test_a_folder_without_summary_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='no summary.json'):
        read_science_runs([str(tmp_path)])
