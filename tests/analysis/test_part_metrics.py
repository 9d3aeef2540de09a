import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from rats_mm.analysis import clustering_scores, confusion_matrix, part_miou

GT = np.array([[0, 0, 1, 1],
               [0, 0, 1, 1],
               [2, 2, 2, 2],
               [2, 2, 2, 2]])


def test_confusion_matrix_counts_and_accumulates():
    pred = np.array([[0, 1], [1, 1]])
    gt = np.array([[0, 0], [1, 255]])
    conf = confusion_matrix(pred, gt, 2, 2)
    assert conf.dtype == np.int64
    assert conf.tolist() == [[1, 0], [1, 1]]  # the ignore pixel is dropped
    assert confusion_matrix([pred, pred], [gt, gt], 2, 2).tolist() == [[2, 0], [2, 2]]
    assert confusion_matrix(torch.as_tensor(pred), torch.as_tensor(gt), 2, 2).tolist() == \
        conf.tolist()


@pytest.mark.parametrize('pred,gt,needle', [
    (np.array([0, 3]), np.array([0, 1]), 'pred value 3'),
    (np.array([0, -1]), np.array([0, 1]), 'pred value -1'),
    (np.array([0, 1]), np.array([0, 7]), 'gt value 7'),
])
def test_confusion_matrix_out_of_range_names_the_value(pred, gt, needle):
    with pytest.raises(ValueError, match=needle):
        confusion_matrix(pred, gt, 2, 2)


def test_confusion_matrix_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match='shape'):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 1, 1)
    with pytest.raises(ValueError, match='different numbers'):
        confusion_matrix([np.zeros(2, int)] * 2, [np.zeros(2, int)], 1, 1)
    with pytest.raises(TypeError, match='integer'):
        confusion_matrix(np.zeros(2), np.zeros(2, int), 1, 1)


@pytest.mark.parametrize('mode', ['hungarian', 'majority'])
def test_perfect_prediction_scores_one(mode):
    out = part_miou(GT, GT, 3, 3, mode=mode)
    assert out['miou'] == pytest.approx(1.0)
    assert np.allclose(out['per_class_iou'], 1.0)
    assert out['pixel_accuracy'] == pytest.approx(1.0)


def test_permuted_labels_score_one_under_hungarian():
    perm = np.array([2, 0, 1])
    out = part_miou(perm[GT], GT, 3, 3)
    assert out['miou'] == pytest.approx(1.0)
    assert out['assignment'] == {0: 2, 1: 0, 2: 1}


def test_over_segmentation_majority_one_hungarian_below_one():
    pred = GT.copy()
    pred[3] = 3  # class 2 split into segments 2 and 3
    maj = part_miou(pred, GT, 4, 3, mode='majority')
    hun = part_miou(pred, GT, 4, 3, mode='hungarian')
    assert maj['miou'] == pytest.approx(1.0)
    assert maj['assignment'] == {0: 0, 1: 1, 2: 2, 3: 2}
    # Hungarian keeps one of the halves: class 2 IoU = 4 / 8.
    assert hun['per_class_iou'][2] == pytest.approx(0.5)
    assert hun['miou'] == pytest.approx((1 + 1 + 0.5) / 3)


def test_under_segmentation_hand_computed():
    pred = np.zeros_like(GT)  # one segment covers everything (16 px)
    hun = part_miou(pred, GT, 1, 3)
    # segment 0 goes to class 2 (8 px, IoU 8/16); classes 0 and 1 are unmatched -> 0
    assert hun['assignment'] == {0: -1, 1: -1, 2: 0}
    assert hun['miou'] == pytest.approx(0.5 / 3)
    maj = part_miou(pred, GT, 1, 3, mode='majority')
    assert maj['assignment'] == {0: 2}
    assert maj['miou'] == pytest.approx(0.5 / 3)


def test_ignore_pixels_are_ignored():
    gt = GT.copy()
    gt[0, 0] = 255
    pred = GT.copy()
    pred[0, 0] = 1  # wrong, but on an ignored pixel
    out = part_miou(pred, gt, 3, 3)
    assert out['miou'] == pytest.approx(1.0)
    assert out['confusion'].sum() == GT.size - 1


def test_empty_gt_class_is_excluded_and_reported():
    # 4 gt classes, class 3 never occurs: it is not present, gets nan and leaves the mean.
    pred = GT.copy()
    pred[3] = 3  # an extra segment, unmatched (Hungarian) / merged (majority)
    for mode in ('hungarian', 'majority'):
        out = part_miou(pred, GT, 4, 4, mode=mode)
        assert out['present_classes'] == [0, 1, 2]
        assert np.isnan(out['per_class_iou'][3])
        assert out['miou'] == pytest.approx(np.mean(out['per_class_iou'][:3]))
    assert part_miou(pred, GT, 4, 4)['assignment'][3] == -1


def test_present_class_without_prediction_counts_zero():
    pred = np.where(GT == 1, 0, GT)  # class 1 merged into segment 0; segment 1 never used
    out = part_miou(pred, GT, 3, 3)
    assert out['present_classes'] == [0, 1, 2]
    assert sorted(out['per_class_iou']) == pytest.approx([0.0, 0.5, 1.0])  # 0 and 1 tie
    assert out['miou'] == pytest.approx((4 / 8 + 0 + 1) / 3)


def test_dataset_wide_matching_differs_from_per_image_mean():
    # Each image is perfect under its own permutation, but the permutations differ.
    gt = [GT, GT]
    pred = [GT, np.array([1, 2, 0])[GT]]
    per_image = np.mean([part_miou(p, g, 3, 3)['miou'] for p, g in zip(pred, gt)])
    dataset = part_miou(pred, gt, 3, 3)['miou']
    assert per_image == pytest.approx(1.0)
    assert dataset < 0.7


def reference_hungarian_miou(pred, gt, num_pred, num_gt, ignore_index=255):
    """Independent: IoU matrix from boolean masks, exhaustive search over assignments."""
    keep = gt != ignore_index
    p, g = pred[keep], gt[keep]
    iou = np.zeros((num_pred, num_gt))
    for i in range(num_pred):
        for j in range(num_gt):
            inter = np.sum((p == i) & (g == j))
            union = np.sum((p == i) | (g == j))
            iou[i, j] = inter / union if union else 0.0
    present = [j for j in range(num_gt) if np.any(g == j)]
    best = 0.0
    for rows in itertools.permutations(range(num_pred), num_gt):  # needs num_pred >= num_gt
        best = max(best, sum(iou[rows[j], j] for j in present))
    return best / len(present), iou


@pytest.mark.parametrize('seed', range(5))
def test_hungarian_matches_brute_force_on_random_data(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, size=(3, 12, 12))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = np.where(rng.random(gt.shape) < 0.6, np.where(gt == 255, 0, gt),
                    rng.integers(0, 4, size=gt.shape))
    want, iou = reference_hungarian_miou(pred, gt, 4, 3)
    got = part_miou(list(pred), list(gt), 4, 3)
    assert got['miou'] == pytest.approx(want, abs=1e-6)
    rows, cols = linear_sum_assignment(-iou)
    assert got['miou'] == pytest.approx(iou[rows, cols].sum() / 3, abs=1e-6)


def test_majority_matches_reference_on_random_data():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, size=(20, 20))
    pred = rng.integers(0, 5, size=(20, 20))
    got = part_miou(pred, gt, 5, 3, mode='majority')
    to_gt = {i: np.bincount(gt[pred == i], minlength=3).argmax() for i in range(5)}
    mapped = np.vectorize(to_gt.get)(pred)
    want = np.mean([np.sum((mapped == j) & (gt == j)) / np.sum((mapped == j) | (gt == j))
                    for j in range(3)])
    assert got['miou'] == pytest.approx(want, abs=1e-9)


def test_unknown_mode_rejected():
    with pytest.raises(ValueError, match='mode'):
        part_miou(GT, GT, 3, 3, mode='greedy')


def test_clustering_scores_perfect_and_against_sklearn():
    perm = np.array([2, 0, 1])
    out = clustering_scores(perm[GT], GT)
    assert out['nmi'] == pytest.approx(1.0) and out['ari'] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    gt = [rng.integers(0, 4, size=(8, 8)) for _ in range(3)]
    pred = [np.where(rng.random(g.shape) < 0.5, g, rng.integers(0, 6, size=g.shape)) for g in gt]
    gt[0][0, :4] = 255
    out = clustering_scores(pred, gt)
    keep = np.concatenate([g.ravel() for g in gt]) != 255
    p = np.concatenate([q.ravel() for q in pred])[keep]
    g = np.concatenate([q.ravel() for q in gt])[keep]
    assert out['num_pixels'] == keep.sum()
    assert out['nmi'] == pytest.approx(normalized_mutual_info_score(g, p), abs=1e-9)
    assert out['ari'] == pytest.approx(adjusted_rand_score(g, p), abs=1e-9)


def test_clustering_scores_trivial_cases_follow_sklearn():
    one = np.zeros((4, 4), int)
    assert clustering_scores(one, one)['nmi'] == 1.0
    assert clustering_scores(one, one)['ari'] == 1.0
    out = clustering_scores(one, GT)
    assert out['nmi'] == pytest.approx(normalized_mutual_info_score(GT.ravel(), one.ravel()))
    assert out['ari'] == pytest.approx(adjusted_rand_score(GT.ravel(), one.ravel()))


def test_single_segment_floor_on_all_images_and_on_the_first(tmp_path):
    """One segment over everything, matched to its best class: the first image (all class 0)
    scores 1; both images score class 0's IoU (320 of 512 pixels) over two present classes."""
    from PIL import Image

    from rats_mm.analysis import single_segment_miou
    second = np.zeros((16, 16), np.uint8)
    second[4:] = 1                                                # 64 px class 0, 192 class 1
    for name, mask in (('a.png', np.zeros((16, 16), np.uint8)), ('b.png', second)):
        for kind, array in (('images', np.zeros((16, 16, 3), np.uint8)), ('parts', mask)):
            path = tmp_path / kind / 'validation' / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
    assert single_segment_miou(str(tmp_path), max_images=1) == pytest.approx(1.0)
    assert single_segment_miou(str(tmp_path)) == pytest.approx(320 / 512 / 2)
