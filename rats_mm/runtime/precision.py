"""Mixed precision and schedules that follow the machine, settled when a config is loaded
(``rats_mm.runtime.launch.settle_run_config``).

Precision: the ImageNet pretraining and Mask2Former configs ask for bf16 autocast
(``AmpOptimWrapper`` / ``DINOAmpOptimWrapper`` with ``dtype='bfloat16'`` and no loss scaler:
bf16 has float32's range). ``--amp fp16`` selects fp16 with a dynamic GradScaler (DINO's own
default); ``--amp`` alone is bf16. Without CUDA a config's mixed precision falls back to
float32 with a note (CPU runs are unchanged); an explicit ``--amp`` without CUDA is an error.
On CUDA, TF32 matrix products are enabled for whatever runs outside autocast.

Schedules: a config whose iteration counts were written for one total batch declares it as
``schedule_batch``; when the real total batch (processes x ``train_dataloader.batch_size``)
differs, every iteration count is rescaled so that the epochs stay what the config says
(DINO's schedules are per epoch), and the derivation is logged.
"""
import os

import torch

from ..models.acceleration import enable_tf32

__all__ = ['settle_precision', 'settle_schedule', 'world_size']

_AMP_TYPES = {'OptimWrapper': 'AmpOptimWrapper', 'DINOOptimWrapper': 'DINOAmpOptimWrapper'}
_PLAIN_TYPES = {v: k for k, v in _AMP_TYPES.items()}
AMP_MODES = {'bf16': ('bfloat16', dict(enabled=False)), 'fp16': ('float16', 'dynamic')}


def _amp_device_available():
    """The device check mmengine's AmpOptimWrapper itself makes (looked up at call time)."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    return amp_optimizer_wrapper.is_cuda_available()


def settle_precision(cfg, amp=None, log=print):
    """Apply ``--amp`` (None, ``'bf16'`` or ``'fp16'``) to ``cfg.optim_wrapper``.

    Args:
        cfg (mmengine.config.Config): The config (changed in place).
        amp (str | None): The command-line choice; None keeps the config's.
        log (callable): Receives the note when mixed precision is turned off.

    Returns:
        str: ``'bf16'``, ``'fp16'`` or ``'fp32'``, what the run will use.
    """
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if amp is not None:
        if amp not in AMP_MODES:
            raise ValueError(f'--amp {amp}: choose bf16 or fp16')
        if not _amp_device_available():
            raise RuntimeError('--amp needs a CUDA device (mmengine AmpOptimWrapper)')
        wrapper.type = _AMP_TYPES.get(kind, kind)
        wrapper.dtype, wrapper.loss_scale = AMP_MODES[amp]
    elif kind in _PLAIN_TYPES and not _amp_device_available():
        wrapper.type = _PLAIN_TYPES[kind]
        wrapper.pop('dtype', None)
        wrapper.pop('loss_scale', None)
        log(f'note: no CUDA device: the config\'s mixed precision ({kind}) is off, the run '
            'is float32')
        return 'fp32'
    enable_tf32()
    if wrapper.get('type') not in _PLAIN_TYPES:
        return 'fp32'
    return 'fp16' if str(wrapper.get('dtype')) in ('float16', 'torch.float16') else 'bf16'


def world_size(launcher):
    """Processes of the run: ``WORLD_SIZE`` (torchrun), ``SLURM_NTASKS`` (slurm), else 1."""
    if launcher == 'slurm':
        return int(os.environ.get('SLURM_NTASKS', 1))
    if launcher in ('pytorch', 'mpi'):
        return int(os.environ.get('WORLD_SIZE', os.environ.get('OMPI_COMM_WORLD_SIZE', 1)))
    return 1


def _scale(value, factor):
    return max(1, int(round(value * factor)))


def _iteration_fields(cfg):
    """(container, key) of every iteration count a config may hold: the loop's length and
    validation interval, the schedulers' spans and milestones, the model's frozen-layer span,
    the checkpoint interval and the custom hooks' intervals (the loop's
    ``dynamic_intervals`` are rescaled by ``settle_schedule`` itself)."""
    fields = [(cfg.train_cfg, k) for k in ('max_iters', 'val_interval') if k in cfg.train_cfg]
    model = cfg.get('model') or {}
    if 'freeze_last_layer_iters' in model:
        fields.append((model, 'freeze_last_layer_iters'))
    for scheduler in cfg.get('param_scheduler') or []:
        if not scheduler.get('by_epoch', True):
            fields += [(scheduler, k) for k in ('begin', 'end') if k in scheduler]
            milestones = scheduler.get('milestones') or []
            fields += [(milestones, i) for i in range(len(milestones))]
    hooks = list(cfg.get('custom_hooks') or [])
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and not checkpoint.get('by_epoch', False):
        hooks.append(checkpoint)
    for hook in hooks:
        fields += [(hook, k) for k in ('interval', 'teacher_temp_warmup_iters', 'patience')
                   if isinstance(hook.get(k), int) and hook.get(k) > 0]
    return fields


def settle_schedule(cfg, processes, log=print):
    """Rescale the iteration counts of a config with ``schedule_batch`` to the real batch.

    Args:
        cfg (mmengine.config.Config): The config (changed in place).
        processes (int): Number of training processes.
        log (callable): Receives the derivation.

    Returns:
        float: The factor applied (1.0 when nothing changed or the config declares no
        ``schedule_batch``).
    """
    planned = cfg.get('schedule_batch')
    if not planned or 'train_cfg' not in cfg or 'max_iters' not in cfg.train_cfg:
        return 1.0
    total = processes * cfg.train_dataloader.batch_size
    num_images = cfg.get('num_images')
    factor = planned / total
    if factor != 1.0:
        for container, key in _iteration_fields(cfg):
            container[key] = _scale(container[key], factor)
        if cfg.train_cfg.get('dynamic_intervals'):  # [(milestone, interval), ...]
            cfg.train_cfg['dynamic_intervals'] = [
                (_scale(m, factor), _scale(i, factor))
                for m, i in cfg.train_cfg['dynamic_intervals']]
    epochs = (f', {cfg.train_cfg.max_iters * total / num_images:.1f} epochs of '
              f'{num_images} images' if num_images else '')
    log(f'schedule: total batch {total} ({processes} x {cfg.train_dataloader.batch_size}); '
        f'the config\'s iteration counts were for {planned}: scaled by {factor:g} to '
        f'{cfg.train_cfg.max_iters} iterations{epochs}')
    return factor
