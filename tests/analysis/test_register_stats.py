import pytest
import torch

from rats_mm.analysis import register_similarity, registers_in_use


def test_register_similarity_within_and_across_heads():
    # 2 heads x 2 registers: head 0 holds two equal registers, head 1 two opposite ones;
    # registers of different heads are orthogonal
    e = torch.eye(4)
    regs = torch.stack([e[0], e[0] * 2, e[1], -e[1]])[None]            # (1, 4, 4)
    stats = register_similarity(regs, num_heads=2)
    assert stats['within_head'] == pytest.approx((1 + -1) / 2)
    assert stats['across_heads'] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='not a multiple of num_heads=3'):
        register_similarity(regs, num_heads=3)


def test_registers_in_use_counts_registers_above_the_share():
    labels = torch.tensor([[0] * 10 + [1] * 9 + [2],       # 3 registers, one with 5 %
                           [3] * 20])
    assert registers_in_use(labels, 4, min_fraction=0.05) == pytest.approx((2 + 1) / 2)
    assert registers_in_use(labels, 4, min_fraction=0.04) == pytest.approx((3 + 1) / 2)
