"""`--amp` on the DINO pretraining configs builds mmengine's AMP wrapper with DINO's
per-parameter clipping (it crashed before the first iteration: the optimizer reached
AmpOptimWrapper's first positional parameter, loss_scale)."""
import os

import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import MODELS

import rats_mm.pretrain  # noqa: F401  (registers DINOPretrainer and the wrappers)
from rats_mm.runtime.launch import load_config, train_parser
from rats_mm.ssl import clip_gradients_per_parameter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('config', ['dino_rats_vits16_in1k.py', 'dino_vit_vits16_in1k.py'])
def test_amp_optim_wrapper_builds_with_per_parameter_clipping(monkeypatch, config):
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    args = train_parser('pretrain').parse_args([os.path.join(ROOT, 'configs', config), '--amp'])
    cfg = load_config(args)
    assert cfg.optim_wrapper.type == 'DINOAmpOptimWrapper'
    cfg.model.head.out_dim = 256  # the wrapper is what is tested, not the 65,536 prototypes
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'DINOAmpOptimWrapper'
    assert wrapper.clip_func is clip_gradients_per_parameter
    assert wrapper.clip_grad_kwargs['max_norm'] == 3.0
    assert hasattr(wrapper, 'loss_scaler')  # dynamic loss scaling, from the config
    params = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert params == {id(p) for p in model.student.parameters() if p.requires_grad}


def test_amp_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: False)
    args = train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'dino_rats_vits16_in1k.py'), '--amp'])
    with pytest.raises(RuntimeError, match='--amp needs a CUDA device'):
        load_config(args)


def test_paramwise_groups_are_merged_by_setting():
    """paramwise_cfg gives one group per tensor (about 170 for ViT-S); merged, AdamW sees a
    few groups and every tensor keeps the lr / weight decay it had."""
    from rats_mm.pretrain.dino import StudentOptimWrapperConstructor
    args = train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'dino_rats_vits16_in1k.py')])
    cfg = load_config(args)
    cfg.model.head.out_dim = 256
    model = MODELS.build(cfg.model)
    settings = {}
    for merge in (False, True):
        wrapper_cfg = cfg.optim_wrapper.copy()
        wrapper_cfg.pop('constructor')
        paramwise = wrapper_cfg.pop('paramwise_cfg')
        constructor = StudentOptimWrapperConstructor(wrapper_cfg, paramwise)
        if not merge:  # mmengine's own grouping, for reference
            constructor.add_params = super(StudentOptimWrapperConstructor,
                                           constructor).add_params
        groups = constructor(model).optimizer.param_groups
        settings[merge] = (len(groups), {id(p): (g['lr'], g['weight_decay'])
                                         for g in groups for p in g['params']})
    (unmerged_count, before), (merged_count, after) = settings[False], settings[True]
    assert unmerged_count > 100 and merged_count <= 4
    assert before == after
