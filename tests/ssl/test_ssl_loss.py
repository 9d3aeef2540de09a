"""DINO loss and its centre."""
import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from rats_mm.ssl import DINOLoss

K = 64


def reference_loss(student, teacher, center, teacher_temp, student_temp, n_s, n_t):
    """Straightforward loops over crop pairs, images and prototypes."""
    batch = student.shape[0] // n_s
    total, n_terms = 0.0, 0
    for iq in range(n_t):
        for v in range(n_s):
            if v == iq:
                continue
            pair = 0.0
            for b in range(batch):
                t_row = teacher[iq * batch + b]
                s_row = student[v * batch + b]
                t_logits = [(t_row[k].item() - center[0, k].item()) / teacher_temp
                            for k in range(K)]
                s_logits = [s_row[k].item() / student_temp for k in range(K)]
                t_max, s_max = max(t_logits), max(s_logits)
                t_z = sum(math.exp(x - t_max) for x in t_logits)
                s_lse = s_max + math.log(sum(math.exp(x - s_max) for x in s_logits))
                pair += sum(-(math.exp(t - t_max) / t_z) * (s - s_lse)
                            for t, s in zip(t_logits, s_logits))
            total += pair / batch
            n_terms += 1
    return total / n_terms


@pytest.mark.parametrize('n_s, n_t', [(4, 2), (2, 2), (3, 1)])
def test_matches_reference(n_s, n_t):
    g = torch.Generator().manual_seed(0)
    batch = 3
    student = torch.randn(n_s * batch, K, generator=g)
    teacher = torch.randn(n_t * batch, K, generator=g)
    loss_fn = DINOLoss(K, student_temp=0.1)
    loss_fn.center.copy_(torch.randn(1, K, generator=g) * 0.1)
    expected = reference_loss(student, teacher, loss_fn.center, 0.04, 0.1, n_s, n_t)
    loss = loss_fn(student, teacher, teacher_temp=0.04, num_student_crops=n_s,
                   num_teacher_crops=n_t)
    assert loss.shape == () and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_gradient_flows_to_student_only():
    student = torch.randn(8, K, requires_grad=True)
    teacher = torch.randn(4, K, requires_grad=True)
    DINOLoss(K)(student, teacher, 0.04, num_student_crops=4).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def torch_reference_loss(student, teacher, center, teacher_temp, student_temp, n_s, n_t):
    """DINO's loss from torch ops, one crop pair at a time: for every teacher crop iq and
    student crop v != iq, the batch mean of -sum_k softmax((t_iq - c) / T_t)_k *
    log_softmax(s_v / T_s)_k; then the mean over those pairs."""
    teacher_crops = F.softmax((teacher - center) / teacher_temp, dim=-1).chunk(n_t)
    student_crops = F.log_softmax(student / student_temp, dim=-1).chunk(n_s)
    pairs = [-(q * student_crops[v]).sum(dim=-1).mean()
             for iq, q in enumerate(teacher_crops) for v in range(n_s) if v != iq]
    return torch.stack(pairs).mean()


@pytest.mark.parametrize('n_s, n_t', [(10, 2), (4, 3), (1, 2)])
def test_value_and_student_gradient_match_torch_reference(n_s, n_t):
    """Large logits, a sharp teacher and a non-zero centre; (1, 2): a second teacher crop
    without a student crop of the same view, so no pair of it is skipped."""
    g = torch.Generator().manual_seed(5)
    batch = 5
    student = (torch.randn(n_s * batch, K, generator=g) * 5).requires_grad_()
    teacher = torch.randn(n_t * batch, K, generator=g) * 5
    center = torch.randn(1, K, generator=g)
    loss_fn = DINOLoss(K, student_temp=0.1).eval()
    loss_fn.center.copy_(center)
    loss = loss_fn(student, teacher, 0.07, num_student_crops=n_s, num_teacher_crops=n_t)
    (grad,) = torch.autograd.grad(loss, student)
    ref_student = student.detach().clone().requires_grad_()
    expected = torch_reference_loss(ref_student, teacher, center, 0.07, 0.1, n_s, n_t)
    (ref_grad,) = torch.autograd.grad(expected, ref_student)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, ref_grad)


def test_identical_distributions_give_entropy_lower_bound():
    g = torch.Generator().manual_seed(1)
    batch, n_s = 4, 3
    logits = torch.randn(batch, K, generator=g)
    outputs = logits.repeat(n_s, 1)                      # every crop identical
    loss_fn = DINOLoss(K, student_temp=0.1).eval()       # centre stays 0
    loss = loss_fn(outputs, outputs[:2 * batch], 0.1, num_student_crops=n_s)
    p = F.softmax(logits / 0.1, dim=-1)
    entropy = -(p * p.log()).sum(-1).mean()
    torch.testing.assert_close(loss, entropy)
    # any other student distribution costs more (Gibbs' inequality)
    other = outputs + torch.randn(outputs.shape, generator=g)
    assert loss_fn(other, outputs[:2 * batch], 0.1, num_student_crops=n_s) > entropy


def test_center_is_a_buffer_in_state_dict():
    loss_fn = DINOLoss(K)
    assert 'center' in dict(loss_fn.named_buffers())
    assert loss_fn.state_dict()['center'].shape == (1, K)
    loss_fn.center.fill_(0.5)
    restored = DINOLoss(K)
    restored.load_state_dict(loss_fn.state_dict())
    torch.testing.assert_close(restored.center, torch.full((1, K), 0.5))


def test_center_ema_update_in_train_mode_only():
    g = torch.Generator().manual_seed(2)
    loss_fn = DINOLoss(K, center_momentum=0.9)
    start = torch.randn(1, K, generator=g)
    loss_fn.center.copy_(start)
    teacher = torch.randn(6, K, generator=g)
    student = torch.randn(12, K, generator=g)
    loss_fn.eval()
    loss_fn(student, teacher, 0.04, num_student_crops=4)
    torch.testing.assert_close(loss_fn.center, start)
    loss_fn.train()
    loss_fn(student, teacher, 0.04, num_student_crops=4)
    expected = 0.9 * start + 0.1 * teacher.mean(dim=0, keepdim=True)
    torch.testing.assert_close(loss_fn.center, expected)
    assert not loss_fn.center.requires_grad


def test_center_used_before_update():
    """The loss of a step uses the centre from before that step's update."""
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(8, K, generator=g), torch.randn(4, K, generator=g)
    train_loss = DINOLoss(K)(s, t, 0.04, num_student_crops=4)
    eval_loss = DINOLoss(K).eval()(s, t, 0.04, num_student_crops=4)
    torch.testing.assert_close(train_loss, eval_loss)


def test_bad_inputs_raise():
    loss_fn = DINOLoss(K)
    with pytest.raises(ValueError, match='student_output'):
        loss_fn(torch.randn(7, K), torch.randn(4, K), 0.04, num_student_crops=4)
    with pytest.raises(ValueError, match='teacher_output'):
        loss_fn(torch.randn(8, K), torch.randn(4, K + 1), 0.04, num_student_crops=4)
    with pytest.raises(ValueError, match='batch sizes'):
        loss_fn(torch.randn(8, K), torch.randn(6, K), 0.04, num_student_crops=4)
    with pytest.raises(ValueError, match='teacher_temp'):
        loss_fn(torch.randn(8, K), torch.randn(4, K), 0.0, num_student_crops=4)
    with pytest.raises(ValueError, match='crop pair'):
        loss_fn(torch.randn(2, K), torch.randn(2, K), 0.04, num_student_crops=1,
                num_teacher_crops=1)
    with pytest.raises(ValueError, match='center_momentum'):
        DINOLoss(K, center_momentum=1.5)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed unavailable')
def test_one_process_gloo_group():
    if dist.is_initialized():
        pytest.skip('a process group is already initialised in this process')
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{_free_port()}',
                            rank=0, world_size=1)
    try:
        g = torch.Generator().manual_seed(4)
        s, t = torch.randn(8, K, generator=g), torch.randn(4, K, generator=g)
        loss_fn = DINOLoss(K, center_momentum=0.5)
        loss = loss_fn(s, t, 0.04, num_student_crops=4)
        assert torch.isfinite(loss)
        torch.testing.assert_close(loss_fn.center, 0.5 * t.mean(dim=0, keepdim=True))
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_sinkhorn_knopp_leaves_the_centre_alone_and_reduces_nothing_for_it(monkeypatch):
    """With Sinkhorn-Knopp targets the centre is never read, so it is neither updated nor
    all-reduced (the all-reduce of a 65,536-float centre per step was wasted)."""
    import rats_mm.ssl.loss as loss_module
    loss = loss_module.DINOLoss(16, centering='sinkhorn_knopp').train()
    updates = []
    monkeypatch.setattr(loss, 'update_center', lambda out: updates.append(out))
    torch.manual_seed(0)
    value = loss(torch.randn(8, 16), torch.randn(4, 16), 0.04, 4)
    assert torch.isfinite(value) and updates == []
    centred = loss_module.DINOLoss(16).train()
    monkeypatch.setattr(centred, 'update_center', lambda out: updates.append(out))
    centred(torch.randn(8, 16), torch.randn(4, 16), 0.04, 4)
    assert len(updates) == 1
