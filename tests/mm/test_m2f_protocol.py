"""The downstream comparison's configs: a seed everywhere, ablations one change apart, the
protocol's warm-up, sliding windows on ADE20K, no selection on the reported set."""
import glob
import os

import pytest
from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'm2f_*.py')))


def load(name):
    return Config.fromfile(os.path.join(ROOT, 'configs', name))


def _flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def _differences(a, b):
    fa, fb = _flat(load(a).to_dict()), _flat(load(b).to_dict())
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and k != 'filename')


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_every_downstream_config_is_seeded_and_selects_nothing_on_val(path):
    cfg = Config.fromfile(path)
    assert cfg.randomness.seed == 0
    assert cfg.default_hooks.checkpoint.get('save_best') is None
    assert cfg.schedule_batch == 16
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    warmup = cfg.param_scheduler[0]
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 1500)


@pytest.mark.parametrize('a,b,allowed', [
    ('m2f_rats_ade20k.py', 'm2f_rats_learnedq_ade20k.py', {'model.decode_head'}),
    ('m2f_rats_learnedq_ade20k.py', 'm2f_vit_ade20k.py', {'model.backbone'}),
    ('m2f_vit_ade20k.py', 'm2f_vitreg_ade20k.py', {'model.backbone'}),
    ('m2f_rats_coco.py', 'm2f_rats_learnedq_coco.py', {'model.panoptic_head'}),
    ('m2f_rats_learnedq_coco.py', 'm2f_vit_coco.py', {'model.backbone'}),
    ('m2f_vit_coco.py', 'm2f_vitreg_coco.py', {'model.backbone'}),
    ('m2f_rats_vitb_ade20k.py', 'm2f_vit_vitb_ade20k.py', {'model.backbone',
                                                           'model.decode_head'}),
])
def test_each_arm_differs_from_its_neighbour_in_one_thing(a, b, allowed):
    changed = _differences(a, b)
    assert changed, (a, b)
    assert all(any(k.startswith(p + '.') for p in allowed) for k in changed), changed
    keys = {k.rsplit('.', 1)[-1] for k in changed}
    if allowed == {'model.backbone'}:  # the backbone's kind and its checkpoint, nothing else
        assert keys <= {'num_registers', 'attn_mode', 'class_token', 'checkpoint'}, keys
    if 'model.decode_head' in allowed or 'model.panoptic_head' in allowed:
        assert keys <= {'num_queries', 'register_queries', 'in_channels', 'num_registers',
                        'num_extra_queries', 'num_registers', 'attn_mode', 'class_token',
                        'checkpoint'}, keys


def test_ade20k_evaluates_in_sliding_windows_and_vitb_uses_its_drop_path():
    cfg = load('m2f_rats_ade20k.py')
    assert cfg.model.test_cfg.mode == 'slide'
    assert tuple(cfg.model.test_cfg.crop_size) == (512, 512)
    assert tuple(cfg.model.test_cfg.stride) == (341, 341)
    assert load('m2f_rats_vitb_ade20k.py').model.backbone.drop_path_rate == 0.3
    assert load('m2f_vit_vitb_ade20k.py').model.backbone.drop_path_rate == 0.3


def test_baselines_name_only_the_matched_pretraining_export():
    for name in ('m2f_vit_ade20k.py', 'm2f_vit_coco.py'):
        text = open(os.path.join(ROOT, 'configs', name)).read()
        code = '\n'.join(line for line in text.splitlines() if not line.startswith('#'))
        assert 'dino_deitsmall16' not in code
        assert load(name).model.backbone.init_cfg.checkpoint == 'checkpoints/dino_vit_vits16.pth'


def test_coco_schedule_keeps_its_epochs_on_4_gpus(monkeypatch):
    """The derivation covers what a detection schedule holds: milestones and the dynamic
    validation interval too."""
    from rats_mm.runtime.precision import settle_schedule
    cfg = load('m2f_rats_coco.py')
    factor = settle_schedule(cfg, 4, log=lambda line: None)
    assert factor == 2.0
    assert cfg.train_cfg.max_iters == 737500
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0]
    assert steps.milestones == [655556, 710184] and steps.end == 737500
    assert cfg.param_scheduler[0].end == 3000
    assert cfg.train_cfg.dynamic_intervals[0][0] == 730002
