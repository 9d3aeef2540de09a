"""What a head reads from a backbone: one vocabulary for the DINO head, the probes and the
analysis tools.

``'pooled'`` is the image embedding (``global_pool='token'``: RATS the mean of the final
registers, a ViT its [CLS] token), (B, D). The register read-outs are the ``global_pool``
values of the same name (``REGISTER_POOLS``): ``'registers'`` every final normed register
concatenated in order, (B, N * D), so the head is no longer symmetric in the registers of a
head; ``'heads'`` each head's registers averaged and read on that head's channels, (B, D);
``'registers_avg'`` every register and the patch mean, (B, (N + 1) * D). ``'avg'`` is the
patch mean alone, (B, D), timm's pool of that name: the registers still carry every message
between patches, the head reads what the patches end with. A backbone built with one of these
as its ``global_pool`` returns it from ``model(x)``, so a probe of ``model(x)`` reads what its
DINO head read.
"""
from torch import nn

from .head import REGISTER_POOLS, check_pool, pooled_dim

__all__ = ['EMBEDDINGS', 'check_embedding', 'embed', 'embedding_dim', 'embedding_of',
           'embedding_pool', 'read_out_kwargs']

EMBEDDINGS = ('pooled', *REGISTER_POOLS, 'avg')


def embedding_pool(embedding):
    """The ``global_pool`` that gives ``embedding`` (``'token'`` for ``'pooled'``)."""
    if embedding not in EMBEDDINGS:
        raise ValueError(f'embedding={embedding!r} is not one of {EMBEDDINGS}')
    return 'token' if embedding == 'pooled' else embedding


def read_out_kwargs(embedding):
    """RatsViT arguments that make ``model(x)`` return ``embedding``: its ``global_pool``,
    and for the patch mean ``fc_norm=False`` (every token normed, as :func:`embed` and the
    analysis read them, not timm's norm of the pooled token)."""
    pool = embedding_pool(embedding)
    return {'global_pool': pool, **({'fc_norm': False} if pool == 'avg' else {})}


def embedding_of(model):
    """The embedding ``model(x)`` returns: its ``global_pool``'s name in ``EMBEDDINGS``."""
    pool = getattr(model, 'global_pool', 'token')
    return 'pooled' if pool == 'token' else pool


def check_embedding(model, embedding, strict=True):
    """Raise ``ValueError`` unless ``model`` can give ``embedding``.

    Args:
        model (RatsViT): The backbone: no classifier, its final norm on every token
            (``fc_norm`` off: :func:`embed` reads normed tokens).
        embedding (str): One of ``EMBEDDINGS``.
        strict (bool): Also require ``global_pool`` either ``'token'`` or
            ``embedding``'s own pool (a DINO head: ``model(x)`` is then what it reads). A
            frozen probe pools explicitly and takes any ``global_pool``.
    """
    pool = embedding_pool(embedding)
    classes, model_pool = getattr(model, 'num_classes', 0), getattr(model, 'global_pool',
                                                                    'token')
    if classes:
        raise ValueError(f"a head reads the backbone's image embedding, which needs "
                         f'num_classes=0 (got num_classes={classes})')
    if strict and model_pool not in ('token', pool):
        raise ValueError(f"a head reads the backbone's image embedding, which needs "
                         f"global_pool 'token' or {pool!r} (got global_pool={model_pool!r})")
    if not isinstance(getattr(model, 'fc_norm', nn.Identity()), nn.Identity):
        raise ValueError(f'embedding={embedding!r} reads every normed token; the model norms '
                         f'only its pooled token (fc_norm, timm\'s rule for '
                         f'global_pool={model_pool!r}): build it with fc_norm=False')
    check_pool(pool, getattr(model, 'num_registers', 0), model.num_heads,
               getattr(model, 'has_class_token', False))


def embedding_dim(model, embedding, strict=True):
    """Width of ``embedding`` (checked by :func:`check_embedding` with ``strict``): D for
    ``'pooled'``, ``'heads'`` and ``'avg'``, N * D for ``'registers'``, (N + 1) * D for
    ``'registers_avg'``."""
    check_embedding(model, embedding, strict)
    return pooled_dim(embedding_pool(embedding), model.embed_dim, model.num_registers)


def embed(model, images, embedding):
    """(B, 3, s, s) images -> (B, ``embedding_dim``) head input."""
    return model.pool(model.forward_features(images), embedding_pool(embedding))
