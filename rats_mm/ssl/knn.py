"""Weighted k-nearest-neighbour classification of embeddings (DINO's k-NN monitor)."""
import torch
import torch.nn.functional as F


def knn_votes(bank_features, bank_labels, query_features, num_classes, k=20,
              temperature=0.07, chunk_size=1024):
    """Class votes of the k most similar bank items, as in DINO's ``eval_knn``.

    Cosine similarity; each of the top ``k`` neighbours votes for its label with weight
    ``exp(similarity / temperature)``.

    Args:
        bank_features (Tensor): (M, D) labelled embeddings.
        bank_labels (Tensor): (M,) integer labels in ``[0, num_classes)``.
        query_features (Tensor): (Q, D) embeddings to classify.
        num_classes (int): Number of classes.
        k (int): Neighbours (clipped to M).
        temperature (float): Vote temperature.
        chunk_size (int): Queries per similarity block (bounds memory).

    Returns:
        Tensor: (Q, num_classes) summed vote weights, on the bank's device (a GPU bank
        votes on the GPU).
    """
    if bank_features.shape[0] != bank_labels.shape[0]:
        raise ValueError(f'{bank_features.shape[0]} bank features but '
                         f'{bank_labels.shape[0]} labels')
    if bank_labels.numel() and (bank_labels.min() < 0 or bank_labels.max() >= num_classes):
        raise ValueError(f'bank labels must lie in [0, {num_classes})')
    bank = F.normalize(bank_features.float(), dim=1)
    k = min(k, bank.shape[0])
    votes = torch.zeros(query_features.shape[0], num_classes, device=bank.device)
    bank_labels = bank_labels.to(bank.device)
    for start in range(0, query_features.shape[0], chunk_size):
        query = F.normalize(query_features[start:start + chunk_size].float(), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)                       # (q, k)
        votes[start:start + query.shape[0]].scatter_add_(
            1, bank_labels[idx].long(), (sim / temperature).exp())
    return votes


def knn_classify(bank_features, bank_labels, query_features, num_classes, k=20,
                 temperature=0.07, chunk_size=1024):
    """Predicted labels (Q,): the class with the most :func:`knn_votes`."""
    return knn_votes(bank_features, bank_labels, query_features, num_classes, k, temperature,
                     chunk_size).argmax(dim=1)


def knn_accuracy(bank_features, bank_labels, query_features, query_labels, num_classes,
                 k=20, temperature=0.07):
    """Top-1 accuracy (fraction in [0, 1]) of :func:`knn_classify` on labelled queries."""
    pred = knn_classify(bank_features, bank_labels, query_features, num_classes, k,
                        temperature)
    return (pred == query_labels.to(pred.device).long()).float().mean().item()
