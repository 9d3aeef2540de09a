"""Frozen-network features of a labelled dataset, extracted on every rank and gathered.

Pure PyTorch (``torch.distributed`` when a process group is initialised, e.g. under
``torchrun``); used by the probes (``eval_knn``, ``eval_linear``) and the pretraining k-NN
monitor.
"""
import torch
import torch.distributed as dist
from torch import nn

from ...models.embedding import check_embedding, embed

__all__ = ['FrozenEmbedding', 'dist_info', 'extract_features']


def dist_info():
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class FrozenEmbedding(nn.Module):
    """One vector per image from a frozen ``RatsViT``: what a head reads
    (``rats_mm.models.embedding``).

    Args:
        model (RatsViT): The backbone (put in eval mode here).
        embedding (str): One of ``EMBEDDINGS``: ``'pooled'``, the image embedding (the [CLS]
            token, or for a RATS without one the mean of its registers), a register read-out
            (``'registers'``, ``'heads'``, ``'registers_avg'``) or the patch mean (``'avg'``).
    """

    def __init__(self, model, embedding='pooled'):
        super().__init__()
        check_embedding(model, embedding, strict=False)
        self.model, self.embedding = model.eval(), embedding

    @torch.no_grad()
    def forward(self, x):
        return embed(self.model, x, self.embedding)


def _collate(batch):
    """Samples (``dict(inputs, label)`` or ``(image, label)``) -> (images, labels)."""
    if isinstance(batch[0], dict):
        images, labels = [b['inputs'] for b in batch], [b['label'] for b in batch]
    else:
        images, labels = zip(*batch)
    return torch.stack(list(images)), torch.as_tensor(list(labels))


def _gather(tensor, world):
    """(n, ...) per rank -> (world, n, ...) on every rank."""
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.stack(parts)


@torch.no_grad()
def extract_features(network, dataset, batch_size=64, num_workers=2, device='cpu',
                     progress=False):
    """Embeddings of a dataset; under a process group each rank embeds its share.

    Rank r embeds indices r, r + W, r + 2W, ... (wrapping round so that every rank has as many;
    the duplicates are dropped after gathering in dataset order).

    Args:
        network (nn.Module): Maps (B, 3, H, W) images to (B, D) embeddings (in eval mode).
        dataset (Dataset): Items ``dict(inputs=image, label=int)`` or ``(image, label)``.
        batch_size (int): Images per forward.
        num_workers (int): Loader workers per rank.
        device (str | torch.device): Where the network runs (features are gathered there).
        progress (bool): Show a progress bar (rank 0).

    Returns:
        tuple[Tensor, Tensor]: (len(dataset), D) float32 features and (len(dataset),) labels,
        on the CPU, in dataset order, identical on every rank.
    """
    rank, world = dist_info()
    count = len(dataset)
    if count == 0:
        raise ValueError('extract_features: the dataset is empty')
    per_rank = -(-count // world)
    indices = [(rank + j * world) % count for j in range(per_rank)]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
        num_workers=num_workers, collate_fn=_collate)
    if progress and rank == 0:
        from tqdm import tqdm
        loader = tqdm(loader, desc='features', unit='batch', leave=False)
    feats, labels = [], []
    for images, batch_labels in loader:
        feats.append(network(images.to(device)).float())
        labels.append(batch_labels.to(device))
    feats, labels = torch.cat(feats), torch.cat(labels)
    if world > 1:
        # (W, per_rank, D) -> position j * W + r, as drawn above
        feats = _gather(feats, world).transpose(0, 1).flatten(0, 1)
        labels = _gather(labels, world).transpose(0, 1).flatten(0, 1)
    return feats[:count].cpu(), labels[:count].cpu()
