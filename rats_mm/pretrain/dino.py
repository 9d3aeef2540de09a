"""DINO self-distillation as an mmengine model: student and EMA teacher, one train step."""
import torch
from mmengine.model import BaseModel, MMDistributedDataParallel
from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import (MODEL_WRAPPERS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS,
                               OPTIM_WRAPPERS)

from ..models import RatsViT, compile_static, load_pretrained
from ..ssl import cancel_last_layer_gradients, clip_gradients_per_parameter, update_teacher
from ..ssl.diagnostics import grad_norm_by_group
from ..ssl.distill import DINODistillation


@MODELS.register_module()
class DINOPretrainer(DINODistillation, BaseModel):
    """:class:`rats_mm.ssl.distill.DINODistillation` (student and teacher, backbone + DINO
    head, trained with the DINO loss) with mmengine's model interface around it: built from a
    config, a data preprocessor, ``forward(mode=...)``, ``train_step`` through an optim
    wrapper. The state dict is the shared model's (``student.*``, ``teacher.*``,
    ``criterion.*``).

    The image embedding fed to the heads is ``RatsViT.forward``: the mean of the final normed
    registers for RATS, the [CLS] token for a ViT, so RATS, ViT + registers and plain ViT all
    pretrain through this class; ``embedding='registers'`` feeds them every register of a
    RATS instead (``rats_mm.models.embedding``). The teacher momentum and temperature are set
    every iteration by ``DINOScheduleHook`` (``teacher_momentum``, ``teacher_temp``,
    ``current_iter``).

    Args:
        backbone (dict): :class:`RatsViT` arguments; an optional ``pretrained`` path is loaded
            through ``checkpoint_filter_fn``.
        head (dict): :class:`DINOHead` arguments except ``in_dim``.
        loss (dict): :class:`DINOLoss` arguments except ``out_dim``.
        freeze_last_layer_iters (int): Iterations during which the head's last layer is
            not updated (DINO: one epoch).
        data_preprocessor (dict | None): mmengine data preprocessor (moves data to device).
        init_cfg (dict | None): mmengine init config.
        stats_interval (int): Iterations between the teacher-target diagnostics
            (``teacher_entropy_ratio`` ...) and the gradient norm per parameter group
            (``grad_norm_<group>``, ``rats_mm.ssl.diagnostics``) in the logged scalars;
            ``DINOScheduleHook`` sets it to the logger interval, so reading them costs no
            other step a device sync.
        compile_backbone (bool): ``torch.compile`` the student and teacher backbones in place
            (:func:`rats_mm.models.compile_static`: checkpoint keys unchanged, one graph per
            crop size, no graph break).
        embedding (str): What the heads read (``rats_mm.models.embedding.EMBEDDINGS``):
            ``'pooled'`` (the image embedding), a register read-out (``'registers'``,
            ``'heads'``, ``'registers_avg'``) or the patch mean (``'avg'``); with the
            backbone's ``global_pool`` set to the same read-out, ``model(x)`` and the k-NN
            monitor read it too.
        num_global (int): Leading views the teacher sees (DINO: the 2 global crops).
    """

    def __init__(self, backbone, head=None, loss=None, freeze_last_layer_iters=0,
                 data_preprocessor=None, init_cfg=None, stats_interval=1,
                 compile_backbone=False, embedding='pooled', num_global=2):
        backbone = dict(backbone)
        pretrained = backbone.pop('pretrained', None)
        vit = RatsViT(**backbone)
        if pretrained:
            load_pretrained(vit, pretrained)
        super().__init__(vit, head=head, loss=loss, num_global=num_global, embedding=embedding,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.freeze_last_layer_iters = freeze_last_layer_iters
        self.teacher_momentum = 0.996
        self.teacher_temp = 0.04
        self.current_iter = 0
        self.skipped_images = 0
        self.stats_interval = stats_interval
        if compile_backbone:  # forward_blocks, which both head inputs go through
            compile_static(self.student['backbone'])
            compile_static(self.teacher['backbone'])

    def init_weights(self):
        """Keep the student's own init and the pretrained weights; teacher = student."""
        self.teacher.load_state_dict(self.student.state_dict())

    def forward(self, inputs, data_samples=None, mode='loss'):
        """``mode='loss'``: DINO loss on multi-crop ``inputs`` (list of (B, 3, s, s), the
        global crops first; :meth:`dino_loss` at ``teacher_temp``). ``mode='tensor'`` /
        ``'predict'``: teacher backbone embeddings of ``inputs`` (B, 3, H, W) -> (B, D)."""
        if mode != 'loss':
            return self.teacher['backbone'](inputs)
        return {'loss': self.dino_loss(inputs, self.teacher_temp)}

    def train_step(self, data, optim_wrapper, forward=None):
        """One DINO iteration: loss, backward, (last-layer freezing), step, teacher EMA.

        Args:
            data (dict): A batch from ``multicrop_collate``.
            optim_wrapper (OptimWrapper): Student optimiser wrapper.
            forward (callable | None): Callable running ``forward`` (the DDP wrapper, so
                gradients are synchronised); defaults to this model.

        Returns:
            dict: Scalars to log.
        """
        forward, grads = forward or self, None
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = forward(data['inputs'], mode='loss')
        loss, log_vars = self.parse_losses(losses)
        finite = torch.isfinite(loss.detach())  # read after the step is queued: no stall
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        if optim_wrapper.should_update():
            if self.current_iter < self.freeze_last_layer_iters:
                cancel_last_layer_gradients(self.student['head'])
            optim_wrapper.step()
            if (self.current_iter + 1) % self.stats_interval == 0:  # the step's gradients
                grads = grad_norm_by_group(self.student)            # (clipped), before zero_grad
            optim_wrapper.zero_grad()
            update_teacher(self.student, self.teacher, self.teacher_momentum)
        if not finite:  # mmengine reads the loss back after every step anyway
            raise FloatingPointError(
                f'DINO loss is {loss.item()} at iteration {self.current_iter + 1}: stopping '
                'before a checkpoint of the broken model is written. Lower the learning rate '
                'or enable gradient clipping, then resume from the last checkpoint.')
        samples = data.get('data_samples') or {}
        self.skipped_images += int(samples.get('skipped', 0))
        log_vars.update(teacher_momentum=self.teacher_momentum, teacher_temp=self.teacher_temp,
                        skipped_images=self.skipped_images)
        if (self.current_iter + 1) % self.stats_interval == 0:
            log_vars.update({f'teacher_{k}': v for k, v in self.criterion.last_stats.items()})
            log_vars.update({f'grad_norm_{k}': v for k, v in (grads or {}).items()})
        return log_vars

    def val_step(self, data):
        data = self.data_preprocessor(data, False)
        return self(data['inputs'], mode='tensor')

    test_step = val_step


@MODEL_WRAPPERS.register_module()
class DINODistributedDataParallel(MMDistributedDataParallel):
    """DDP whose train step is :meth:`DINOPretrainer.train_step`, run through DDP's forward
    so gradients are all-reduced before the step and the teacher update."""

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper, forward=self)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (``paramwise_cfg`` and all) applied to the student
    only: the teacher follows by EMA and never enters the optimiser. The one-group-per-tensor
    list that ``paramwise_cfg`` produces is merged into one group per distinct setting (2-4
    instead of about 170), so AdamW's multi-tensor kernels can batch them; every tensor keeps
    its own lr and weight decay."""

    def __call__(self, model):
        model = model.module if hasattr(model, 'module') else model
        return super().__call__(model.student)

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix == '':  # the outermost call: every tensor is listed now
            params[:] = merge_param_groups(params)


def merge_param_groups(groups):
    """One group per distinct combination of options, in first-seen order.

    Args:
        groups (list[dict]): Groups with ``params`` (a list) and options (lr, weight decay...).

    Returns:
        list[dict]: The merged groups, each tensor in exactly one of them.
    """
    merged = {}
    for group in groups:
        key = tuple(sorted((k, repr(v)) for k, v in group.items() if k != 'params'))
        if key not in merged:
            merged[key] = {**group, 'params': []}
        merged[key]['params'].extend(group['params'])
    return list(merged.values())


class PerParameterClipMixin:
    """Adds ``clip_grad=dict(type='per_parameter', max_norm=...)`` to an mmengine optim
    wrapper: DINO's clipping of each parameter's gradient on its own (mmengine's ``'norm'``
    clips the global norm). The other clip types work as upstream."""

    def __init__(self, optimizer, clip_grad=None, **kwargs):
        per_parameter = bool(clip_grad) and clip_grad.get('type') == 'per_parameter'
        if per_parameter:
            extra = set(clip_grad) - {'type', 'max_norm'}
            if extra or 'max_norm' not in clip_grad:
                raise ValueError("clip_grad=dict(type='per_parameter', max_norm=X) takes "
                                 f'max_norm only, got {dict(clip_grad)}')
            clip_grad = dict(type='norm', max_norm=float(clip_grad['max_norm']))
        # by keyword: AmpOptimWrapper's first positional parameter is loss_scale
        super().__init__(optimizer=optimizer, clip_grad=clip_grad, **kwargs)
        if per_parameter:
            self.clip_func = clip_gradients_per_parameter


@OPTIM_WRAPPERS.register_module()
class DINOOptimWrapper(PerParameterClipMixin, OptimWrapper):
    """mmengine ``OptimWrapper`` that also knows DINO's per-parameter gradient clipping."""


@OPTIM_WRAPPERS.register_module()
class DINOAmpOptimWrapper(PerParameterClipMixin, AmpOptimWrapper):
    """mmengine ``AmpOptimWrapper`` (what ``--amp`` selects for ``DINOOptimWrapper``) with
    DINO's per-parameter gradient clipping, applied after unscaling."""
