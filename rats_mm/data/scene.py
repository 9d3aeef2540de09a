"""Scenes of the synthetic parts dataset: sampling object layouts and compositing them.

A scene is sampled once, in resolution-independent units (positions and sizes as fractions
of the image side), so the same (seed, index) gives the same scene at every image size.
Objects are painted in order onto a shared canvas; later objects occlude earlier ones and
the canvas records, per pixel, the visible part id, category id and object index.
"""
import cv2
import numpy as np

from .painting import (fill_contours, paint_texture, render_background, sample_background,
                       sample_part_appearance)
from .shapes import CATEGORIES, PART_TYPES, build_object

PART_IDS = {name: i + 1 for i, name in enumerate(PART_TYPES)}
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(CATEGORIES)}
NO_OBJECT = -1  # value of the object-index map where no object is visible
MAX_ROTATION = 0.5  # radians, either way
NUM_OBJECTS_PROBS = (0.45, 0.35, 0.2)  # probabilities of 1, 2, 3 objects
LAYOUTS = ('scene', 'object_centric', 'isolated')
PLAIN_GREY = np.array([128.0, 128.0, 128.0], dtype=np.float32)


def sample_object(rng, main, object_centric=False):
    """One object: category, local geometry, per-part appearance, pose and shading.

    Args:
        rng: numpy Generator.
        main: whether this is the scene's main object (larger, near the centre); other
            objects are smaller and may be anywhere, often partly out of frame.
        object_centric: the one subject of an object-centric image: larger still and
            centred (extent 0.7-0.9 of the side, centre within 0.42-0.58).

    Returns:
        Dict with ``category``, ``entries`` (from ``build_object``), ``appearance`` (part
        name -> dict from ``sample_part_appearance``), ``centre`` (fractions of the side),
        ``extent`` (object width as a fraction of the side), ``angle``, ``flip`` and
        ``light`` (direction x, direction y, strength).
    """
    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    entries = build_object(category, rng)
    names = sorted({name for name, _ in entries}, key=PART_IDS.get)
    appearance = {name: sample_part_appearance(name, rng) for name in names}
    if object_centric:
        centre, extent = rng.uniform(0.42, 0.58, 2), rng.uniform(0.7, 0.9)
    elif main:
        centre, extent = rng.uniform(0.3, 0.7, 2), rng.uniform(0.5, 0.85)
    else:
        centre, extent = rng.uniform(0.0, 1.0, 2), rng.uniform(0.25, 0.55)
    light_angle = rng.uniform(0.0, 2.0 * np.pi)
    return {
        'category': category, 'entries': entries, 'appearance': appearance,
        'centre': centre, 'extent': extent,
        'angle': rng.uniform(-MAX_ROTATION, MAX_ROTATION), 'flip': bool(rng.random() < 0.5),
        'light': (np.cos(light_angle), np.sin(light_angle), rng.uniform(0.0, 0.3)),
    }


def sample_scene(rng, layout='scene'):
    """A whole scene: background, 1-3 objects (main first) and the sensor noise level.

    Args:
        rng: numpy Generator.
        layout: ``'scene'`` (1-3 objects, clutter), ``'object_centric'`` (one large
            centred object and no clutter blobs, like ImageNet's one-subject photos) or
            ``'isolated'`` (the same subject on a plain grey background).

    Returns:
        Dict with ``background``, ``objects`` (list of ``sample_object`` dicts, in painting
        order) and ``noise_std`` (pixel noise standard deviation, 0-255 scale).
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout={layout!r} is not one of {LAYOUTS}')
    background = sample_background(rng)
    if layout in ('object_centric', 'isolated'):
        background['blobs'] = []
        if layout == 'isolated':  # same draws as object_centric, then a plain background
            background.update(colours=[PLAIN_GREY, PLAIN_GREY], stripes=None,
                              brightness=np.ones_like(background['brightness']))
        return {'background': background,
                'objects': [sample_object(rng, main=True, object_centric=True)],
                'noise_std': rng.uniform(2.0, 8.0)}
    num_objects = int(rng.choice(len(NUM_OBJECTS_PROBS), p=NUM_OBJECTS_PROBS)) + 1
    objects = [sample_object(rng, main=i == 0) for i in range(num_objects)]
    return {'background': background, 'objects': objects, 'noise_std': rng.uniform(2.0, 8.0)}


def local_to_pixels(points, obj, size):
    """Map local-frame points of an object to image pixel coordinates.

    Args:
        points: (n, 2) local (x, y).
        obj: dict from ``sample_object``.
        size: image side S.

    Returns:
        (n, 2) float pixel (x, y), integer values at pixel centres.
    """
    unit = obj['extent'] * size / 2.0
    x = -points[:, 0] if obj['flip'] else points[:, 0]
    c, s = np.cos(obj['angle']), np.sin(obj['angle'])
    px = obj['centre'][0] * size + unit * (c * x - s * points[:, 1])
    py = obj['centre'][1] * size + unit * (s * x + c * points[:, 1])
    return np.stack([px, py], axis=1) - 0.5


def pixels_to_local(px, py, obj, size):
    """Inverse of ``local_to_pixels``.

    Args:
        px, py: (n,) pixel coordinates (integer values at pixel centres).
        obj: dict from ``sample_object``.
        size: image side S.

    Returns:
        Tuple (u, v) of (n,) float32 local coordinates.
    """
    unit = obj['extent'] * size / 2.0
    dx = (px + 0.5 - obj['centre'][0] * size) / unit
    dy = (py + 0.5 - obj['centre'][1] * size) / unit
    c, s = np.cos(obj['angle']), np.sin(obj['angle'])
    x, v = c * dx + s * dy, c * dy - s * dx
    u = -x if obj['flip'] else x
    return u.astype(np.float32), v.astype(np.float32)


def rasterise_entries(obj, size):
    """Which entry of an object covers each pixel of the object's on-screen box.

    Args:
        obj: dict from ``sample_object``.
        size: image side S.

    Returns:
        Tuple (entry_map, x0, y0): (h, w) uint8 map of entry indices (255 = not covered) of
        the box whose top-left pixel is (x0, y0), or None when the object is out of frame.
    """
    contours = [[local_to_pixels(c, obj, size) for c in cs] for _, cs in obj['entries']]
    points = np.concatenate([c for cs in contours for c in cs])
    x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 1, size)
    if x1 <= x0 or y1 <= y0:
        return None
    entry_map = np.full((y1 - y0, x1 - x0), 255, dtype=np.uint8)
    offset = np.array([x0, y0], dtype=np.float64)
    for index, cs in enumerate(contours):
        fill_contours(entry_map, [c - offset for c in cs], index)
    return entry_map, x0, y0


def paint_object(obj, object_index, canvas):
    """Paint one object over the canvas (occluding what is there) and record its labels.

    Args:
        obj: dict from ``sample_object``.
        object_index: the object's position in the scene (written to the object map).
        canvas: dict of (S, S) arrays ``image`` (x 3, float32), ``parts``, ``semantic``
            (uint8) and ``objects`` (int16), modified in place.
    """
    size = canvas['parts'].shape[0]
    raster = rasterise_entries(obj, size)
    if raster is None:
        return
    entry_map, x0, y0 = raster
    ys, xs = np.nonzero(entry_map != 255)
    if ys.size == 0:
        return
    which = entry_map[ys, xs]
    u, v = pixels_to_local(xs + x0, ys + y0, obj, size)
    rgb = np.empty((ys.size, 3), dtype=np.float32)
    for index, (name, contours) in enumerate(obj['entries']):
        selected = np.nonzero(which == index)[0]
        if selected.size:
            centre_u, centre_v = contours[0].mean(axis=0)
            rgb[selected] = paint_texture(obj['appearance'][name], u[selected] - centre_u,
                                          v[selected] - centre_v)
    light_x, light_y, strength = obj['light']
    rgb *= np.clip(1.0 + strength * (light_x * u + light_y * v), 0.5, 1.5)[:, None]
    part_ids = np.array([PART_IDS[name] for name, _ in obj['entries']], dtype=np.uint8)
    rows, cols = ys + y0, xs + x0
    canvas['image'][rows, cols] = rgb
    canvas['parts'][rows, cols] = part_ids[which]
    canvas['semantic'][rows, cols] = CATEGORY_IDS[obj['category']]
    canvas['objects'][rows, cols] = object_index


def compose_scene(scene, size, noise_rng):
    """Rasterise a scene at a given size.

    Args:
        scene: dict from ``sample_scene``.
        size: image side S in pixels.
        noise_rng: numpy Generator for the per-pixel sensor noise (the only size-dependent
            randomness).

    Returns:
        Dict with ``image`` (S, S, 3) uint8 RGB, ``parts`` and ``semantic`` (S, S) uint8
        (0 = background) and ``objects`` (S, S) int16 (index of the visible object, -1 none).
    """
    canvas = {
        'image': render_background(scene['background'], size).astype(np.float32),
        'parts': np.zeros((size, size), dtype=np.uint8),
        'semantic': np.zeros((size, size), dtype=np.uint8),
        'objects': np.full((size, size), NO_OBJECT, dtype=np.int16),
    }
    for index, obj in enumerate(scene['objects']):
        paint_object(obj, index, canvas)
    image = cv2.GaussianBlur(canvas['image'], (0, 0), sigmaX=0.6)
    image += noise_rng.standard_normal(image.shape, dtype=np.float32) * scene['noise_std']
    canvas['image'] = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return canvas
