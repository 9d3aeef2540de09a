"""Writing files so that a kill never leaves half of one (torch-free: the data generator,
the models' weights, the science run and the runtime all write through it), and the one
JSON file writer on top of it."""
import json
import os
import tempfile

__all__ = ['atomic_write', 'write_json']


def _umask():
    """The process's umask (read once, at import: setting it to read it is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# What ``open(path, 'w')`` would give a new file (``mkstemp`` makes it owner-only).
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path, write):
    """Write a file so that ``path`` never holds a partial one: ``write(f)`` fills a temporary
    file in the same folder, which is flushed, fsynced and renamed over ``path`` (atomic on
    POSIX). A kill mid-write leaves the previous ``path`` (if any) as it was. The file gets
    the permissions a plain ``open(path, 'w')`` would give it.

    Args:
        path (str): Destination file; its folder must exist.
        write (callable): Called with the open binary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj, indent=None, default=None):
    """Write ``obj`` as JSON to ``path`` through :func:`atomic_write` (the project's one JSON
    file writer), creating the parent folders.

    Args:
        path (str | os.PathLike): Destination file.
        obj: JSON-serialisable object.
        indent (int | None): ``json.dumps`` indent (None: one line).
        default (callable | None): ``json.dumps`` fallback for values JSON cannot hold.

    Returns:
        str: ``path``.
    """
    path = str(path)
    text = json.dumps(obj, indent=indent, default=default)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode()))
    return path
