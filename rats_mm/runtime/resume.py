"""Runs that survive being killed: checkpoints written atomically, a resume that steps over
an unreadable checkpoint, and a resume that does not replay the data loader.

- ``AtomicLocalBackend`` (mmengine file backend ``'atomic_local'``): every checkpoint goes to a
  temporary file in the work dir, is fsynced, then renamed; mmengine's ``CheckpointHook``
  writes ``last_checkpoint`` only after that, so a kill mid-write leaves the previous
  checkpoint and ``last_checkpoint`` intact.
- ``resume_checkpoint``: ``--resume`` picks the newest readable checkpoint of the work dir
  (a truncated one is skipped with a warning naming it and why); an explicit unreadable file
  fails at once.
- ``ResumableIterBasedTrainLoop``: mmengine's ``IterBasedTrainLoop`` resumes by drawing and
  discarding one batch per finished iteration ("Advance dataloader N steps": at iteration
  200,000 of an ImageNet run, 12.8 M images decoded and cropped per rank). This loop restarts
  the ``InfiniteSampler``'s index stream at the first sample not yet trained instead (indices
  only, no image read), which gives the uninterrupted run's batches.
"""
import itertools
import logging
import os
import re
import zipfile

from mmengine.dataset import InfiniteSampler
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop

from ..files import atomic_write

__all__ = ['AtomicLocalBackend', 'ResumableIterBasedTrainLoop', 'checkpoint_problem',
           'resume_checkpoint']

_STEP = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic writes (temporary file, fsync, rename)."""

    def put(self, obj, filepath):
        os.makedirs(os.path.dirname(os.path.abspath(str(filepath))), exist_ok=True)
        atomic_write(str(filepath), lambda f: f.write(obj))

    def put_text(self, obj, filepath, encoding='utf-8'):
        self.put(obj.encode(encoding), filepath)


def checkpoint_problem(path):
    """Why ``path`` cannot be resumed from, or None when it reads.

    A torch checkpoint is a zip archive: a file cut short loses its central directory, and
    a damaged one fails the CRC of a member (every byte is read once, no unpickling).

    Args:
        path (str): Checkpoint file.

    Returns:
        str | None: The reason, or None.
    """
    if not os.path.isfile(path):
        return 'no such file'
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                return f'corrupt member {bad}'
            if not any(n.endswith('data.pkl') for n in archive.namelist()):
                return 'not a torch checkpoint (no data.pkl)'
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f'unreadable ({err})'
    return None


def _candidates(work_dir):
    """Checkpoints of a work dir, newest step first (``last_checkpoint``'s target first)."""
    found = []
    if os.path.isdir(work_dir):
        found = [os.path.join(work_dir, f) for f in os.listdir(work_dir) if _STEP.match(f)]
    found.sort(key=lambda p: int(_STEP.match(os.path.basename(p)).group(1)), reverse=True)
    marker = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(marker):
        with open(marker) as f:
            last = f.read().strip()
        if last:
            found = [last] + [p for p in found if os.path.abspath(p) != os.path.abspath(last)]
    return found


def resume_checkpoint(work_dir, requested='auto'):
    """The checkpoint ``--resume`` loads.

    Args:
        work_dir (str): The run's work dir.
        requested (str): ``'auto'`` (newest readable checkpoint of ``work_dir``) or a file.

    Returns:
        tuple[str | None, list[str]]: The checkpoint (None when ``'auto'`` finds none: the run
        starts from scratch) and one warning per checkpoint skipped, naming it and why.
        Raises ``RuntimeError`` naming the file for an unreadable explicit file, and naming
        them all when no checkpoint of the work dir reads.
    """
    if requested != 'auto':
        problem = checkpoint_problem(requested)
        if problem:
            raise RuntimeError(f'--resume {requested}: cannot resume from it: {problem}')
        return requested, []
    candidates, warnings = _candidates(work_dir), []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return path, warnings
        warnings.append(f'resume: skipped {path}: {problem}')
    if candidates:
        raise RuntimeError('resume: no readable checkpoint in ' + work_dir + ':\n  ' +
                           '\n  '.join(warnings))
    return None, warnings


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that resumes without replaying the data loader (see the module
    docstring); with a sampler other than ``InfiniteSampler`` it advances as mmengine does."""

    def _skip_trained_samples(self):
        """Restart the sampler's index stream after the samples of the finished iterations;
        False when the sampler cannot (the caller then advances the loader)."""
        loader = self.dataloader
        batch_sampler = loader.batch_sampler
        sampler = getattr(batch_sampler, 'sampler', loader.sampler)
        if not isinstance(sampler, InfiniteSampler):
            return False
        batch_size = loader.batch_size or getattr(batch_sampler, 'batch_size', None)
        skip = self._iter * batch_size
        # mmengine 0.10.7: InfiniteSampler iterates the one generator it keeps in `indices`
        sampler.indices = itertools.islice(sampler._indices_of_rank(), skip, None)
        self.dataloader_iterator = type(self.dataloader_iterator)(loader)
        print_log(f'Resumed at iteration {self._iter}: the sampler restarts after the '
                  f'{skip} samples per rank already trained (indices only, no image read)',
                  logger='current')
        return True

    def run(self):
        """Launch training (mmengine's loop, with the resume above)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0 and not self._skip_trained_samples():
            print_log(f'Advance dataloader {self._iter} steps: {type(self.dataloader.sampler)}'
                      ' cannot restart its index stream', logger='current',
                      level=logging.WARNING)
            for _ in range(self._iter):
                next(self.dataloader_iterator)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
