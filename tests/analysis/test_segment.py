import pytest
import torch
import torch.nn.functional as F

from rats_mm.analysis import (kmeans, kmeans_assignment, part_miou, register_assignment,
                              upsample_labels)


def test_register_assignment_picks_most_similar_register():
    registers = torch.eye(3, 8).unsqueeze(0) * 5.0                         # (1, 3, 8)
    patches = torch.zeros(1, 4, 8)
    patches[0, 0, 2] = 1.0                                                  # -> register 2
    patches[0, 1, 0], patches[0, 1, 1] = 2.0, 1.0                          # -> register 0
    patches[0, 2, 1], patches[0, 2, 5] = 1.0, 0.2                          # -> register 1
    patches[0, 3, 6] = 1.0                                                  # orthogonal to all
    labels = register_assignment(patches, registers)
    assert labels.dtype == torch.int64 and labels.shape == (1, 4)
    assert labels[0, :3].tolist() == [2, 0, 1]
    with_bg = register_assignment(patches, registers, background_threshold=0.5)
    assert with_bg[0].tolist() == [2, 0, 1, 3]  # best similarity 0 < 0.5 -> background N=3


def test_register_assignment_is_scale_invariant_and_checks_shapes():
    g = torch.Generator().manual_seed(0)
    patches, registers = torch.randn(2, 10, 6, generator=g), torch.randn(2, 4, 6, generator=g)
    assert torch.equal(register_assignment(patches, registers),
                       register_assignment(patches * 7, registers * 0.1))
    with pytest.raises(ValueError, match='mismatch'):
        register_assignment(patches, torch.randn(2, 4, 5))


def blobs(num_per=40, k=4, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, dim, generator=g), dim=-1) * 4
    truth = torch.arange(k).repeat_interleave(num_per)
    points = centres[truth] + 0.1 * torch.randn(k * num_per, dim, generator=g)
    return points, truth


def test_kmeans_recovers_separated_clusters():
    points, truth = blobs()
    perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(3))
    points, truth = points[perm], truth[perm]
    tokens = points.reshape(4, 40, 16)                                      # (B, L, D)
    labels = kmeans_assignment(tokens, 4, seed=0)
    assert labels.shape == (4, 40) and labels.dtype == torch.int64
    score = part_miou(labels.reshape(-1).numpy(), truth.numpy(), 4, 4)
    assert score['miou'] == pytest.approx(1.0)


def test_kmeans_is_deterministic_by_seed_and_leaves_global_rng():
    points, _ = blobs(num_per=30, k=6, seed=1)
    state = torch.random.get_rng_state()
    c1, l1 = kmeans(points, 6, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())
    c2, l2 = kmeans(points, 6, seed=5)
    assert torch.equal(l1, l2) and torch.equal(c1, c2)


def test_kmeans_applies_given_centroids():
    points, truth = blobs()
    tokens = points.reshape(2, 80, 16)
    labels, centroids = kmeans_assignment(tokens, 4, seed=0, return_centroids=True)
    again = kmeans_assignment(tokens * 3.0, 99, centroids=centroids)       # K from centroids
    assert torch.equal(labels, again)
    with pytest.raises(ValueError, match='width'):
        kmeans_assignment(tokens, 4, centroids=centroids[:, :8])


def test_kmeans_handles_duplicates_and_bad_k():
    points = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5)
    centroids, labels = kmeans(points, 3, seed=0)  # only two distinct points
    assert labels.shape == (10,)
    assert len(set(labels[:5].tolist()) & set(labels[5:].tolist())) == 0
    with pytest.raises(ValueError, match='num_clusters'):
        kmeans(points, 11)


def test_upsample_labels_nearest_matches_interpolate():
    labels = torch.arange(2 * 12).reshape(2, 12)                            # grid 3 x 4
    up = upsample_labels(labels, (3, 4), (9, 10))
    want = F.interpolate(labels.reshape(2, 1, 3, 4).float(), size=(9, 10), mode='nearest')
    assert up.shape == (2, 9, 10) and up.dtype == labels.dtype
    assert torch.equal(up, want.reshape(2, 9, 10).long())
    assert torch.equal(upsample_labels(labels, (3, 4), (48, 64))[:, ::16, ::16],
                       labels.reshape(2, 3, 4))
    with pytest.raises(ValueError, match='grid'):
        upsample_labels(labels, (3, 3), (9, 9))
