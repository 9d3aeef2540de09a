"""Labelled image lists (``relative/path label`` lines) drawn from an ImageNet-layout folder."""
import os
import random

__all__ = ['class_subset_lines']


def class_subset_lines(data_root, per_class, seed=0, prefix=None):
    """A labelled subset of a class-per-sub-folder image tree, e.g. a k-NN bank.

    Args:
        data_root (str): Folder holding one sub-folder per class (ImageNet's ``train``).
        per_class (int): Images drawn per class (all of a class that has fewer).
        seed (int): Seed of the draw.
        prefix (str | None): Path written before each ``class/file`` (default: the basename
            of ``data_root``, so the list is relative to its parent folder).

    Returns:
        list[str]: ``prefix/class/file label`` lines, label = index of the class in sorted
        order, classes in that order.
    """
    # torchvision's list, imported here: importing rats_mm.data must not import torch
    from torchvision.datasets.folder import IMG_EXTENSIONS
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f'data_root {data_root!r} is not a directory')
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f'per_class must be an integer >= 1, got {per_class!r}')
    prefix = os.path.basename(os.path.normpath(data_root)) if prefix is None else prefix
    classes = sorted(e.name for e in os.scandir(data_root) if e.is_dir())
    if not classes:
        raise FileNotFoundError(f'no class sub-folders under {data_root!r}')
    rng = random.Random(seed)
    lines = []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(data_root, name))
                       if f.lower().endswith(IMG_EXTENSIONS))
        for f in sorted(rng.sample(files, min(per_class, len(files)))):
            lines.append(f'{os.path.join(prefix, name, f)} {label}')
    return lines
