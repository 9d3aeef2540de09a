import numpy as np
import pytest
import torch

from rats_mm.analysis import patch_token_norms, render_norm_histograms, token_norm_stats


def planted_norms(fractions, B=4, L=256, seed=0):
    """Per layer: normal norms around 40 (sd 4), a given fraction of planted outliers ~ 150."""
    rng = np.random.default_rng(seed)
    layers, truth = [], []
    for frac in fractions:
        norms = rng.normal(40.0, 4.0, size=(B, L))
        idx = rng.choice(B * L, size=int(round(frac * B * L)), replace=False)
        norms.reshape(-1)[idx] = rng.normal(150.0, 10.0, size=idx.size)
        layers.append(torch.as_tensor(norms, dtype=torch.float32))
        truth.append(idx.size / (B * L))
    return layers, truth


def test_outlier_fraction_finds_planted_outliers():
    layers, truth = planted_norms([0.0, 0.02, 0.1])
    stats = token_norm_stats(layers)
    got = [s['outlier_fraction'] for s in stats['layers']]
    assert got == pytest.approx(truth)
    s = stats['layers'][1]
    assert s['median'] == pytest.approx(40.0, abs=1.0)
    assert s['threshold'] == pytest.approx(2 * s['median'])
    assert s['num_tokens'] == 4 * 256 and s['hist'].sum() == 4 * 256
    assert len(stats['bin_edges']) == 51 and stats['bin_edges'][-1] >= s['max']
    assert 'median' in stats['rule']


def test_rule_is_scale_free_and_absolute_threshold_works():
    layers, truth = planted_norms([0.05])
    small = token_norm_stats([layers[0] / 100.0])['layers'][0]['outlier_fraction']
    assert small == pytest.approx(truth[0])
    absolute = token_norm_stats(layers, threshold=150.0)['layers'][0]
    assert absolute['threshold'] == 150.0 and 0 < absolute['outlier_fraction'] < truth[0]
    with pytest.raises(ValueError, match='layer 0'):
        token_norm_stats([np.array([1.0, np.nan])])


def test_render_norm_histograms(tmp_path, drawn_colours):
    layers, _ = planted_norms([0.0, 0.02, 0.1, 0.0, 0.3])
    path = render_norm_histograms(token_norm_stats(layers), tmp_path / 'norms.png')
    assert drawn_colours(tmp_path / 'norms.png') > 100 and path.endswith('norms.png')


def test_patch_token_norms_from_model():
    from rats_mm.models import RatsViT
    torch.manual_seed(0)
    model = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2,
                    num_registers=4).eval()
    norms = patch_token_norms(model, torch.randn(2, 3, 32, 32))
    assert len(norms) == 3 and all(n.shape == (2, 16) for n in norms)
    assert all((n > 0).all() for n in norms)
    assert len(patch_token_norms(model, torch.randn(1, 3, 32, 32), layers=[-1])) == 1
