"""DINO self-distillation in plain PyTorch: student and EMA teacher, and one training step
that never waits for the device (no ``.item()``, no ``if`` on a tensor).

This is what ``tools/science.py`` trains with on a GPU machine that has no OpenMMLab; the
mmengine model (``rats_mm.pretrain.DINOPretrainer``) is this model with mmengine's interface
around it (a subclass), for the config-driven runs.
"""
from dataclasses import dataclass

import torch
from torch import nn

from ..models.embedding import embed, embedding_dim
from .head import DINOHead, cancel_last_layer_gradients, clip_gradients_per_parameter
from .loss import DINOLoss
from .teacher import build_teacher, update_teacher

__all__ = ['NO_DECAY_NAMES', 'DINODistillation', 'StepSettings', 'build_optimizer', 'embed_views',
           'train_step']

# Backbone parameters (by their last name) that take no weight decay besides biases and
# norms: the tokens, the position table and the cosine logits' temperatures. The one list of
# them: the dense fine-tunes' layer-decay constructor (``rats_mm.dense.optim``) extends it;
# the pretraining config (configs/_base_/dino_runtime.py, which cannot import it) spells it
# out as ``custom_keys``, and a test keeps the two equal.
NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'registers', 'logit_scale')


def embed_views(features, head, views):
    """Head logits of multi-crop views, consecutive views of one size run as one batch.

    Args:
        features (callable): (b, 3, s, s) images -> (b, D) embeddings.
        head (nn.Module): The DINO head.
        views (list[Tensor]): (B, 3, s, s) views, crop-major.

    Returns:
        Tensor: (len(views) * B, K) logits, in the order of ``views``.
    """
    outputs, start = [], 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
            end += 1
        outputs.append(features(torch.cat(views[start:end])))                # (b * B, D)
        start = end
    return head(torch.cat(outputs))


class DINODistillation(nn.Module):
    """The project's one DINO model: student and teacher (backbone + :class:`DINOHead`) with
    the :class:`DINOLoss`.

    The teacher is a frozen copy of the student, updated as its EMA by the driver (here
    :func:`train_step`; ``rats_mm.pretrain.DINOPretrainer``, the mmengine driver, subclasses
    this model and adds mmengine's interface), and stays in eval mode whatever ``train()`` is
    called with (no drop-path in its targets), as DINOv2's meta-architecture keeps it. The
    state dict holds ``student.*``, ``teacher.*`` and ``criterion.*`` (the centre).

    Args:
        backbone (RatsViT): The backbone (no classifier; ``global_pool`` ``'token'`` or the
            embedding's own pool).
        head (dict | None): :class:`DINOHead` arguments except ``in_dim``.
        loss (dict | None): :class:`DINOLoss` arguments except ``out_dim`` (its
            ``last_stats`` are the last batch's target diagnostics).
        num_global (int): Leading views that the teacher sees (DINO: the 2 global crops).
        embedding (str): What the head reads, one of ``rats_mm.models.embedding.EMBEDDINGS``:
            ``'pooled'``, the image embedding (RATS's mean of the registers, a ViT's [CLS]),
            or a register read-out (``'registers'``, every final register concatenated in
            order, (B, N * D), so the loss is no longer symmetric in the registers of a head;
            ``'heads'``; ``'registers_avg'``), or the patch mean (``'avg'``).
        **module_kwargs: Passed on to the next base's ``__init__`` (a subclass that also
            derives from mmengine's ``BaseModel``: ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self, backbone, head=None, loss=None, num_global=2, embedding='pooled',
                 **module_kwargs):
        super().__init__(**module_kwargs)
        in_dim = embedding_dim(backbone, embedding)  # checks the embedding
        self.embedding = embedding
        head_module = DINOHead(in_dim, **(head or {}))
        self.student = nn.ModuleDict({'backbone': backbone, 'head': head_module})
        self.teacher = build_teacher(self.student).eval()
        self.criterion = DINOLoss(head_module.last_layer.out_features, **(loss or {}))
        self.num_global = num_global

    def train(self, mode=True):
        """Set the student's mode; the teacher always stays in eval mode.

        Drivers call ``model.train()`` before training. The teacher is a copy of the
        student, so without this it would run the student's stochastic depth and dropout and
        its targets would be randomly thinned; DINO builds its teacher without drop-path and
        DINOv2's meta-architecture keeps it in eval the same way.
        """
        super().train(mode)
        self.teacher.eval()
        return self

    def _embed(self, branch, views):
        """Views -> (len(views) * B, K) logits of ``branch`` (see :func:`embed_views`)."""
        return embed_views(lambda x: embed(branch['backbone'], x, self.embedding),
                           branch['head'], views)

    def dino_loss(self, views, teacher_temp):
        """DINO loss of multi-crop ``views``.

        Args:
            views (list[Tensor]): (B, 3, s, s) views, crop-major, the global ones first.
            teacher_temp (float): Teacher softmax temperature.

        Returns:
            Tensor: Scalar float32 loss (on the views' device; nothing is read back).
        """
        with torch.no_grad():
            teacher_out = self._embed(self.teacher, views[:self.num_global])
        student_out = self._embed(self.student, views)
        return self.criterion(student_out, teacher_out, teacher_temp,
                              num_student_crops=len(views), num_teacher_crops=self.num_global)

    def forward(self, views, teacher_temp):
        """:meth:`dino_loss` (the plain-PyTorch driver's call)."""
        return self.dino_loss(views, teacher_temp)


def build_optimizer(student, lr, weight_decay, fused=None):
    """AdamW over two groups: weights decayed; biases, norms and the position / register /
    class tokens and the cosine logits' ``logit_scale`` not (the split of the project's
    mmengine ``paramwise_cfg``; DINO itself also decays the tokens).

    Args:
        student (nn.Module): The trained module (``DINODistillation.student``).
        lr (float): Initial learning rate (a schedule overwrites it every step).
        weight_decay (float): Initial weight decay of the decayed group.
        fused (bool | None): Fused AdamW kernel (None: on CUDA parameters only).

    Returns:
        torch.optim.AdamW: Groups carry ``decay`` (bool) so the schedule knows which to set.
    """
    decay, no_decay = [], []
    for name, param in student.named_parameters():
        if not param.requires_grad:
            continue
        is_token = name.split('.')[-1] in NO_DECAY_NAMES
        (no_decay if param.ndim <= 1 or is_token else decay).append(param)
    if fused is None:
        fused = all(p.is_cuda for p in decay + no_decay)
    groups = [{'params': decay, 'weight_decay': weight_decay, 'decay': True},
              {'params': no_decay, 'weight_decay': 0.0, 'decay': False}]
    return torch.optim.AdamW(groups, lr=lr, fused=fused, foreach=None if fused else True)


@dataclass
class StepSettings:
    """Scheduled values of one step.

    Attributes:
        lr (float): Learning rate.
        weight_decay (float): Weight decay of the decayed group.
        momentum (float): Teacher EMA momentum.
        teacher_temp (float): Teacher temperature.
        clip_grad (float | None): DINO's per-parameter gradient clipping norm (None: off).
        freeze_last_layer (bool): Drop the head's last-layer gradients this step.
    """
    lr: float
    weight_decay: float
    momentum: float
    teacher_temp: float
    clip_grad: float = 3.0
    freeze_last_layer: bool = False


def train_step(model, optimizer, views, settings, autocast_dtype=None):
    """One DINO iteration: loss, backward, clipping, step, teacher EMA; no host sync.

    Args:
        model (DINODistillation): Student, teacher and loss (student in train mode).
        optimizer (torch.optim.Optimizer): From :func:`build_optimizer`.
        views (list[Tensor]): Normalised views, crop-major, the global ones first.
        settings (StepSettings): This step's scheduled values.
        autocast_dtype (torch.dtype | None): Mixed precision of the forward (bf16 on a GPU;
            the loss, centring and teacher softmax run in float32 inside :class:`DINOLoss`).

    Returns:
        tuple[Tensor, Tensor]: The detached scalar loss and the global L2 norm of the
        student's gradients before clipping, both still on the device (a non-finite value is
        for the caller to check when it reads them).
    """
    for group in optimizer.param_groups:
        group['lr'] = settings.lr
        if group.get('decay'):
            group['weight_decay'] = settings.weight_decay
    device_type = views[0].device.type
    with torch.autocast(device_type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        loss = model(views, settings.teacher_temp)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.student.parameters() if p.grad is not None]
    if settings.clip_grad:
        grad_norm = clip_gradients_per_parameter(params, settings.clip_grad)
    else:  # the same figure, unclipped
        grad_norm = torch.stack(torch._foreach_norm([p.grad for p in params])).norm(2)
    if settings.freeze_last_layer:
        cancel_last_layer_gradients(model.student['head'])
    optimizer.step()
    update_teacher(model.student, model.teacher, settings.momentum)
    return loss.detach(), grad_norm.detach()
