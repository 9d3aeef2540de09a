import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from rats_mm.pretrain.dino import DINOPretrainer
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


@pytest.mark.parametrize('embedding', ['pooled', 'registers'])
def test_both_drivers_give_the_same_loss_for_the_same_weights(embedding):
    """The mmengine model and the plain-PyTorch ``DINODistillation`` have the same keys and,
    with the same weights, the same loss on the same views, with either head input (every
    register: a head of width N * D) and number of global views."""
    from rats_mm.models import RatsViT
    from rats_mm.ssl.distill import DINODistillation
    head = dict(out_dim=64, hidden_dim=32, bottleneck_dim=16)
    for num_global in (2, 3):
        model = tiny_model(embedding=embedding, num_global=num_global)
        model.init_weights()
        plain = DINODistillation(RatsViT(**BACKBONE), head=head, embedding=embedding,
                                 num_global=num_global)
        plain.load_state_dict(model.state_dict())
        width = 32 * (4 if embedding == 'registers' else 1)
        assert model.student['head'].mlp[0].in_features == width
        views = batch()['inputs']  # with num_global=3 the teacher also sees a 16 px view
        model.teacher_temp = 0.04
        got = model(views, mode='loss')['loss']
        want = plain(views, teacher_temp=0.04)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    compiled = tiny_model(embedding=embedding, compile_backbone=True)
    for branch in (compiled.student, compiled.teacher):  # what both head inputs go through
        assert 'forward_blocks' in vars(branch['backbone'])


def test_both_drivers_give_the_same_teacher_after_one_step():
    """One model, two drivers: from the same weights and views, one step of the mmengine
    driver (``train_step`` through DINO's optim wrapper, per-parameter clipping) and one of
    the plain-PyTorch driver (``rats_mm.ssl.distill.train_step``) with the same lr, weight
    decay, clipping, temperature and momentum leave the same student, teacher and centre."""
    from rats_mm.models import RatsViT
    from rats_mm.pretrain.dino import DINOOptimWrapper
    from rats_mm.ssl.distill import (DINODistillation, StepSettings, build_optimizer,
                                     train_step)
    assert issubclass(DINOPretrainer, DINODistillation)
    model = tiny_model()
    model.init_weights()
    plain = DINODistillation(RatsViT(**BACKBONE),
                             head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16))
    plain.load_state_dict(model.state_dict())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    settings = StepSettings(lr=1e-2, weight_decay=0.04, momentum=0.9, teacher_temp=0.05,
                            clip_grad=3.0)
    model.teacher_momentum, model.teacher_temp = settings.momentum, settings.teacher_temp
    wrapper = DINOOptimWrapper(
        optimizer=build_optimizer(model.student, settings.lr, settings.weight_decay,
                                  fused=False),
        clip_grad=dict(type='per_parameter', max_norm=settings.clip_grad))
    data = batch()
    model.train().train_step(data, wrapper)
    train_step(plain.train(), build_optimizer(plain.student, settings.lr,
                                              settings.weight_decay, fused=False),
               data['inputs'], settings)
    got, want = model.state_dict(), plain.state_dict()
    assert sorted(got) == sorted(want)
    key = 'teacher.backbone.blocks.0.attn.qkv.weight'
    assert not torch.equal(got[key], before[key[len('teacher.'):]])  # the step moved it
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)


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

    from rats_mm.pretrain.hooks import DINOScheduleHook
    model = tiny_model()
    hook = DINOScheduleHook(momentum=(0.996, 1.0), teacher_temp=(0.04, 0.07),
                            teacher_temp_warmup_iters=10)
    runner = SimpleNamespace(model=model, iter=5, max_iters=100)
    hook.before_train_iter(runner, 0)
    assert model.current_iter == 5
    assert model.teacher_momentum == pytest.approx(cosine_schedule(5, 100, 0.996, 1.0))
    # DINO's schedule: np.linspace(0.04, 0.07, 10)[5] (one step late would be [4])
    assert model.teacher_temp == pytest.approx(0.04 + 5 * (0.07 - 0.04) / 9, abs=1e-12)
    runner.iter = 9                           # the ramp's last step reaches the end value
    hook.before_train_iter(runner, 0)
    assert model.teacher_temp == pytest.approx(0.07, abs=1e-12)
    runner.iter = 50
    hook.before_train_iter(runner, 0)
    assert model.teacher_temp == pytest.approx(0.07)


def test_teacher_never_runs_drop_path_from_the_imagenet_config():
    """Built from the ImageNet recipe (small backbone, drop_path_rate=0.5) and put in train
    mode, two teacher forwards agree; the student's differ (stochastic depth)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS

    import rats_mm.pretrain  # noqa: F401  (registers DINOPretrainer)
    cfg = Config.fromfile('configs/dino_rats_vits16_in1k.py')
    cfg.model.backbone.update(img_size=32, embed_dim=32, depth=2, num_heads=2,
                              num_registers=4, drop_path_rate=0.5)
    cfg.model.head.update(out_dim=64, hidden_dim=32, bottleneck_dim=16)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    assert model.student.training and not model.teacher.training
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    t1, t2 = model.teacher['backbone'](x), model.teacher['backbone'](x)
    assert torch.equal(t1, t2)
    s1, s2 = model.student['backbone'](x), model.student['backbone'](x)
    assert not torch.allclose(s1, s2)


def test_train_step_logs_teacher_target_entropies():
    model = tiny_model()
    log = model.train_step(batch(), optim(model))
    for key in ('teacher_entropy', 'teacher_batch_entropy', 'teacher_entropy_ratio',
                'teacher_batch_entropy_ratio'):
        assert key in log
    assert 0 < log['teacher_entropy_ratio'] <= 1 + 1e-6
    assert log['teacher_entropy'] == pytest.approx(log['teacher_entropy_ratio'] * math.log(64))


def test_per_parameter_optim_wrapper_clips_each_parameter():
    from rats_mm.pretrain.dino import DINOOptimWrapper
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(2))
    wrapper = DINOOptimWrapper(torch.optim.SGD([a, b], lr=1.0),
                               clip_grad=dict(type='per_parameter', max_norm=1.0))
    (a * torch.tensor([30.0, 40.0])).sum().add((b * torch.tensor([0.3, 0.4])).sum()).backward()
    wrapper.step()
    assert torch.allclose(a.detach(), torch.tensor([-0.6, -0.8]), atol=1e-5)
    assert torch.allclose(b.detach(), torch.tensor([-0.3, -0.4]), atol=1e-6)
    with pytest.raises(ValueError, match='max_norm only'):
        DINOOptimWrapper(torch.optim.SGD([a], lr=1.0),
                         clip_grad=dict(type='per_parameter', max_norm=1.0, norm_type=1))


def test_register_attention_monitor_logs_the_teachers_last_block(tmp_path):
    import json
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from rats_mm.analysis import register_attention_profile
    from rats_mm.pretrain.hooks import RegisterAttentionMonitorHook
    model = tiny_model()
    with torch.no_grad():  # a student unlike the teacher: the figures must be the teacher's
        model.student['backbone'].blocks[0].attn.qkv.weight.mul_(5)
    lines = []
    logger = SimpleNamespace(info=lines.append)
    hub = MessageHub.get_instance('register_attention_test')
    runner = SimpleNamespace(model=model, iter=0, rank=0, work_dir=str(tmp_path),
                             logger=logger, message_hub=hub)
    hook = RegisterAttentionMonitorHook(interval=2, num_images=2)
    hook.before_train(runner)
    first, second = batch(), batch()
    for i, data in enumerate((first, second)):
        runner.iter = i
        hook.before_train_iter(runner, i, data_batch=data)
        if i == 0:  # the init is measured before the first step, on its first views
            with torch.no_grad():
                model.teacher['backbone'].blocks[0].attn.qkv.weight.mul_(2)  # "a step"
        hook.after_train_iter(runner, i, data_batch=data)
    # measured at iteration 0 (the init) and 2, on the first batch's first two global crops,
    # on the teacher
    record = json.loads((tmp_path / 'register_attention.json').read_text())
    assert [r['iter'] for r in record] == [0, 2]
    want = register_attention_profile(model.teacher['backbone'], [first['inputs'][0][:2]])
    assert len(record[1]['blocks']) == len(want)
    for got_block, want_block in zip(record[1]['blocks'], want):
        assert got_block == pytest.approx(want_block)
    assert record[0]['blocks'] != record[1]['blocks']  # the init, before the "step"
    got = hub.get_scalar('train/register_compress_entropy').current()
    assert got == pytest.approx(want[-1]['compress_entropy'])
    assert any('register attention at iter 0' in line for line in lines)
    assert any('register attention at iter 2' in line for line in lines)
    hook.after_train(runner)                   # runner.iter 1 != 2: measured again
    assert len(json.loads((tmp_path / 'register_attention.json').read_text())) == 3
    # a backbone without register attention is skipped, and says so
    vit = DINOPretrainer(dict(BACKBONE, num_registers=0, class_token=True, attn_mode='full'),
                         head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16))
    skipped = RegisterAttentionMonitorHook(interval=1)
    skipped.before_train(SimpleNamespace(model=vit, logger=logger))
    skipped.before_train_iter(runner, 0, data_batch=first)
    skipped.after_train_iter(runner, 0, data_batch=first)
    assert skipped.images is None and 'skipped' in lines[-1]


def test_step_queues_the_backward_before_reading_anything_back(monkeypatch):
    """The finiteness of the loss is read after backward and step are queued (reading it
    before made the host wait for the forward before it could launch the backward)."""
    model = tiny_model()
    wrapper = optim(model)
    events = []
    real_bool, real_backward = torch.Tensor.__bool__, wrapper.backward

    def recording_bool(self):
        events.append('read')
        return real_bool(self)

    def recording_backward(loss, **kwargs):
        events.append('backward')
        return real_backward(loss, **kwargs)
    monkeypatch.setattr(torch.Tensor, '__bool__', recording_bool)
    monkeypatch.setattr(wrapper, 'backward', recording_backward)
    model.train_step(batch(), wrapper)
    monkeypatch.undo()
    assert 'backward' in events and 'read' in events
    assert events.index('backward') < events.index('read')


def test_teacher_diagnostics_only_every_stats_interval():
    model = tiny_model(stats_interval=3)
    wrapper = optim(model)
    logged = []
    for it in range(6):
        model.current_iter = it
        logged.append('teacher_entropy_ratio' in model.train_step(batch(), wrapper))
    assert logged == [False, False, True, False, False, True]


def test_ddp_does_not_broadcast_the_centre_every_step():
    from mmengine.config import Config
    cfg = Config.fromfile('configs/dino_rats_vits16_in1k.py')
    assert cfg.model_wrapper_cfg.broadcast_buffers is False


def test_bf16_autocast_steps_agree_with_float32():
    """Three DINO steps under CPU bf16 autocast stay finite, and at each the bf16 loss is
    within 1 % of the float32 loss of the same weights on the same batch (the head's last
    layer, loss, centre and teacher softmax run in float32; bf16 keeps 8 bits of
    mantissa)."""
    import copy
    torch.manual_seed(1)
    model = tiny_model()
    wrapper = optim(model)
    for _ in range(3):
        data = batch()
        reference = copy.deepcopy(model)  # same weights and centre, float32
        with torch.no_grad():
            fp32 = float(reference(data['inputs'], mode='loss')['loss'])
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = float(model.train_step(data, wrapper)['loss'])
        assert bf16 != fp32  # autocast did run in bf16
        assert abs(bf16 - fp32) < 0.01 * fp32
    assert torch.isfinite(model.criterion.center).all()
    assert all(torch.isfinite(p).all() for p in model.student.parameters())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model.student['head'](torch.randn(2, 32))
    assert logits.dtype == torch.float32  # the prototypes in float32 under autocast too


def test_compiled_backbones_equal_eager_without_graph_breaks():
    """``compile_backbone=True`` compiles both backbones in place (same checkpoint keys); the
    DINO forward gives the eager loss, and the backbone has no graph break at either crop
    size."""
    import torch._dynamo as dynamo
    eager = tiny_model()
    compiled = tiny_model(compile_backbone=True)
    for branch in (compiled.student, compiled.teacher):  # compile_static ran
        assert 'forward_blocks' in vars(branch['backbone'])
    assert 'forward_blocks' not in vars(eager.student['backbone'])
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    compiled.load_state_dict(eager.state_dict())
    eager.train()
    compiled.train()
    data = batch()
    want = eager(data['inputs'], mode='loss')['loss']
    got = compiled(data['inputs'], mode='loss')['loss']  # global and local crops: two sizes
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    got.backward()  # dynamic shapes failed here, in the bicubic resampling's backward
    want.backward()
    grad = compiled.student['backbone'].pos_embed.grad
    torch.testing.assert_close(grad, eager.student['backbone'].pos_embed.grad, atol=1e-5,
                               rtol=1e-4)
    backbone = eager.student['backbone']
    for size in (32, 16):
        explanation = dynamo.explain(backbone.forward_blocks)(torch.randn(2, 3, size, size))
        assert explanation.graph_break_count == 0, explanation.break_reasons


def test_collapse_diagnostics_hook_measures_the_init_and_the_run(tmp_path):
    """The diagnostics hook measures the teacher before the first step and at its interval
    (the update ratios only once AdamW has stepped), and the model logs the gradient norm of
    every parameter group at its stats interval."""
    import json
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from rats_mm.pretrain.diagnostics import CollapseDiagnosticsHook
    from rats_mm.ssl.diagnostics import embedding_cosine
    model = tiny_model(stats_interval=2)
    model.init_weights()
    wrapper = optim(model)
    lines = []
    runner = SimpleNamespace(model=model, iter=0, rank=0, work_dir=str(tmp_path),
                             logger=SimpleNamespace(info=lines.append), optim_wrapper=wrapper,
                             message_hub=MessageHub.get_instance('diagnostics_test'))
    hook = CollapseDiagnosticsHook(interval=2, num_images=3)
    logs = []
    first = batch()
    for i in range(2):
        runner.iter = i
        model.current_iter = i
        hook.before_train_iter(runner, i, data_batch=first)
        logs.append(model.train_step(first, wrapper))
        hook.after_train_iter(runner, i, data_batch=first)
    record = json.loads((tmp_path / 'diagnostics.json').read_text())
    assert [r['iter'] for r in record] == [0, 2]
    assert record[0]['update_ratio_by_group'] == {}
    assert set(record[1]['update_ratio_by_group']) >= {'qkv', 'mlp', 'head'}
    with torch.no_grad():
        want = embedding_cosine(model.teacher['backbone'](first['inputs'][0][:3]))
    assert record[1]['embedding_cosine'] == pytest.approx(want, abs=1e-6)
    assert len(record[1]['register_stream_norm']) == 1  # one block
    assert 'grad_norm_qkv' not in logs[0] and logs[1]['grad_norm_qkv'] > 0
    assert any('collapse diagnostics at iter 0' in line for line in lines)
