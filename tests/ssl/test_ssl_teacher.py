"""EMA teacher."""
import pytest
import torch
from torch import nn

from rats_mm.ssl import DINOHead, build_teacher, update_teacher


def make_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.GELU(),
                         DINOHead(16, out_dim=32, hidden_dim=16, bottleneck_dim=8))


def params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_build_teacher_is_frozen_copy():
    student = make_net()
    student.train()
    student(torch.randn(4, 8)).sum().backward()
    teacher = build_teacher(student)
    assert teacher is not student
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.requires_grad for p in student.parameters())
    for (n, s), (_, t) in zip(student.named_parameters(), teacher.named_parameters()):
        assert torch.equal(s, t) and s.data_ptr() != t.data_ptr(), n
    teacher.train()                          # frozen whatever the mode
    assert all(not p.requires_grad for p in teacher.parameters())
    student.eval(), teacher.eval()
    x = torch.randn(3, 8)
    torch.testing.assert_close(teacher(x), student(x))


@pytest.mark.parametrize('momentum', [1.0, 0.0, 0.5])
def test_ema(momentum):
    student, teacher = make_net(0), build_teacher(make_net(1))
    student[1].running_mean.fill_(3.0)
    before_s, before_t = params(student), params(teacher)
    update_teacher(student, teacher, momentum)
    after = params(teacher)
    for name in before_t:
        expected = momentum * before_t[name] + (1 - momentum) * before_s[name]
        if momentum == 1.0:
            assert torch.equal(after[name], before_t[name]), name
        elif momentum == 0.0:
            assert torch.equal(after[name], before_s[name]), name
        else:
            torch.testing.assert_close(after[name], expected)
        assert not dict(teacher.named_parameters())[name].requires_grad
    # buffers are copied from the student
    torch.testing.assert_close(teacher[1].running_mean, torch.full((16,), 3.0))
    for name, value in params(student).items():                # student untouched
        assert torch.equal(value, before_s[name]), name


def test_ema_no_autograd_history():
    student = make_net(0)
    teacher = build_teacher(student)
    update_teacher(student, teacher, 0.9)
    assert all(p.grad_fn is None for p in teacher.parameters())


def test_mismatch_raises_and_changes_nothing():
    student = make_net(0)
    torch.manual_seed(1)
    other_shape = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.GELU(),
                                DINOHead(16, out_dim=33, hidden_dim=16, bottleneck_dim=8))
    before = params(other_shape)
    with pytest.raises(ValueError, match=r"'3\.last_layer.*shape"):
        update_teacher(student, other_shape, 0.5)
    for name, value in params(other_shape).items():
        assert torch.equal(value, before[name])
    other_name = nn.Sequential(nn.Linear(8, 16))
    with pytest.raises(ValueError, match="'1.weight'"):
        update_teacher(make_net(0), other_name, 0.5)
    renamed = nn.ModuleDict({'a': nn.Linear(2, 2)})
    with pytest.raises(ValueError, match='name mismatch'):
        update_teacher(nn.ModuleDict({'b': nn.Linear(2, 2)}), renamed, 0.5)


@pytest.mark.parametrize('momentum', [-0.1, 1.5, float('nan')])
def test_bad_momentum_raises(momentum):
    net = make_net()
    with pytest.raises(ValueError, match='momentum'):
        update_teacher(net, build_teacher(net), momentum)
