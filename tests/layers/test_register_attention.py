import math

import pytest
import torch

from rats_mm.layers import RegisterAttention


def reference_register_attention(x, qkv_w, qkv_b, proj_w, proj_b, num_heads, num_registers):
    """docs/architecture.md section 1, written literally: a loop over heads and explicit zero
    padding."""
    B, T, D = x.shape
    d, n = D // num_heads, num_registers // num_heads
    qkv = x @ qkv_w.T + qkv_b                                  # (B, T, 3D)
    q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
    out = torch.zeros(B, T, D, dtype=x.dtype)
    P = slice(num_registers, T)
    for h in range(num_heads):
        cols = slice(h * d, (h + 1) * d)
        R_h = slice(h * n, (h + 1) * n)
        C = torch.softmax(q[:, R_h, cols] @ k[:, P, cols].transpose(1, 2) / math.sqrt(d),
                          -1) @ v[:, P, cols]
        M = torch.softmax(C @ C.transpose(1, 2) / math.sqrt(d), -1) @ C
        out[:, P, cols] = torch.softmax(q[:, P, cols] @ M.transpose(1, 2) / math.sqrt(d),
                                        -1) @ M
        out[:, R_h, cols] = M  # other registers keep zeros in this head's slice
    return out @ proj_w.T + proj_b


@pytest.mark.parametrize('num_heads,num_registers,num_patches', [(2, 4, 12), (4, 8, 7), (1, 3, 5)])
def test_matches_design_math_float64(num_heads, num_registers, num_patches):
    torch.manual_seed(0)
    attn = RegisterAttention(32, num_heads, num_registers).double()
    for p in attn.parameters():  # larger weights make the softmaxes far from uniform
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, num_registers + num_patches, 32, dtype=torch.float64)
    got = attn(x)
    want = reference_register_attention(x, attn.qkv.weight, attn.qkv.bias, attn.proj.weight,
                                        attn.proj.bias, num_heads, num_registers)
    rel = (got - want).norm() / want.norm()
    assert got.shape == x.shape
    assert rel < 1e-9


def test_registers_of_one_head_do_not_reach_another_head():
    torch.manual_seed(1)
    H, N, D = 4, 8, 32
    n, d = N // H, D // H
    attn = RegisterAttention(D, H, N).double()
    with torch.no_grad():  # identity projection exposes each head's slice
        attn.proj.weight.copy_(torch.eye(D))
        attn.proj.bias.zero_()
    x = torch.randn(2, N + 10, D, dtype=torch.float64)
    base = attn(x)
    x2 = x.clone()
    x2[:, n:2 * n] += torch.randn(2, n, D, dtype=torch.float64)  # perturb head 1's registers
    moved = attn(x2)
    for h in range(H):
        cols = slice(h * d, (h + 1) * d)
        changed = not torch.allclose(base[..., cols], moved[..., cols], atol=1e-12)
        assert changed == (h == 1), f'head {h}'
    # a register writes only its own head's slice
    for r in range(N):
        own = r // n
        other = [c for c in range(D) if c // d != own]
        assert torch.all(base[:, r, other] == 0)


def test_compress_weights_match_a_loop_over_heads():
    torch.manual_seed(2)
    D, H, N, L = 32, 2, 4, 9
    attn = RegisterAttention(D, H, N).double()
    x = torch.randn(2, N + L, D, dtype=torch.float64)
    w = attn.compress_weights(x)                                       # (B, N, L)
    assert w.shape == (2, N, L)
    n, d = N // H, D // H
    q, k = (x @ attn.qkv.weight.T + attn.qkv.bias)[..., :2 * D].split(D, dim=-1)
    for r in range(N):
        cols = slice((r // n) * d, (r // n + 1) * d)
        logits = torch.einsum('bc,blc->bl', q[:, r, cols], k[:, N:, cols]) / math.sqrt(d)
        want = torch.softmax(logits, dim=-1)                           # (B, L)
        assert torch.allclose(w[:, r], want, atol=1e-12)


def test_without_qkv_bias_matches_the_reference():
    torch.manual_seed(3)
    attn = RegisterAttention(32, 4, 8, qkv_bias=False).double()
    assert attn.qkv.bias is None
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 8 + 6, 32, dtype=torch.float64)
    want = reference_register_attention(x, attn.qkv.weight, torch.zeros(96, dtype=x.dtype),
                                        attn.proj.weight, attn.proj.bias, 4, 8)
    assert (attn(x) - want).norm() / want.norm() < 1e-9


def test_gradients_reach_every_parameter_and_input():
    attn = RegisterAttention(32, 2, 4)
    x = torch.randn(2, 4 + 6, 32, requires_grad=True)
    attn(x).square().sum().backward()
    assert x.grad[:, :4].abs().sum() > 0 and x.grad[:, 4:].abs().sum() > 0
    for name, p in attn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('kwargs,match', [
    (dict(dim=32, num_heads=4, num_registers=6), 'multiple of num_heads'),
    (dict(dim=32, num_heads=4, num_registers=0), 'positive multiple'),
    (dict(dim=30, num_heads=4, num_registers=8), 'dim=30'),
])
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RegisterAttention(**kwargs)


def test_input_without_patches_raises():
    with pytest.raises(ValueError, match='registers followed by patches'):
        RegisterAttention(32, 2, 4)(torch.randn(1, 4, 32))


def test_broadcast_weights_match_a_loop_over_heads():
    torch.manual_seed(0)
    D, H, N, L = 12, 3, 6, 5
    attn = RegisterAttention(D, H, N).double().eval()
    x = torch.randn(2, N + L, D, dtype=torch.float64)
    got = attn.broadcast_weights(x)                                     # (B, L, N)
    n, d = N // H, D // H
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias                         # (B, T, 3D)
    q, k, v = qkv.split(D, dim=-1)
    for h in range(H):
        cols = slice(h * d, h * d + d)
        rows = slice(h * n, h * n + n)
        comp = torch.softmax(q[:, rows, cols] @ k[:, N:, cols].transpose(1, 2) / d ** 0.5,
                             -1) @ v[:, N:, cols]
        msg = torch.softmax(comp @ comp.transpose(1, 2) / d ** 0.5, -1) @ comp
        want = torch.softmax(q[:, N:, cols] @ msg.transpose(1, 2) / d ** 0.5, -1)
        assert torch.allclose(got[:, :, rows], want, atol=1e-10)
    assert torch.allclose(got.sum(-1), torch.full((2, L), float(H), dtype=torch.float64))


def test_step_weights_match_a_loop_over_heads_and_rebuild_the_output():
    torch.manual_seed(4)
    D, H, N, L = 12, 3, 6, 5
    attn = RegisterAttention(D, H, N).double().eval()
    for p in attn.parameters():  # far from uniform softmaxes
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, N + L, D, dtype=torch.float64)
    got = attn.step_weights(x)
    n, d = N // H, D // H
    assert got['compress'].shape == (2, H, n, L)
    assert got['communicate'].shape == (2, H, n, n)
    assert got['broadcast'].shape == (2, H, L, n)
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(D, dim=-1)
    out = torch.zeros(2, N + L, D, dtype=torch.float64)
    for h in range(H):
        cols, rows = slice(h * d, h * d + d), slice(h * n, h * n + n)
        comp = torch.softmax(q[:, rows, cols] @ k[:, N:, cols].transpose(1, 2) / d ** 0.5, -1)
        assert torch.allclose(got['compress'][:, h], comp, atol=1e-12)
        c = comp @ v[:, N:, cols]
        comm = torch.softmax(c @ c.transpose(1, 2) / d ** 0.5, -1)
        assert torch.allclose(got['communicate'][:, h], comm, atol=1e-12)
        # the weights rebuild the forward pass: messages, then what each patch reads
        msg = got['communicate'][:, h] @ (got['compress'][:, h] @ v[:, N:, cols])
        out[:, rows, cols] = msg
        out[:, N:, cols] = got['broadcast'][:, h] @ msg
    want = attn(x)
    assert torch.allclose(out @ attn.proj.weight.T + attn.proj.bias, want, atol=1e-10)
    assert torch.allclose(attn.compress_weights(x), got['compress'].reshape(2, N, L))


def test_output_stays_in_the_autocast_dtype():
    """Under bf16 autocast the register attention returns bf16: its fp32 bias additions used
    to promote the register half, and with it the concatenated output, to fp32."""
    torch.manual_seed(0)
    attn = RegisterAttention(dim=32, num_heads=2, num_registers=4)
    x = torch.randn(2, 4 + 9, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), attn(x), atol=0.05, rtol=0.05)


def reference_competition_compress(x, attn):
    """The competition compress step written as loops, float64: per head, each patch's
    softmax over the head's registers, then each register's weighted mean of the values.

    Returns:
        tuple: shares (B, H, n, L) and renormalised weights (B, H, n, L).
    """
    B, T, D = x.shape
    H, N = attn.num_heads, attn.num_registers
    n, d, L = N // H, D // H, T - N
    q, k, _ = (x @ attn.qkv.weight.T + attn.qkv.bias).split(D, dim=-1)
    shares = torch.zeros(B, H, n, L, dtype=x.dtype)
    weights = torch.zeros(B, H, n, L, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            cols = slice(h * d, (h + 1) * d)
            for p in range(L):
                logits = torch.stack([q[b, h * n + r, cols] @ k[b, N + p, cols]
                                      for r in range(n)]) / math.sqrt(d)
                shares[b, h, :, p] = torch.exp(logits - logits.max()) / torch.exp(
                    logits - logits.max()).sum()
            for r in range(n):
                row = shares[b, h, r] + 1e-8
                weights[b, h, r] = row / row.sum()
    return shares, weights


def test_competition_weights_against_a_float64_loop():
    torch.manual_seed(5)
    D, H, N, L = 12, 3, 6, 7
    attn = RegisterAttention(D, H, N, compress='competition').double().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, N + L, D, dtype=torch.float64)
    got = attn.step_weights(x)
    shares, weights = reference_competition_compress(x, attn)
    torch.testing.assert_close(got['compress_shares'], shares, atol=1e-12, rtol=0)
    torch.testing.assert_close(got['compress'], weights, atol=1e-12, rtol=0)
    ones = torch.ones(2, H, L, dtype=torch.float64)
    torch.testing.assert_close(got['compress_shares'].sum(dim=2), ones)  # over registers
    torch.testing.assert_close(got['compress'].sum(dim=-1), torch.ones(2, H, N // H,
                                                                          dtype=torch.float64))
    # the forward uses these weights: rebuild it from them
    n, d = N // H, D // H
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(D, dim=-1)
    out = torch.zeros(2, N + L, D, dtype=torch.float64)
    for h in range(H):
        cols, rows = slice(h * d, h * d + d), slice(h * n, h * n + n)
        msg = got['communicate'][:, h] @ (weights[:, h] @ v[:, N:, cols])
        out[:, rows, cols] = msg
        out[:, N:, cols] = got['broadcast'][:, h] @ msg
    torch.testing.assert_close(attn(x), out @ attn.proj.weight.T + attn.proj.bias,
                               atol=1e-10, rtol=0)


def test_competition_differs_from_attention_and_attention_is_the_default():
    torch.manual_seed(6)
    paper = RegisterAttention(16, 2, 4)
    competition = RegisterAttention(16, 2, 4, compress='competition')
    competition.load_state_dict(paper.state_dict())
    assert paper.compress == 'attention'
    x = torch.randn(2, 4 + 9, 16)
    assert not torch.allclose(paper(x), competition(x), atol=1e-4)
    assert 'compress_shares' not in paper.step_weights(x)
    with pytest.raises(ValueError, match="compress='slots'"):
        RegisterAttention(16, 2, 4, compress='slots')


def reference_cosine_register_attention(x, attn, compress='attention'):
    """Scaled cosine logits written literally, float64, a loop over heads: each step scores
    ``exp(min(t, log 100)) * cos(q, k)`` with ``t = logit_scale[step, h]``; values as in the
    paper's step; registers written in their own head's slice."""
    B, T, D = x.shape
    H, N = attn.num_heads, attn.num_registers
    n, d = N // H, D // H
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(D, dim=-1)
    scale = torch.exp(torch.minimum(attn.logit_scale.detach(),
                                    torch.tensor(math.log(100.0), dtype=x.dtype)))  # (3, H)

    def cos(a, b):  # (B, m, d), (B, l, d) -> (B, m, l)
        return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).mT

    out = torch.zeros(B, T, D, dtype=x.dtype)
    P = slice(N, T)
    for h in range(H):
        cols, R_h = slice(h * d, (h + 1) * d), slice(h * n, (h + 1) * n)
        logits = scale[0, h] * cos(q[:, R_h, cols], k[:, P, cols])          # (B, n, L)
        if compress == 'competition':
            shares = torch.softmax(logits, dim=1) + 1e-8                    # over registers
            weights = shares / shares.sum(-1, keepdim=True)
        else:
            weights = torch.softmax(logits, dim=-1)                         # over patches
        C = weights @ v[:, P, cols]
        M = torch.softmax(scale[1, h] * cos(C, C), -1) @ C
        out[:, P, cols] = torch.softmax(scale[2, h] * cos(q[:, P, cols], M), -1) @ M
        out[:, R_h, cols] = M
    return out @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize('compress', ['attention', 'competition'])
def test_cosine_logits_match_a_float64_loop_and_clamp_the_scale(compress):
    torch.manual_seed(8)
    attn = RegisterAttention(48, num_heads=3, num_registers=6, compress=compress,
                             logits='cosine').double()
    assert attn.logit_scale.shape == (3, 3)
    torch.testing.assert_close(attn.logit_scale.detach(),
                               torch.full((3, 3), math.log(10.0), dtype=torch.float64))
    for p in (attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias):
        torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():  # random temperatures, one far above the clamp at log 100
        attn.logit_scale.uniform_(0.0, 4.0)
        attn.logit_scale[1, 2] = 7.0
    x = torch.randn(2, 6 + 11, 48, dtype=torch.float64)
    want = reference_cosine_register_attention(x, attn, compress)
    torch.testing.assert_close(attn(x), want, atol=1e-10, rtol=0)
    # the clamp: any t above log 100 computes what log 100 does
    clamped = RegisterAttention(48, 3, 6, compress=compress, logits='cosine').double()
    clamped.load_state_dict(attn.state_dict())
    with torch.no_grad():
        clamped.logit_scale[1, 2] = math.log(100.0)
    torch.testing.assert_close(clamped(x), attn(x), atol=1e-12, rtol=0)
    # and a scale below it is not clamped: lowering it changes the output
    with torch.no_grad():
        clamped.logit_scale[0, 0] -= 1.0
    assert not torch.allclose(clamped(x), attn(x), atol=1e-6)


@pytest.mark.parametrize('compress', ['attention', 'competition'])
def test_cosine_step_weights_are_the_forwards(compress):
    torch.manual_seed(9)
    D, H, N, L = 12, 3, 6, 5
    attn = RegisterAttention(D, H, N, compress=compress, logits='cosine').double().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, N + L, D, dtype=torch.float64)
    got = attn.step_weights(x)
    n, d = N // H, D // H
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(D, dim=-1)
    out = torch.zeros(2, N + L, D, dtype=torch.float64)
    for h in range(H):
        cols, rows = slice(h * d, h * d + d), slice(h * n, h * n + n)
        msg = got['communicate'][:, h] @ (got['compress'][:, h] @ v[:, N:, cols])
        out[:, rows, cols] = msg
        out[:, N:, cols] = got['broadcast'][:, h] @ msg
    torch.testing.assert_close(attn(x), out @ attn.proj.weight.T + attn.proj.bias,
                               atol=1e-10, rtol=0)
    for name in ('compress', 'communicate', 'broadcast'):
        rows = got[name].sum(-1) if name != 'compress' or compress == 'attention' else None
        if rows is not None:
            torch.testing.assert_close(rows, torch.ones_like(rows))


def test_cosine_logits_break_the_uniform_start_the_dot_product_keeps():
    """At init (trunc-normal 0.02 weights) the paper's compress is uniform: every register
    reads the patch mean. Cosine logits at temperature 10 are not, from step 0."""
    from rats_mm.models import RatsViT
    torch.manual_seed(10)
    images = torch.randn(4, 3, 32, 32)
    entropies = {}
    for logits in ('dot', 'cosine'):
        torch.manual_seed(10)
        model = RatsViT(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3,
                        num_registers=6, logits=logits).eval()
        w = model.register_step_weights(images)[0]['compress']              # (B, H, n, L)
        ent = -(w * w.clamp_min(1e-12).log()).sum(-1) / math.log(w.shape[-1])
        entropies[logits] = ent.mean().item()
    assert entropies['dot'] > 0.999
    assert entropies['cosine'] < 0.98


@pytest.mark.parametrize('options', [dict(compress='competition'), dict(logits='cosine'),
                                     dict(compress='competition', logits='cosine')])
def test_options_stay_in_the_autocast_dtype_and_train_every_parameter(options):
    torch.manual_seed(11)
    attn = RegisterAttention(dim=32, num_heads=2, num_registers=4, **options)
    x = torch.randn(2, 4 + 9, 32, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), attn(x), atol=0.05, rtol=0.05)
    attn(x).square().sum().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if 'logits' in options:
        assert (attn.logit_scale.grad != 0).all()  # every step and head


def test_dot_is_the_default_and_adds_no_parameter():
    paper = RegisterAttention(16, 2, 4)
    assert paper.logits == 'dot' and not hasattr(paper, 'logit_scale')
    assert 'logit_scale' in dict(RegisterAttention(16, 2, 4, logits='cosine').named_parameters())
    with pytest.raises(ValueError, match="logits='sine'"):
        RegisterAttention(16, 2, 4, logits='sine')
