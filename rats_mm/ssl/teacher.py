"""Teacher network of DINO: a frozen copy of the student, updated as its EMA."""
import copy

import torch
from torch import nn

__all__ = ['build_teacher', 'update_teacher']


def _unwrap(module):
    """Strip a (Distributed)DataParallel wrapper.

    Args:
        module (nn.Module): Possibly wrapped module.

    Returns:
        nn.Module: The wrapped module, or ``module`` itself.
    """
    if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return module.module
    return module


def _paired(kind, student_items, teacher_items):
    """Pair student and teacher tensors by name, checking names and shapes.

    Args:
        kind (str): ``'parameter'`` or ``'buffer'`` (for the error message).
        student_items (list[tuple[str, Tensor]]): Named student tensors, in order.
        teacher_items (list[tuple[str, Tensor]]): Named teacher tensors, in order.

    Returns:
        tuple[list[Tensor], list[Tensor]]: Student and teacher tensors, aligned.
    """
    for (s_name, s), (t_name, t) in zip(student_items, teacher_items):
        if s_name != t_name:
            raise ValueError(f'{kind} name mismatch: student {s_name!r}, teacher {t_name!r}')
        if s.shape != t.shape:
            raise ValueError(f'{kind} {s_name!r} shape mismatch: student '
                             f'{tuple(s.shape)}, teacher {tuple(t.shape)}')
    if len(student_items) != len(teacher_items):
        longer, which = ((student_items, 'student') if len(student_items) > len(teacher_items)
                         else (teacher_items, 'teacher'))
        extra = longer[min(len(student_items), len(teacher_items))][0]
        raise ValueError(f'{kind} {extra!r} exists only in the {which} '
                         f'({len(student_items)} student vs {len(teacher_items)} teacher)')
    return [s for _, s in student_items], [t for _, t in teacher_items]


@torch.no_grad()
def update_teacher(student, teacher, momentum):
    """EMA update ``teacher <- momentum * teacher + (1 - momentum) * student``.

    Every parameter is averaged (frozen ones included, as in DINO); buffers are copied
    from the student. Names and shapes are checked for all tensors before anything is
    modified. (Distributed)DataParallel wrappers are stripped from both modules.

    Args:
        student (nn.Module): The student network.
        teacher (nn.Module): The teacher network (same architecture), updated in place.
        momentum (float): EMA momentum in [0, 1] (1 keeps the teacher, 0 copies the student;
            see :func:`~rats_mm.ssl.cosine_schedule` for DINO's 0.996 -> 1 schedule).
    """
    if isinstance(momentum, bool) or not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f'momentum must be in [0, 1], got {momentum!r}')
    momentum = float(momentum)
    student, teacher = _unwrap(student), _unwrap(teacher)
    s_params, t_params = _paired('parameter', list(student.named_parameters()),
                                 list(teacher.named_parameters()))
    s_bufs, t_bufs = _paired('buffer', list(student.named_buffers()),
                             list(teacher.named_buffers()))
    if t_params:
        s_data = [p.detach() for p in s_params]
        t_data = [p.detach() for p in t_params]
        torch._foreach_mul_(t_data, momentum)
        torch._foreach_add_(t_data, s_data, alpha=1.0 - momentum)
    for s_buf, t_buf in zip(s_bufs, t_bufs):
        t_buf.copy_(s_buf)


def build_teacher(student):
    """Create the teacher: a deep copy of the student with every parameter frozen.

    The copy keeps the student's train/eval mode (the caller chooses it); gradients are
    switched off through ``requires_grad=False``, which holds in either mode.

    Args:
        student (nn.Module): The student network (a DDP wrapper is stripped).

    Returns:
        nn.Module: The teacher.
    """
    teacher = copy.deepcopy(_unwrap(student))
    for param in teacher.parameters():
        param.requires_grad_(False)
        param.grad = None
    return teacher
