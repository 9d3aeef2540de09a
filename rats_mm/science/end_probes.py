"""The end of a run probes each trained teacher (and its random init) on up to four features of
the held-out objects: the image embedding the k-NN of ``history`` reads (``backbone(x)``:
[CLS], for RATS the mean of its registers or the read-out its DINO head reads), the register
mean where that is not ``backbone(x)``, every final register concatenated, and the mean of the
patch tokens; each scored by
DINO's weighted k-NN and by a linear probe. A model whose head reads every register can
learn what the register mean hides (docs/findings.md, "The paper's RATS against the ViT on
the testbed")."""
import torch

from ..analysis.probes.classifiers import linear_probe
from ..ssl.knn import knn_accuracy
from .measure import eval_views

__all__ = ['FEATURE_KINDS', 'image_features', 'probe_features', 'probe_teachers']

FEATURE_KINDS = ('embedding', 'register_mean', 'registers', 'patches')


@torch.no_grad()
def image_features(backbone, images, size, grayscale, batch_size=256):
    """The features of uint8 images (eval mode, in batches, on their device).

    Args:
        backbone (RatsViT): The model (put in eval mode by the caller).
        images (Tensor): (M, 3, S, S) uint8 images.
        size (int): Side of the evaluation view (``measure.eval_views``).
        grayscale (bool): Grayscale evaluation views.
        batch_size (int): Images per forward.

    Returns:
        dict: ``embedding`` (``model(x)``: (M, D), or the register read-out its
        ``global_pool`` names), ``patches`` (M, D) and, for a model with registers,
        ``registers`` (M, N * D; left out where it is the embedding) and, where ``model(x)`` is not the register mean,
        ``register_mean`` (M, D); float32.
    """
    out = {kind: [] for kind in FEATURE_KINDS}
    for start in range(0, images.shape[0], batch_size):
        views = eval_views(images[start:start + batch_size], size, grayscale)
        tokens = backbone.forward_features(views)                             # (B, T, D)
        out['embedding'].append(backbone.forward_head(tokens).float())       # model(x)
        out['patches'].append(backbone.pool(tokens, 'avg').float())          # (B, D)
        if backbone.num_registers and backbone.global_pool != 'registers':  # else: embedding
            out['registers'].append(backbone.pool(tokens, 'registers').float())  # (B, N * D)
        if backbone.global_pool != 'token':  # the register mean, where model(x) is not it
            out['register_mean'].append(backbone.pool(tokens, 'token').float())  # (B, D)
    return {kind: torch.cat(parts) for kind, parts in out.items() if parts}


def probe_features(backbone, knn, size, grayscale, linear_epochs=100):
    """k-NN top-1 and linear-probe top-1 of each feature of :func:`image_features`.

    Args:
        backbone (RatsViT): The model (eval mode).
        knn (KNNSet): Bank (training split) and queries (validation split) on the device.
        size (int): Side of the evaluation view.
        grayscale (bool): Grayscale evaluation views.
        linear_epochs (int): Epochs of each linear classifier
            (``rats_mm.analysis.probes.classifiers.linear_probe``, its learning rate chosen
            on 10 % of the bank).

    Returns:
        dict: ``knn_top1`` and ``linear_top1``, each ``{kind: accuracy in [0, 1]}``; the
        ``embedding`` k-NN is the figure the run's ``history`` records for the model.
    """
    bank = image_features(backbone, knn.bank_images, size, grayscale)
    query = image_features(backbone, knn.query_images, size, grayscale)
    result = {'knn_top1': {}, 'linear_top1': {}}
    for kind in bank:
        result['knn_top1'][kind] = knn_accuracy(bank[kind], knn.bank_labels, query[kind],
                                                knn.query_labels, knn.num_classes)
        result['linear_top1'][kind] = linear_probe(
            bank[kind], knn.bank_labels, query[kind], knn.query_labels,
            epochs=linear_epochs)['top1']
    return result


def probe_teachers(teachers, randoms, knn, size, grayscale):
    """:func:`probe_features` of every trained teacher and of its random init.

    Args:
        teachers (dict): ``{variant: RatsViT}`` trained teachers (eval mode).
        randoms (dict): The same variants at their random init.
        knn (KNNSet): Bank and queries on the device.
        size (int): Side of the evaluation view.
        grayscale (bool): Grayscale evaluation views.

    Returns:
        tuple[dict, str]: Summary keys ``probe_<variant>`` and ``probe_random_init_<variant>``,
        and one log line per variant.
    """
    figures, lines = {}, []
    for name, teacher in teachers.items():
        trained = figures[f'probe_{name}'] = probe_features(teacher, knn, size, grayscale)
        init = figures[f'probe_random_init_{name}'] = probe_features(randoms[name], knn, size,
                                                                    grayscale)
        lines.append(f'[{name}] probes, trained (random init): ' + ', '.join(
            f'{metric} {kind} {value:.4f} ({init[metric][kind]:.4f})'
            for metric, values in trained.items() for kind, value in values.items()))
    return figures, '\n'.join(lines)
