"""Build-time dataset checks that cost a start-up once, not at every start on every rank.

Checking ADE20K's labels opens ~22,000 annotation PNGs, which every rank would otherwise do
at every training and test start. Only global rank 0 checks (a bad file still fails the
job: rank 0 raises), and a passed check is remembered under a fingerprint of what
it read (each file's path, size and modification time: a ``stat``, not a read), so the next
start skips it. The stamps live in ``$RATS_MM_CACHE`` (default ``~/.cache/rats_mm``), under
``dataset_checks/``.
"""
import hashlib
import json
import os

from mmengine.dist import get_rank

__all__ = ['cache_dir', 'checked_once', 'fingerprint']


def cache_dir():
    """Folder of the check stamps (``$RATS_MM_CACHE/dataset_checks``)."""
    root = os.environ.get('RATS_MM_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'rats_mm')
    return os.path.join(root, 'dataset_checks')


def fingerprint(kind, paths, settings=None):
    """A key of the files a check reads (path, size, mtime each) and of its settings.

    Args:
        kind (str): What is checked (part of the key).
        paths (Iterable[str]): The files.
        settings (dict | None): Anything else the check's outcome depends on.

    Returns:
        str: A hex digest.
    """
    digest = hashlib.sha256(kind.encode())
    digest.update(json.dumps(settings or {}, sort_keys=True, default=str).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f'{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()


def checked_once(key, check):
    """Run ``check()`` on global rank 0 unless a stamp says the same files passed before.

    Args:
        key (str): :func:`fingerprint` of what ``check`` reads.
        check (callable): Raises on bad data.

    Returns:
        str: ``'checked'``, ``'remembered'`` (a stamp matched) or ``'other rank'``.
    """
    if get_rank() != 0:
        return 'other rank'
    stamp = os.path.join(cache_dir(), f'{key}.ok')
    if os.path.isfile(stamp):
        return 'remembered'
    check()
    try:
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        with open(stamp, 'w') as f:
            f.write('passed\n')
    except OSError:  # a read-only home only costs the check again next time
        pass
    return 'checked'
