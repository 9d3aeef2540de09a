"""The collapse diagnostics of ``rats_mm.ssl.diagnostics`` in mmengine pretraining."""
import os

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..ssl.checks import check_int
from ..ssl.diagnostics import training_diagnostics
from .hooks import _append_record, _unwrap, first_global_views

# The scalars logged (besides the model's own ``grad_norm_<group>``, read inside its step).
LOGGED = ('embedding_cosine', 'stream_norm_last_block', 'value_norm_last_block',
          'max_logit_last_block', 'centre_norm', 'register_within_head_similarity')


@HOOKS.register_module()
class CollapseDiagnosticsHook(Hook):
    """What moves first when a DINO run goes wrong, measured on a fixed batch.

    Before the first step, every ``interval`` iterations and after training, on the first
    ``num_images`` global crops of the first batch: the mean cosine between the teacher's
    embeddings of different images, per block the registers' (or [CLS]'s) residual-stream
    norm, the value and message norms and the largest attention logit of each step, the
    update / weight ratio of AdamW's last step per parameter group, and the DINO centre's
    norm, and for a RATS the within-head similarity of its final registers. The last block's
    figures and the embedding cosine go to the scalars
    (``train/<name>``), everything to ``work_dir/diagnostics.json``. The gradient norm per
    group is read by ``DINOPretrainer`` itself after its step (the optimizer wrapper clears
    the gradients before any hook runs) and logged as ``grad_norm_<group>``.

    Args:
        interval (int): Iterations between measurements (0: only before and after training).
        num_images (int): Images of the fixed batch (at least 2).
    """

    priority = 'LOW'

    def __init__(self, interval=0, num_images=32):
        check_int('interval', interval, 0)
        check_int('num_images', num_images, 2)
        self.interval, self.num_images = interval, num_images
        self.images, self.last_iter = None, None
        self.records = []  # every measurement, for CollapseMonitorHook's first sign

    def measure(self, runner, done_iters):
        """Measure, log the scalars and append the record."""
        model = _unwrap(runner.model)
        teacher = model.teacher['backbone']
        images = self.images.to(next(teacher.parameters()).device)
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        figures = training_diagnostics(teacher, model.student,
                                       getattr(optim_wrapper, 'optimizer', None),
                                       model.criterion, images, teacher)
        for name in LOGGED:
            if figures.get(name) is not None:
                runner.message_hub.update_scalar(f'train/{name}', figures[name])
        runner.logger.info(f'collapse diagnostics at iter {done_iters}: ' + ', '.join(
            f'{k} {figures[k]:.3f}' for k in LOGGED if figures.get(k) is not None))
        self.last_iter = done_iters
        self.records.append({'iter': done_iters, **figures})
        if runner.rank == 0:
            _append_record(os.path.join(runner.work_dir, 'diagnostics.json'),
                           {'iter': done_iters, **figures})
        return figures

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.images is not None:
            return
        self.images = first_global_views(runner, data_batch, self.num_images)
        if runner.iter == 0:  # the init, before any step
            self.measure(runner, 0)

    @torch.no_grad()
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self.measure(runner, runner.iter + 1)

    def after_train(self, runner):
        if self.images is not None and self.last_iter != runner.iter:
            self.measure(runner, runner.iter)
