import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rats_mm.analysis import build_register_dictionary, render_dictionary_heatmap


def shared_pattern_set(per_cat=6, N=4, D=32, noise=0.05, seed=0):
    """Categories 0 and 1 share register prototypes (e.g. bike / car tires); 2 has its own."""
    g = torch.Generator().manual_seed(seed)
    shared = F.normalize(torch.randn(N, D, generator=g), dim=-1)
    own = F.normalize(torch.randn(N, D, generator=g), dim=-1)
    cats = torch.arange(3).repeat_interleave(per_cat)                       # (M,)
    protos = torch.stack([shared if c < 2 else own for c in cats.tolist()])  # (M, N, D)
    return protos + noise * torch.randn(protos.shape, generator=g), cats


def test_dictionary_groups_shared_parts_across_categories():
    emb, cats = shared_pattern_set()
    out = build_register_dictionary(emb, cats, num_entries=8, seed=0)
    assert len(out['entries']) == 8 and out['entry_category'].shape == (8, 3)
    assert np.allclose(out['entry_category'].sum(0), 1.0)
    for entry in out['entries']:
        assert entry['size'] == 6 * (1 + (0 in entry['categories']))
        assert len(entry['registers']) == 1  # one register pattern per entry
        assert entry['mean_similarity'] > 0.9
        cats_in = set(entry['categories'])
        assert cats_in in ({0, 1}, {2})  # shared entries hold both categories, never 2
        if cats_in == {0, 1}:
            assert entry['categories'] == {0: 6, 1: 6}
    prox = out['cross_category_proximity']
    assert prox.shape == (3, 3) and np.allclose(np.diag(prox), 1.0, atol=1e-5)
    assert prox[0, 1] > 0.95 and prox[0, 2] < 0.6 and prox[1, 2] < 0.6
    overlap = out['category_entry_overlap']
    assert overlap[0, 1] == pytest.approx(1.0) and overlap[0, 2] == pytest.approx(0.0)
    assert out['labels'].shape == (18, 4)


def test_dictionary_is_deterministic_and_handles_no_categories(tmp_path, drawn_colours):
    emb, cats = shared_pattern_set(seed=1)
    a = build_register_dictionary(emb, cats, num_entries=5, seed=3)
    b = build_register_dictionary(emb.numpy(), cats.tolist(), num_entries=5, seed=3)
    assert torch.equal(a['labels'], b['labels'])
    none = build_register_dictionary(emb, None, num_entries=5, num_categories=None)
    assert none['entry_category'].shape == (5, 1)
    assert all(e['categories'] == {} for e in none['entries'])
    absent = build_register_dictionary(emb, cats, num_entries=5, num_categories=4)
    assert np.isnan(absent['cross_category_proximity'][3]).all()
    assert (absent['entry_category'][:, 3] == 0).all()
    path = render_dictionary_heatmap(absent, ['bike', 'car', 'bird', 'fish'], tmp_path / 'd.png')
    assert drawn_colours(tmp_path / 'd.png') > 100 and path.endswith('d.png')
    with pytest.raises(ValueError, match='names'):
        render_dictionary_heatmap(absent, ['bike'], tmp_path / 'x.png')
    with pytest.raises(ValueError, match='categories'):
        build_register_dictionary(emb, cats[:3], num_entries=5)
