"""Step-wise schedules, checked against DINO's precomputed arrays and hand values."""
import math

import numpy as np
import pytest

from rats_mm.ssl import cosine_schedule, linear_warmup_then_constant


def dino_cosine_array(base, final, total, warmup, start):
    """facebookresearch/dino ``cosine_scheduler`` written out (epochs * niter = total)."""
    warmup_part = np.linspace(start, base, warmup) if warmup > 0 else np.array([])
    iters = np.arange(total - warmup)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))
    return np.concatenate((warmup_part, cosine))


@pytest.mark.parametrize('total, warmup', [(50, 0), (50, 10), (7, 1), (30, 29)])
def test_cosine_matches_dino_array(total, warmup):
    ref = dino_cosine_array(5e-4, 1e-6, total, warmup, 1e-5)
    ours = [cosine_schedule(i, total, 5e-4, 1e-6, warmup, 1e-5) for i in range(total)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)


def test_cosine_endpoints_and_hand_values():
    assert cosine_schedule(0, 100, 1.0, 0.0) == 1.0
    assert cosine_schedule(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_schedule(25, 100, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_schedule(100, 100, 1.0, 0.0) == 0.0
    assert cosine_schedule(10 ** 9, 100, 1.0, 0.25) == 0.25
    # teacher momentum 0.996 -> 1
    assert cosine_schedule(0, 10, 0.996, 1.0) == 0.996
    assert cosine_schedule(5, 10, 0.996, 1.0) == pytest.approx(0.998)


def test_cosine_warmup():
    # linspace(0, 1, 5): 0, .25, .5, .75, 1 then cosine starting at base
    values = [cosine_schedule(i, 20, 1.0, 0.0, warmup_steps=5) for i in range(6)]
    assert values == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    assert cosine_schedule(0, 20, 1.0, 0.0, 5, warmup_start_value=0.2) == 0.2


def test_cosine_monotone():
    values = [cosine_schedule(i, 200, 1.0, 0.01, 20, 0.0) for i in range(220)]
    assert all(a <= b for a, b in zip(values[:20], values[1:20]))
    assert all(a >= b for a, b in zip(values[19:], values[20:]))
    increasing = [cosine_schedule(i, 200, 0.996, 1.0) for i in range(201)]
    assert all(a <= b for a, b in zip(increasing, increasing[1:]))


def test_linear_warmup_then_constant_matches_dino_teacher_temp():
    # DINO: concatenate(linspace(0.04, 0.07, 30), ones(100 - 30) * 0.07), per epoch
    ref = np.concatenate((np.linspace(0.04, 0.07, 30), np.ones(70) * 0.07))
    ours = [linear_warmup_then_constant(e, 30, 0.04, 0.07) for e in range(100)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)
    assert linear_warmup_then_constant(0, 3, 0.0, 1.0) == 0.0
    assert linear_warmup_then_constant(1, 3, 0.0, 1.0) == 0.5
    assert linear_warmup_then_constant(2, 3, 0.0, 1.0) == 1.0
    assert linear_warmup_then_constant(10 ** 6, 3, 0.0, 1.0) == 1.0
    assert linear_warmup_then_constant(0, 0, 0.04, 0.07) == 0.07
    values = [linear_warmup_then_constant(i, 30, 0.04, 0.07) for i in range(40)]
    assert all(a <= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize('call, name', [
    (lambda: cosine_schedule(-1, 10, 1.0, 0.0), 'step'),
    (lambda: cosine_schedule(1.5, 10, 1.0, 0.0), 'step'),
    (lambda: cosine_schedule(0, 0, 1.0, 0.0), 'total_steps'),
    (lambda: cosine_schedule(0, 10, 1.0, 0.0, warmup_steps=11), 'warmup_steps'),
    (lambda: cosine_schedule(0, 10, 1.0, 0.0, warmup_steps=-1), 'warmup_steps'),
    (lambda: cosine_schedule(0, 10, float('nan'), 0.0), 'base_value'),
    (lambda: cosine_schedule(0, 10, 1.0, None), 'final_value'),
    (lambda: linear_warmup_then_constant(-2, 10, 0.04, 0.07), 'step'),
    (lambda: linear_warmup_then_constant(0, -1, 0.04, 0.07), 'warmup_steps'),
    (lambda: linear_warmup_then_constant(0, 5, float('inf'), 0.07), 'start_value'),
])
def test_bad_arguments_raise(call, name):
    with pytest.raises(ValueError, match=name):
        call()
