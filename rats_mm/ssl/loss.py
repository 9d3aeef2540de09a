"""DINO self-distillation loss with a centred (or Sinkhorn-Knopp balanced), sharpened teacher."""
import math

import torch
from torch import distributed as dist
from torch import nn
from torch.nn import functional as F

from .checks import check_int

__all__ = ['CENTERINGS', 'DINOLoss', 'sinkhorn_knopp', 'target_entropies']

CENTERINGS = ('centering', 'sinkhorn_knopp')


class DINOLoss(nn.Module):
    """Cross-entropy between teacher and student prototype distributions over crop pairs.

    For every teacher crop ``iq`` and every student crop ``v != iq``, the loss is
    ``-sum_k softmax((t_iq - c) / teacher_temp)_k * log_softmax(s_v / student_temp)_k``,
    averaged over the batch and then over the pairs. The teacher crops are the first
    ``num_teacher_crops`` student crops (the global views), hence the skipped diagonal.
    After the loss, in training mode, the centre ``c`` moves towards the teacher batch mean:
    ``c <- m c + (1 - m) mean(t)`` (mean over all processes when a process group exists).

    With ``centering='sinkhorn_knopp'`` (DINOv2) the teacher targets are instead the
    Sinkhorn-Knopp balanced assignment of ``exp(t / teacher_temp)``: every prototype receives
    the same share of the batch (over all processes), so the targets can collapse neither to
    one prototype nor to the uniform distribution, whatever the batch size. The centre is then
    still tracked (for checkpoints and diagnostics) but not used.

    After every call, :attr:`last_stats` gives the teacher-target diagnostics of that batch
    (see :func:`~rats_mm.ssl.target_entropies`). The forward only keeps the targets; the
    figures are computed when :attr:`last_stats` is read, so the forward itself never waits
    for the device (and runs on ``torch.device('meta')``). ``track_stats=False`` keeps
    nothing.

    Args:
        out_dim (int): Number of prototypes K.
        student_temp (float): Student softmax temperature.
        center_momentum (float): EMA momentum m of the centre, in [0, 1].
        centering (str): ``'centering'`` (DINO) or ``'sinkhorn_knopp'`` (DINOv2).
        sinkhorn_iterations (int): Sinkhorn-Knopp normalisation rounds (DINOv2: 3).
        track_stats (bool): Keep the last targets for :attr:`last_stats`.
    """

    def __init__(self, out_dim, student_temp=0.1, center_momentum=0.9, centering='centering',
                 sinkhorn_iterations=3, track_stats=True):
        super().__init__()
        check_int('out_dim', out_dim, 1)
        if not student_temp > 0:
            raise ValueError(f'student_temp must be > 0, got {student_temp!r}')
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f'center_momentum must be in [0, 1], got {center_momentum!r}')
        if centering not in CENTERINGS:
            raise ValueError(f'centering={centering!r} is not one of {CENTERINGS}')
        check_int('sinkhorn_iterations', sinkhorn_iterations, 1)
        self.centering = centering
        self.sinkhorn_iterations = sinkhorn_iterations
        self._last_targets = None
        self.track_stats = bool(track_stats)
        self.out_dim = out_dim
        self.student_temp = float(student_temp)
        self.center_momentum = float(center_momentum)
        self.register_buffer('center', torch.zeros(1, out_dim))

    def _check_inputs(self, student_output, teacher_output, teacher_temp, num_student_crops,
                      num_teacher_crops):
        """Validate shapes and counts.

        Args:
            student_output (Tensor): (num_student_crops * B, K) student logits.
            teacher_output (Tensor): (num_teacher_crops * B, K) teacher logits.
            teacher_temp (float): Teacher temperature.
            num_student_crops (int): Crops per image seen by the student.
            num_teacher_crops (int): Crops per image seen by the teacher.

        Returns:
            int: The per-crop batch size B.
        """
        if not teacher_temp > 0:
            raise ValueError(f'teacher_temp must be > 0, got {teacher_temp!r}')
        for name, n in (('num_student_crops', num_student_crops),
                        ('num_teacher_crops', num_teacher_crops)):
            check_int(name, n, 1)
        if num_student_crops * num_teacher_crops - min(num_student_crops,
                                                       num_teacher_crops) == 0:
            raise ValueError('no crop pair with different indices: need more than one crop '
                             f'(num_student_crops={num_student_crops}, '
                             f'num_teacher_crops={num_teacher_crops})')
        for name, out, n in (('student_output', student_output, num_student_crops),
                             ('teacher_output', teacher_output, num_teacher_crops)):
            if out.dim() != 2 or out.shape[1] != self.out_dim or out.shape[0] % n:
                raise ValueError(f'{name} must have shape ({n} * B, {self.out_dim}), '
                                 f'got {tuple(out.shape)}')
        batch = student_output.shape[0] // num_student_crops
        if batch == 0 or teacher_output.shape[0] // num_teacher_crops != batch:
            raise ValueError(
                f'batch sizes differ or are empty: student {student_output.shape[0]} rows / '
                f'{num_student_crops} crops, teacher {teacher_output.shape[0]} rows / '
                f'{num_teacher_crops} crops')
        return batch

    def forward(self, student_output, teacher_output, teacher_temp, num_student_crops,
                num_teacher_crops=2):
        """Compute the loss, then (training mode only) update the centre.

        Args:
            student_output (Tensor): (num_student_crops * B, K) student logits, crop-major
                (all images' crop 0, then crop 1, ...).
            teacher_output (Tensor): (num_teacher_crops * B, K) teacher logits, crop-major;
                no gradient flows into it.
            teacher_temp (float): Teacher softmax temperature (see
                :func:`~rats_mm.ssl.linear_warmup_then_constant`).
            num_student_crops (int): Crops per image seen by the student (2 + locals).
            num_teacher_crops (int): Crops per image seen by the teacher (the global ones).

        Returns:
            Tensor: Scalar float32 loss.
        """
        batch = self._check_inputs(student_output, teacher_output, teacher_temp,
                                   num_student_crops, num_teacher_crops)
        k = self.out_dim
        # computed in float32 whatever the input dtype (bf16/fp16 logits under autocast)
        log_p = F.log_softmax(student_output.float() / self.student_temp, dim=-1)
        log_p = log_p.view(num_student_crops, batch, k)               # (V, B, K)
        with torch.no_grad():
            q = self.teacher_targets(teacher_output, teacher_temp)    # (T * B, K)
            self._last_targets = q if self.track_stats else None
            q = q.view(num_teacher_crops, batch, k)                   # (T, B, K)
        log_p_sum = log_p.sum(dim=0)                                  # (B, K) over crops
        total = log_p.new_zeros(())
        for iq in range(num_teacher_crops):
            # sum over student crops v != iq of log p_v: (B, K)
            log_p_others = log_p_sum - log_p[iq] if iq < num_student_crops else log_p_sum
            total = total + torch.sum(-q[iq] * log_p_others, dim=-1).mean()
        n_terms = num_student_crops * num_teacher_crops - min(num_student_crops,
                                                              num_teacher_crops)
        loss = total / n_terms
        if self.training and self.centering != 'sinkhorn_knopp':  # SK targets use no centre
            self.update_center(teacher_output)
        return loss

    @property
    def last_stats(self):
        """dict: :func:`target_entropies` of the last forward's targets (one device sync
        when read; empty before the first forward or with ``track_stats=False``)."""
        if self._last_targets is None:
            return {}
        return target_entropies(self._last_targets)

    @torch.no_grad()
    def teacher_targets(self, teacher_output, teacher_temp):
        """Teacher probabilities: centred softmax, or the Sinkhorn-Knopp assignment.

        Args:
            teacher_output (Tensor): (T * B, K) teacher logits.
            teacher_temp (float): Teacher temperature.

        Returns:
            Tensor: (T * B, K) float32 rows summing to 1.
        """
        logits = teacher_output.detach().float()
        if self.centering == 'sinkhorn_knopp':
            return sinkhorn_knopp(logits / teacher_temp, self.sinkhorn_iterations)
        return F.softmax((logits - self.center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def update_center(self, teacher_output):
        """EMA of the teacher batch mean, averaged over processes when distributed.

        Args:
            teacher_output (Tensor): (num_teacher_crops * B, K) teacher logits.
        """
        batch_center = teacher_output.detach().float().sum(dim=0, keepdim=True)  # (1, K)
        count = teacher_output.shape[0]
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            count *= dist.get_world_size()
        batch_center = batch_center / count
        self.center.mul_(self.center_momentum).add_(
            batch_center.to(self.center.dtype), alpha=1.0 - self.center_momentum)

    def extra_repr(self):
        return (f'out_dim={self.out_dim}, student_temp={self.student_temp}, '
                f'center_momentum={self.center_momentum}, centering={self.centering!r}')


def _all_reduce(tensor):
    """Sum ``tensor`` over processes in place when a process group exists."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


@torch.no_grad()
def sinkhorn_knopp(scores, num_iterations=3):
    """Balanced soft assignment of samples to prototypes (DINOv2's teacher centring).

    Alternately normalises the rows (prototypes) and columns (samples) of ``exp(scores)`` so
    that every prototype gets an equal share of the batch and every sample sums to 1. With a
    process group the prototype sums run over the global batch.

    Args:
        scores (Tensor): (B, K) logits already divided by the teacher temperature.
        num_iterations (int): Normalisation rounds.

    Returns:
        Tensor: (B, K) float32 assignment, rows summing to 1.
    """
    scores = scores.float()
    # subtract the global max before exp, for range only (the normalisations remove it)
    top = scores.max().reshape(1)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    q = torch.exp(scores - top).t()                                    # (K, B)
    num_protos = q.shape[0]
    num_samples = q.new_full((1,), float(q.shape[1]))  # made on the device: no host copy
    _all_reduce(num_samples)
    q /= _all_reduce(q.sum().reshape(1))
    for _ in range(num_iterations):
        q /= _all_reduce(q.sum(dim=1, keepdim=True))                   # each prototype: 1
        q /= num_protos                                                #  ... then 1 / K
        q /= q.sum(dim=0, keepdim=True)                                # each sample: 1
        q /= num_samples                                               #  ... then 1 / B
    return (q * num_samples).t()                                       # (B, K), rows sum 1


@torch.no_grad()
def target_entropies(probs):
    """Collapse diagnostics of teacher targets.

    ``entropy``: mean over samples of each target's entropy; ``batch_entropy``: entropy of the
    batch-mean target. Uniform collapse (every target flat) gives both near ln(K); one-hot
    collapse (every target the same prototype) gives both near 0; a healthy teacher gives a
    low ``entropy`` (confident) and a high ``batch_entropy`` (diverse across images).

    Args:
        probs (Tensor): (B, K) rows summing to 1.

    Returns:
        dict: ``entropy``, ``batch_entropy`` (nats) and both divided by ln(K)
        (``entropy_ratio``, ``batch_entropy_ratio``), as floats.
    """
    probs = probs.float()
    log_k = math.log(probs.shape[1]) if probs.shape[1] > 1 else 1.0
    per_sample = -(probs * probs.clamp_min(1e-30).log()).sum(dim=1).mean()
    mean = probs.mean(dim=0)
    batch = -(mean * mean.clamp_min(1e-30).log()).sum()
    per_sample, batch = torch.stack([per_sample, batch]).tolist()  # one device sync
    return {'entropy': per_sample, 'batch_entropy': batch,
            'entropy_ratio': per_sample / log_k, 'batch_entropy_ratio': batch / log_k}
