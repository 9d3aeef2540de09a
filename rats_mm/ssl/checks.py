"""Argument checks shared by the DINO pieces: one message format for every bad value."""
import math
import numbers

__all__ = ['check_finite', 'check_int', 'check_probability']


def check_int(name, value, low):
    """An integer ``>= low`` (bools refused), as an int; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')
    return int(value)


def check_finite(name, value):
    """A finite real number (bools refused), as a float; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value!r}')
    return float(value)


def check_probability(name, value):
    """A probability in [0, 1] (bools refused), as a float; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f'{name} must be a probability in [0, 1], got {value!r}')
    return float(value)
