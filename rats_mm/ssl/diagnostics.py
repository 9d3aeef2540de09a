"""Diagnostics of a DINO run going wrong, read at measurement points, outside the step.

What each one is for (docs/parts.md, "From symptom to cause: the collapse diagnostics"):

- ``embedding_cosine``: mean cosine between the teacher's embeddings of different images of a
  fixed batch; near 1 every image looks alike to the teacher, the start of a collapse.
- ``register_stream_norm`` (RATS) / ``cls_stream_norm`` (a ViT): per block, the mean norm of
  the residual stream after it of the tokens the image embedding is read from
  (``rats_mm.models.inspection.embedding_tokens``, the rule the analyses' register maps
  follow too: the [CLS] token when the model has one, a ViT with or without registers, else
  the registers); a stream that keeps growing is what lets dot-product logits sharpen.
- ``value_norm``: per block, the mean norm of the patches' value vectors (per head), and for a
  RATS ``message_norm``, that of the messages: the dot-product logits of communicate and
  broadcast are products of these.
- ``max_logit``: per attention step (``compress`` / ``communicate`` / ``broadcast`` for a RATS,
  ``attention`` for a ViT), the largest logit of each block.
- ``grad_norm_by_group`` / ``update_ratio_by_group``: per parameter group (``GROUPS``), the L2
  norm of the last step's gradients (after clipping, as the optimizer used them) and the norm
  of AdamW's last update over that of the weights.
- ``centre_norm``: the norm of the DINO centre.
- ``register_within_head_similarity`` (RATS): mean cosine of two final registers of one
  head; rising, the registers of a head merge.

``rats_mm.ssl.collapse.early_signs`` reads these off a run's history and names the one that
moved first.
"""
import torch
import torch.nn.functional as F

from ..analysis.registers.stats import register_similarity
from ..models.inspection import embedding_tokens

__all__ = ['GROUPS', 'backbone_diagnostics', 'embedding_cosine', 'grad_norm_by_group',
           'parameter_group', 'training_diagnostics', 'update_ratio_by_group']

GROUPS = ('patch_embed', 'registers', 'qkv', 'proj', 'mlp', 'norm', 'head')


def parameter_group(name):
    """The group of a student parameter (``backbone.*`` / ``head.*`` names, or bare backbone
    names): the patch embedding and its positions, the registers / [CLS], the attention's
    ``qkv`` (with the cosine logits' temperatures), its ``proj``, the MLPs, the norms, the
    DINO head."""
    if name.startswith('head.'):
        return 'head'
    rest = name[len('backbone.'):] if name.startswith('backbone.') else name
    first, last = rest.split('.')[0], rest.split('.')[-1]
    if first in ('patch_embed', 'pos_embed'):
        return 'patch_embed'
    if first in ('registers', 'cls_token'):
        return 'registers'
    if '.attn.qkv.' in rest or last == 'logit_scale':
        return 'qkv'
    if '.attn.proj.' in rest:
        return 'proj'
    if '.mlp.' in rest:
        return 'mlp'
    return 'norm'  # norm1 / norm2 / the final norm, LayerScale


def _by_group(named_values):
    """Root of the summed squares per group: {group: float} for the groups present."""
    sums = {}
    for name, value in named_values:
        group = parameter_group(name)
        sums[group] = sums.get(group, 0.0) + value
    return {g: sums[g] ** 0.5 for g in GROUPS if g in sums}


@torch.no_grad()
def grad_norm_by_group(module):
    """L2 norm of the gradients per group (of ``module.named_parameters()``) as they are now:
    after a step, the gradients that step applied (clipped)."""
    named = [(n, p.grad.float().square().sum()) for n, p in module.named_parameters()
             if p.grad is not None]
    values = torch.stack([v for _, v in named]).tolist() if named else []  # one sync
    return _by_group(zip([n for n, _ in named], values))


@torch.no_grad()
def update_ratio_by_group(module, optimizer):
    """Norm of AdamW's last update over the norm of the weights, per group.

    The update is rebuilt from the optimizer's state after the step (moments, step count,
    learning rate, decoupled weight decay): ``lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t))
    + eps) + lr * wd * w``.
    """
    settings = {id(p): g for g in optimizer.param_groups for p in g['params']}
    named, updates, weights = [], [], []
    for name, p in module.named_parameters():
        state, group = optimizer.state.get(p), settings.get(id(p))
        if not state or 'exp_avg' not in state or group is None:
            continue
        (b1, b2), t = group['betas'], float(state['step'])
        m_hat = state['exp_avg'].float() / (1 - b1 ** t)
        v_hat = state['exp_avg_sq'].float() / (1 - b2 ** t)
        update = group['lr'] * (m_hat / (v_hat.sqrt() + group['eps'])
                                + group['weight_decay'] * p.float())
        named.append(name)
        updates.append(update.square().sum())
        weights.append(p.float().square().sum())
    if not named:
        return {}
    upd = _by_group(zip(named, torch.stack(updates).tolist()))
    wgt = _by_group(zip(named, torch.stack(weights).tolist()))
    return {g: upd[g] / max(wgt[g], 1e-12) for g in upd}


@torch.no_grad()
def embedding_cosine(embeddings):
    """Mean cosine between the embeddings of different images, (B, D) -> float."""
    z = F.normalize(embeddings.float(), dim=-1)
    B = z.shape[0]
    if B < 2:
        raise ValueError('embedding_cosine needs at least 2 images')
    cos = z @ z.T                                                          # (B, B)
    return ((cos.sum() - cos.diagonal().sum()) / (B * (B - 1))).item()


def _full_attention_internals(attn, x):
    """Logits and values of a timm ``Attention`` on its normed input: (B, H, T, T), (B, H, T,
    d)."""
    B, T, D = x.shape
    qkv = attn.qkv(x).view(B, T, 3, attn.num_heads, D // attn.num_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                          # (B, H, T, d)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return (q @ k.transpose(-2, -1)) * attn.scale, v


def _block_figures(backbone, block, y):
    """Value norms and largest logits of one block's attention on its normed input ``y``."""
    if backbone.attn_mode == 'rats':
        inside = block.attn.step_weights(y, internals=True)
        return {'value_norm': inside['patch_values'].float().norm(dim=-1).mean(),
                'message_norm': inside['messages'].float().norm(dim=-1).mean(),
                **{f'max_logit_{s}': inside[f'{s}_logits'].float().amax()
                   for s in ('compress', 'communicate', 'broadcast')}}
    logits, values = _full_attention_internals(block.attn, y)
    return {'value_norm': values.float().norm(dim=-1).mean(),
            'max_logit_attention': logits.float().amax()}


@torch.no_grad()
def backbone_diagnostics(backbone, images):
    """Per block: the prefix tokens' stream norm, value norms and largest logits.

    Args:
        backbone (RatsViT): Any attention mode (eval mode).
        images (Tensor): (B, 3, H, W) normalised images.

    Returns:
        dict: ``register_stream_norm`` (RATS; a ViT: ``cls_stream_norm``), ``value_norm``,
        (RATS) ``message_norm``, and ``max_logit`` {step: per block}: lists over blocks.
    """
    x, _ = backbone._embed(images)
    stream = 'cls_stream_norm' if backbone.has_class_token else 'register_stream_norm'
    rows = []
    for block in backbone.blocks:
        figures = _block_figures(backbone, block, block.norm1(x))
        x = block(x)
        prefix = embedding_tokens(*backbone.token_groups(x)[:2])            # (B, p, D)
        figures[stream] = prefix.float().norm(dim=-1).mean()
        rows.append(figures)
    keys = list(rows[0])
    table = torch.stack([torch.stack([r[k] for k in keys]) for r in rows]).T.tolist()  # one sync
    out, max_logit = {}, {}
    for key, column in zip(keys, table):
        if key.startswith('max_logit_'):
            max_logit[key[len('max_logit_'):]] = column
        else:
            out[key] = column
    out['max_logit'] = max_logit
    return out


def training_diagnostics(teacher, student, optimizer, criterion, images, embed):
    """Every diagnostic of the module docstring at one measurement point.

    Args:
        teacher (RatsViT): The teacher backbone (eval mode).
        student (nn.Module): The optimised module (backbone and head), its gradients those of
            the last step.
        optimizer (torch.optim.Optimizer | None): Its AdamW (None: no update ratios).
        criterion (DINOLoss | None): The loss, for its centre (None: no centre norm).
        images (Tensor): (B, 3, H, W) normalised images of a fixed batch, B >= 2.
        embed (callable): The teacher's image embedding, images -> (B, D').

    Returns:
        dict: ``embedding_cosine``, the :func:`backbone_diagnostics` keys,
        ``register_within_head_similarity`` (RATS),
        ``grad_norm_by_group``, ``update_ratio_by_group``, ``centre_norm``, and the last
        block's figures as scalars (``stream_norm_last_block``, ``value_norm_last_block``,
        ``max_logit_last_block``: the largest logit of any step) for curves and logs.
    """
    with torch.no_grad():
        out = {'embedding_cosine': embedding_cosine(embed(images))}
    out.update(backbone_diagnostics(teacher, images))
    if getattr(teacher, 'attn_mode', None) == 'rats':
        with torch.no_grad():
            regs = teacher.forward_tokens(images)['x_norm_regtokens']      # (B, N, D)
        out['register_within_head_similarity'] = register_similarity(
            regs, teacher.num_heads)['within_head']
    out['grad_norm_by_group'] = grad_norm_by_group(student)
    if optimizer is not None:
        out['update_ratio_by_group'] = update_ratio_by_group(student, optimizer)
    center = getattr(criterion, 'center', None)
    if center is not None:
        out['centre_norm'] = center.float().norm().item()
    stream = out.get('register_stream_norm', out.get('cls_stream_norm'))
    out.update(stream_norm_last_block=stream[-1], value_norm_last_block=out['value_norm'][-1],
               max_logit_last_block=max(v[-1] for v in out['max_logit'].values()))
    return out
