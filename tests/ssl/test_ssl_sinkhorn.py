"""Sinkhorn-Knopp teacher targets, target entropies and per-parameter clipping."""
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rats_mm.ssl import DINOLoss, clip_gradients_per_parameter, sinkhorn_knopp, target_entropies


def reference_sinkhorn(scores, iterations):
    """Independent float64 numpy version: alternate prototype / sample normalisation."""
    q = np.exp(scores.astype(np.float64) - scores.max()).T           # (K, B)
    K, B = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True) * K
        q /= q.sum(axis=0, keepdims=True) * B
    return (q * B).T


def test_sinkhorn_matches_reference_and_balances():
    torch.manual_seed(0)
    scores = torch.randn(40, 16) * 5
    got = sinkhorn_knopp(scores, 3)
    np.testing.assert_allclose(got.numpy(), reference_sinkhorn(scores.numpy(), 3), rtol=1e-4,
                               atol=1e-6)
    assert torch.allclose(got.sum(dim=1), torch.ones(40), atol=1e-5)
    # run long enough, every prototype receives the same share B / K of the batch
    balanced = sinkhorn_knopp(scores, 200)
    assert torch.allclose(balanced.sum(dim=0), torch.full((16,), 40 / 16), rtol=1e-3)


def test_sinkhorn_targets_never_collapse_where_centering_does():
    # every image gives the same logits: centred softmax after the centre has caught up is
    # uniform over prototypes, Sinkhorn-Knopp spreads the batch over them instead
    logits = torch.randn(1, 8).repeat(32, 1) + torch.randn(32, 8) * 1e-3
    loss = DINOLoss(8, centering='sinkhorn_knopp')
    targets = loss.teacher_targets(logits, 0.04)
    stats = target_entropies(targets)
    assert stats['batch_entropy_ratio'] > 0.99        # all prototypes used across the batch
    with pytest.raises(ValueError, match="centering='bogus'"):
        DINOLoss(8, centering='bogus')


def _sinkhorn_rank(rank, world, scores, path, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    part = scores.chunk(world)[rank]
    out = sinkhorn_knopp(part, 3)
    torch.save(out, f'{path}.{rank}')
    dist.destroy_process_group()


def test_sinkhorn_over_two_gloo_ranks_equals_one_process(tmp_path):
    torch.manual_seed(1)
    scores = torch.randn(24, 10) * 4
    port = 29700 + os.getpid() % 200
    mp.spawn(_sinkhorn_rank, args=(2, scores, str(tmp_path / 'q'), port), nprocs=2)
    gathered = torch.cat([torch.load(tmp_path / f'q.{r}') for r in range(2)])
    assert torch.allclose(gathered, sinkhorn_knopp(scores, 3), atol=1e-6)


def test_target_entropies_tell_uniform_from_one_hot():
    K = 16
    uniform = target_entropies(torch.full((8, K), 1 / K))
    assert uniform['entropy_ratio'] == pytest.approx(1.0)
    assert uniform['batch_entropy_ratio'] == pytest.approx(1.0)
    one_hot = target_entropies(torch.nn.functional.one_hot(torch.zeros(8).long(), K).float())
    assert one_hot['entropy'] == pytest.approx(0.0, abs=1e-6)
    assert one_hot['batch_entropy'] == pytest.approx(0.0, abs=1e-6)
    healthy = target_entropies(torch.eye(K)[:8])      # confident and all different
    assert healthy['entropy'] == pytest.approx(0.0, abs=1e-6)
    assert healthy['batch_entropy'] == pytest.approx(math.log(8))


def test_loss_records_target_stats():
    loss = DINOLoss(32)
    loss(torch.randn(8, 32), torch.randn(4, 32), 0.04, num_student_crops=4)
    assert set(loss.last_stats) == {'entropy', 'batch_entropy', 'entropy_ratio',
                                    'batch_entropy_ratio'}
    assert 0 < loss.last_stats['entropy_ratio'] < 1


def test_per_parameter_clipping_scales_each_gradient_on_its_own():
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(4, requires_grad=True)
    a.grad = torch.tensor([3.0, 4.0, 0.0])         # norm 5 -> clipped to 1
    b.grad = torch.tensor([0.3, 0.4, 0.0, 0.0])    # norm 0.5 -> untouched
    total = clip_gradients_per_parameter([a, b], max_norm=1.0)
    assert total.item() == pytest.approx(math.sqrt(25 + 0.25), rel=1e-5)
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.8, 0.0]), atol=1e-5)
    assert torch.equal(b.grad, torch.tensor([0.3, 0.4, 0.0, 0.0]))
    # the global-norm clip would have shrunk b as well
    with pytest.raises(ValueError, match='max_norm'):
        clip_gradients_per_parameter([a], max_norm=0)


def _centre_rank(rank, world, outputs, path, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    loss = DINOLoss(outputs.shape[1], center_momentum=0.5)
    loss.update_center(outputs.chunk(world)[rank])
    torch.save(loss.center, f'{path}.{rank}')
    dist.destroy_process_group()


def test_centre_is_the_mean_over_all_ranks(tmp_path):
    torch.manual_seed(2)
    outputs = torch.randn(12, 6)
    mp.spawn(_centre_rank, args=(2, outputs, str(tmp_path / 'c'), 29800 + os.getpid() % 100),
             nprocs=2)
    want = 0.5 * outputs.mean(dim=0, keepdim=True)              # from a zero centre, m = 0.5
    for rank in range(2):
        assert torch.allclose(torch.load(tmp_path / f'c.{rank}'), want, atol=1e-6)
