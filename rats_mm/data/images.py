"""Image folders and the transforms that read them, shared by pretraining (registered into
mmengine by ``rats_mm.pretrain``), the probes (``rats_mm.runtime.probe_cli``) and the analyses
(``rats_mm.analysis``): one home for reading images. Pure PyTorch / torchvision / PIL; not
imported by ``rats_mm.data`` itself, which stays free of torch."""
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'IMAGE_EXTENSIONS', 'LUMA', 'EvalTransform',
           'ImageFolderDataset', 'load_rgb', 'normalise_uint8', 'read_label_list']

logger = logging.getLogger('rats_mm')
IMAGE_EXTENSIONS = IMG_EXTENSIONS  # torchvision's list
# The one home of the normalisation every network of the project sees (ImageNet's
# per-channel mean and std of [0, 1] pixels) and of the grayscale weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as torchvision's rgb_to_grayscale
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_rgb(path):
    """(H, W, 3) uint8 RGB array of an image file, or an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'image file not found: {path}')
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert('RGB'))
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'cannot read image {path}: {e}') from e


def normalise_uint8(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Pixels in 0..255 -> float32 ``(x / 255 - mean) / std``: the numbers of torchvision's
    ``ToTensor`` + ``Normalize`` (and of :class:`EvalTransform`), on any device.

    Args:
        images (Tensor): (..., 3, H, W) uint8 (or float in 0..255).
        mean (Sequence[float]): Per-channel mean in [0, 1].
        std (Sequence[float]): Per-channel std in [0, 1].

    Returns:
        Tensor: (..., 3, H, W) float32 on the images' device.
    """
    x = images.float() / 255.0
    return (x - x.new_tensor(mean).view(3, 1, 1)) / x.new_tensor(std).view(3, 1, 1)


class EvalTransform:
    """Resize (short side to ``size / crop_ratio``), centre-crop ``size``, normalise.

    Args:
        size (int): Output size.
        crop_ratio (float): Crop fraction of the resized short side (DINO: 0.875).
        mean (tuple): Normalisation mean.
        std (tuple): Normalisation std.
        grayscale (bool): Convert to 3-channel grayscale first, for a network pretrained on
            grayscale views (its colour responses were never trained).
    """

    def __init__(self, size=224, crop_ratio=0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 grayscale=False):
        gray = [T.Grayscale(num_output_channels=3)] if grayscale else []
        self.transform = T.Compose([
            *gray,
            T.Resize(int(round(size / crop_ratio)), interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])

    def __call__(self, image):
        return self.transform(image)


def read_label_list(ann_file):
    """The ``path label`` lines of a label list (``labels/<split>.txt``): the project's one
    parser of them (image folders, the science run's data, the analyses' categories).

    Blank lines are skipped; every other line is a path (relative to the dataset root) and an
    integer label (negative: unlabelled).

    Args:
        ann_file (str | Path): The list.

    Returns:
        list[tuple[str, int]]: (path as written, label) per line, in order.

    Raises:
        ValueError: On a malformed line, naming the file and the line.
    """
    entries = []
    with open(ann_file) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise ValueError(f'{ann_file}:{lineno}: expected "path label" (an integer '
                                 f'label), got {line!r}')
            entries.append((parts[0], int(parts[1])))
    return entries


def _read_labels(ann_file, data_root):
    """``path label`` lines (path relative to ``data_root``) -> (paths, labels)."""
    entries = read_label_list(ann_file)
    return [os.path.join(data_root, p) for p, _ in entries], [label for _, label in entries]


def _scan_folder(data_root, extensions):
    """Recursive image list; labels from the first-level folder name (ImageNet layout)."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(data_root, followlinks=True):
        dirnames.sort()
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                     if f.lower().endswith(extensions))
    top = [os.path.relpath(p, data_root).split(os.sep)[0] for p in paths]
    has_classes = all(os.sep in os.path.relpath(p, data_root) for p in paths)
    classes = sorted(set(top)) if has_classes else []
    index = {name: i for i, name in enumerate(classes)}
    labels = [index[t] for t in top] if classes else [-1] * len(paths)
    return paths, labels, classes


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images under ``data_root`` (recursive, any common format), optionally labelled.

    Labels come from ``ann_file`` (lines ``relative/path.jpg label``) or, without it, from the
    first-level sub-folder (ImageNet layout); unlabelled images get -1. An unreadable file
    (corrupt, truncated, not an image) is skipped: the next readable one is returned, and the
    file is logged and counted once per process in the sample's ``skipped`` field (with
    several loader workers each worker counts the files it met).

    Args:
        data_root (str): Folder to read.
        pipeline (callable): Transform of a PIL RGB image (``MultiCropAugmentation``,
            :class:`EvalTransform`; the mmengine registration also takes a config dict).
        ann_file (str | None): Label file, relative to ``data_root`` unless absolute.
        extensions (tuple): Accepted file suffixes (lower case).
    """

    def __init__(self, data_root, pipeline, ann_file=None, extensions=IMAGE_EXTENSIONS):
        if not os.path.isdir(data_root):
            raise FileNotFoundError(f'data_root {data_root!r} is not a directory')
        self.data_root = data_root
        self.pipeline = self.build_pipeline(pipeline)
        if ann_file:
            ann_path = ann_file if os.path.isabs(ann_file) else os.path.join(data_root, ann_file)
            if not os.path.isfile(ann_path):
                raise FileNotFoundError(f'ann_file {ann_path!r} does not exist')
            self.paths, self.labels = _read_labels(ann_path, data_root)
            self.classes = [str(c) for c in sorted(set(self.labels))]
        else:
            self.paths, self.labels, self.classes = _scan_folder(data_root, tuple(extensions))
        if not self.paths:
            raise FileNotFoundError(f'no images ({", ".join(extensions)}) under {data_root!r}')
        self.unreadable = set()  # indices found unreadable in this process

    @staticmethod
    def build_pipeline(pipeline):
        """The transform (here: as given; the mmengine registration builds config dicts)."""
        return pipeline

    def report_skip(self, message):
        """Say that a file was skipped (here: a warning of the ``rats_mm`` logger)."""
        logger.warning(message)

    @property
    def num_skipped(self):
        return len(self.unreadable)

    @property
    def metainfo(self):
        return {'classes': tuple(self.classes)}

    def __len__(self):
        return len(self.paths)

    def _load(self, path):
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.convert('RGB')  # forces a full decode: truncation raises here

    def __getitem__(self, index):
        skipped = 0
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if i in self.unreadable:
                continue
            path = self.paths[i]
            try:
                image = self._load(path)
            except _READ_ERRORS as err:
                skipped += 1
                self.unreadable.add(i)
                self.report_skip(f'skipped unreadable image {path} ({type(err).__name__}: '
                                 f'{err}); {self.num_skipped} skipped so far in this process')
                continue
            label = self.labels[i]
            return {'inputs': self.pipeline(image), 'label': label, 'skipped': skipped}
        raise RuntimeError(f'no readable image under {self.data_root!r}')
