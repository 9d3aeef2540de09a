"""What every training run shares, pretraining or dense: checkpoints that load with
``weights_only=True`` and the command-line plumbing of ``tools/pretrain.py``,
``tools/train.py`` and ``tools/test.py`` (config, work dir, resume, AMP, distributed start-up
on CPU or GPU)."""
from .checkpoint import PlainCheckpointHook

__all__ = ['PlainCheckpointHook']
