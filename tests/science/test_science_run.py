"""``tools/science.py --smoke`` end to end on the CPU with OpenMMLab unimportable, and its
exported backbones read back by the analysis tools through configs/science/."""
import json
import os
import subprocess
import sys

import pytest
import torch

from rats_mm.science import SUMMARY_KEYS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOCKED = ('mmengine', 'mmcv', 'mmseg', 'mmdet')
ALL_VARIANTS = ('rats', 'rats_competition', 'rats_cosine', 'vit')
# a module set to None in sys.modules raises ImportError on import
RUN = ("import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); "
       "sys.argv = ['tools/science.py'] + {argv!r}; "
       "runpy.run_path('tools/science.py', run_name='__main__')")


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
    base = tmp_path_factory.mktemp('science')
    out, cache = str(base / 'run'), str(base / 'cache')
    argv = ['--smoke', '--device', 'cpu', '--out', out, '--cache-dir', cache,
            '--variants', ','.join(ALL_VARIANTS)]
    proc = subprocess.run([sys.executable, '-c', RUN.format(blocked=BLOCKED, argv=argv)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(os.path.join(out, 'summary.json')) as f:
        return out, cache, json.load(f), proc.stdout


def test_smoke_writes_every_summary_figure(smoke_run):
    out, _, summary, _ = smoke_run
    missing = [k for k in SUMMARY_KEYS if summary.get(k) is None]
    assert not missing, missing
    assert summary['device'].startswith('cpu')
    assert summary['variants'] == list(ALL_VARIANTS)
    for name in ALL_VARIANTS:
        train = summary[f'train_{name}']
        assert summary[f'images_seen_{name}'] == train['steps'] * 16 > 0
        assert summary[f'images_per_second_{name}'] > 0
        assert 0 <= summary[f'knn_top1_{name}'] <= 1
        history = summary['history'][name]
        assert history[0]['step'] == 0 and history[-1]['step'] == train['steps']
        assert all('loss' in p for p in history[1:])
        # the collapse diagnostics at every point after step 0
        stream = 'cls_stream_norm' if name == 'vit' else 'register_stream_norm'
        for point in history[1:]:
            assert -1 <= point['embedding_cosine'] <= 1
            assert len(point[stream]) == len(point['value_norm']) == 8
            assert set(point['grad_norm_by_group']) >= {'patch_embed', 'registers', 'qkv',
                                                        'proj', 'mlp', 'head'}
            # (zero at a step whose warm-up learning rate is still 0)
            assert set(point['update_ratio_by_group']) == set(point['grad_norm_by_group'])
            assert all(v >= 0 for v in point['update_ratio_by_group'].values())
            assert point['centre_norm'] > 0
    for key in ('part_miou_rats', 'part_miou_rats_broadcast', 'part_miou_vit_kmeans',
                'part_miou_rats_scenes', 'part_miou_random_init_rats',
                'part_miou_rats_competition', 'part_miou_rats_competition_broadcast',
                'part_miou_rats_competition_scenes', 'part_miou_random_init_rats_competition',
                'part_miou_rats_cosine', 'part_miou_rats_cosine_broadcast',
                'knn_top1_rats_cosine'):
        assert 0 < summary[key] < 1, key
    # each arm is measured on its own: its registers' figures under its own name
    for arm in ('rats_competition', 'rats_cosine'):
        assert -1 <= summary[f'register_within_head_similarity_{arm}'] <= 1
        assert len(summary[f'register_attention_by_block_{arm}']) == 8
        assert summary[f'register_attention_by_block_{arm}'] != \
            summary['register_attention_by_block']
    # the end's feature probes: the embedding's k-NN is the last point's, and only RATS
    # has registers to concatenate
    for name in ALL_VARIANTS:
        for key in (f'probe_{name}', f'probe_random_init_{name}'):
            kinds = {'embedding', 'patches'} | ({'registers'} if name != 'vit' else set())
            assert set(summary[key]['knn_top1']) == set(summary[key]['linear_top1']) == kinds
            assert all(0 <= v <= 1 for m in summary[key].values() for v in m.values())
        assert summary[f'probe_{name}']['knn_top1']['embedding'] == pytest.approx(
            summary[f'knn_top1_{name}'], abs=1e-6)
    assert 'logits' in summary['configs']['rats_cosine']
    # step 0: the paper's compress is uniform at init, the cosine one is not
    init = {arm: summary['register_attention_by_block_at_init' + tag][-1]['compress_entropy']
            for arm, tag in (('rats', ''), ('rats_cosine', '_rats_cosine'))}
    assert init['rats'] > 0.999 and init['rats_cosine'] < init['rats']
    assert 0 < summary['register_last_block_communicate_entropy'] <= 1.0 + 1e-6
    assert 0 < summary['registers_in_use'] <= 24
    assert len(summary['register_attention_by_block']) == 8
    assert 0 <= summary['corloc_rats_registers'] <= 1
    assert 0 <= summary['corloc_rats_competition_registers'] <= 1
    for name in ('curves.png', 'views.png', 'parts.png', 'similarity.png',
                 'similarity_rats_competition.png', 'similarity_rats_cosine.png', 'log.txt',
                 'backbone_rats_cosine.pth'):
        assert os.path.isfile(os.path.join(out, name)), name


def test_smoke_pictures_are_drawn(smoke_run, drawn_colours):
    out = smoke_run[0]
    for name in ('curves.png', 'views.png', 'parts.png', 'similarity.png'):
        assert drawn_colours(os.path.join(out, name)) > 50, name


@pytest.mark.parametrize('name,config,method,key', [
    ('rats', 'rats_science.py', 'registers', 'part_miou_rats'),
    ('rats_competition', 'rats_competition_science.py', 'registers',
     'part_miou_rats_competition'),
    ('rats_cosine', 'rats_cosine_science.py', 'registers', 'part_miou_rats_cosine'),
    ('vit', 'vit_science.py', 'kmeans', 'part_miou_vit_kmeans')])
def test_part_eval_tool_reproduces_the_run(smoke_run, tmp_path, name, config, method, key):
    """The exported teacher, read with configs/science/ by tools/analysis/part_eval.py,
    scores exactly what the run measured in process on the same images."""
    out, cache, summary, _ = smoke_run
    objects = next(os.path.join(cache, d) for d in os.listdir(cache)
                   if d.startswith('objects_'))
    result = tmp_path / 'parts.json'
    cmd = [sys.executable, 'tools/analysis/part_eval.py', f'configs/science/{config}',
           os.path.join(out, f'backbone_{name}.pth'), '--data-root', objects,
           '--split', 'validation', '--max-images', '12', '--method', method,
           '--mode', 'hungarian', '--out', str(result)]
    if method == 'kmeans':
        cmd += ['--num-clusters', '24']
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert json.loads(result.read_text())['miou'] == pytest.approx(summary[key], abs=1e-9)


def test_exported_backbone_is_a_plain_state_dict(smoke_run):
    competition = torch.load(os.path.join(smoke_run[0], 'backbone_rats_competition.pth'),
                             weights_only=True)
    # the options and the read-out: model(x) the register mean, the science config's 24
    readout = {'global_pool': 'token', 'fc_norm': False, 'num_registers': 24}
    assert competition['meta'] == {'rats_mm_backbone': {'compress': 'competition',
                                                        'logits': 'dot', **readout}}
    cosine = torch.load(os.path.join(smoke_run[0], 'backbone_rats_cosine.pth'),
                        weights_only=True)
    assert cosine['meta'] == {'rats_mm_backbone': {'compress': 'attention', 'logits': 'cosine',
                                                   **readout}}
    assert cosine['state_dict']['blocks.0.attn.logit_scale'].shape == (3, 3)
    saved = torch.load(os.path.join(smoke_run[0], 'backbone_rats.pth'), weights_only=True)
    assert saved['meta'] == {'rats_mm_backbone': {'compress': 'attention', 'logits': 'dot',
                                                  **readout}}
    state = saved['state_dict']
    assert state['registers'].shape == (1, 24, 192)
    assert all(v.dtype == torch.float32 for v in state.values())


def test_smoke_renders_and_caches_its_data(smoke_run):
    log = smoke_run[3]
    assert 'training images: rendered 256' in log
    cache = smoke_run[1]
    assert any(f.startswith('train_isolated_256_96_7') for f in os.listdir(cache))
