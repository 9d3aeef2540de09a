"""Writing files so that a kill never leaves half of one (torch-free: the data generator,
the models' weights, the science run and the runtime all write through it)."""
import os
import tempfile

__all__ = ['atomic_write']


def atomic_write(path, write):
    """Write a file so that ``path`` never holds a partial one: ``write(f)`` fills a temporary
    file in the same folder, which is flushed, fsynced and renamed over ``path`` (atomic on
    POSIX). A kill mid-write leaves the previous ``path`` (if any) as it was.

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
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
