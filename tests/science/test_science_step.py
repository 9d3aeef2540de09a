"""The pure-PyTorch DINO step of the emergence run: it learns, keeps the teacher in eval,
clips per parameter and never reads a value back from the device."""
import pytest
import torch

from rats_mm.models import RatsViT
from rats_mm.models.embedding import embed
from rats_mm.science.train import BatchSampler
from rats_mm.ssl.distill import DINODistillation, StepSettings, build_optimizer, train_step


def _model():
    torch.manual_seed(0)
    backbone = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                       num_registers=4, drop_path_rate=0.1)
    return DINODistillation(backbone, head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16))


def _views(batch=4):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(2)] + [
        torch.randn(batch, 3, 16, 16, generator=g) for _ in range(2)]


def test_teacher_stays_in_eval_and_moves_by_ema():
    model = _model().train()
    assert model.student.training and not model.teacher.training
    opt = build_optimizer(model.student, 1e-3, 0.04)
    before = [p.clone() for p in model.teacher.parameters()]
    train_step(model, opt, _views(), StepSettings(lr=1e-3, weight_decay=0.04, momentum=0.9,
                                                  teacher_temp=0.04))
    for t_old, t_new, s in zip(before, model.teacher.parameters(), model.student.parameters()):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * s.detach())


def test_optimizer_groups_split_decay_like_dino():
    model = _model()
    opt = build_optimizer(model.student, 1e-3, 0.04, fused=False)
    decay, no_decay = opt.param_groups
    names = {id(p): n for n, p in model.student.named_parameters()}
    assert all(p.ndim >= 2 for p in decay['params'])
    no_decay_names = {names[id(p)] for p in no_decay['params']}
    assert 'backbone.registers' in no_decay_names and 'backbone.pos_embed' in no_decay_names
    assert all(n.endswith(('bias', 'weight', 'registers', 'pos_embed')) for n in no_decay_names)
    assert decay['weight_decay'] == 0.04 and no_decay['weight_decay'] == 0.0


def test_train_step_reads_nothing_back(monkeypatch):
    """No .item(), .tolist() or truth value of a tensor inside the step: on a GPU each would
    make the host wait for the device."""
    model = _model().train()
    opt = build_optimizer(model.student, 1e-3, 0.04, fused=True)
    settings = StepSettings(lr=1e-3, weight_decay=0.04, momentum=0.99, teacher_temp=0.04,
                            clip_grad=3.0, freeze_last_layer=True)

    def forbidden(*args, **kwargs):
        raise AssertionError('host sync inside the step')
    for name in ('item', 'tolist', '__bool__', '__float__', '__int__'):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    outputs = [train_step(model, opt, _views(), settings) for _ in range(2)]
    monkeypatch.undo()
    assert all(torch.isfinite(loss) and grad > 0 for loss, grad in outputs)


def test_a_few_steps_lower_the_loss_on_fixed_views():
    model = _model().train()
    opt = build_optimizer(model.student, 3e-3, 0.0, fused=False)
    views = _views(8)
    settings = StepSettings(lr=3e-3, weight_decay=0.0, momentum=0.9, teacher_temp=0.04)
    losses = [float(train_step(model, opt, views, settings)[0]) for _ in range(15)]
    assert losses[-1] < losses[0] - 0.05


def test_grad_norm_is_the_norm_before_clipping():
    model = _model().train()
    opt = build_optimizer(model.student, 0.0, 0.0, fused=False)
    settings = StepSettings(lr=0.0, weight_decay=0.0, momentum=1.0, teacher_temp=0.04,
                            clip_grad=None)
    torch.manual_seed(5)  # the same drop-path draws in both steps
    _, unclipped = train_step(model, opt, _views(), settings)
    grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    expected = torch.cat([g.flatten() for g in grads]).norm()
    torch.testing.assert_close(unclipped, expected)
    clipped = StepSettings(lr=0.0, weight_decay=0.0, momentum=1.0, teacher_temp=0.04,
                           clip_grad=1e-3)
    model.criterion.center.zero_()  # lr 0 and momentum 1 kept the weights; reset the centre
    torch.manual_seed(5)
    _, before = train_step(model, opt, _views(), clipped)
    torch.testing.assert_close(before, expected)  # same batch, same weights: same gradient
    norms = [p.grad.norm() for p in model.student.parameters() if p.grad is not None]
    assert max(norms) <= 1e-3 * (1 + 1e-4)


def test_frozen_last_layer_is_not_updated():
    model = _model().train()
    opt = build_optimizer(model.student, 1e-2, 0.0, fused=False)
    last = [p.clone() for p in model.student['head'].last_layer.parameters()]
    train_step(model, opt, _views(), StepSettings(lr=1e-2, weight_decay=0.0, momentum=0.9,
                                                  teacher_temp=0.04, freeze_last_layer=True))
    for old, new in zip(last, model.student['head'].last_layer.parameters()):
        assert torch.equal(old, new)


def test_batch_sampler_covers_an_epoch_without_replacement():
    sampler = BatchSampler(12, 4, torch.Generator().manual_seed(0), 'cpu')
    epoch = torch.cat([sampler.next() for _ in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))
    assert not torch.equal(epoch, torch.cat([sampler.next() for _ in range(3)]))
    with pytest.raises(ValueError, match='batch_size=13 exceeds the 12'):
        BatchSampler(12, 13, torch.Generator(), 'cpu')


def _swap_first_two_registers(model):
    with torch.no_grad():
        regs = model.student['backbone'].registers
        regs[:, [0, 1]] = regs[:, [1, 0]]


@pytest.mark.parametrize('embedding,symmetric', [('pooled', True), ('registers', False)])
def test_register_embedding_breaks_the_symmetry_of_a_head(embedding, symmetric):
    """Pooled, the head sees the mean of the registers: swapping two registers of one head
    changes nothing the loss sees. Concatenated, it does."""
    torch.manual_seed(0)
    backbone = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                       num_registers=4)
    model = DINODistillation(backbone, head=dict(out_dim=64, hidden_dim=32,
                                                 bottleneck_dim=16), embedding=embedding).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = model._embed(model.student, [x])
        _swap_first_two_registers(model)
        after = model._embed(model.student, [x])
    assert model.student['head'].mlp[0].in_features == 32 * (4 if embedding == 'registers'
                                                              else 1)
    assert torch.allclose(before, after, atol=1e-5) == symmetric


def test_register_embedding_needs_registers():
    vit = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                  num_registers=0, attn_mode='full', class_token=True)
    with pytest.raises(ValueError, match="global_pool='registers' reads the registers: the "
                                         'model has num_registers=0'):
        DINODistillation(vit, embedding='registers')
    with pytest.raises(ValueError, match="global_pool='heads' reads the registers"):
        DINODistillation(vit, embedding='heads')
    with pytest.raises(ValueError, match="embedding='cls' is not one of"):
        DINODistillation(vit, embedding='cls')


def test_patch_mean_embedding_refuses_a_pooled_token_norm():
    """timm's rule puts the final norm on the pooled token for global_pool='avg': the head
    would read un-normed tokens that model(x) never returns."""
    kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                  num_registers=4)
    with pytest.raises(ValueError, match="embedding='avg' reads every normed token; the model "
                                         'norms only its pooled token'):
        DINODistillation(RatsViT(**kwargs, global_pool='avg'), embedding='avg')
    model = DINODistillation(RatsViT(**kwargs, global_pool='avg', fc_norm=False),
                             head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16),
                             embedding='avg')
    backbone, x = model.student['backbone'].eval(), torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(embed(backbone, x, 'avg'), backbone(x))


@pytest.mark.parametrize('embedding', ['registers', 'registers_avg'])
def test_register_embeddings_of_a_vit_with_registers_skip_its_cls(embedding):
    """A ViT with [CLS] and registers reads the registers side by side (and the patch mean)
    like RATS does: the [CLS] is not among them."""
    vit = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                  num_registers=4, attn_mode='full', class_token=True).eval()
    model = DINODistillation(vit, head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16),
                             embedding=embedding).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = vit.forward_features(x)                       # (B, 1 + 4 + 16, D)
        got = embed(vit, x, embedding)
    want = tokens[:, 1:5].flatten(1)                           # (B, 4 * D), no [CLS]
    if embedding == 'registers_avg':
        want = torch.cat([want, tokens[:, 5:].mean(1)], 1)
    torch.testing.assert_close(got, want)
    assert model.student['head'].mlp[0].in_features == want.shape[1]


def test_collapse_is_named_and_logged_on_two_points_in_a_row():
    from rats_mm.science.train import _Trainer
    logged = []
    trainer = _Trainer('m', None, None, None, None, None, 'cpu', None, None, logged.append)
    for step, (ent, batch) in enumerate([(0.95, 0.99), (0.5, 0.7), (0.97, 0.99), (0.99, 1.0)]):
        point = {'step': step, 'teacher_entropy_ratio': ent,
                 'teacher_batch_entropy_ratio': batch}
        trainer._check_collapse(point)
        trainer.history.append(point)
    assert [p['collapse'] for p in trainer.history] == ['uniform', None, 'uniform', 'uniform']
    assert len(logged) == 1 and 'collapsed (uniform) at step 3' in logged[0]


def test_compiled_backbones_equal_eager_at_both_crop_sizes():
    """--compile compiles the student and teacher backbones in place, one graph per crop
    size (dynamic shapes hit a PyTorch assertion in the position-embedding resampling's
    backward): outputs and gradients equal the eager model's, parameter names unchanged."""
    from dataclasses import replace

    from rats_mm.science import Recipe
    from rats_mm.science.train import _build
    kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                  num_registers=4)
    recipe = replace(Recipe(), compile=True, head=dict(out_dim=16, hidden_dim=16,
                                                       bottleneck_dim=8))
    dino, _, _ = _build(kwargs, recipe, torch.device('cpu'), seed=0)
    for branch in (dino.student, dino.teacher):  # compiled, not left eager
        assert 'forward_blocks' in vars(branch['backbone'])
    eager = RatsViT(**kwargs)
    eager.load_state_dict(dino.student['backbone'].state_dict())
    assert set(dino.student['backbone'].state_dict()) == set(eager.state_dict())
    for size in (32, 16):
        x = torch.randn(2, 3, size, size)
        out, ref = dino.student['backbone'](x), eager(x)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
        out.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(dino.student['backbone'].registers.grad,
                                   eager.registers.grad, atol=1e-4, rtol=1e-4)
        dino.student.zero_grad()
        eager.zero_grad()
