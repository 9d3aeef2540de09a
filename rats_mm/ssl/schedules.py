"""DINO schedules as pure functions of the step (no precomputed per-iteration arrays).

They reproduce, value for value, the arrays of facebookresearch/dino ``cosine_scheduler``
and its teacher-temperature schedule: the warm-up is ``linspace(start, end, warmup_steps)``
(step 0 gives ``start``, step ``warmup_steps - 1`` gives ``end``), and the cosine runs over
the ``total_steps - warmup_steps`` remaining steps without quite reaching ``final_value``,
which every ``step >= total_steps`` returns.
"""
import math

from .checks import check_finite, check_int

__all__ = ['cosine_schedule', 'linear_warmup_then_constant']


def _linspace_value(step, num, start, end):
    """Entry ``step`` of ``numpy.linspace(start, end, num)`` for ``0 <= step < num``.

    Args:
        step (int): Index into the linspace.
        num (int): Number of points (>= 1).
        start (float): First value.
        end (float): Last value.

    Returns:
        float: The value.
    """
    if num == 1:
        return start
    if step == num - 1:
        return end
    return step * ((end - start) / (num - 1)) + start       # numpy's rounding order


def cosine_schedule(step, total_steps, base_value, final_value, warmup_steps=0,
                    warmup_start_value=0.0):
    """Linear warm-up then cosine decay (learning rate, weight decay, teacher momentum).

    Args:
        step (int): Current iteration, >= 0.
        total_steps (int): Length of the schedule, >= 1.
        base_value (float): Value at the end of the warm-up / start of the cosine.
        final_value (float): Value the cosine tends to; returned for ``step >= total_steps``.
        warmup_steps (int): Warm-up iterations, in [0, total_steps].
        warmup_start_value (float): Value at step 0 when ``warmup_steps > 0``.

    Returns:
        float: The scheduled value at ``step``.
    """
    step = check_int('step', step, 0)
    total_steps = check_int('total_steps', total_steps, 1)
    warmup_steps = check_int('warmup_steps', warmup_steps, 0)
    if warmup_steps > total_steps:
        raise ValueError(f'warmup_steps ({warmup_steps}) must not exceed total_steps '
                         f'({total_steps})')
    base_value = check_finite('base_value', base_value)
    final_value = check_finite('final_value', final_value)
    warmup_start_value = check_finite('warmup_start_value', warmup_start_value)
    if step >= total_steps:
        return final_value
    if step < warmup_steps:
        return _linspace_value(step, warmup_steps, warmup_start_value, base_value)
    angle = math.pi * (step - warmup_steps) / (total_steps - warmup_steps)  # in [0, pi)
    return final_value + 0.5 * (base_value - final_value) * (1.0 + math.cos(angle))


def linear_warmup_then_constant(step, warmup_steps, start_value, final_value):
    """Linear ramp from ``start_value`` to ``final_value``, then constant (DINO teacher temp).

    Args:
        step (int): Current iteration (or epoch, as in DINO), >= 0.
        warmup_steps (int): Length of the ramp, >= 0 (0: always ``final_value``).
        start_value (float): Value at step 0.
        final_value (float): Value from step ``warmup_steps - 1`` on.

    Returns:
        float: The scheduled value at ``step``.
    """
    step = check_int('step', step, 0)
    warmup_steps = check_int('warmup_steps', warmup_steps, 0)
    start_value = check_finite('start_value', start_value)
    final_value = check_finite('final_value', final_value)
    if step >= warmup_steps:
        return final_value
    return _linspace_value(step, warmup_steps, start_value, final_value)
