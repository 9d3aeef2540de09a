"""Naming DINO's two collapses from the teacher targets' entropies, and the diagnostic that
moved first on the way there (shared by the mmengine ``CollapseMonitorHook`` and the
plain-PyTorch emergence run)."""
import math

__all__ = ['COLLAPSE_ADVICE', 'EARLY_SIGNS', 'collapse_state', 'early_signs', 'first_sign']

# Where the runs behind each piece of advice are (every message ends by pointing there).
EVIDENCE = "see docs/findings.md, 'Collapse and its stabilisers'"

COLLAPSE_ADVICE = {
    'uniform': 'every teacher target is flat: the outputs carry no information about the '
               "image. Try loss.centering='sinkhorn_knopp', a lower teacher temperature, a "
               'faster teacher (lower momentum) for short runs, or object-centric images; '
               + EVIDENCE,
    'one-hot': 'every image maps to the same prototype. Try a lower center_momentum '
               "(faster centring), loss.centering='sinkhorn_knopp', or a lower learning "
               'rate; ' + EVIDENCE,
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


# The early signs of a collapse, each read off the collapse diagnostics of a run's history
# (``rats_mm.ssl.diagnostics``) against the run's first reading (its init): name ->
# (diagnostic key, test of (value, first value), the sign that moved and what to try). The
# residual-stream norm is not one: it grows in runs that learn as well as in runs that
# collapse (docs/findings.md, 'Collapse and its stabilisers').
EARLY_SIGNS = {
    'merge': ('register_within_head_similarity', lambda v, v0: v >= v0 + 0.15,
              'the registers of a head grew alike (within-head similarity up 0.15 over the '
              "init). Try logits='cosine' with every register as the head's input "
              "(embedding='registers'), which keeps them apart (with the register mean as "
              'the input they still merge); ' + EVIDENCE),
    'value_growth': ('value_norm_last_block', lambda v, v0: v >= 2.0 * v0,
                     "the last block's value vectors doubled their norm (what dot-product "
                     "logits sharpen with). Try logits='cosine'; a lower learning rate slows "
                     'the growth. Not a small LayerScale init, which makes every embedding '
                     'alike; ' + EVIDENCE),
    'embedding_cosine': ('embedding_cosine', lambda v, v0: v >= max(v0 + 0.2, 0.8),
                         'the teacher embeddings of different images became alike (mean '
                         'cosine >= 0.8 and up 0.2). Try a lower learning rate or a longer '
                         'warm-up; ' + EVIDENCE),
    'entropy': ('teacher_entropy_ratio', lambda v, v0: v > 0.9,
                'the teacher targets became flat (entropy > 0.9 x ln K). Try a lower '
                'teacher temperature (sharper targets, at some cost in k-NN), a smaller head '
                '(fewer prototypes) or a faster teacher (lower momentum); ' + EVIDENCE),
}


# Signs read off the value alone (the init has no targets to compare with).
ABSOLUTE_SIGNS = ('entropy',)


def _reading(point, key):
    """``point[key]`` when it is a finite number, else None."""
    value = point.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def early_signs(history, step_key='step'):
    """When each early sign of :data:`EARLY_SIGNS` first showed in a run.

    Args:
        history (Sequence[dict]): Measurement points in order, the first the init (the
            reference of every relative sign: one lacking its diagnostic there is not
            dated); a later point lacking a sign's diagnostic (or holding a non-finite one)
            does not count for it.
        step_key (str): The key of a point's step (``'step'``; mmengine records: ``'iter'``).

    Returns:
        dict: sign -> step of the first point that showed it, in that order (earliest first;
        ties keep the order of :data:`EARLY_SIGNS`); signs never shown are left out.
    """
    if len(history) < 2:
        return {}
    onsets = {}
    for name, (key, shows, _) in EARLY_SIGNS.items():
        init = _reading(history[0], key)
        if init is None and name not in ABSOLUTE_SIGNS:
            continue
        hit = next((p.get(step_key) for p in history[1:]
                    if _reading(p, key) is not None and shows(_reading(p, key), init)), None)
        if hit is not None:
            onsets[name] = hit
    order = list(EARLY_SIGNS)
    return dict(sorted(onsets.items(), key=lambda kv: (kv[1], order.index(kv[0]))))


def first_sign(history, step_key='step'):
    """The earliest early sign of a run as one sentence (None when none showed).

    Args:
        history (Sequence[dict]): As for :func:`early_signs`.
        step_key (str): As for :func:`early_signs`.

    Returns:
        str | None: e.g. ``'first to move: merge at step 40 (the registers of a head ...);
        then value_growth at 80'``.
    """
    onsets = early_signs(history, step_key)
    if not onsets:
        return None
    (name, step), rest = next(iter(onsets.items())), list(onsets.items())[1:]
    text = f'first to move: {name} at {step_key} {step} ({EARLY_SIGNS[name][2]})'
    if rest:
        text += '; then ' + ', '.join(f'{n} at {s}' for n, s in rest)
    return text
