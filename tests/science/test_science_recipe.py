"""The emergence run's recipe: configs read without mmengine, FLOPs against torch's own
counter, step planning and schedules by value."""
import math
import time

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from rats_mm.models import RatsViT
from rats_mm.science import Recipe, backbone_config, plan_steps, step_settings
from rats_mm.science import train_flops_per_image
from rats_mm.science.recipe import RATS_CONFIG, VIT_CONFIG
from rats_mm.ssl.distill import DINODistillation
from rats_mm.ssl.schedules import cosine_schedule


def test_science_configs_are_the_models_the_analysis_tools_build():
    """The plain-Python read equals mmengine's (what part_eval.py uses), for both configs."""
    from rats_mm.runtime.backbones import backbone_kwargs
    from rats_mm.science.variants import RATS_VARIANT_OPTIONS
    variant_configs = {name: RATS_CONFIG.replace('rats_science', f'{name}_science')
                       for name in RATS_VARIANT_OPTIONS}
    for path in (VIT_CONFIG, *variant_configs.values()):
        assert backbone_config(path) == backbone_kwargs(path)
    rats, vit = backbone_config(RATS_CONFIG), backbone_config(VIT_CONFIG)
    # each variant's config is the RATS one with the variant's options (what the run trains)
    assert RATS_VARIANT_OPTIONS['rats_competition'] == {'compress': 'competition'}
    assert RATS_VARIANT_OPTIONS['rats_cosine'] == {'logits': 'cosine'}
    assert len(RATS_VARIANT_OPTIONS) == 4
    for name, path in variant_configs.items():
        assert backbone_config(path) == {**rats, **RATS_VARIANT_OPTIONS[name]}, name
    assert rats['attn_mode'] == 'rats' and rats['embed_dim'] >= 192
    assert vit['attn_mode'] == 'full' and vit['class_token'] and vit['num_registers'] == 0
    same = ('img_size', 'patch_size', 'embed_dim', 'depth', 'num_heads')
    assert {k: rats[k] for k in same} == {k: vit[k] for k in same}


def test_backbone_config_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        backbone_config(str(tmp_path / 'nope.py'))
    based = tmp_path / 'based.py'
    based.write_text("_base_ = ['x.py']\nmodel = dict(backbone=dict(embed_dim=8))\n")
    with pytest.raises(ValueError, match='based.py.*_base_'):
        backbone_config(str(based))
    wrong = tmp_path / 'wrong.py'
    wrong.write_text('model = dict(backbone=dict(embed_dims=8))\n')
    with pytest.raises(ValueError, match='wrong.py.*not RatsViT arguments'):
        backbone_config(str(wrong))


@pytest.mark.parametrize('attn_mode,embedding', [('rats', 'pooled'), ('full', 'pooled'),
                                                  ('rats', 'registers')])
def test_train_flops_match_torch_flop_counter(attn_mode, embedding):
    """One DINO step's counted FLOPs (student forward + backward on all views, teacher forward
    on the globals) agree with the analytic figure within 5 % (the counter skips the input
    gradient of the patch embedding, which nothing needs)."""
    kwargs = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2,
                  num_registers=4 if attn_mode == 'rats' else 0, attn_mode=attn_mode,
                  class_token=attn_mode == 'full')
    recipe = Recipe(global_crop_size=32, local_crop_size=16, local_crops_number=2,
                    head=dict(out_dim=128, hidden_dim=96, bottleneck_dim=32),
                    embedding=embedding)
    model = DINODistillation(RatsViT(**kwargs), head=recipe.head, embedding=embedding)
    batch = 3
    views = [torch.randn(batch, 3, 32, 32) for _ in range(2)]
    views += [torch.randn(batch, 3, 16, 16) for _ in range(2)]
    counter = FlopCounterMode(display=False)
    # the math backend decomposes attention into matmuls the counter sees (it has no formula
    # for the CPU flash kernel)
    with counter, sdpa_kernel(SDPBackend.MATH):
        model(views, 0.04).backward()
    expected = train_flops_per_image(kwargs, recipe) * batch
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.05)


def test_plan_steps_leaves_time_for_measurements():
    assert plan_steps(100.0, 0.5, 2.0, 10) == 160          # (100 - 20) / 0.5
    assert plan_steps(10.0, 1.0, 5.0, 3, min_steps=4) == 4   # never below the floor


def test_step_settings_follow_dino_schedules():
    recipe = Recipe(batch_size=512)
    total = 1000
    first, end_warmup, last = (step_settings(s, total, recipe) for s in (0, 99, total - 1))
    assert first['lr'] == 0.0 and end_warmup['lr'] == pytest.approx(recipe.lr)
    assert recipe.lr == pytest.approx(5e-4 * 2)
    assert last['lr'] == pytest.approx(cosine_schedule(total - 1, total, recipe.lr,
                                                       recipe.min_lr, 100))
    assert first['momentum'] == pytest.approx(0.996) and last['momentum'] > 0.99999
    assert first['weight_decay'] == pytest.approx(0.04)
    assert last['weight_decay'] == pytest.approx(0.4, 1e-4)
    frozen = [step_settings(s, total, recipe)['freeze_last_layer'] for s in range(20)]
    assert frozen == [True] * math.ceil(0.01 * total) + [False] * (20 - 10)


def test_timing_probe_leaves_the_model_as_it_found_it():
    """The step timing probe runs real steps, but afterwards student, teacher, the DINO
    centre, the gradients and the optimizer are as before it (its batches used to move the
    centre to most of their mean before step 0)."""
    from rats_mm.science.train import _probe
    torch.manual_seed(0)
    backbone = RatsViT(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2,
                       num_registers=2)
    dino = DINODistillation(backbone, head=dict(out_dim=32, hidden_dim=16, bottleneck_dim=8))
    optimizer = torch.optim.AdamW(dino.student.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in dino.state_dict().items()}

    def draw():
        return [torch.randn(4, 3, 16, 16) + 3.0, torch.randn(4, 3, 16, 16) + 3.0]
    assert _probe(dino, optimizer, draw, torch.device('cpu'), None) > 0
    after = dino.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert not dino.criterion.last_stats  # no targets of the probe left to report
    assert not optimizer.state
    assert all(p.grad is None for p in dino.student.parameters())


def test_timing_probe_is_not_moved_by_one_slow_step():
    """One stalled step (another process, a page fault) does not set the plan: the probe
    reports the median step, so a 2 s stall among its tiny steps stays out of the answer,
    where the mean of its 8 timed steps would be at least 0.25 s."""
    from rats_mm.science import train
    backbone = RatsViT(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2,
                       num_registers=2)
    dino = DINODistillation(backbone, head=dict(out_dim=32, hidden_dim=16, bottleneck_dim=8))
    optimizer = torch.optim.AdamW(dino.student.parameters(), lr=1e-3)
    calls = []

    def draw():
        calls.append(1)
        if len(calls) == train.PROBE_WARMUP + 2:  # a timed step
            time.sleep(2.0)
        return [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    seconds = train._probe(dino, optimizer, draw, torch.device('cpu'), None)
    assert len(calls) == train.PROBE_WARMUP + train.PROBE_STEPS
    assert 0 < seconds < 2.0 / train.PROBE_STEPS


def _science_tool():
    import runpy
    return runpy.run_path('tools/science.py')


def test_testbed_preset_defaults_and_command_line_overrides():
    from rats_mm.science.variants import preset_settings
    tool = _science_tool()
    args = tool['parse_args'](['--preset', 'testbed', '--out', 'o', '--set', 'teacher_temp=0.02',
                               '--set', 'global_crops_scale=(0.5, 1.0)', '--base-lr', '1e-3',
                               '--backbone', 'init_values=1e-5'])
    assert (args.minutes, args.variants, args.max_steps) == (None, None, None)  # the run's
    minutes, variants, rats_config, vit_config, max_steps = preset_settings('testbed')
    assert (minutes, variants, max_steps) == (32.0, ['rats', 'vit'], 900)
    assert preset_settings('testbed', max_steps=20)[4] == 20
    assert preset_settings('testbed', variants=['vit', 'rats_cosine_registers'])[1] == [
        'rats_cosine_registers', 'vit']  # training order
    assert rats_config.endswith('configs/science/rats_demo_scale.py')
    assert vit_config.endswith('configs/science/vit_demo_scale.py')
    assert tool['overrides'](args) == {'teacher_temp': 0.02, 'global_crops_scale': (0.5, 1.0),
                                       'base_lr': 1e-3}
    assert args.backbone_set == {'init_values': 1e-5}
    assert preset_settings('gpu') == (7.0, ['rats', 'rats_competition', 'vit'], RATS_CONFIG,
                                      VIT_CONFIG, None)
    assert preset_settings('smoke')[0] == 0.5
    with pytest.raises(ValueError, match='choose from'):
        preset_settings('gpu', variants=['rats_bogus'])


def test_command_line_recipe_fields_are_checked(capsys):
    tool = _science_tool()
    with pytest.raises(SystemExit):
        tool['parse_args'](['--out', 'o', '--set', 'teacher_tmp=0.02'])
    assert "'teacher_tmp' is not a recipe field" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool['parse_args'](['--out', 'o', '--backbone', 'init_values'])
    assert "'init_values' is not NAME=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a call, not a literal: refused, not kept as a string
        tool['parse_args'](['--out', 'o', '--set', 'head=dict(out_dim=1024)'])
    assert "'dict(out_dim=1024)' is not a Python literal" in capsys.readouterr().err
    assert tool['assignments'](['centering=sinkhorn_knopp']) == {'centering': 'sinkhorn_knopp'}


def test_readout_variants_build_their_embedding_as_global_pool():
    from rats_mm.science.recipe import head_embedding
    from rats_mm.science.variants import READOUT_VARIANTS, VARIANTS, variant_configs
    assert READOUT_VARIANTS['rats_cosine_registers'] == ('rats_cosine', 'registers')
    assert {'rats_heads', 'rats_registers_avg', 'rats_cosine_registers'} <= set(VARIANTS)
    configs, described = variant_configs(RATS_CONFIG, VIT_CONFIG, embedding='pooled')
    assert configs['rats_cosine_registers']['global_pool'] == 'registers'
    assert configs['rats_cosine_registers']['logits'] == 'cosine'
    assert configs['rats']['global_pool'] == 'token' and 'global_pool' not in configs['vit']
    assert "global_pool='heads'" in described['rats_heads']
    rats = RatsViT(**configs['rats_cosine_registers'])
    assert head_embedding(rats) == 'registers'
    assert rats(torch.zeros(1, 3, 64, 64)).shape == (1, rats.num_registers * rats.embed_dim)
    # the patch mean of every normed token, not timm's norm of the pooled token
    patches = RatsViT(**configs['rats_cosine_avg']).eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(patches(x), patches.forward_features(x)[:, 24:].mean(1))
    assert head_embedding(patches) == 'avg'
    # --embedding reaches the variants without their own read-out, never the ViT
    configs, _ = variant_configs(RATS_CONFIG, VIT_CONFIG, embedding='heads')
    assert configs['rats']['global_pool'] == 'heads'
    assert configs['rats_registers']['global_pool'] == 'registers'
    assert head_embedding(RatsViT(**configs['vit'])) == 'pooled'


def test_rats_overrides_reach_the_rats_variants_only():
    from rats_mm.science.variants import variant_configs
    configs, _ = variant_configs(RATS_CONFIG, VIT_CONFIG, rats_overrides={'num_registers': 48})
    assert all(cfg['num_registers'] == 48 for name, cfg in configs.items() if name != 'vit')
    assert configs['vit']['num_registers'] == backbone_config(VIT_CONFIG)['num_registers']
    with pytest.raises(ValueError, match=r"RATS overrides \{'num_registers': 25\}: rats:"):
        variant_configs(RATS_CONFIG, VIT_CONFIG, rats_overrides={'num_registers': 25})


def test_backbone_overrides_reach_every_variant_and_are_checked():
    from rats_mm.science.variants import variant_configs
    configs, _ = variant_configs(RATS_CONFIG, VIT_CONFIG, {'init_values': 0.1})
    assert all(cfg['init_values'] == 0.1 for cfg in configs.values())
    assert configs['rats_cosine']['logits'] == 'cosine'
    with pytest.raises(ValueError, match=r"backbone overrides \{'init_valu': 0.1\}: rats:"):
        variant_configs(RATS_CONFIG, VIT_CONFIG, {'init_valu': 0.1})


def test_testbed_recipe_is_the_gpu_recipe_where_two_cores_allow():
    from rats_mm.science.run import testbed_recipe
    gpu, testbed = Recipe(), testbed_recipe()
    # the GPU's 2e-3 is the testbed's per 256 images: 1e-3 at its batch of 128
    assert testbed.batch_size == 128 and testbed.lr == pytest.approx(gpu.lr / 2)
    assert testbed.momentum == (0.98, 0.995)  # the teacher that let the ViT learn here
    changed = {k for k, v in testbed.to_dict().items() if v != gpu.to_dict()[k]}
    assert changed == {'batch_size', 'base_lr', 'local_crops_number', 'train_images',
                       'momentum', 'head', 'num_measurements', 'eval_max_images'}
