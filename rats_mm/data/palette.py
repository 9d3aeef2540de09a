"""Colours for labels: one list for the datasets' palettes and the analysis pictures."""
import colorsys

import numpy as np

__all__ = ['register_palette']

# Qualitative colours (matplotlib tab10, then the light tab20 companions) for up to 20 parts.
_BASE_COLOURS = [
    '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
    '#bcbd22', '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94',
    '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5']


def register_palette(n):
    """``n`` distinct RGB colours: tab10 / tab20 first, then evenly spread golden-ratio hues.

    Args:
        n (int): Number of colours.

    Returns:
        np.ndarray: (n, 3) uint8 colours, the same for the same ``n`` prefix.
    """
    colours = [tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in _BASE_COLOURS[:n]]
    for i in range(len(colours), n):
        hue = (i * 0.618033988749895) % 1.0
        light = 0.45 + 0.15 * (i % 3) / 2
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.75)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.array(colours, dtype=np.uint8).reshape(n, 3)
