import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from rats_mm.engine.dino import DINOPretrainer
from rats_mm.ssl import cosine_schedule

BACKBONE = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_registers=4)


def tiny_model(**kwargs):
    torch.manual_seed(0)
    return DINOPretrainer(BACKBONE, head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16),
                          data_preprocessor=dict(type='BaseDataPreprocessor'), **kwargs)


def batch():
    crops = [torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32),
             torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16)]
    return {'inputs': crops, 'data_samples': {'labels': torch.zeros(3), 'skipped': 2}}


def optim(model):
    params = [p for p in model.student.parameters() if p.requires_grad]
    return OptimWrapper(torch.optim.AdamW(params, lr=1e-2))


def test_train_step_updates_student_then_teacher_by_ema():
    model = tiny_model(freeze_last_layer_iters=1)
    model.init_weights()
    model.teacher_momentum = 0.9
    s_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    t_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    log = model.train_step(batch(), optim(model))
    assert math.isfinite(log['loss'].item()) and log['skipped_images'] == 2
    s_after, t_after = model.student.state_dict(), model.teacher.state_dict()
    key = 'backbone.blocks.0.attn.qkv.weight'
    assert not torch.equal(s_after[key], s_before[key])
    want = 0.9 * t_before[key] + 0.1 * s_after[key]
    assert torch.allclose(t_after[key], want, atol=1e-6)
    # the last layer is frozen during the first iteration
    last = 'head.last_layer.parametrizations.weight.original1'
    assert torch.equal(s_after[last], s_before[last])
    model.current_iter = 1
    model.train_step(batch(), optim(model))
    assert not torch.equal(model.student.state_dict()[last], s_before[last])
    assert model.skipped_images == 4


def test_center_is_a_saved_buffer_and_moves():
    model = tiny_model()
    model.train_step(batch(), optim(model))
    assert 'criterion.center' in model.state_dict()
    assert model.state_dict()['criterion.center'].abs().sum() > 0


def test_non_finite_loss_stops_with_iteration():
    model = tiny_model()
    model.current_iter = 41
    bad = batch()
    bad['inputs'][0][0, 0, 0, 0] = float('nan')
    with pytest.raises(FloatingPointError, match='iteration 42'):
        model.train_step(bad, optim(model))


def test_tensor_mode_gives_teacher_embeddings():
    model = tiny_model()
    model.teacher['backbone'].registers.data += 1.0  # teacher differs from student
    x = torch.randn(2, 3, 32, 32)
    out = model(x, mode='tensor')
    assert out.shape == (2, 32)
    assert torch.equal(out, model.teacher['backbone'](x))
    assert not torch.allclose(out, model.student['backbone'](x))


def test_schedule_hook_values():
    from types import SimpleNamespace

    from rats_mm.engine.hooks import DINOScheduleHook
    model = tiny_model()
    hook = DINOScheduleHook(momentum=(0.996, 1.0), teacher_temp=(0.04, 0.07),
                            teacher_temp_warmup_iters=10)
    runner = SimpleNamespace(model=model, iter=5, max_iters=100)
    hook.before_train_iter(runner, 0)
    assert model.current_iter == 5
    assert model.teacher_momentum == pytest.approx(cosine_schedule(5, 100, 0.996, 1.0))
    assert 0.04 < model.teacher_temp < 0.07
    runner.iter = 50
    hook.before_train_iter(runner, 0)
    assert model.teacher_temp == pytest.approx(0.07)
