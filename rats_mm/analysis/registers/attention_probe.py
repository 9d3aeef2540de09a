"""A diagnostic, not a training recipe: can this architecture's registers specialise at all?

DINO at demo scale does not move register attention off uniform, so a flat profile there
cannot tell "the registers cannot specialise" from "the signal is too weak to learn
attention". This probe gives the backbone a signal that does learn attention within minutes
on a CPU: plain cross-entropy on the image category, read by a linear layer from the image
embedding (the register mean for RATS, the [CLS] token for a ViT) or, with
``embedding='registers'``, from every register concatenated (so the loss is no longer
symmetric in the registers of a head). Every ``interval``
iterations it measures, on held-out images, the accuracy, how many registers win patches,
and, on the first batch of them, what the compress, communicate and broadcast steps do in
every block (``registers.attention``: entropy, peak, how alike the compress maps of one
head's registers are).

Run it on any variant (``compress='attention'`` or ``'competition'``, ``logits='dot'`` or
``'cosine'``) with
``tools/analysis/attention_probe.py``; docs/findings.md ("Registers that merge: the compress
step") reads its figures.
"""
import time

import torch
import torch.nn.functional as F
from torch import nn

from ...models.embedding import embed, embedding_dim, embedding_pool
from ..io import category_labels, image_files, prepare_image
from .attention import register_attention_profile
from .stats import registers_in_use
from ..parts.segment import register_assignment

__all__ = ['ProbeSettings', 'labelled_images', 'train_attention_probe']


class ProbeSettings:
    """Optimisation of the probe.

    Args:
        iters (int): Training iterations.
        embedding (str): What the classifier reads (``rats_mm.models.embedding``):
            one of ``EMBEDDINGS``: ``'pooled'`` (the image embedding) or a register read-out
            (``'registers'``, ``'heads'``, ``'registers_avg'``) or the patch mean (``'avg'``).
        batch_size (int): Images per iteration.
        lr (float): AdamW learning rate (constant after a linear warm-up of 10 %).
        weight_decay (float): AdamW weight decay, on every parameter (the probe's own
            recipe; on a cosine model's ``logit_scale`` it slowly shrinks the
            temperatures).
        interval (int): Measure every ``interval`` iterations (and at 0 and the end).
        seed (int): Seed of the model init, the batches and the flips.
    """

    def __init__(self, iters=800, batch_size=64, lr=5e-4, weight_decay=0.05, interval=100,
                 seed=0, embedding='pooled'):
        for name, value in (('iters', iters), ('batch_size', batch_size),
                            ('interval', interval)):
            if value < 1:
                raise ValueError(f'{name}={value} must be >= 1')
        self.iters, self.batch_size, self.lr = iters, batch_size, lr
        self.weight_decay, self.interval, self.seed = weight_decay, interval, seed
        self.embedding = embedding

    def to_dict(self):
        return dict(vars(self))


def labelled_images(data_root, split, size, patch_size, max_images=None):
    """Images of ``D/images/<split>`` with their categories from ``D/labels/*.txt``.

    Args:
        data_root (str): Dataset folder (the synthetic generator's layout, or any folder with
            ``labels/*.txt`` lines ``images/<split>/file <category>``).
        split (str): Sub-folder of ``images``.
        size (int): Short side the images are resized to.
        patch_size (int): The backbone's patch size (sides cropped to a multiple of it).
        max_images (int | None): First images only.

    Returns:
        tuple[Tensor, Tensor]: (M, 3, h, w) normalised images and (M,) labels 0..C-1.
    """
    categories, _ = category_labels(data_root)
    if categories is None:
        raise FileNotFoundError(f'{data_root}: no labels/*.txt with image categories')
    files = image_files(data_root, split, max_images)
    missing = [str(f) for f in files if str(f.resolve()) not in categories]
    if missing:
        raise KeyError(f'{data_root}: no category for {len(missing)} image(s) of split '
                       f'{split!r}, e.g. {missing[0]}')
    images = torch.cat([prepare_image(str(f), patch_size, size) for f in files])
    labels = torch.tensor([categories[str(f.resolve())] for f in files])
    return images, labels


@torch.no_grad()
def _measure(model, classifier, images, labels, batch_size, embedding):
    """Accuracy and registers in use on every held-out image; register attention per block
    on the first ``batch_size`` of them."""
    model.eval()
    correct, assignments = 0, []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        out = model.forward_tokens(x)
        features = model.pool(model.norm(out['x_prenorm']),                   # (B, width)
                              embedding_pool(embedding))
        correct += (classifier(features).argmax(-1) ==
                    labels[start:start + batch_size]).sum().item()
        if model.num_registers:
            assignments.append(register_assignment(out['x_norm_patchtokens'],
                                                   out['x_norm_regtokens']))
    point = {'val_acc': correct / len(images)}
    if assignments:
        point['registers_in_use'] = registers_in_use(torch.cat(assignments),
                                                     model.num_registers)
    if model.attn_mode == 'rats':
        point['attention_by_block'] = register_attention_profile(
            model, [images[:batch_size]])
    model.train()
    return point


def _batch(images, labels, generator, batch_size):
    """A random batch with random horizontal flips."""
    idx = torch.randint(len(images), (batch_size,), generator=generator)
    x = images[idx]
    flip = torch.rand(batch_size, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x), labels[idx]


def train_attention_probe(model, train, val, settings=None, log=print):
    """Train ``model`` and a linear classifier with cross-entropy on the categories and
    measure its register attention as it learns.

    Args:
        model (RatsViT): A freshly built backbone (trained in place).
        train (tuple[Tensor, Tensor]): Training images and labels (``labelled_images``).
        val (tuple[Tensor, Tensor]): Held-out images and labels.
        settings (ProbeSettings | None): Optimisation (default ``ProbeSettings()``).
        log (callable): Receives one line per measurement.

    Returns:
        dict: ``settings``; ``history``, one point per measurement (``iter``, ``loss``
        (mean over the interval), ``val_acc``, ``registers_in_use``, and for a RATS
        ``attention_by_block``: per block the ``STEP_STATISTICS``); ``final``, the last point;
        ``seconds``.
    """
    settings = settings or ProbeSettings()
    images, labels = train
    val_images, val_labels = val
    num_classes = int(max(labels.max(), val_labels.max())) + 1
    generator = torch.Generator().manual_seed(settings.seed)
    classifier = nn.Linear(embedding_dim(model, settings.embedding, strict=False), num_classes)
    params = list(model.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = max(1, settings.iters // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: min(1.0, (it + 1) / warmup))
    model.train()
    history, losses, start = [], [], time.perf_counter()
    for it in range(settings.iters + 1):
        if it % settings.interval == 0 or it == settings.iters:
            point = {'iter': it, 'loss': sum(losses) / len(losses) if losses else None,
                     **_measure(model, classifier, val_images, val_labels,
                                settings.batch_size, settings.embedding)}
            history.append(point)
            losses = []
            log(_describe(point))
        if it == settings.iters:
            break
        x, y = _batch(images, labels, generator, settings.batch_size)
        loss = F.cross_entropy(classifier(embed(model, x, settings.embedding)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return {'settings': settings.to_dict(), 'history': history, 'final': history[-1],
            'seconds': time.perf_counter() - start}


def _describe(point):
    """One log line of a measurement point."""
    text = f"iter {point['iter']}: val acc {point['val_acc']:.3f}"
    if point['loss'] is not None:
        text += f", loss {point['loss']:.3f}"
    blocks = point.get('attention_by_block')
    if blocks:
        last = blocks[-1]
        similarity = last['compress_map_similarity']
        text += (f", last block compress entropy {last['compress_entropy']:.3f}, peak "
                 f"{last['compress_peak']:.1f}, map similarity "
                 f"{'n/a' if similarity is None else f'{similarity:.3f}'}, communicate "
                 f"{last['communicate_entropy'] or 0:.3f}")
    return text
