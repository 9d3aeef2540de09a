"""Weighted k-NN classification (DINO's k-NN evaluation)."""
import math

import pytest
import torch

from rats_mm.ssl import knn_accuracy, knn_classify
from rats_mm.ssl.knn import knn_votes


def test_votes_are_temperature_weighted_cosines():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[0.6, 0.8]])          # cosines: 0.6, ~0.67, 0.8
    # k=1: the nearest (label 1) wins; k=3: two label-0 votes outweigh one label-1 vote at
    # a high temperature, but not at a low one (exp(0.8 / T) dominates)
    assert knn_classify(bank, labels, query, 2, k=1).tolist() == [1]
    assert knn_classify(bank, labels, query, 2, k=3, temperature=10.0).tolist() == [0]
    assert knn_classify(bank, labels, query, 2, k=3, temperature=0.01).tolist() == [1]
    cos = torch.nn.functional.cosine_similarity(query, bank)
    w0 = math.exp(cos[0] / 0.1) + math.exp(cos[1] / 0.1)
    w1 = math.exp(cos[2] / 0.1)
    assert knn_classify(bank, labels, query, 2, k=3, temperature=0.1).item() == int(w1 > w0)


def test_accuracy_scales_and_chunks():
    torch.manual_seed(0)
    centres = torch.randn(4, 8) * 5
    bank_y = torch.arange(4).repeat(10)
    bank = centres[bank_y] + torch.randn(40, 8) * 0.1
    query_y = torch.arange(4).repeat(3)
    query = (centres[query_y] + torch.randn(12, 8) * 0.1) * 7.0   # scale does not matter
    assert knn_accuracy(bank, bank_y, query, query_y, 4, k=5) == 1.0
    chunked = torch.cat([knn_classify(bank, bank_y, query[i:i + 1], 4, k=5) for i in range(12)])
    assert torch.equal(chunked, knn_classify(bank, bank_y, query, 4, k=5, chunk_size=5))
    with pytest.raises(ValueError, match='bank labels must lie in'):
        knn_classify(bank, bank_y + 4, query, 4)
    with pytest.raises(ValueError, match='40 bank features but 39 labels'):
        knn_classify(bank, bank_y[:-1], query, 4)


def test_votes_of_the_k_nearest_only_against_a_loop():
    """k < bank size: exactly the k most similar bank items vote (a top-k off by one, k - 1
    or k + 1 neighbours, changes the sums)."""
    g = torch.Generator().manual_seed(0)
    bank, query = torch.randn(10, 6, generator=g), torch.randn(4, 6, generator=g)
    labels = torch.arange(10) % 3
    got = knn_votes(bank, labels, query, 3, k=3, temperature=0.5, chunk_size=3)
    want = torch.zeros(4, 3)
    for q in range(4):
        cos = torch.nn.functional.cosine_similarity(query[q:q + 1], bank)       # (10,)
        for i in cos.argsort(descending=True)[:3].tolist():
            want[q, labels[i]] += math.exp(cos[i].item() / 0.5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got > 0).sum(dim=1).le(3).all()
