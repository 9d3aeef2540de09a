"""`--amp` on the DINO pretraining configs builds mmengine's AMP wrapper with DINO's
per-parameter clipping (it crashed before the first iteration: the optimizer reached
AmpOptimWrapper's first positional parameter, loss_scale)."""
import os

import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import MODELS

import rats_mm.pretrain  # noqa: F401  (registers DINOPretrainer and the wrappers)
from rats_mm.runtime.launch import settle_run_config, train_parser
from rats_mm.ssl import clip_gradients_per_parameter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('config', ['dino_rats_vits16_in1k.py', 'dino_vit_vits16_in1k.py'])
def test_amp_optim_wrapper_builds_with_per_parameter_clipping(monkeypatch, config):
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    args = train_parser('pretrain').parse_args([os.path.join(ROOT, 'configs', config), '--amp'])
    cfg = settle_run_config(args)
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
        settle_run_config(args)


def test_paramwise_groups_are_merged_by_setting():
    """paramwise_cfg gives one group per tensor (about 170 for ViT-S); merged, AdamW sees a
    few groups and every tensor keeps the lr / weight decay it had."""
    from rats_mm.pretrain.dino import StudentOptimWrapperConstructor
    args = train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'dino_rats_vits16_in1k.py')])
    cfg = settle_run_config(args)
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


@pytest.mark.parametrize('amp,dtype,scaled', [(None, 'bfloat16', False), ('bf16', 'bfloat16', False),
                                             ('fp16', 'float16', True)])
def test_imagenet_config_is_bf16_on_a_gpu_and_fp16_selectable(monkeypatch, amp, dtype,
                                                               scaled):
    """bf16 autocast by default on a GPU, without a loss scaler; --amp fp16 brings DINO's
    dynamic GradScaler."""
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    argv = [os.path.join(ROOT, 'configs', 'dino_rats_vits16_in1k.py')]
    argv += ['--amp', amp] if amp else []
    cfg = settle_run_config(train_parser('pretrain').parse_args(argv))
    cfg.model.head.out_dim = 256
    wrapper = build_optim_wrapper(MODELS.build(cfg.model), cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'DINOAmpOptimWrapper'
    assert wrapper.cast_dtype == getattr(__import__('torch'), dtype)
    # (a GradScaler disables itself on this CPU machine: read what the config asks for)
    assert (cfg.optim_wrapper.loss_scale == 'dynamic') is scaled
    if not scaled:
        assert not wrapper.loss_scaler.is_enabled()


def test_the_same_config_is_float32_on_a_cpu(monkeypatch, capsys):
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: False)
    cfg = settle_run_config(train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'dino_rats_vits16_in1k.py')]))
    assert cfg.optim_wrapper.type == 'DINOOptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper and 'loss_scale' not in cfg.optim_wrapper
    assert 'no CUDA device' in capsys.readouterr().out


@pytest.mark.parametrize('config,gpus,epochs', [('dino_rats_vits16_in1k.py', 16, 100),
                                                ('dino_rats_vits16_in1k.py', 4, 100),
                                                ('dino_rats_vits16_in1k_300e.py', 32, 300)])
def test_schedule_keeps_its_epochs_on_any_number_of_gpus(monkeypatch, capsys, config, gpus,
                                                         epochs):
    """The iteration counts were written for 8 x 64 images; on another number of GPUs every
    one is rescaled (and the derivation logged) so the epochs stay the config's."""
    monkeypatch.setenv('WORLD_SIZE', str(gpus))
    from mmengine.config import Config
    reference = Config.fromfile(os.path.join(ROOT, 'configs', config))  # as written: 8 x 64
    cfg = settle_run_config(train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', config), '--launcher', 'pytorch']))
    factor = 8 / gpus
    total = gpus * 64
    assert cfg.train_cfg.max_iters == round(reference.train_cfg.max_iters * factor)
    assert cfg.train_cfg.max_iters * total / 1281167 == pytest.approx(epochs, rel=1e-3)
    warmup = [s for s in cfg.param_scheduler if s.type == 'LinearLR'][0]
    ref_warmup = [s for s in reference.param_scheduler if s.type == 'LinearLR'][0]
    assert warmup.end == round(ref_warmup.end * factor)   # still 10 epochs
    assert cfg.model.freeze_last_layer_iters == round(reference.model.freeze_last_layer_iters
                                                      * factor)
    assert cfg.default_hooks.checkpoint.interval == round(
        reference.default_hooks.checkpoint.interval * factor)
    out = capsys.readouterr().out
    assert f'total batch {total} ({gpus} x 64)' in out and f'{epochs}.0 epochs' in out


def test_cosine_temperatures_take_no_weight_decay_in_any_optimizer():
    """``logit_scale`` (logits='cosine') is in a group without weight decay in the mmengine
    pretraining (the config's custom_keys), in the plain-PyTorch DINO optimizer and in the
    layer-decay constructor of the dense fine-tunes, as Swin V2 keeps its logit scale; the
    qkv weights beside it are decayed."""
    from torch import nn

    from rats_mm.dense.optim import LayerDecayOptimWrapperConstructor
    from rats_mm.pretrain.dino import StudentOptimWrapperConstructor
    from rats_mm.ssl.distill import build_optimizer
    args = train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'demo', 'dino_rats_cosine_synthetic.py')])
    cfg = settle_run_config(args)
    model = MODELS.build(cfg.model)
    scales = [p for n, p in model.student.named_parameters() if n.endswith('logit_scale')]
    qkv = model.student['backbone'].blocks[0].attn.qkv.weight
    assert len(scales) == 4

    def decay_of(groups):
        decay = {id(p): g['weight_decay'] for g in groups for p in g['params']}
        return [decay[id(p)] for p in scales], decay[id(qkv)]
    wrapper_cfg = cfg.optim_wrapper.copy()
    wrapper_cfg.pop('constructor')
    paramwise = wrapper_cfg.pop('paramwise_cfg')
    mm_groups = StudentOptimWrapperConstructor(wrapper_cfg, paramwise)(model).optimizer
    plain_groups = build_optimizer(model.student, lr=1e-3, weight_decay=0.04, fused=False)
    dense = nn.Module()
    dense.backbone = nn.Module()
    dense.backbone.vit = model.student['backbone']
    layer_decay = LayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(num_layers=4, layer_decay_rate=0.9))(dense).optimizer
    for optimizer in (mm_groups, plain_groups, layer_decay):
        scale_decay, qkv_decay = decay_of(optimizer.param_groups)
        assert scale_decay == [0.0] * 4 and qkv_decay > 0


def test_the_pretraining_config_spells_out_the_no_decay_names():
    """configs/_base_/dino_runtime.py cannot import ``NO_DECAY_NAMES``: its custom_keys list
    the same names, each without weight decay, and no other config lists its own."""
    import glob

    from mmengine.config import Config

    from rats_mm.ssl.distill import NO_DECAY_NAMES
    runtime = os.path.join(ROOT, 'configs', '_base_', 'dino_runtime.py')
    keys = Config.fromfile(runtime).optim_wrapper.paramwise_cfg.custom_keys
    assert sorted(keys) == sorted(NO_DECAY_NAMES)
    assert all(value == dict(decay_mult=0.0) for value in keys.values())
    others = [path for path in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'),
                                         recursive=True)
              if path != runtime and 'custom_keys' in open(path).read()]
    assert others == []


def test_the_read_out_config_feeds_every_register_to_the_heads_and_the_monitor():
    """configs/demo/dino_rats_cosine_registers_synthetic.py: cosine logits, the DINO heads
    read the N x D registers and the teacher's model(x), which the k-NN monitor reads, is the
    same read-out."""
    import torch
    args = train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'demo', 'dino_rats_cosine_registers_synthetic.py')])
    model = MODELS.build(settle_run_config(args).model)
    backbone = model.teacher['backbone']
    width = backbone.num_registers * backbone.embed_dim
    assert (backbone.logits, model.embedding) == ('cosine', 'registers')
    assert model.student['head'].mlp[0].in_features == width
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x, mode='tensor')
        registers = backbone.forward_tokens(x)['x_norm_regtokens']
    torch.testing.assert_close(out, registers.flatten(1))


def test_the_patch_mean_config_feeds_the_normed_patch_mean_to_the_heads_and_the_monitor():
    """configs/demo/dino_rats_cosine_avg_synthetic.py: cosine logits, the DINO heads read the
    mean of the normed patch tokens (D wide) and model(x), which the k-NN monitor reads, is
    that mean."""
    import torch
    args = train_parser('pretrain').parse_args(
        [os.path.join(ROOT, 'configs', 'demo', 'dino_rats_cosine_avg_synthetic.py')])
    model = MODELS.build(settle_run_config(args).model)
    backbone = model.teacher['backbone']
    assert (backbone.logits, model.embedding) == ('cosine', 'avg')
    assert model.student['head'].mlp[0].in_features == backbone.embed_dim
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x, mode='tensor')
        patches = backbone.forward_tokens(x)['x_norm_patchtokens']
    torch.testing.assert_close(out, patches.mean(1))
