"""Collapse diagnostics (rats_mm.ssl.diagnostics) against independent computations."""
import math

import pytest
import torch
from torch import nn

from rats_mm.models import RatsViT
from rats_mm.ssl.diagnostics import (backbone_diagnostics, embedding_cosine,
                                     grad_norm_by_group, parameter_group,
                                     training_diagnostics, update_ratio_by_group)
from rats_mm.ssl.distill import DINODistillation, build_optimizer

TINY = dict(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2)


def rats(**kwargs):
    torch.manual_seed(0)
    model = RatsViT(**TINY, num_registers=4, **kwargs).eval()
    for p in model.parameters():  # away from the near-uniform init
        nn.init.normal_(p, std=0.2)
    return model


def vit():
    torch.manual_seed(0)
    return RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full').eval()


def test_parameter_groups_cover_the_student():
    dist = DINODistillation(rats(logits='cosine'), head=dict(out_dim=16, hidden_dim=8,
                                                             bottleneck_dim=4))
    groups = {n: parameter_group(n) for n, _ in dist.student.named_parameters()}
    assert groups['backbone.patch_embed.proj.weight'] == 'patch_embed'
    assert groups['backbone.pos_embed'] == 'patch_embed'
    assert groups['backbone.registers'] == 'registers'
    assert groups['backbone.blocks.1.attn.qkv.weight'] == 'qkv'
    assert groups['backbone.blocks.1.attn.logit_scale'] == 'qkv'
    assert groups['backbone.blocks.0.attn.proj.bias'] == 'proj'
    assert groups['backbone.blocks.0.mlp.fc2.weight'] == 'mlp'
    assert groups['backbone.blocks.0.norm1.weight'] == 'norm'
    assert groups['backbone.norm.bias'] == 'norm'
    assert all(g == 'head' for n, g in groups.items() if n.startswith('head.'))
    assert parameter_group('cls_token') == 'registers'


def test_embedding_cosine_of_alike_and_orthogonal_images():
    same = torch.ones(4, 8)
    assert embedding_cosine(same) == pytest.approx(1.0)
    assert embedding_cosine(torch.eye(5) * 3.0) == pytest.approx(0.0, abs=1e-7)
    z = torch.randn(6, 8)
    n = nn.functional.normalize(z, dim=-1)
    pairs = [float(n[i] @ n[j]) for i in range(6) for j in range(6) if i != j]
    assert embedding_cosine(z) == pytest.approx(sum(pairs) / len(pairs), abs=1e-6)
    with pytest.raises(ValueError, match='at least 2 images'):
        embedding_cosine(z[:1])


@pytest.mark.parametrize('logits', ['dot', 'cosine'])
def test_rats_block_figures_against_the_block_written_out(logits):
    model = rats(logits=logits)
    x = torch.randn(3, 3, 32, 32)
    got = backbone_diagnostics(model, x)
    # the stream after each block, as forward_intermediates returns it (unnormed)
    _, inter = model.forward_intermediates(x, return_prefix_tokens=True)
    want_stream = [prefix.norm(dim=-1).mean().item() for _, prefix in inter]
    assert got['register_stream_norm'] == pytest.approx(want_stream, rel=1e-5)
    # the first block's patch values and compress logits, from qkv written out
    tokens, _ = model._embed(x)
    blk = model.blocks[0]
    y = blk.norm1(tokens)
    D, H, N = 24, 2, 4
    d = D // H
    q, k, v = (y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).split(D, dim=-1)
    values = v[:, N:].reshape(3, -1, H, d)
    assert got['value_norm'][0] == pytest.approx(values.norm(dim=-1).mean().item(), rel=1e-5)
    best = -math.inf
    for h in range(H):
        qh = q[:, h * 2:(h + 1) * 2, h * d:(h + 1) * d]                  # (B, n, d)
        kh = k[:, N:, h * d:(h + 1) * d]                                  # (B, L, d)
        if logits == 'dot':
            scores = qh @ kh.transpose(1, 2) / math.sqrt(d)
        else:
            t = blk.attn.logit_scale[0, h].clamp(max=math.log(100)).exp()
            scores = t * nn.functional.normalize(qh, dim=-1) @ nn.functional.normalize(
                kh, dim=-1).transpose(1, 2)
        best = max(best, scores.max().item())
    assert got['max_logit']['compress'][0] == pytest.approx(best, rel=1e-5)
    assert set(got['max_logit']) == {'compress', 'communicate', 'broadcast'}
    assert len(got['message_norm']) == 2


def test_vit_figures_are_its_cls_stream_and_full_attention_logits():
    model = vit()
    x = torch.randn(2, 3, 32, 32)
    got = backbone_diagnostics(model, x)
    _, inter = model.forward_intermediates(x, return_prefix_tokens=True)
    assert got['cls_stream_norm'] == pytest.approx(
        [p[:, 0].norm(dim=-1).mean().item() for _, p in inter], rel=1e-5)
    tokens, _ = model._embed(x)
    blk = model.blocks[0]
    q, k, _ = (blk.norm1(tokens) @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).split(24, -1)
    q, k = q.view(2, -1, 2, 12).transpose(1, 2), k.view(2, -1, 2, 12).transpose(1, 2)
    want = (q @ k.transpose(-2, -1) / math.sqrt(12)).max().item()
    assert set(got['max_logit']) == {'attention'}
    assert got['max_logit']['attention'][0] == pytest.approx(want, rel=1e-5)
    assert 'register_stream_norm' not in got


def test_gradient_norms_and_update_ratios_are_those_of_the_last_step():
    torch.manual_seed(1)
    model = rats()
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(2):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer.zero_grad()
        model(torch.randn(2, 3, 32, 32)).square().sum().backward()
        optimizer.step()
    grads = grad_norm_by_group(model)
    mlp = [p.grad for n, p in model.named_parameters() if '.mlp.' in n]
    assert grads['mlp'] == pytest.approx(torch.cat([g.flatten() for g in mlp]).norm().item(),
                                         rel=1e-5)
    assert 'head' not in grads
    ratios = update_ratio_by_group(model, optimizer)
    for group in ('qkv', 'mlp', 'registers'):
        names = [n for n, _ in model.named_parameters() if parameter_group(n) == group]
        moved = torch.cat([(before[n] - dict(model.named_parameters())[n]).flatten()
                           for n in names]).norm()
        weight = torch.cat([dict(model.named_parameters())[n].detach().flatten()
                            for n in names]).norm()
        assert ratios[group] == pytest.approx((moved / weight).item(), rel=1e-4), group


def test_training_diagnostics_of_a_distillation_step():
    dist = DINODistillation(rats(), head=dict(out_dim=16, hidden_dim=8, bottleneck_dim=4))
    optimizer = build_optimizer(dist.student, lr=1e-3, weight_decay=0.04, fused=False)
    views = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    dist(views, teacher_temp=0.04).backward()
    optimizer.step()
    images = torch.randn(4, 3, 32, 32)
    out = training_diagnostics(dist.teacher['backbone'], dist.student, optimizer,
                               dist.criterion, images, dist.teacher['backbone'])
    assert -1 <= out['embedding_cosine'] <= 1
    assert len(out['register_stream_norm']) == len(out['value_norm']) == 2
    assert set(out['grad_norm_by_group']) >= {'qkv', 'proj', 'mlp', 'head', 'registers'}
    assert all(v > 0 for v in out['update_ratio_by_group'].values())
    assert out['centre_norm'] == pytest.approx(dist.criterion.center.norm().item())
    assert out['stream_norm_last_block'] == out['register_stream_norm'][-1]
    assert out['max_logit_last_block'] == max(v[-1] for v in out['max_logit'].values())


@pytest.mark.parametrize('options,reads_cls', [
    (dict(num_registers=4), False),                                         # RATS
    (dict(num_registers=4, attn_mode='full', class_token=True), True),      # ViT + registers
    (dict(num_registers=0, attn_mode='full', class_token=True), True)])     # ViT
def test_the_stream_norm_and_the_analyses_read_the_same_tokens(options, reads_cls):
    """One rule (``embedding_tokens``): the [CLS] token when the model has one, else the
    registers, for the diagnostics' stream norm and the analyses' ``prefix_tokens``."""
    from rats_mm.analysis.io import features, prefix_tokens
    torch.manual_seed(0)
    model = RatsViT(**TINY, **options).eval()
    x = torch.randn(2, 3, 32, 32)
    out = features(model, x)
    tokens = prefix_tokens(model, out)
    want = out['x_norm_clstoken'][:, None] if reads_cls else out['x_norm_regtokens']
    assert torch.equal(tokens, want)
    prenorm = out['x_prenorm']
    read = prenorm[:, :1] if reads_cls else prenorm[:, :4]
    key = 'cls_stream_norm' if reads_cls else 'register_stream_norm'
    assert math.isclose(backbone_diagnostics(model, x)[key][-1],
                        read.norm(dim=-1).mean().item(), rel_tol=1e-5)
