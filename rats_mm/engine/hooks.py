"""mmengine hooks for pretraining: DINO schedules, the k-NN monitor, plain checkpoints."""
import json
import os

import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS, HOOKS

from ..ssl import cosine_schedule, knn_accuracy, linear_warmup_then_constant
from .data import multicrop_collate


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class DINOScheduleHook(Hook):
    """Sets the teacher momentum (cosine) and temperature (linear warm-up) every iteration.

    Values are functions of ``runner.iter``, so a resumed run continues the same schedules.
    (Learning rate and weight decay use mmengine's param schedulers.)

    Args:
        momentum (tuple): Teacher EMA momentum (start, end), DINO: (0.996, 1.0).
        teacher_temp (tuple): Teacher temperature (start, end), DINO: (0.04, 0.07).
        teacher_temp_warmup_iters (int): Iterations of the temperature warm-up.
    """

    priority = 'NORMAL'

    def __init__(self, momentum=(0.996, 1.0), teacher_temp=(0.04, 0.07),
                 teacher_temp_warmup_iters=0):
        self.momentum = momentum
        self.teacher_temp = teacher_temp
        self.teacher_temp_warmup_iters = teacher_temp_warmup_iters

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = _unwrap(runner.model)
        step = runner.iter
        model.current_iter = step
        model.teacher_momentum = cosine_schedule(step, runner.max_iters, *self.momentum)
        model.teacher_temp = linear_warmup_then_constant(
            step, self.teacher_temp_warmup_iters, *self.teacher_temp)


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Logs ``images_per_s``: images of all processes per second of the last iteration.

    Runs after ``IterTimerHook`` has recorded the iteration time and before ``LoggerHook``.
    """

    priority = 55  # between NORMAL (50, IterTimerHook) and BELOW_NORMAL (60, LoggerHook)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        iter_time = runner.message_hub.get_scalar('train/time').current()
        loader = runner.train_dataloader
        if iter_time > 0:
            runner.message_hub.update_scalar(
                'train/images_per_s', loader.batch_size * runner.world_size / iter_time)


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Weighted k-NN top-1 accuracy of the teacher embedding on a labelled split.

    Logged (``knn_top1``) and appended to ``WORK_DIR/knn.json`` every ``interval`` iterations
    and after training. Runs on the main process only.

    Args:
        bank (dict): Dataset config of the labelled reference images (``data_root``
            defaults to the training dataset's).
        query (dict): Dataset config of the labelled images to classify (likewise).
        interval (int): Iterations between evaluations (0: only after training).
        k (int): Neighbours.
        temperature (float): Vote temperature.
        batch_size (int): Images per forward.
    """

    priority = 'LOW'

    def __init__(self, bank, query, interval=0, k=20, temperature=0.07, batch_size=64):
        self.bank_cfg, self.query_cfg = bank, query
        self.interval, self.k, self.temperature = interval, k, temperature
        self.batch_size = batch_size
        self.datasets = None
        self.last_iter = None

    def before_train(self, runner):
        """Build both datasets now, so a wrong path fails before training starts. A config
        without ``data_root`` takes the training dataset's."""
        train_root = getattr(runner.train_dataloader.dataset, 'data_root', None)
        self.datasets = [DATASETS.build(dict({'data_root': train_root}, **cfg))
                         for cfg in (self.bank_cfg, self.query_cfg)]

    @torch.no_grad()
    def _features(self, model, dataset):
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size,
                                             collate_fn=multicrop_collate)
        device = next(model.parameters()).device
        feats, labels = [], []
        for batch in loader:
            feats.append(model.teacher['backbone'](batch['inputs'].to(device)).float().cpu())
            labels.append(batch['data_samples']['labels'])
        return torch.cat(feats), torch.cat(labels)

    @master_only
    def evaluate(self, runner, done_iters):
        """Compute, log and record the k-NN accuracy after ``done_iters`` iterations."""
        model = _unwrap(runner.model)
        was_training = model.training
        model.eval()
        bank_x, bank_y = self._features(model, self.datasets[0])
        query_x, query_y = self._features(model, self.datasets[1])
        model.train(was_training)
        classes = torch.unique(bank_y)
        remap = {int(c): i for i, c in enumerate(classes)}
        bank_y = torch.tensor([remap[int(y)] for y in bank_y])
        query_y = torch.tensor([remap.get(int(y), -1) for y in query_y])
        acc = knn_accuracy(bank_x, bank_y, query_x, query_y, len(classes), self.k,
                           self.temperature)
        self.last_iter = done_iters
        runner.message_hub.update_scalar('train/knn_top1', acc)
        runner.logger.info(f'k-NN (k={self.k}) top-1 of the teacher embedding at iter '
                           f'{done_iters}: {acc:.4f} ({len(query_y)} queries, '
                           f'{len(bank_y)} bank images, {len(classes)} classes)')
        path = os.path.join(runner.work_dir, 'knn.json')
        history = []
        if os.path.exists(path):
            with open(path) as f:
                history = json.load(f)
        history.append({'iter': done_iters, 'knn_top1': acc, 'k': self.k})
        with open(path, 'w') as f:
            json.dump(history, f, indent=1)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self.evaluate(runner, runner.iter + 1)  # runner.iter counts from 0 here

    def after_train(self, runner):
        if self.last_iter != runner.iter:
            self.evaluate(runner, runner.iter)


_BUFFER_TAG = '__history_buffer__'


def _to_plain(obj):
    """Replace objects that ``torch.load(weights_only=True)`` refuses by plain containers."""
    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {_BUFFER_TAG: True, 'log': log.tolist(), 'count': count.tolist(),
                'max_length': obj.max_length}
    if isinstance(obj, dict):
        return type(obj)((k, _to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _from_plain(obj):
    if isinstance(obj, dict):
        if obj.get(_BUFFER_TAG):
            return HistoryBuffer(obj['log'], obj['count'], obj['max_length'])
        return type(obj)((k, _from_plain(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_from_plain(v) for v in obj]
    return obj


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Saves checkpoints as tensors and plain containers only, so that they load with
    ``torch.load(weights_only=True)`` (torch's default, which mmengine 0.10.7 relies on), and
    restores mmengine's history buffers when such a checkpoint is loaded (``--resume``)."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint):
        for key in ('meta', 'message_hub', 'param_schedulers'):
            if key in checkpoint:
                checkpoint[key] = _to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint):
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = _from_plain(checkpoint['message_hub'])
