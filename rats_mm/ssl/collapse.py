"""Naming DINO's two collapses from the teacher targets' entropies (shared by the mmengine
``CollapseMonitorHook`` and the plain-PyTorch emergence run)."""

__all__ = ['COLLAPSE_ADVICE', 'collapse_state']

COLLAPSE_ADVICE = {
    'uniform': 'the teacher outputs carry no information about the image. Try '
               "loss.centering='sinkhorn_knopp', a lower teacher temperature, a faster "
               'teacher (lower momentum) for short runs, or object-centric images',
    'one-hot': 'every image maps to the same prototype. Try a higher center_momentum '
               "complement (faster centring), loss.centering='sinkhorn_knopp', or a lower "
               'learning rate',
}


def collapse_state(entropy_ratio, batch_entropy_ratio, uniform_ratio=0.9, onehot_ratio=0.1):
    """``'uniform'``, ``'one-hot'`` or None.

    Args:
        entropy_ratio (float): Mean per-image target entropy / ln K (near 1: every target
            flat, uniform collapse).
        batch_entropy_ratio (float): Entropy of the batch-mean target / ln K (near 0: every
            image gets the same prototype, one-hot collapse).
        uniform_ratio (float): Per-image ratio above which targets count as uniform.
        onehot_ratio (float): Batch ratio below which targets count as one-hot.

    Returns:
        str | None: The state.
    """
    if entropy_ratio > uniform_ratio:
        return 'uniform'
    if batch_entropy_ratio < onehot_ratio:
        return 'one-hot'
    return None
