"""Data of the emergence run, made once and kept on the device.

- Training images: isolated objects (one centred object on a plain background, the one
  measured setting where DINO learns at small scale, docs/architecture.md section 6)
  rendered in memory on every CPU core into one (M, 3, S, S) uint8 tensor, cached as a
  ``.pt`` file.
- Held-out sets on disk, in the layouts the project's tools read, written by
  ``generate_dataset``: the demo's isolated objects (part masks, category labels: k-NN bank
  and queries, part mIoU) and the demo's scenes (part masks and COCO boxes: part mIoU on
  clutter, CorLoc). Same seeds and sizes as ``make demo``, so the figures compare with the
  demo's; the training images come from another seed and never overlap them.
"""
import multiprocessing
import os
import time

import numpy as np
import torch

from ..analysis.io import load_image
from ..data import SYNTHETIC_VERSION, generate_dataset, render_sample
from ..data.images import read_label_list
from ..models.weights import atomic_save

__all__ = ['EvalSets', 'load_labelled_images', 'prepare_eval_sets', 'render_training_images']

TRAIN_SEED = 7  # the demo's held-out sets use seed 0: disjoint scenes


def _render_one(task):
    """(index, size, seed, layout) -> (image (S, S, 3) uint8, category id)."""
    index, size, seed, layout = task
    sample = render_sample(index, size=size, seed=seed, layout=layout)
    return sample['image'], sample['label']


def _render_all(num_images, size, seed, layout, workers):
    """Render ``num_images`` samples in a process pool; (M, 3, S, S) uint8 and (M,) labels."""
    tasks = [(i, size, seed, layout) for i in range(num_images)]
    if workers > 1:
        ctx = multiprocessing.get_context('fork' if os.name == 'posix' else 'spawn')
        with ctx.Pool(workers) as pool:
            results = pool.map(_render_one, tasks, chunksize=max(1, num_images // (8 * workers)))
    else:
        results = [_render_one(t) for t in tasks]
    images = np.stack([r[0] for r in results])                       # (M, S, S, 3)
    labels = np.array([r[1] for r in results], dtype=np.int64)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def render_training_images(cache_dir, num_images, size=96, seed=TRAIN_SEED, layout='isolated',
                           workers=None, log=print):
    """Training images as one uint8 tensor, rendered once and cached.

    Args:
        cache_dir (str): Folder for the cache file (created when missing).
        num_images (int): Images M.
        size (int): Image side S.
        seed (int): Generator seed (the held-out sets use 0).
        layout (str): ``render_sample`` layout.
        workers (int | None): Rendering processes (None: every CPU core).
        log (callable): Progress messages.

    Returns:
        tuple[Tensor, Tensor]: (M, 3, S, S) uint8 images and (M,) int64 category ids, on
        the CPU.
    """
    name = f'train_{layout}_{num_images}_{size}_{seed}_v{SYNTHETIC_VERSION}.pt'
    path = os.path.join(cache_dir, name)
    if os.path.isfile(path):
        try:
            data = torch.load(path, weights_only=True)
            log(f'training images: {num_images} from the cache {path}')
            return data['images'], data['labels']
        except (OSError, RuntimeError, KeyError) as e:  # a killed write: render again
            log(f'training images: cache {path} unreadable ({e}); rendering again')
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    images, labels = _render_all(num_images, size, seed, layout, workers)
    seconds = time.perf_counter() - start
    log(f'training images: rendered {num_images} x {size} px ({layout}) on {workers} '
        f'processes in {seconds:.1f} s ({1000 * seconds * workers / num_images:.2f} ms per '
        'image per process)')
    os.makedirs(cache_dir, exist_ok=True)
    atomic_save({'images': images, 'labels': labels}, path)  # never a half-written cache
    return images, labels


def load_labelled_images(data_root, split):
    """The images and category ids listed in ``data_root/labels/<split>.txt``.

    Args:
        data_root (str): A generated dataset.
        split (str): ``training`` or ``validation``.

    Returns:
        tuple[Tensor, Tensor]: (M, 3, S, S) uint8 and (M,) int64 labels (all images of a
        generated set share one size).
    """
    entries = read_label_list(os.path.join(data_root, 'labels', f'{split}.txt'))
    arrays = [load_image(os.path.join(data_root, p)) for p, _ in entries]  # errors name it
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (M, 3, S, S)
    return images, torch.tensor([label for _, label in entries], dtype=torch.int64)


class EvalSets:
    """Paths of the held-out sets and their k-NN tensors.

    Attributes:
        objects (str): Isolated objects (generic part layout; labels; 20 % validation).
        scenes (str): Scenes (generic part layout; ``instances_validation.json``).
        bank (tuple[Tensor, Tensor]): k-NN bank: the objects' training split.
        query (tuple[Tensor, Tensor]): k-NN queries: the objects' validation split.
    """

    def __init__(self, objects, scenes):
        self.objects, self.scenes = objects, scenes
        self.bank = load_labelled_images(objects, 'training')
        self.query = load_labelled_images(objects, 'validation')


def prepare_eval_sets(cache_dir, num_objects=2000, num_scenes=1000, size=96, workers=None,
                      log=print):
    """Write (or reuse) the held-out sets: the demo's objects and scenes by default.

    Args:
        cache_dir (str): Parent folder of the two datasets.
        num_objects (int): Isolated objects (seed 0; the demo: 2000).
        num_scenes (int): Scenes (seed 0; the demo: 1000).
        size (int): Image side.
        workers (int | None): Rendering processes (None: every CPU core).
        log (callable): Progress messages.

    Returns:
        EvalSets: The two folders and the k-NN tensors.
    """
    workers = workers or os.cpu_count() or 1
    roots = {}
    for name, count, layout in (('objects', num_objects, 'isolated'),
                                ('scenes', num_scenes, 'scene')):
        root = os.path.join(cache_dir, f'{name}_{count}_{size}')
        summary = generate_dataset(root, count, size=size, seed=0, workers=workers,
                                   layout=layout)
        log(f'held-out {name}: {root} ({"reused" if summary["skipped"] else "written"}, '
            f'{summary["splits"]})')
        roots[name] = root
    return EvalSets(roots['objects'], roots['scenes'])
