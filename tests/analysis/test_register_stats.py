import pytest
import torch

from rats_mm.analysis import (register_attention_profile, register_similarity, registers_in_use,
                              step_statistics)
from rats_mm.analysis.registers.attention import STEP_STATISTICS
from rats_mm.models import RatsViT


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


def _weights(compress, communicate, broadcast):
    return {'compress': compress, 'communicate': communicate, 'broadcast': broadcast}


def test_step_statistics_of_uniform_attention():
    B, H, n, L = 2, 3, 4, 10
    stats = step_statistics(_weights(torch.full((B, H, n, L), 1 / L),
                                     torch.full((B, H, n, n), 1 / n),
                                     torch.full((B, H, L, n), 1 / n)))
    for key in ('compress_entropy', 'communicate_entropy', 'broadcast_entropy',
                'compress_peak', 'communicate_self_weight'):
        assert stats[key] == pytest.approx(1.0), key
    assert stats['compress_map_similarity'] == pytest.approx(0.0)  # centred maps are zero


def test_step_statistics_of_specialised_registers():
    # 1 head, 3 registers each reading one distinct patch of L = 5 and keeping its own vector
    L, n = 5, 3
    compress = torch.eye(L)[:n][None, None]                         # (1, 1, 3, 5)
    communicate = torch.eye(n)[None, None]                          # (1, 1, 3, 3)
    broadcast = torch.eye(n)[[0, 1, 2, 0, 1]][None, None]           # (1, 1, 5, 3)
    stats = step_statistics(_weights(compress, communicate, broadcast))
    assert stats['compress_entropy'] == pytest.approx(0.0, abs=1e-6)
    assert stats['compress_peak'] == pytest.approx(L)
    # centred one-hot maps of two different patches: cosine -1 / (L - 1)
    assert stats['compress_map_similarity'] == pytest.approx(-1 / (L - 1))
    assert stats['communicate_self_weight'] == pytest.approx(n)
    assert stats['communicate_entropy'] == pytest.approx(0.0, abs=1e-6)
    # the same maps for every register: similarity 1
    same = step_statistics(_weights(compress[:, :, :1].expand(-1, -1, n, -1), communicate,
                                    broadcast))
    assert same['compress_map_similarity'] == pytest.approx(1.0)


def test_step_statistics_with_one_register_per_head():
    stats = step_statistics(_weights(torch.full((1, 2, 1, 4), 0.25), torch.ones(1, 2, 1, 1),
                                     torch.ones(1, 2, 4, 1)))
    assert stats['communicate_entropy'] is None and stats['broadcast_entropy'] is None
    assert stats['compress_map_similarity'] is None
    assert stats['communicate_self_weight'] == pytest.approx(1.0)


def test_register_attention_profile_averages_images_over_batches():
    torch.manual_seed(0)
    model = RatsViT(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2,
                    num_registers=4).eval()
    images = torch.randn(4, 3, 32, 32)
    weights = model.register_step_weights(images)
    assert len(weights) == 2 and weights[1]['compress'].shape == (4, 2, 2, 16)
    whole = register_attention_profile(model, [images])
    split = register_attention_profile(model, [images[:1], images[1:]])
    assert len(whole) == 2
    for a, b in zip(whole, split):
        assert set(a) == set(STEP_STATISTICS)
        for key in STEP_STATISTICS:
            assert a[key] == pytest.approx(b[key], rel=1e-5), key
    assert whole[0] == pytest.approx(step_statistics(weights[0]))
    with pytest.raises(ValueError, match="only for attn_mode='rats'"):
        RatsViT(img_size=32, patch_size=8, embed_dim=24, depth=1, num_heads=2, num_registers=4,
                attn_mode='full').register_step_weights(images)
