"""One training step of the shipped DINO model (``rats_mm.ssl.distill.DINODistillation`` and
``train_step``) around a tiny RatsViT, on multi-crop views of images: the loss it reports, the
clipped gradients and AdamW update of the student, the teacher EMA with the scheduled
momentum, the centre, the frozen last layer and the weight-decay groups, each checked against
a computation written out here."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from rats_mm.models import RatsViT
from rats_mm.ssl import MultiCropAugmentation, collate_multicrop, cosine_schedule
from rats_mm.ssl.distill import DINODistillation, StepSettings, build_optimizer, train_step

K = 64                      # prototypes
LR, WD = 1e-2, 0.1          # this step's scheduled learning rate and weight decay
TEACHER_TEMP, STUDENT_TEMP, CENTER_MOMENTUM = 0.05, 0.1, 0.9  # DINOLoss defaults for the last 2
CLIP = 3.0
LAST_LAYER = 'head.last_layer.parametrizations.weight.original1'  # prototype directions
LAST_LAYER_G = 'head.last_layer.parametrizations.weight.original0'  # their magnitude, frozen


def tiny_model():
    torch.manual_seed(0)
    backbone = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                       num_registers=4)
    return DINODistillation(backbone, head=dict(out_dim=K, hidden_dim=32,
                                                bottleneck_dim=16)).train()


@pytest.fixture(scope='module')
def views():
    """2 global (32 px) and 2 local (16 px) crops of 3 images, crop-major."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
              for _ in range(3)]
    aug = MultiCropAugmentation(local_crops_number=2, global_crop_size=32, local_crop_size=16)
    torch.manual_seed(0)
    crops = collate_multicrop([aug(im) for im in images])
    assert [tuple(c.shape) for c in crops] == [(3, 3, 32, 32)] * 2 + [(3, 3, 16, 16)] * 2
    return crops


def hand_loss(student, teacher, center, crops):
    """DINO's loss written out: every crop through the student on its own, the 2 global crops
    through the teacher; teacher targets softmax((t - c) / T_t), student log_softmax(s / T_s);
    cross-entropy of every (teacher crop i, student crop v != i) pair, batch mean, pair mean.
    Returns the loss and the teacher logits."""
    s = [F.log_softmax(student['head'](student['backbone'](c)) / STUDENT_TEMP, dim=-1)
         for c in crops]
    with torch.no_grad():
        t = [teacher['head'](teacher['backbone'](c)) for c in crops[:2]]
    q = [F.softmax((logits - center) / TEACHER_TEMP, dim=-1) for logits in t]
    terms = [-(q[i] * s[v]).sum(dim=-1).mean()
             for i in range(2) for v in range(len(crops)) if v != i]
    assert len(terms) == 2 * (len(crops) - 1)
    return sum(terms) / len(terms), torch.cat(t)


def clipped(grad):
    """DINO's per-parameter clipping: scale to norm <= CLIP (1e-6 guards a zero norm)."""
    return grad * min(1.0, CLIP / (grad.norm().item() + 1e-6))


def run_step(views, momentum, freeze_last_layer):
    """The model, a copy of it from before the step, the step's outputs and the optimiser."""
    model = tiny_model()
    before = copy.deepcopy(model)
    # an optimiser built with other values: the step must set this step's lr and decay
    opt = build_optimizer(model.student, lr=0.5, weight_decay=0.9, fused=False)
    settings = StepSettings(lr=LR, weight_decay=WD, momentum=momentum,
                            teacher_temp=TEACHER_TEMP, clip_grad=CLIP,
                            freeze_last_layer=freeze_last_layer)
    loss, grad_norm = train_step(model, opt, views, settings)
    return model, before, loss, grad_norm, opt


def test_the_momentum_schedule_value_used_below():
    # final + (base - final) * (1 + cos(pi * 50 / 100)) / 2 = 1 - 0.1 / 2
    assert cosine_schedule(50, 100, 0.9, 1.0) == pytest.approx(0.95, abs=1e-12)
    assert cosine_schedule(0, 100, 0.996, 1.0) == pytest.approx(0.996, abs=1e-12)


def test_one_step_matches_a_hand_computation(views):
    # a low momentum so that the teacher's move is far above float32 rounding
    momentum = cosine_schedule(50, 100, 0.9, 1.0)
    model, before, loss, grad_norm, opt = run_step(views, momentum, freeze_last_layer=True)
    ref = copy.deepcopy(before)
    expected_loss, teacher_logits = hand_loss(ref.student, ref.teacher,
                                              torch.zeros(1, K), views)
    expected_loss.backward()
    ref_grads = {n: p.grad for n, p in ref.student.named_parameters() if p.grad is not None}

    # the reported loss and the gradient norm before clipping
    torch.testing.assert_close(loss, expected_loss.detach())
    assert not loss.requires_grad
    expected_norm = torch.stack([g.norm() for g in ref_grads.values()]).norm()
    torch.testing.assert_close(grad_norm, expected_norm, rtol=1e-4, atol=1e-6)

    # the centre moved once towards the teacher's batch mean (it started at 0)
    torch.testing.assert_close(model.criterion.center,
                               (1 - CENTER_MOMENTUM) * teacher_logits.mean(0, keepdim=True))

    # the gradients left on the student: clipped per parameter, none on the frozen last layer
    params = dict(model.student.named_parameters())
    for name, p in params.items():
        if name in (LAST_LAYER, LAST_LAYER_G):
            assert p.grad is None, name
        else:
            torch.testing.assert_close(p.grad, clipped(ref_grads[name]), rtol=1e-3, atol=1e-6,
                                       msg=name)

    # AdamW's first step: p (1 - lr wd) - lr g / (|g| + eps), wd 0 in the no-decay group
    decay_of = {id(p): group['weight_decay'] for group in opt.param_groups
                for p in group['params']}
    assert [(g['lr'], g['weight_decay']) for g in opt.param_groups] == [(LR, WD), (LR, 0.0)]
    old = dict(before.student.named_parameters())
    for name, p in params.items():
        if p.grad is None:  # the frozen last layer (and its fixed magnitude) did not move
            assert torch.equal(p, old[name]), name
            continue
        g = p.grad
        want = old[name].detach() * (1 - LR * decay_of[id(p)]) - LR * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), want, msg=name)
        assert not torch.equal(p, old[name]), name

    # the teacher: m * teacher + (1 - m) * student, on every parameter; never a gradient
    old_teacher = dict(before.teacher.named_parameters())
    for name, t in model.teacher.named_parameters():
        assert not t.requires_grad and t.grad is None, name
        want = (momentum * old_teacher[name].double()
                + (1 - momentum) * params[name].detach().double())
        torch.testing.assert_close(t.double(), want, rtol=0, atol=1e-6, msg=name)
    # the teacher moved by (1 - m) of the student's move, not more nor less
    name = 'backbone.blocks.0.attn.qkv.weight'
    moved = model.teacher.get_parameter(name) - old_teacher[name]
    torch.testing.assert_close(moved, 0.05 * (params[name] - old[name]).detach(), rtol=1e-3,
                               atol=1e-7)
    assert moved.abs().max() > 1e-4
    assert model.student.training and not model.teacher.training


def test_the_last_layer_moves_once_it_is_not_frozen(views):
    model, before, _, _, _ = run_step(views, 0.996, freeze_last_layer=False)
    params, old = dict(model.student.named_parameters()), dict(before.student.named_parameters())
    assert params[LAST_LAYER].grad is not None
    assert not torch.equal(params[LAST_LAYER], old[LAST_LAYER])
    # the prototypes' magnitude is fixed at 1 (norm_last_layer) in student and teacher
    assert not params[LAST_LAYER_G].requires_grad and params[LAST_LAYER_G].grad is None
    assert torch.equal(params[LAST_LAYER_G], torch.ones(K, 1))
    assert torch.equal(model.teacher.get_parameter(LAST_LAYER_G), torch.ones(K, 1))


def test_weight_decay_spares_exactly_biases_norms_and_tokens():
    model = tiny_model()
    opt = build_optimizer(model.student, 1e-3, 0.04, fused=False)
    names = {id(p): n for n, p in model.student.named_parameters()}
    decay, no_decay = ({names[id(p)] for p in g['params']} for g in opt.param_groups)
    blocks = [f'backbone.blocks.{i}.' for i in range(2)]
    expected_no_decay = {'backbone.registers', 'backbone.pos_embed',
                         'backbone.patch_embed.proj.bias', 'backbone.norm.weight',
                         'backbone.norm.bias', *(f'head.mlp.{i}.bias' for i in (0, 2, 4)),
                         *(b + leaf for b in blocks for leaf in (
                             'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias',
                             'attn.qkv.bias', 'attn.proj.bias', 'mlp.fc1.bias',
                             'mlp.fc2.bias'))}
    expected_decay = {'backbone.patch_embed.proj.weight', LAST_LAYER,
                      *(f'head.mlp.{i}.weight' for i in (0, 2, 4)),
                      *(b + leaf for b in blocks for leaf in (
                          'attn.qkv.weight', 'attn.proj.weight', 'mlp.fc1.weight',
                          'mlp.fc2.weight'))}
    assert no_decay == expected_no_decay
    assert decay == expected_decay
    # the frozen magnitude of the prototypes is in no group at all
    assert set(names.values()) - decay - no_decay == {LAST_LAYER_G}
    assert [g['weight_decay'] for g in opt.param_groups] == [0.04, 0.0]
