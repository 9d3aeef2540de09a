"""Part-discovery metrics: confusion matrices, matched part mIoU, NMI / ARI.

Predicted segments (register indices, k-means clusters, ...) carry no class names, so they are
matched to the ground-truth part classes before IoU is taken. Everything accumulates one
confusion matrix over the whole dataset first and matches once on it (dataset-wide matching):
a method must use the same segment for "wing" in every image to score well, which is the
property part discovery is about. Matching per image and averaging would reward segment ids
that change meaning from image to image (see the tests for a case scoring 1.0 per image).

Empty-class rule (both modes): a ground-truth class is *present* when it has at least one
non-ignored pixel in the dataset, or when some predicted segment was assigned to it. Present
classes enter ``miou``; the others get ``nan`` in ``per_class_iou`` and are listed out of
``present_classes``. With the matching rules below no segment is ever assigned to a class
without pixels (Hungarian pairs with zero overlap count as unmatched; a majority vote only
lands on a class the segment overlaps), so in practice "present" means "has pixels".
"""
from itertools import zip_longest

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import mutual_info_score

__all__ = ['confusion_matrix', 'part_miou', 'clustering_scores']


def _to_numpy(a, what):
    """Tensor / array-like -> integer ndarray, or TypeError naming ``what``."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f'{what} must hold integer labels, got dtype {a.dtype}')
    return a


def _pairs(pred, gt):
    """Yield (pred, gt) integer arrays from a single pair or two iterables of arrays.

    A single pair is two arrays (numpy or torch, any shape, e.g. (H, W) or (B, H, W)); anything
    else is taken as two iterables of such arrays, walked in step.
    """
    if isinstance(pred, (np.ndarray, torch.Tensor)) or isinstance(gt, (np.ndarray, torch.Tensor)):
        yield _to_numpy(pred, 'pred'), _to_numpy(gt, 'gt')
        return
    missing = object()
    for i, (p, g) in enumerate(zip_longest(pred, gt, fillvalue=missing)):
        if p is missing or g is missing:
            raise ValueError(f'pred and gt hold different numbers of arrays (stopped at {i})')
        yield _to_numpy(p, f'pred[{i}]'), _to_numpy(g, f'gt[{i}]')


def _kept_pixels(pred, gt, ignore_index):
    """Yield (index, pred, gt) flat pixel arrays per pair, ignore pixels dropped."""
    for i, (p, g) in enumerate(_pairs(pred, gt)):
        if p.shape != g.shape:
            raise ValueError(f'pair {i}: pred shape {p.shape} != gt shape {g.shape}')
        p, g = p.reshape(-1), g.reshape(-1)                                 # (P,) pixels
        if ignore_index is not None:
            keep = g != ignore_index
            p, g = p[keep], g[keep]
        yield i, p, g


def _check_range(values, upper, what):
    """ValueError naming the first value of ``values`` outside [0, upper)."""
    if values.size == 0:
        return
    lo, hi = values.min(), values.max()
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise ValueError(f'{what} value {int(bad)} is outside [0, {upper})')


def confusion_matrix(pred, gt, num_pred, num_gt, ignore_index=255):
    """Count (predicted segment, ground-truth class) pixel pairs.

    Args:
        pred (array | Tensor | Iterable): Predicted segment ids, one array or an iterable of
            arrays (one per image).
        gt (array | Tensor | Iterable): Ground-truth class ids, same structure and shapes.
        num_pred (int): Number of predicted segments; ids must lie in [0, num_pred).
        num_gt (int): Number of ground-truth classes; ids must lie in [0, num_gt) unless equal
            to ``ignore_index``.
        ignore_index (int | None): Ground-truth id whose pixels are dropped.

    Returns:
        np.ndarray: (num_pred, num_gt) int64 counts, ``C[i, j]`` = pixels predicted ``i``
        whose ground truth is ``j``.
    """
    conf = np.zeros(num_pred * num_gt, dtype=np.int64)
    for i, p, g in _kept_pixels(pred, gt, ignore_index):
        _check_range(p, num_pred, f'pair {i}: pred')
        _check_range(g, num_gt, f'pair {i}: gt')
        conf += np.bincount(p.astype(np.int64) * num_gt + g, minlength=num_pred * num_gt)
    return conf.reshape(num_pred, num_gt)                                   # (num_pred, num_gt)


def _iou_matrix(conf):
    """(P, G) confusion -> (P, G) IoU of segment i with class j (0 where the union is 0)."""
    conf = conf.astype(np.float64)
    union = conf.sum(1, keepdims=True) + conf.sum(0, keepdims=True) - conf
    return np.divide(conf, union, out=np.zeros_like(conf), where=union > 0)


def _hungarian(conf):
    """One-to-one matching maximising summed IoU -> (per-class IoU, gt -> segment or -1)."""
    iou = _iou_matrix(conf)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    per_class = np.zeros(conf.shape[1])
    assignment = {j: -1 for j in range(conf.shape[1])}
    for i, j in zip(rows, cols):
        if conf[i, j] > 0:  # a pair without overlap is no match
            assignment[int(j)] = int(i)
            per_class[j] = iou[i, j]
    assigned = np.array([assignment[j] >= 0 for j in range(conf.shape[1])], dtype=bool)
    return per_class, assignment, assigned


def _majority(conf):
    """Many-to-one: each non-empty segment to its most-overlapped class (lowest id on ties).

    Returns (per-class IoU of the union of its segments, segment -> class, assigned mask).
    """
    num_pred, num_gt = conf.shape
    rows, cols = conf.sum(1), conf.sum(0)
    assignment = {int(i): int(np.argmax(conf[i])) for i in range(num_pred) if rows[i] > 0}
    inter, area = np.zeros(num_gt), np.zeros(num_gt)
    for i, j in assignment.items():
        inter[j] += conf[i, j]
        area[j] += rows[i]
    union = area + cols - inter
    per_class = np.divide(inter, union, out=np.zeros(num_gt), where=union > 0)
    assigned = np.zeros(num_gt, dtype=bool)
    assigned[list(assignment.values())] = True
    return per_class, assignment, assigned


def part_miou(pred, gt, num_pred, num_gt, ignore_index=255, mode='hungarian'):
    """Part mIoU of unlabelled segments after matching them to ground-truth classes.

    Args:
        pred (array | Tensor | Iterable): Predicted segment ids, one array or a list of arrays.
        gt (array | Tensor | Iterable): Ground-truth class ids (background included as a
            class), same structure.
        num_pred (int): Number of predicted segments.
        num_gt (int): Number of ground-truth classes (background included).
        ignore_index (int | None): Ground-truth id whose pixels are dropped.
        mode (str): ``'hungarian'``: one-to-one matching (``linear_sum_assignment``)
            maximising the summed IoU of the dataset-wide confusion matrix; classes left
            unmatched count 0. ``'majority'``: each segment goes to the class it overlaps
            most; a class's IoU is that of the union of its segments.

    Returns:
        dict: ``miou`` (float, mean of ``per_class_iou`` over ``present_classes``),
        ``per_class_iou`` (np.ndarray (num_gt,), ``nan`` for classes not present),
        ``present_classes`` (list of class ids entering the mean, see the module docstring),
        ``assignment`` (hungarian: {gt class: segment or -1}; majority: {segment: gt class},
        segments without pixels left out), ``confusion`` ((num_pred, num_gt) int64),
        ``pixel_accuracy`` (matched pixels / non-ignored pixels).
    """
    if mode not in ('hungarian', 'majority'):
        raise ValueError(f"mode={mode!r} is not 'hungarian' or 'majority'")
    conf = confusion_matrix(pred, gt, num_pred, num_gt, ignore_index)
    per_class, assignment, assigned = (_hungarian if mode == 'hungarian' else _majority)(conf)
    present = (conf.sum(0) > 0) | assigned
    per_class = np.where(present, per_class, np.nan)
    if mode == 'hungarian':
        matched = sum(conf[i, j] for j, i in assignment.items() if i >= 0)
    else:
        matched = sum(conf[i, j] for i, j in assignment.items())
    total = conf.sum()
    return {
        'miou': float(np.nanmean(per_class)) if present.any() else float('nan'),
        'per_class_iou': per_class,
        'present_classes': [int(j) for j in np.flatnonzero(present)],
        'assignment': assignment,
        'confusion': conf,
        'pixel_accuracy': float(matched / total) if total else float('nan'),
    }


def _contingency(pred, gt, ignore_index):
    """Dataset-wide (pred label, gt label) counts without knowing the label ranges."""
    table = np.zeros((0, 0), dtype=np.int64)
    for i, p, g in _kept_pixels(pred, gt, ignore_index):
        if p.size == 0:
            continue
        for a, what in ((p, 'pred'), (g, 'gt')):
            if a.min() < 0:
                raise ValueError(f'pair {i}: {what} value {int(a.min())} is negative')
        rows, cols = max(table.shape[0], int(p.max()) + 1), max(table.shape[1], int(g.max()) + 1)
        grown = np.zeros((rows, cols), dtype=np.int64)
        grown[:table.shape[0], :table.shape[1]] = table
        grown += np.bincount(p.astype(np.int64) * cols + g,
                             minlength=rows * cols).reshape(rows, cols)
        table = grown
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]  # labels that occur
    return table


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _ari(table):
    """Adjusted Rand index from a contingency table (Hubert & Arabie)."""
    comb2 = lambda n: n * (n - 1) / 2.0  # noqa: E731
    t = table.astype(np.float64)
    index = comb2(t).sum()
    a, b, n = comb2(t.sum(1)).sum(), comb2(t.sum(0)).sum(), comb2(t.sum())
    expected = a * b / n if n > 0 else 0.0
    top = (a + b) / 2.0
    if top == expected:  # both labelings trivial in the same way: a perfect match
        return 1.0
    return float((index - expected) / (top - expected))


def clustering_scores(pred, gt, ignore_index=255):
    """NMI and ARI between predicted segments and ground-truth classes over all pixels.

    The scores equal ``sklearn.metrics.normalized_mutual_info_score`` (arithmetic
    normalisation) and ``adjusted_rand_score`` on the concatenated non-ignored pixels; they are
    computed from one accumulated contingency table, so a whole dataset never has to be held
    as flat label arrays.

    Args:
        pred (array | Tensor | Iterable): Predicted segment ids, one array or a list of arrays.
        gt (array | Tensor | Iterable): Ground-truth class ids, same structure.
        ignore_index (int | None): Ground-truth id whose pixels are dropped.

    Returns:
        dict: ``nmi`` (float), ``ari`` (float), ``num_pixels`` (int, pixels scored).
    """
    table = _contingency(pred, gt, ignore_index)
    total = int(table.sum())
    if total == 0:
        return {'nmi': float('nan'), 'ari': float('nan'), 'num_pixels': 0}
    if table.shape[0] == table.shape[1] == 1:  # one cluster and one class: identical
        return {'nmi': 1.0, 'ari': 1.0, 'num_pixels': total}
    mi = mutual_info_score(None, None, contingency=table)
    h_pred, h_gt = _entropy(table.sum(1)), _entropy(table.sum(0))
    normaliser = max((h_pred + h_gt) / 2.0, np.finfo(np.float64).eps)
    nmi = 0.0 if mi <= 0 else float(mi / normaliser)
    return {'nmi': nmi, 'ari': _ari(table), 'num_pixels': total}
