"""Weighted k-nearest-neighbour classification of embeddings (DINO's k-NN monitor)."""
import torch
import torch.nn.functional as F


def knn_classify(bank_features, bank_labels, query_features, num_classes, k=20,
                 temperature=0.07, chunk_size=1024):
    """Predict query labels by a temperature-weighted vote of the k most similar bank items.

    As in DINO's ``eval_knn``: cosine similarity, the top ``k`` neighbours vote for their
    label with weight ``exp(similarity / temperature)``.

    Args:
        bank_features (Tensor): (M, D) labelled embeddings.
        bank_labels (Tensor): (M,) integer labels in ``[0, num_classes)``.
        query_features (Tensor): (Q, D) embeddings to classify.
        num_classes (int): Number of classes.
        k (int): Neighbours (clipped to M).
        temperature (float): Vote temperature.
        chunk_size (int): Queries per similarity block (bounds memory).

    Returns:
        Tensor: (Q,) predicted labels.
    """
    if bank_features.shape[0] != bank_labels.shape[0]:
        raise ValueError(f'{bank_features.shape[0]} bank features but '
                         f'{bank_labels.shape[0]} labels')
    if bank_labels.numel() and (bank_labels.min() < 0 or bank_labels.max() >= num_classes):
        raise ValueError(f'bank labels must lie in [0, {num_classes})')
    bank = F.normalize(bank_features.float(), dim=1)
    k = min(k, bank.shape[0])
    preds = []
    for start in range(0, query_features.shape[0], chunk_size):
        query = F.normalize(query_features[start:start + chunk_size].float(), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)                       # (q, k)
        votes = torch.zeros(query.shape[0], num_classes, dtype=sim.dtype)
        votes.scatter_add_(1, bank_labels[idx].long(), (sim / temperature).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_accuracy(bank_features, bank_labels, query_features, query_labels, num_classes,
                 k=20, temperature=0.07):
    """Top-1 accuracy (fraction in [0, 1]) of :func:`knn_classify` on labelled queries."""
    pred = knn_classify(bank_features, bank_labels, query_features, num_classes, k,
                        temperature)
    return (pred == query_labels.long()).float().mean().item()
