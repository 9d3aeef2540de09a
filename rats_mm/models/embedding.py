"""What a head reads from a backbone: its pooled image embedding, or every register.

One rule for every head the project trains on a backbone (the DINO head, the attention
probe's classifier): ``'pooled'`` is ``RatsViT.forward`` without a classifier (RATS:
the mean of the final registers; a ViT: its [CLS] token), (B, D); ``'registers'`` the final
normed registers concatenated in order, (B, N * D), so the head is no longer symmetric in the
registers of a head (RATS only: a model with a [CLS] token pools through it).
"""
__all__ = ['EMBEDDINGS', 'check_embedding', 'embed', 'embedding_dim']

EMBEDDINGS = ('pooled', 'registers')


def check_embedding(model, embedding):
    """Raise ``ValueError`` unless ``model`` can give ``embedding``.

    Args:
        model (RatsViT): The backbone.
        embedding (str): One of ``EMBEDDINGS``.
    """
    if embedding not in EMBEDDINGS:
        raise ValueError(f'embedding={embedding!r} is not one of {EMBEDDINGS}')
    classes, pool = getattr(model, 'num_classes', 0), getattr(model, 'global_pool', 'token')
    if classes or pool != 'token':
        raise ValueError(f"a head reads the backbone's image embedding, which needs "
                         f"num_classes=0 and global_pool='token' (got num_classes={classes}, "
                         f'global_pool={pool!r})')
    if embedding == 'registers' and (not getattr(model, 'num_registers', 0)
                                     or getattr(model, 'has_class_token', False)):
        raise ValueError("embedding='registers' needs a backbone with registers and no [CLS] "
                         'token (RATS)')


def embedding_dim(model, embedding):
    """Width of ``embedding``: D for ``'pooled'``, N * D for ``'registers'``."""
    check_embedding(model, embedding)
    return model.embed_dim * (model.num_registers if embedding == 'registers' else 1)


def embed(model, images, embedding):
    """(B, 3, s, s) images -> (B, ``embedding_dim``) head input."""
    if embedding == 'pooled':
        return model(images)
    return model.forward_tokens(images)['x_norm_regtokens'].flatten(1)     # (B, N * D)
