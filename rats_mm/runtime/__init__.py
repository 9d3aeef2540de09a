"""What every training run shares, pretraining or dense: checkpoints that load with
``weights_only=True`` and the command-line plumbing of ``tools/pretrain.py``,
``tools/train.py`` and ``tools/test.py`` (config, work dir, resume, AMP, distributed start-up
on CPU or GPU), atomic checkpoints and a resume that neither replays the data loader nor
stops at a checkpoint a kill left unreadable."""
from .checkpoint import PlainCheckpointHook
from .resume import AtomicLocalBackend, ResumableIterBasedTrainLoop

__all__ = ['AtomicLocalBackend', 'PlainCheckpointHook', 'ResumableIterBasedTrainLoop']
