import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from rats_mm.models import RatsViT, checkpoint_filter_fn, rats_small_patch16, vit_small_patch16

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def timm_vit(**kwargs):
    torch.manual_seed(0)
    m = VisionTransformer(num_classes=0, **TINY, **kwargs).eval()
    for name, p in m.named_parameters():  # non-trivial tokens and positions
        if 'token' in name or 'pos_embed' in name:
            torch.nn.init.normal_(p, std=0.5)
    return m


@pytest.mark.parametrize('timm_kwargs,num_registers', [
    ({}, 0),                                            # plain ViT
    ({'reg_tokens': 4}, 4),                             # ViT + registers, positions on prefix
    ({'reg_tokens': 4, 'no_embed_class': True}, 4),     # ViT + registers, DINOv2-style in timm
])
def test_full_mode_reproduces_timm_vit(timm_kwargs, num_registers):
    ref = timm_vit(**timm_kwargs)
    model = RatsViT(**TINY, num_registers=num_registers, class_token=True,
                    attn_mode='full').eval()
    result = model.load_state_dict(checkpoint_filter_fn(ref.state_dict(), model), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = ref.forward_features(x)
        got = model.forward_tokens(x)
    assert (got['x_norm_clstoken'] - want[:, 0]).abs().max() < 1e-5
    assert got['x_norm_regtokens'].shape[1] == num_registers
    assert torch.allclose(got['x_norm_regtokens'], want[:, 1:1 + num_registers], atol=1e-5)
    assert (got['x_norm_patchtokens'] - want[:, 1 + num_registers:]).abs().max() < 1e-5


def test_rats_forward_shapes_for_non_square_sizes():
    model = RatsViT(**TINY, num_registers=4).eval()
    out = model.forward_tokens(torch.randn(2, 3, 48, 80))
    assert out['x_norm_regtokens'].shape == (2, 4, 32)
    assert out['x_norm_patchtokens'].shape == (2, 6 * 10, 32)
    assert out['grid_size'] == (6, 10)
    assert torch.allclose(out['x_norm_clstoken'], out['x_norm_regtokens'].mean(1))
    assert torch.equal(model(torch.ones(1, 3, 32, 32)),
                       model.forward_tokens(torch.ones(1, 3, 32, 32))['x_norm_clstoken'])


def test_input_not_multiple_of_patch_size_raises():
    with pytest.raises(ValueError, match='50x64 is not a multiple of the patch size 8'):
        RatsViT(**TINY, num_registers=4)(torch.randn(1, 3, 50, 64))


def test_forward_intermediates():
    model = RatsViT(**TINY, num_registers=4).eval()
    x = torch.randn(2, 3, 48, 64)
    final, inter = model.forward_intermediates(x, indices=(0, -1), norm=True,
                                               return_prefix_tokens=True)
    assert len(inter) == 2
    for maps, regs in inter:
        assert maps.shape == (2, 32, 6, 8) and regs.shape == (2, 4, 32)
    last_map, last_regs = inter[-1]
    ff = model.forward_tokens(x)
    assert torch.allclose(last_map.flatten(2).transpose(1, 2), ff['x_norm_patchtokens'],
                          atol=1e-6)
    assert torch.allclose(last_regs, ff['x_norm_regtokens'], atol=1e-6)
    assert torch.allclose(final[:, :4], ff['x_norm_regtokens'], atol=1e-6)
    assert len(model.forward_intermediates(x, intermediates_only=True)) == 2   # None: all
    only = model.forward_intermediates(x, indices=1, intermediates_only=True, output_fmt='NLC')
    assert len(only) == 1 and only[0].shape == (2, 48, 32)
    raw = model.forward_intermediates(x, indices=[-1], intermediates_only=True)[0]
    assert not torch.allclose(raw, last_map)                 # norm=False by default, as timm
    with pytest.raises(ValueError, match='out of range'):
        model.forward_intermediates(x, indices=(5,))
    with pytest.raises(ValueError, match='output_fmt'):
        model.forward_intermediates(x, output_fmt='NHWC')


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(indices=1, norm=True),
    dict(indices=[0], return_prefix_tokens=True, output_fmt='NLC'),
    dict(indices=2, norm=True, stop_early=True, intermediates_only=True),
])
def test_forward_intermediates_matches_timm(kwargs):
    """Same arguments, same weights: the same result as timm's VisionTransformer."""
    ref = timm_vit(reg_tokens=4, no_embed_class=True)
    model = RatsViT(**TINY, num_registers=4, class_token=True, attn_mode='full').eval()
    model.load_state_dict(checkpoint_filter_fn(ref.state_dict(), model), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = ref.forward_intermediates(x, **kwargs)
        got = model.forward_intermediates(x, **kwargs)
    flat_want = torch.utils._pytree.tree_leaves(want)
    flat_got = torch.utils._pytree.tree_leaves(got)
    assert len(flat_got) == len(flat_want)
    for a, b in zip(flat_got, flat_want):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-5


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = RatsViT(**TINY, num_registers=4).train()
    x = torch.randn(2, 3, 32, 32)
    model(x).square().sum().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).square().sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, plain[n], atol=1e-6), n


def test_gradients_reach_registers_and_positions():
    model = RatsViT(**TINY, num_registers=4)
    model(torch.randn(2, 3, 32, 32)).square().sum().backward()
    assert model.registers.grad.abs().sum() > 0
    assert model.pos_embed.grad.abs().sum() > 0
    # every register gets its own gradient (they are distinct, not tied)
    assert (model.registers.grad[0].abs().sum(-1) > 0).all()


def test_registers_distinct_at_init_and_no_weight_decay_names_exist():
    model = RatsViT(**TINY, num_registers=4)
    regs = model.registers[0]
    assert torch.cdist(regs, regs)[~torch.eye(4, dtype=bool)].min() > 0
    names = dict(model.named_parameters())
    assert model.no_weight_decay() >= {'registers', 'pos_embed'}
    assert all(n in names for n in model.no_weight_decay() if n != 'cls_token')


def test_last_compress_weights():
    model = RatsViT(**TINY, num_registers=4)
    w = model.last_compress_weights(torch.randn(1, 3, 32, 48))
    assert w.shape == (1, 4, 24)
    assert torch.allclose(w.sum(-1), torch.ones(1, 4), atol=1e-6)
    with pytest.raises(ValueError, match="attn_mode='rats'"):
        RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full') \
            .last_compress_weights(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_registers=4, class_token=True), 'class_token=True needs'),
    (dict(num_registers=0, class_token=False, attn_mode='full'), 'registers or a class token'),
    (dict(num_registers=3), 'multiple of num_heads'),
    (dict(num_registers=4, attn_mode='linear'), 'attn_mode'),
    (dict(num_registers=4, img_size=36), 'not a multiple of patch_size'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RatsViT(**{**TINY, **kwargs})


def test_factories_follow_registers_per_head():
    assert rats_small_patch16(depth=1).num_registers == 48
    assert rats_small_patch16(depth=1, registers_per_head=2).num_registers == 12
    plain = vit_small_patch16(depth=1)
    assert plain.num_registers == 0 and plain.has_class_token and plain.attn_mode == 'full'


def test_factories_are_registered_with_timm():
    import timm
    model = timm.create_model('rats_small_patch16', num_registers=48, depth=1)
    assert isinstance(model, RatsViT) and model.num_registers == 48
    assert model.embed_dim == 384 and model.num_heads == 6
    assert {'rats_tiny_patch16', 'rats_small_patch16', 'rats_base_patch16',
            'rats_large_patch16'} <= set(timm.list_models('rats_*'))
    assert timm.create_model('rats_tiny_patch16', depth=1).num_registers == 3 * 8
    with pytest.raises(ValueError, match='no RATS weights are hosted'):
        timm.create_model('rats_tiny_patch16', pretrained=True)


@pytest.mark.parametrize('attn_mode,registers,cls', [('rats', 4, False), ('full', 2, True)])
def test_last_patch_keys_are_the_last_blocks_patch_keys(attn_mode, registers, cls):
    torch.manual_seed(0)
    model = RatsViT(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=2,
                    num_registers=registers, attn_mode=attn_mode, class_token=cls).eval()
    seen = {}
    model.blocks[-1].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    x = torch.randn(2, 3, 32, 32)
    model.forward_features(x)
    block, prefix = model.blocks[-1], registers + int(cls)
    qkv = block.attn.qkv(block.norm1(seen['x']))[:, prefix:]                 # (B, L, 3D)
    expected = qkv.view(2, 16, 3, 24)[:, :, 1]                              # keys (B, L, D)
    assert torch.allclose(model.last_patch_keys(x), expected, atol=1e-6)


def test_competition_compress_builds_runs_and_default_is_unchanged():
    """``compress`` reaches every block; the default is the paper's step, so a default model
    and an explicit ``compress='attention'`` one compute the same function."""
    kwargs = dict(**TINY, num_registers=4, attn_mode='rats')
    torch.manual_seed(0)
    default = RatsViT(**kwargs).eval()
    torch.manual_seed(0)
    paper = RatsViT(**kwargs, compress='attention').eval()
    torch.manual_seed(0)
    competition = RatsViT(**kwargs, compress='competition').eval()
    assert all(b.attn.compress == 'competition' for b in competition.blocks)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(default(x), paper(x))
    out = competition(x)
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    assert not torch.allclose(out, paper(x), atol=1e-5)
    weights = competition.register_step_weights(x)
    assert 'compress_shares' in weights[0]
    with pytest.raises(ValueError, match="needs attn_mode='rats'"):
        RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full',
                compress='competition')
    timm_model = __import__('timm').create_model('rats_tiny_patch16', compress='competition',
                                                 depth=1)
    assert timm_model.blocks[0].attn.compress == 'competition'


def test_cosine_logits_build_reach_every_block_and_dot_keeps_the_keys():
    """``logits`` reaches every block (through timm's factory too); the default adds no
    parameter, so checkpoints of the paper's step keep exactly their keys, and the cosine
    temperatures take no weight decay."""
    kwargs = dict(**TINY, num_registers=4, attn_mode='rats')
    torch.manual_seed(0)
    default = RatsViT(**kwargs).eval()
    torch.manual_seed(0)
    dot = RatsViT(**kwargs, logits='dot').eval()
    torch.manual_seed(0)
    cosine = RatsViT(**kwargs, logits='cosine').eval()
    assert set(default.state_dict()) == set(dot.state_dict())
    assert not any('logit_scale' in k for k in dot.state_dict())
    extra = set(cosine.state_dict()) - set(dot.state_dict())
    assert extra == {f'blocks.{i}.attn.logit_scale' for i in range(len(cosine.blocks))}
    assert extra <= cosine.no_weight_decay()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(default(x), dot(x))
    out = cosine(x)
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    assert not torch.allclose(out, dot(x), atol=1e-5)
    with pytest.raises(ValueError, match="needs attn_mode='rats'"):
        RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full', logits='cosine')
    timm_model = __import__('timm').create_model('rats_tiny_patch16', logits='cosine',
                                                 compress='competition', depth=1)
    assert timm_model.blocks[0].attn.logits == 'cosine'
    assert timm_model.blocks[0].attn.logit_scale.shape == (3, 3)
