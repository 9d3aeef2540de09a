"""Appearance of the synthetic images: part textures, colour families, backgrounds.

Each part type has a fixed texture kind (stripes, dots, checker, ...) with a base frequency
and orientation, and a colour family (a hue centre). Each instance of a part draws its own
two colours from a wide band around that hue, with random saturation and brightness, and
jitters the texture's frequency, orientation and phase, so the texture pattern, not the
colour, is what a part type keeps from one image to the next.

Textures are evaluated in the object's local frame (so they rotate and scale with the
object) on the pixels a part covers; colours are float32 RGB in [0, 255].
"""
import colorsys

import cv2
import numpy as np

from .shapes import PART_TYPES

# Texture kind and base frequency (cycles per local unit; an object spans about 2 units)
# and base orientation (radians) for every part type.
PART_TEXTURES = {
    'head': ('dots', 7.0, 0.0), 'beak': ('gradient', 4.0, 0.0), 'ear': ('noise', 9.0, 0.0),
    'torso': ('stripes', 6.0, 1.57), 'wing': ('waves', 7.0, 0.3), 'tail': ('stripes', 10.0, 0.8),
    'leg': ('solid', 1.0, 0.0), 'wheel': ('rings', 14.0, 0.0), 'window': ('gradient', 3.0, 0.8),
    'door': ('stripes', 12.0, 0.0), 'light': ('solid', 1.0, 0.0),
    'vehicle_body': ('hatch', 8.0, 0.8), 'frame': ('checker', 14.0, 0.0),
    'seat': ('dots', 18.0, 0.0), 'handlebar': ('stripes', 16.0, 0.0),
    'wall': ('bricks', 6.0, 0.0), 'roof': ('waves', 9.0, 1.57), 'chimney': ('checker', 12.0, 0.5),
}

# Colour family of every part type: hue centres spread around the circle by the golden ratio.
PART_HUES = {name: (0.618034 * i) % 1.0 for i, name in enumerate(PART_TYPES)}

HUE_JITTER = 0.2  # +- around the family's hue centre: families overlap, colour is ambiguous


def hsv_to_rgb255(hue, saturation, value):
    """One HSV colour to RGB.

    Args:
        hue: hue in turns (wrapped into [0, 1)).
        saturation, value: in [0, 1].

    Returns:
        (3,) float32 array, RGB in [0, 255].
    """
    rgb = colorsys.hsv_to_rgb(hue % 1.0, float(np.clip(saturation, 0, 1)),
                              float(np.clip(value, 0, 1)))
    return np.array(rgb, dtype=np.float32) * 255.0


def sample_part_appearance(part_name, rng):
    """Per-instance appearance of one part type: two colours and jittered texture parameters.

    Args:
        part_name: a name from ``PART_TYPES``.
        rng: numpy Generator.

    Returns:
        Dict with ``kind``, ``freq``, ``angle``, ``phase``, ``colour_a``, ``colour_b`` and
        ``noise_grid`` (an 8 x 8 value-noise lattice, used by the ``noise`` kind).
    """
    kind, freq, angle = PART_TEXTURES[part_name]
    hue = PART_HUES[part_name] + rng.uniform(-HUE_JITTER, HUE_JITTER)
    saturation, value = rng.uniform(0.35, 0.95), rng.uniform(0.4, 0.95)
    second_value = value * rng.uniform(0.3, 0.6) if value > 0.6 else value + rng.uniform(0.3, 0.5)
    return {
        'kind': kind,
        'freq': freq * rng.uniform(0.8, 1.25),
        'angle': angle + rng.uniform(-0.35, 0.35),
        'phase': rng.uniform(0.0, 2.0 * np.pi),
        'colour_a': hsv_to_rgb255(hue, saturation, value),
        'colour_b': hsv_to_rgb255(hue + rng.uniform(-0.08, 0.08),
                                  saturation * rng.uniform(0.5, 1.1), second_value),
        'noise_grid': rng.random((8, 8)).astype(np.float32),
    }


def value_noise(a, b, grid):
    """Bilinear value noise from a periodic lattice.

    Args:
        a, b: (n,) coordinates in lattice cells.
        grid: (G, G) lattice values in [0, 1].

    Returns:
        (n,) float32 values in [0, 1].
    """
    size = grid.shape[0]
    a0, b0 = np.floor(a), np.floor(b)
    fa, fb = (a - a0).astype(np.float32), (b - b0).astype(np.float32)
    i0, j0 = a0.astype(np.int64) % size, b0.astype(np.int64) % size
    i1, j1 = (i0 + 1) % size, (j0 + 1) % size
    top = grid[j0, i0] * (1 - fa) + grid[j0, i1] * fa
    bottom = grid[j1, i0] * (1 - fa) + grid[j1, i1] * fa
    return top * (1 - fb) + bottom * fb


def texture_weights(appearance, u, v):
    """Mixing weight between a part's two colours at the given local coordinates.

    Args:
        appearance: dict from ``sample_part_appearance``.
        u, v: (n,) local coordinates relative to the part's centre.

    Returns:
        (n,) float32 weights in [0, 1] (0 = ``colour_a``, 1 = ``colour_b``).
    """
    kind, f, phase = appearance['kind'], appearance['freq'], appearance['phase']
    c, s = np.cos(appearance['angle']), np.sin(appearance['angle'])
    a, b = u * c + v * s, v * c - u * s
    two_pi = 2.0 * np.pi
    if kind == 'solid':
        weights = np.zeros_like(a)
    elif kind == 'stripes':
        weights = np.sin(two_pi * f * a + phase) > 0
    elif kind == 'checker':
        weights = (np.floor(f * a) + np.floor(f * b)) % 2
    elif kind == 'dots':
        da, db = (f * a) % 1.0 - 0.5, (f * b) % 1.0 - 0.5
        weights = da * da + db * db < 0.09
    elif kind == 'rings':
        weights = np.sin(two_pi * f * np.hypot(u, v) + phase) > 0
    elif kind == 'gradient':
        weights = np.clip(0.5 + 0.25 * f * a, 0.0, 1.0)
    elif kind == 'noise':
        weights = value_noise(f * a, f * b, appearance['noise_grid'])
    elif kind == 'waves':
        weights = np.sin(two_pi * f * a + 2.5 * np.sin(np.pi * f * b) + phase) > 0
    elif kind == 'bricks':
        row = np.floor(f * b)
        column = (0.5 * f * a + 0.5 * (row % 2)) % 1.0
        weights = ((f * b) % 1.0 < 0.15) | (column < 0.08)
    elif kind == 'hatch':
        weights = (np.sin(two_pi * f * a) > 0.6) | (np.sin(two_pi * f * b + phase) > 0.6)
    else:
        raise ValueError(f'unknown texture kind {kind!r}')
    return np.asarray(weights, dtype=np.float32)


def paint_texture(appearance, u, v):
    """RGB colours of a part's pixels.

    Args:
        appearance: dict from ``sample_part_appearance``.
        u, v: (n,) local coordinates relative to the part's centre.

    Returns:
        (n, 3) float32 RGB in [0, 255].
    """
    weights = texture_weights(appearance, u, v)[:, None]
    return appearance['colour_a'] * (1.0 - weights) + appearance['colour_b'] * weights


def fill_contours(canvas, contours, value):
    """Fill contours (even-odd rule, so nested contours make holes) on a canvas in place.

    Args:
        canvas: (H, W) or (H, W, C) array to draw on.
        contours: list of (n, 2) float arrays of (x, y) pixel coordinates, integer values at
            pixel centres.
        value: fill value (scalar or per channel).
    """
    points = [np.round(c * 16.0).astype(np.int32) for c in contours]
    cv2.fillPoly(canvas, points, value, lineType=cv2.LINE_8, shift=4)


def sample_background(rng):
    """Resolution-independent description of a background.

    Args:
        rng: numpy Generator.

    Returns:
        Dict with two base colours, a coarse mixing lattice, a finer brightness lattice,
        optional stripes and a list of clutter blobs (centre, radii, angle, colour).
    """
    hue = rng.random()
    colours = [hsv_to_rgb255(hue + rng.uniform(-0.3, 0.3), rng.uniform(0.05, 0.6),
                             rng.uniform(0.2, 0.9)) for _ in range(2)]
    blobs = []
    for _ in range(int(rng.integers(0, 5))):
        blobs.append({'centre': rng.random(2), 'radii': rng.uniform(0.04, 0.18) *
                      rng.uniform(0.6, 1.0, 12), 'angle': rng.uniform(0, 2 * np.pi),
                      'colour': hsv_to_rgb255(rng.random(), rng.uniform(0.1, 0.7),
                                              rng.uniform(0.2, 0.9))})
    return {
        'colours': colours,
        'mix': rng.random((5, 5)).astype(np.float32),
        'brightness': rng.uniform(0.85, 1.15, (24, 24)).astype(np.float32),
        'stripes': (rng.uniform(8, 30), rng.uniform(0, np.pi), rng.uniform(0.05, 0.15))
        if rng.random() < 0.35 else None,
        'blobs': blobs,
    }


def render_background(background, size):
    """Rasterise a background description.

    Args:
        background: dict from ``sample_background``.
        size: side length S in pixels.

    Returns:
        (S, S, 3) float32 RGB image in [0, 255].
    """
    mix = cv2.resize(background['mix'], (size, size), interpolation=cv2.INTER_CUBIC)
    mix = np.clip(mix, 0.0, 1.0)[..., None]
    colour_a, colour_b = background['colours']
    image = colour_a * (1.0 - mix) + colour_b * mix
    for blob in background['blobs']:
        t = np.linspace(0.0, 2.0 * np.pi, len(blob['radii']), endpoint=False) + blob['angle']
        contour = blob['centre'] + blob['radii'][:, None] * np.stack([np.cos(t), np.sin(t)], 1)
        fill_contours(image, [contour * size - 0.5], blob['colour'].tolist())
    if background['stripes'] is not None:
        freq, angle, contrast = background['stripes']
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        along = np.cos(angle) * coords[None, :] + np.sin(angle) * coords[:, None]
        image *= (1.0 + contrast * np.sign(np.sin(2.0 * np.pi * freq * along)))[..., None]
    brightness = cv2.resize(background['brightness'], (size, size),
                            interpolation=cv2.INTER_LINEAR)
    return image * brightness[..., None]
