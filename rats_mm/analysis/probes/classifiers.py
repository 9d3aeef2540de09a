"""Probes of frozen features: DINO's weighted k-NN and a linear classifier.

Both work on features already extracted (``extract_features``), so one extraction serves
every k and every learning rate of the search.
"""
import math

import torch
import torch.nn.functional as F

from ...ssl.knn import knn_votes

__all__ = ['KNN_KS', 'contiguous_labels', 'knn_probe', 'linear_probe', 'topk_accuracy']

KNN_KS = (10, 20, 100, 200)


def contiguous_labels(train_labels, val_labels):
    """Map the training labels to 0..C-1; a validation label unseen in training becomes -1
    (always counted wrong).

    Returns:
        tuple[Tensor, Tensor, int]: Remapped train labels, val labels and C.
    """
    classes = torch.unique(train_labels)
    remap = {int(c): i for i, c in enumerate(classes)}
    train = torch.tensor([remap[int(y)] for y in train_labels], dtype=torch.long)
    val = torch.tensor([remap.get(int(y), -1) for y in val_labels], dtype=torch.long)
    return train, val, len(classes)


def topk_accuracy(scores, labels, k, require_positive=False):
    """Fraction of rows whose label is among the ``k`` highest scores (k clipped to C).

    With ``require_positive`` a label scored 0 never counts (k-NN votes: a class no
    neighbour voted for is not a prediction, however ties among zeros are broken)."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices                # (Q, k)
    hit = (top == labels[:, None]).any(dim=1)
    if require_positive:
        hit &= scores.gather(1, labels.clamp_min(0)[:, None])[:, 0] > 0
    return hit.float().mean().item()


def knn_probe(train_features, train_labels, val_features, val_labels, ks=KNN_KS,
              temperature=0.07, device=None):
    """Weighted k-NN top-1 / top-5 as DINO's ``eval_knn.py`` computes them.

    Args:
        train_features (Tensor): (M, D) bank.
        train_labels (Tensor): (M,) integer labels (any ids).
        val_features (Tensor): (Q, D) queries.
        val_labels (Tensor): (Q,) labels.
        ks (Sequence[int]): Numbers of neighbours.
        temperature (float): Vote temperature (DINO: 0.07).
        device (str | torch.device | None): Where the votes are computed (a GPU for an
            ImageNet-size bank); default the features' device.

    Returns:
        dict: ``per_k`` {k: {top1, top5}}, and ``top1`` / ``top5`` / ``k`` of the headline
        k (20, DINO's reported one, when in ``ks``; else the first).
    """
    train_y, val_y, num_classes = contiguous_labels(train_labels, val_labels)
    if device is not None:
        train_features, val_features = train_features.to(device), val_features.to(device)
        train_y, val_y = train_y.to(device), val_y.to(device)
    per_k = {}
    for k in ks:
        votes = knn_votes(train_features, train_y, val_features, num_classes, k, temperature)
        per_k[int(k)] = {'top1': topk_accuracy(votes, val_y, 1, require_positive=True),
                         'top5': topk_accuracy(votes, val_y, 5, require_positive=True)}
    head = 20 if 20 in per_k else int(ks[0])
    return {'per_k': per_k, 'k': head, 'top1': per_k[head]['top1'],
            'top5': per_k[head]['top5'], 'temperature': temperature,
            'num_classes': num_classes, 'num_train': len(train_y), 'num_val': len(val_y)}


def _train_linear(x, y, num_classes, lr, epochs, batch_size, weight_decay, seed):
    """SGD (momentum 0.9, cosine learning rate) on standardised features; the classifier
    (on the features' device)."""
    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(x.shape[1], num_classes).to(x.device)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.SGD(layer.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).to(x.device).split(batch_size):
            loss = F.cross_entropy(layer(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return layer


def linear_probe(train_features, train_labels, val_features, val_labels,
                 lrs=(1e-3, 1e-2, 1e-1, 1.0), epochs=100, batch_size=256, weight_decay=0.0,
                 holdout=0.1, seed=0, device=None):
    """A linear classifier on frozen features, its learning rate chosen without the val set.

    Features are standardised with the training mean and std (a BatchNorm without affine
    before the linear layer, as MAE's linear probe). For each learning rate a classifier is
    trained on the training features minus a random ``holdout`` fraction and scored there;
    the best rate is retrained on all training features and scored on the validation set.

    Args:
        train_features (Tensor): (M, D).
        train_labels (Tensor): (M,) integer labels (any ids).
        val_features (Tensor): (Q, D).
        val_labels (Tensor): (Q,).
        lrs (Sequence[float]): Learning rates searched.
        epochs (int): Passes over the features.
        batch_size (int): Features per step.
        weight_decay (float): L2 penalty.
        holdout (float): Fraction of the training features kept out for the search.
        seed (int): Seed of the split and the batch order.
        device (str | torch.device | None): Where the classifiers train (a GPU for
            ImageNet-size features); default the features' device.

    Returns:
        dict: ``top1``, ``top5`` (validation), ``lr`` (chosen), ``holdout_top1`` {lr: top-1}.
    """
    if not 0 < holdout < 1:
        raise ValueError(f'holdout={holdout} must lie in (0, 1)')
    train_y, val_y, num_classes = contiguous_labels(train_labels, val_labels)
    if device is not None:
        train_features, val_features = train_features.to(device), val_features.to(device)
        train_y, val_y = train_y.to(device), val_y.to(device)
    mean = train_features.float().mean(0)
    std = train_features.float().std(0).clamp_min(1e-6)
    x, v = (train_features.float() - mean) / std, (val_features.float() - mean) / std
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(round(holdout * len(x))))
    held, fit = order[:cut].to(x.device), order[cut:].to(x.device)
    searched = {}
    for lr in lrs:
        layer = _train_linear(x[fit], train_y[fit], num_classes, lr, epochs, batch_size,
                              weight_decay, seed)
        with torch.no_grad():
            searched[float(lr)] = topk_accuracy(layer(x[held]), train_y[held], 1)
    best = max(searched, key=searched.get)
    layer = _train_linear(x, train_y, num_classes, best, epochs, batch_size, weight_decay,
                          seed)
    with torch.no_grad():
        scores = layer(v)
    return {'top1': topk_accuracy(scores, val_y, 1), 'top5': topk_accuracy(scores, val_y, 5),
            'lr': best, 'holdout_top1': searched, 'epochs': epochs, 'batch_size': batch_size,
            'weight_decay': weight_decay, 'num_classes': num_classes,
            'num_train': len(train_y), 'num_val': len(val_y)}
