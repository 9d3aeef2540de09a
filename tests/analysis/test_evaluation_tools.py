"""The evaluation CLIs (eval_knn, eval_linear, object_discovery, register_usage) called with
their documented arguments, on tiny random models and the generated synthetic set: the JSON,
boxes and figures they write."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from rats_mm.models import RatsViT

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2)
RATS = dict(TINY, num_registers=4, attn_mode='rats', class_token=False)
VIT = dict(TINY, num_registers=0, attn_mode='full', class_token=True)


def _tool(rel):
    spec = importlib.util.spec_from_file_location(rel.replace('/', '_'),
                                                  os.path.join(REPO, 'tools', rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    torch.manual_seed(0)
    for name, kwargs in (('rats', RATS), ('vit', VIT)):
        (root / f'{name}.py').write_text(f'model = dict(backbone={kwargs!r})\n')
        torch.save(RatsViT(**kwargs).state_dict(), root / f'{name}.pth')
    return root


@pytest.fixture(scope='module')
def discovery_root(synthetic_root, tmp_path_factory):
    """D/images/*.png and a COCO-style D/instances.json with one box per image."""
    root = tmp_path_factory.mktemp('discovery')
    (root / 'images').mkdir()
    with open(os.path.join(synthetic_root, 'instances_validation.json')) as f:
        coco = json.load(f)
    images, anns = [], []
    for img in coco['images']:
        ann = next(a for a in coco['annotations'] if a['image_id'] == img['id'])
        name = os.path.splitext(img['file_name'])[0] + '.png'
        Image.open(os.path.join(synthetic_root, 'images', 'validation', img['file_name'])) \
            .save(root / 'images' / name)
        images.append(dict(img, file_name=name))
        anns.append(ann)
    (root / 'instances.json').write_text(json.dumps(dict(images=images, annotations=anns)))
    return root


@pytest.mark.parametrize('model,method', [('rats', 'registers'), ('vit', 'lost'),
                                          ('rats', 'lost')])
def test_object_discovery_writes_boxes_corloc_and_drawings(models, discovery_root, tmp_path,
                                                           model, method):
    out = tmp_path / 'od.json'
    result = _tool('analysis/object_discovery.py')(
        [str(models / f'{model}.py'), str(models / f'{model}.pth'), '--data-root',
         str(discovery_root), '--ann-file', str(discovery_root / 'instances.json'),
         '--method', method, '--out', str(out), '--num-vis', '2'])
    written = json.loads(out.read_text())
    assert written['num_images'] == 4 == len(written['boxes'])
    assert 0 <= written['corloc'] <= 1
    assert written['corloc'] == np.mean([b['correct'] for b in written['boxes']])
    for b in written['boxes']:  # boxes lie in the 96 px images
        assert 0 <= b['box'][0] < b['box'][2] <= 96 and 0 <= b['box'][1] < b['box'][3] <= 96
    drawn = sorted(os.listdir(tmp_path / 'od_boxes'))
    assert len(drawn) == 2 and Image.open(tmp_path / 'od_boxes' / drawn[0]).size == (96, 96)
    assert result['corloc'] == written['corloc']


def test_registers_discovery_refuses_a_model_without_registers(models, discovery_root):
    with pytest.raises(ValueError, match="needs a model with registers"):
        _tool('analysis/object_discovery.py')(
            [str(models / 'vit.py'), str(models / 'vit.pth'), '--data-root',
             str(discovery_root), '--ann-file', str(discovery_root / 'instances.json'),
             '--method', 'registers'])


@pytest.mark.parametrize('tool', ['eval_knn.py', 'eval_linear.py'])
@pytest.mark.parametrize('embedding', ['pooled', 'registers', 'heads'])
def test_probe_tools_read_each_embedding(models, synthetic_root, tmp_path, monkeypatch, tool,
                                         embedding):
    # relative paths: ann files given from the working directory
    monkeypatch.chdir(os.path.dirname(synthetic_root))
    data = os.path.basename(synthetic_root)
    out = tmp_path / 'probe.json'
    _tool(tool)([str(models / 'rats.py'), str(models / 'rats.pth'), '--train-root', data,
                 '--train-ann', f'{data}/labels/training.txt', '--val-root', data,
                 '--val-ann', f'{data}/labels/validation.txt', '--embedding', embedding,
                 '--num-workers', '0', '--out', str(out)])
    result = json.loads(out.read_text())
    assert 0 <= result['top1'] <= result['top5'] <= 1
    assert (result['num_train'], result['num_val']) == (12, 4)
    assert result['feature_dim'] == (4 * 24 if embedding == 'registers' else 24)
    assert result['embedding'] == embedding


def test_register_usage_writes_win_fractions_and_attention_stats(models, synthetic_root,
                                                                 tmp_path):
    _tool('analysis/register_usage.py')(
        [str(models / 'rats.py'), str(models / 'rats.pth'), '--data-root', synthetic_root,
         '--split', 'validation', '--out-dir', str(tmp_path / 'O')])
    result = json.loads((tmp_path / 'O' / 'register_usage.json').read_text())
    assert 1 <= result['effective_registers_per_image'] <= 4
    assert result['num_images'] == 4 and sum(result['win_fraction']) == pytest.approx(1)
    assert result['dead_registers'] == [r for r, f in enumerate(result['win_fraction'])
                                        if f == 0]
    assert result['attention_by_block'] and all(
        0 < block['compress_entropy'] <= 1 and 1 <= block['compress_peak']
        for block in result['attention_by_block'])
    assert (tmp_path / 'O' / 'register_usage.png').stat().st_size > 0


@pytest.mark.parametrize('tool,probe', [('eval_knn.py', 'knn_probe'),
                                        ('eval_linear.py', 'linear_probe')])
def test_probe_runs_on_the_run_device_with_every_core(models, synthetic_root, tmp_path,
                                                      monkeypatch, tool, probe):
    """Under torchrun (OMP_NUM_THREADS=1) the probe used to run on one CPU thread, off the
    GPU: it now gets the run's device and every core."""
    import rats_mm.runtime.probe_cli as probes
    seen = {}
    real = getattr(probes, probe)

    def recording(*args, **kwargs):
        seen.update(device=kwargs.get('device'), threads=torch.get_num_threads())
        return real(*args, **kwargs)
    monkeypatch.setattr(probes, probe, recording)
    torch.set_num_threads(1)
    try:
        _tool(tool)([str(models / 'rats.py'), str(models / 'rats.pth'), '--train-root',
                     synthetic_root, '--train-ann', 'labels/training.txt', '--val-root',
                     synthetic_root, '--val-ann', 'labels/validation.txt', '--num-workers',
                     '0', '--device', 'cpu'])
    finally:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    assert seen['device'] == torch.device('cpu')
    assert seen['threads'] == len(os.sched_getaffinity(0))

