"""Checkpoints that load with ``torch.load(weights_only=True)``: every run's, pretraining or
dense (mmengine 0.10.7 pickles its history buffers and numpy scalars, which torch 2.13's
default ``weights_only=True`` refuses on resume)."""
import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

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
