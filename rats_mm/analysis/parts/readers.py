"""Part-annotation readers for evaluation: a generic folder, PartImageNet, Pascal-Part.

Every reader yields items of one form, ``dict(image=(H, W, 3) uint8 RGB, parts=(H, W) uint8,
path=str)``, part id 0 being background and 255 ignore. Bad input (missing, unreadable or
mismatched files) raises ``FileNotFoundError`` / ``ValueError`` naming the file(s) concerned.
"""
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ...data.images import IMAGE_EXTENSIONS, load_rgb

__all__ = ['IMAGE_EXTENSIONS', 'PartFolder', 'read_partimagenet', 'read_pascal_part']

IGNORE = 255


def _load_mask(path):
    """(H, W) uint8 ids of a single-channel (L / P / I) PNG, or an error naming it."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode not in ('L', 'P', 'I', 'I;16'):
                raise ValueError(f'part mask {path} has mode {im.mode}; expected a '
                                 f'single-channel (L or P) PNG of part ids')
            mask = np.asarray(im)
    except (OSError, SyntaxError) as e:
        raise ValueError(f'cannot read part mask {path}: {e}') from e
    if mask.max(initial=0) > 255 or mask.min(initial=0) < 0:
        raise ValueError(f'part mask {path} holds ids outside 0..255')
    return mask.astype(np.uint8)


class PartFolder(Sequence):
    """Images under ``root/images/**`` with part masks at ``root/parts/<same path>.png``.

    Masks are single-channel PNGs of part ids (0 background, 255 ignore). Missing masks are
    found when the folder is opened, size mismatches and unreadable files when an item is
    read.

    Args:
        root (str | Path): Dataset folder.
        num_classes (int | None): Number of part classes (background included). None: the
            largest id in all masks + 1, found on first use of ``num_part_classes``.
    """

    def __init__(self, root, num_classes=None):
        self.root = Path(root)
        image_dir = self.root / 'images'
        if not image_dir.is_dir():
            raise FileNotFoundError(f'no image folder {image_dir}')
        self.images = sorted(p for p in image_dir.rglob('*')
                             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.images:
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {image_dir}')
        self.masks = [self.root / 'parts' / p.relative_to(image_dir).with_suffix('.png')
                      for p in self.images]
        for image, mask in zip(self.images, self.masks):
            if not mask.is_file():
                raise FileNotFoundError(f'image {image} has no part mask (expected {mask})')
        self._num_classes = num_classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        """Args:
            i (int): Item index.

        Returns:
            dict: ``image`` (H, W, 3) uint8, ``parts`` (H, W) uint8, ``path`` (str, image file).
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f'index {i} out of range for {len(self)} items')
        image_path, mask_path = self.images[i], self.masks[i]
        image, parts = load_rgb(image_path), _load_mask(mask_path)
        if image.shape[:2] != parts.shape:
            raise ValueError(f'size mismatch: image {image_path} is {image.shape[:2]}, part '
                             f'mask {mask_path} is {parts.shape}')
        if self._num_classes is not None:
            bad = parts[(parts >= self._num_classes) & (parts != IGNORE)]
            if bad.size:
                raise ValueError(f'part mask {mask_path} holds id {int(bad.max())} >= '
                                 f'num_classes={self._num_classes}')
        return {'image': image, 'parts': parts, 'path': str(image_path)}

    @property
    def num_part_classes(self):
        """int: Part classes, background included (scans all masks once if not given)."""
        if self._num_classes is None:
            top = 0
            for mask_path in self.masks:
                ids = np.unique(_load_mask(mask_path))
                ids = ids[ids != IGNORE]
                top = max(top, int(ids.max(initial=0)))
            self._num_classes = top + 1
        return self._num_classes


def _decode_segmentation(seg, h, w, where):
    """COCO polygons / RLE -> (h, w) bool mask with pycocotools."""
    from pycocotools import mask as mask_utils
    try:
        if isinstance(seg, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if seg else None
        elif isinstance(seg, dict) and isinstance(seg.get('counts'), list):
            rle = mask_utils.frPyObjects(seg, h, w)  # uncompressed RLE
        elif isinstance(seg, dict):
            rle = dict(seg, counts=seg['counts'].encode() if isinstance(seg['counts'], str)
                       else seg['counts'])
        else:
            raise TypeError(f'unknown segmentation type {type(seg).__name__}')
        if rle is None:
            return np.zeros((h, w), dtype=bool)
        with warnings.catch_warnings():  # pycocotools' own numpy-2 copy=False notice
            warnings.filterwarnings('ignore', message='__array__ implementation',
                                    category=DeprecationWarning)
            mask = mask_utils.decode(rle)
    except Exception as e:  # pycocotools raises assorted types on bad input
        raise ValueError(f'{where}: cannot decode segmentation: {e}') from e
    if mask.shape[:2] != (h, w):
        raise ValueError(f'{where}: segmentation is {mask.shape[:2]}, image entry says {(h, w)}')
    return mask.astype(bool)


class _PartImageNetItems(Sequence):
    """Lazy list of PartImageNet items (images decoded and parts rasterised on access)."""

    def __init__(self, images, anns, image_root, ann_file, cat_to_part, part_names):
        self.images, self.anns, self.image_root = images, anns, Path(image_root)
        self.ann_file, self.cat_to_part, self.part_names = ann_file, cat_to_part, part_names

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f'index {i} out of range for {len(self)} items')
        info = self.images[i]
        path = self.image_root / info['file_name']
        image = load_rgb(path)
        h, w = int(info['height']), int(info['width'])
        if image.shape[:2] != (h, w):
            raise ValueError(f'size mismatch: image {path} is {image.shape[:2]}, annotation '
                             f'file {self.ann_file} says {(h, w)}')
        parts = np.zeros((h, w), dtype=np.uint8)
        for ann in self.anns.get(info['id'], []):  # file order: later parts paint over
            where = f'{self.ann_file} annotation {ann.get("id")} (image {path})'
            mask = _decode_segmentation(ann['segmentation'], h, w, where)
            parts[mask] = IGNORE if ann.get('iscrowd', 0) else self.cat_to_part[ann['category_id']]
        return {'image': image, 'parts': parts, 'path': str(path),
                'part_names': self.part_names}


def read_partimagenet(ann_file, image_root):
    """Read PartImageNet's COCO-style part annotations.

    Categories are parts (``name``, ``supercategory``); part id = 1 + rank of the category id
    (0 is background), names in ``part_names``. Part polygons / RLEs are rasterised with
    pycocotools in file order (an overlapped pixel takes the later part); crowd regions
    become ignore (255). Images without annotations are all background.

    Args:
        ann_file (str | Path): The JSON file (e.g. ``train.json``).
        image_root (str | Path): Folder that ``file_name`` entries are relative to.

    Returns:
        Sequence[dict]: A lazy, list-like sequence (len, indexing, iteration) of items
        ``image``, ``parts``, ``path`` and ``part_names`` (list, index = part id).
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f'annotation file not found: {ann_file}')
    try:
        data = json.loads(ann_file.read_text())
        images, cats, anns = data['images'], data['categories'], data.get('annotations', [])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{ann_file} is not a COCO-style annotation file: {e!r}') from e
    cats = sorted(cats, key=lambda c: c['id'])
    if len(cats) > 254:
        raise ValueError(f'{ann_file}: {len(cats)} part categories do not fit uint8 ids')
    cat_to_part = {c['id']: k + 1 for k, c in enumerate(cats)}
    part_names = ['background'] + [c['name'] for c in cats]
    image_ids = {im['id'] for im in images}
    by_image = {}
    for ann in anns:
        if ann['image_id'] not in image_ids:
            raise ValueError(f'{ann_file}: annotation {ann.get("id")} refers to unknown image '
                             f'{ann["image_id"]}')
        if ann['category_id'] not in cat_to_part:
            raise ValueError(f'{ann_file}: annotation {ann.get("id")} has unknown category '
                             f'{ann["category_id"]}')
        by_image.setdefault(ann['image_id'], []).append(ann)
    for im in images:
        if not (Path(image_root) / im['file_name']).is_file():
            raise FileNotFoundError(f'{ann_file} lists image {im["file_name"]}, not found at '
                                    f'{Path(image_root) / im["file_name"]}')
    return _PartImageNetItems(images, by_image, image_root, ann_file, cat_to_part, part_names)


def _struct_list(x):
    """A MATLAB struct array as loaded with squeeze_me (one struct, array or empty) -> list."""
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return list(x.reshape(-1))
    return [x]


def _lookup(part_names, cls, part=None):
    """Id of ``'cls/part'``, then ``'part'`` (or of ``'cls'`` when ``part`` is None)."""
    keys = [cls] if part is None else [f'{cls}/{part}', part]
    for key in keys:
        if key in part_names:
            return int(part_names[key])
    return None


def _load_anno(mat_file):
    """The ``anno`` struct of a Pascal-Part .mat file, or an error naming the file."""
    from scipy.io import loadmat
    mat_file = Path(mat_file)
    if not mat_file.is_file():
        raise FileNotFoundError(f'Pascal-Part file not found: {mat_file}')
    try:
        data = loadmat(str(mat_file), squeeze_me=True, struct_as_record=False)
    except Exception as e:  # scipy raises assorted types on corrupt files
        raise ValueError(f'cannot read Pascal-Part file {mat_file}: {e}') from e
    if 'anno' not in data:
        raise ValueError(f'{mat_file} has no "anno" struct (keys: {sorted(data)})')
    return data['anno']


def _paint(parts, mask, cls, part, part_names, unmapped, where):
    """Paint ``mask`` with the id of (cls, part), following the ``unmapped`` policy."""
    pid = _lookup(part_names, cls, part)
    if pid is None:
        if unmapped == 'error':
            name = cls if part is None else f'{cls}/{part}'
            raise ValueError(f'{where}: {name!r} is not in part_names (pass unmapped='
                             f"'ignore' or 'background' to accept it)")
        pid = IGNORE if unmapped == 'ignore' else None
    if pid is not None:
        parts[mask] = pid


def read_pascal_part(mat_file, part_names, unmapped='error', image_root=None):
    """Rasterise one Pascal-Part annotation (``anno.objects[k].parts[p].mask``) to part ids.

    Objects are painted in file order (a later object covers an earlier one). Within an
    object, its whole mask first gets the id of ``part_names[class]`` if that key exists and
    ignore (255) otherwise (the gaps between part masks); then its parts are painted with the
    id of ``part_names['class/part_name']`` or, failing that, ``part_names['part_name']``.
    An object without parts needs the ``class`` key. Everything else stays 0 (background).

    Args:
        mat_file (str | Path): A Pascal-Part ``.mat`` file (e.g. ``2008_000002.mat``).
        part_names (dict[str, int]): Name -> part id in 1..254; keys ``'part'`` (e.g.
            ``'head'``), ``'class/part'`` (e.g. ``'cow/head'``) or ``'class'`` (whole object).
        unmapped (str): What to do with a part (or part-less object) not in ``part_names``:
            ``'error'`` (ValueError naming it and the file), ``'ignore'`` (paint 255) or
            ``'background'`` (leave it as it is).
        image_root (str | Path | None): Folder of the JPEG images; when given, the item also
            holds the image ``<image_root>/<anno.imname>.jpg`` (sizes must match).

    Returns:
        dict: ``parts`` (H, W) uint8, ``path`` (image file if read, else ``mat_file``),
        ``mat_file`` (str), ``objects`` (list of class names), and ``image`` (H, W, 3) uint8
        when ``image_root`` is given.
    """
    if unmapped not in ('error', 'ignore', 'background'):
        raise ValueError(f"unmapped={unmapped!r} is not 'error', 'ignore' or 'background'")
    for key, pid in part_names.items():
        if not 1 <= int(pid) <= 254:
            raise ValueError(f'part_names[{key!r}] = {pid} is outside 1..254')
    anno = _load_anno(mat_file)
    objects = _struct_list(getattr(anno, 'objects', None))
    item = {'path': str(mat_file), 'mat_file': str(mat_file), 'objects': []}
    size = None
    if image_root is not None:
        image_path = Path(image_root) / f'{getattr(anno, "imname", Path(mat_file).stem)}.jpg'
        item.update(image=load_rgb(image_path), path=str(image_path))
        size = item['image'].shape[:2]
    if size is None:
        if not objects:
            raise ValueError(f'{mat_file} has no objects; pass image_root to know the image '
                             f'size')
        size = np.shape(getattr(objects[0], 'mask', None))
    parts = np.zeros(size, dtype=np.uint8)
    for k, obj in enumerate(objects):
        where = f'{mat_file} object {k}'
        try:
            cls, mask = str(getattr(obj, 'class')), np.asarray(obj.mask).astype(bool)
        except AttributeError as e:
            raise ValueError(f'{where}: missing field ({e})') from e
        if mask.shape != parts.shape:
            raise ValueError(f'{where} ({cls}): mask is {mask.shape}, expected {parts.shape} '
                             f'(image {item["path"]})')
        item['objects'].append(cls)
        _paint_object(parts, obj, cls, mask, part_names, unmapped, where)
    item['parts'] = parts
    return item


def _paint_object(parts, obj, cls, mask, part_names, unmapped, where):
    """Paint one object's fill (class id or ignore) and then its parts."""
    obj_parts = _struct_list(getattr(obj, 'parts', None))
    if obj_parts:
        pid = _lookup(part_names, cls)
        parts[mask] = IGNORE if pid is None else pid
    else:
        _paint(parts, mask, cls, None, part_names, unmapped, where)
    for p, part in enumerate(obj_parts):
        try:
            name, pmask = str(part.part_name), np.asarray(part.mask).astype(bool)
        except AttributeError as e:
            raise ValueError(f'{where} ({cls}) part {p}: missing field ({e})') from e
        if pmask.shape != mask.shape:
            raise ValueError(f'{where} ({cls}) part {p} ({name}): mask is {pmask.shape}, '
                             f'object mask is {mask.shape}')
        _paint(parts, pmask, cls, name, part_names, unmapped, f'{where} ({cls}) part {p}')
