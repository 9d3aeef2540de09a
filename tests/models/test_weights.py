import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from rats_mm.models import (RatsViT, checkpoint_filter_fn, detect_source, load_checkpoint_file,
                            load_pretrained)

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


class NotATensor:
    """A pickled object that weights_only loading must refuse."""


def timm_vit(**kwargs):
    torch.manual_seed(0)
    m = VisionTransformer(num_classes=0, **TINY, **kwargs).eval()
    for name, p in m.named_parameters():
        if 'token' in name or 'pos_embed' in name:
            torch.nn.init.normal_(p, std=0.5)
    return m


def dinov2_state_dict(ref):
    """The DINOv2 layout of a timm no_embed_class reg-ViT: CLS position kept apart, chunked
    blocks, ``register_tokens`` and ``mask_token``."""
    sd = ref.state_dict()
    cls_pos = torch.randn(1, 1, 32)
    out = {'cls_token': sd['cls_token'] - cls_pos, 'mask_token': torch.zeros(1, 32),
           'register_tokens': sd['reg_token'],
           'pos_embed': torch.cat([cls_pos, sd['pos_embed']], dim=1)}
    for k, v in sd.items():
        if k.startswith('blocks.'):
            _, i, rest = k.split('.', 2)
            out[f'blocks.0.{i}.{rest}'] = v  # one chunk holding every block
        elif k not in ('cls_token', 'reg_token', 'pos_embed'):
            out[k] = v
    return out


def test_dinov2_with_registers_matches_timm():
    ref = timm_vit(reg_tokens=4, no_embed_class=True, init_values=0.1)
    sd = dinov2_state_dict(ref)
    assert detect_source(sd) == 'dinov2'
    model = RatsViT(**TINY, num_registers=4, class_token=True, attn_mode='full',
                    init_values=0.1).eval()
    model.load_state_dict(checkpoint_filter_fn({'teacher': sd}, model), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want, got = ref.forward_features(x), model.forward_tokens(x)
    assert (got['x_norm_clstoken'] - want[:, 0]).abs().max() < 1e-5
    assert (got['x_norm_patchtokens'] - want[:, 5:]).abs().max() < 1e-5


def test_rats_registers_initialised_from_cls_plus_noise():
    ref = timm_vit()
    model = RatsViT(**TINY, num_registers=6)
    result = load_pretrained(model, ref.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    effective_cls = ref.cls_token + ref.pos_embed[:, :1]  # what the CLS enters block 0 as
    regs = model.registers.detach()
    assert regs.shape == (1, 6, 32)
    assert (regs - effective_cls).abs().max() < 0.2            # near the CLS ...
    assert torch.cdist(regs[0], regs[0])[~torch.eye(6, dtype=bool)].min() > 1e-3  # ... distinct
    assert torch.equal(model.blocks[1].attn.qkv.weight, ref.blocks[1].attn.qkv.weight)


def test_position_grid_and_patch_size_resampled():
    ref = timm_vit()
    model = RatsViT(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                    num_registers=2)
    sd = checkpoint_filter_fn(ref.state_dict(), model)
    assert sd['pos_embed'].shape == (1, 16, 32)
    assert sd['patch_embed.proj.weight'].shape == (32, 3, 16, 16)
    model.load_state_dict(sd, strict=True)


@pytest.mark.parametrize('wrap', [
    lambda sd: sd,
    lambda sd: {'state_dict': {**{f'teacher.backbone.{k}': v for k, v in sd.items()},
                               **{f'student.backbone.{k}': v * 0 for k, v in sd.items()}}},
    lambda sd: {'state_dict': {f'backbone.vit.{k}': v for k, v in sd.items()}},
])
def test_own_checkpoints_round_trip(wrap):
    src = RatsViT(**TINY, num_registers=4).eval()
    dst = RatsViT(**TINY, num_registers=4).eval()
    sd = checkpoint_filter_fn(wrap(src.state_dict()), dst)
    assert detect_source(sd) == 'rats_mm'
    dst.load_state_dict(sd, strict=True)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(src(x), dst(x))


def test_unrecognised_checkpoint_raises():
    with pytest.raises(ValueError, match='unrecognised checkpoint'):
        checkpoint_filter_fn({'layer1.weight': torch.zeros(1)}, RatsViT(**TINY, num_registers=2))


def test_strict_load_reports_missing_keys():
    sd = timm_vit().state_dict()
    del sd['blocks.1.mlp.fc2.weight']
    model = RatsViT(**TINY, num_registers=2)
    assert load_pretrained(model, sd).missing_keys == ['blocks.1.mlp.fc2.weight']
    with pytest.raises(RuntimeError, match=r'missing keys \[.blocks\.1\.mlp\.fc2\.weight'):
        load_pretrained(model, sd, strict=True)


def test_file_needing_more_than_weights_is_refused(tmp_path):
    path = tmp_path / 'pickled.pth'
    torch.save({'state_dict': timm_vit().state_dict(), 'meta': NotATensor()}, path)
    with pytest.raises(RuntimeError, match='pickled.pth.*trust_checkpoint=True'):
        load_checkpoint_file(str(path))
    model = RatsViT(**TINY, num_registers=2)
    assert not load_pretrained(model, str(path), trust_checkpoint=True).missing_keys
    plain = tmp_path / 'plain.pth'
    torch.save(timm_vit().state_dict(), plain)
    assert 'cls_token' in load_checkpoint_file(str(plain))


def test_original_dino_training_checkpoint_matches_timm():
    """DINO's own ``checkpoint.pth``: student under ``module.`` (DDP), teacher plain, each a
    ``backbone.`` (timm names) plus a ``head.``; the teacher backbone is what gets loaded."""
    ref = timm_vit()
    backbone = ref.state_dict()
    head = {'head.mlp.0.weight': torch.randn(8, 32), 'head.last_layer.weight_g': torch.ones(4, 1)}
    ckpt = {'student': {f'module.backbone.{k}': torch.randn_like(v) for k, v in backbone.items()},
            'teacher': {**{f'backbone.{k}': v for k, v in backbone.items()}, **head},
            'epoch': 100}
    model = RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full').eval()
    model.load_state_dict(checkpoint_filter_fn(ckpt, model), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want, got = ref.forward_features(x), model.forward_tokens(x)
    assert (got['x_norm_clstoken'] - want[:, 0]).abs().max() < 1e-5
    assert (got['x_norm_patchtokens'] - want[:, 1:]).abs().max() < 1e-5


def test_dinov2_without_registers_matches_timm():
    ref = timm_vit(no_embed_class=False, init_values=0.1)
    sd = ref.state_dict()
    dinov2 = {**{k: v for k, v in sd.items() if not k.startswith('blocks.')},
              'mask_token': torch.zeros(1, 32)}
    for k, v in sd.items():
        if k.startswith('blocks.'):
            _, i, rest = k.split('.', 2)
            dinov2[f'blocks.0.{i}.{rest}'] = v
    assert detect_source(dinov2) == 'dinov2'
    model = RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full',
                    init_values=0.1).eval()
    model.load_state_dict(checkpoint_filter_fn(dinov2, model), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want, got = ref.forward_features(x), model.forward_tokens(x)
    assert (got['x_norm_patchtokens'] - want[:, 1:]).abs().max() < 1e-5


def test_position_resampling_matches_timm_dynamic_size_on_non_square_inputs():
    ref = timm_vit(dynamic_img_size=True)
    model = RatsViT(**TINY, num_registers=0, class_token=True, attn_mode='full').eval()
    model.load_state_dict(checkpoint_filter_fn(ref.state_dict(), model), strict=True)
    for h, w in ((48, 80), (24, 40), (64, 16), (48, 40)):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            want, got = ref.forward_features(x), model.forward_tokens(x)
        assert got['grid_size'] == (h // 8, w // 8)
        assert (got['x_norm_patchtokens'] - want[:, 1:]).abs().max() < 1e-4, (h, w)


def test_saved_backbone_records_its_compress_step(tmp_path):
    """A backbone saved with ``save_backbone`` loads (strict) into the model it came from and
    refuses, naming the file, a model with the other compress step: the weights would fit but
    compute another function."""
    from rats_mm.models.weights import backbone_options, save_backbone
    kwargs = dict(**TINY, num_registers=4, attn_mode='rats')
    model = RatsViT(**kwargs, compress='competition')
    path = str(tmp_path / 'comp.pth')
    save_backbone(model.state_dict(), path, backbone_options(model))
    assert not [f for f in tmp_path.iterdir() if f.name != 'comp.pth']  # no temporary left
    same = RatsViT(**kwargs, compress='competition')
    load_pretrained(same, path, strict=True)
    assert torch.equal(same.registers, model.registers)
    with pytest.raises(ValueError, match=r"comp\.pth: weights trained with "
                                         r"compress='competition'"):
        load_pretrained(RatsViT(**kwargs), path)


def test_saved_backbone_records_its_logits(tmp_path):
    """Cosine-logit weights record ``logits``: they load (strict, temperatures included) into
    a cosine model, and a model with the paper's dot product refuses them naming the file;
    a backbone saved before the option existed counts as ``'dot'``."""
    from rats_mm.models.weights import BACKBONE_META_KEY, backbone_options, save_backbone
    kwargs = dict(**TINY, num_registers=4, attn_mode='rats')
    model = RatsViT(**kwargs, logits='cosine')
    with torch.no_grad():
        model.blocks[0].attn.logit_scale.uniform_(0, 4)
    path = str(tmp_path / 'cos.pth')
    save_backbone(model.state_dict(), path, backbone_options(model))
    assert torch.load(path, weights_only=True)['meta'][BACKBONE_META_KEY] == {
        'compress': 'attention', 'logits': 'cosine', 'global_pool': 'token', 'fc_norm': False,
        'num_registers': 4}
    same = RatsViT(**kwargs, logits='cosine')
    load_pretrained(same, path, strict=True)
    assert torch.equal(same.blocks[0].attn.logit_scale, model.blocks[0].attn.logit_scale)
    with pytest.raises(ValueError, match=r"cos\.pth: weights trained with logits='cosine'"):
        load_pretrained(RatsViT(**kwargs), path)
    old = {'state_dict': RatsViT(**kwargs).state_dict(),
           'meta': {BACKBONE_META_KEY: {'compress': 'attention'}}}
    with pytest.raises(ValueError, match=r"<state dict>: weights trained with logits='dot'"):
        load_pretrained(RatsViT(**kwargs, logits='cosine'), old)
    # weights that recorded nothing still show cosine logits by their temperatures
    with pytest.raises(ValueError, match=r"<state dict>: weights trained with logits='cosine'"):
        load_pretrained(RatsViT(**kwargs), model.state_dict())
    # and an export that recorded no options is not taken for one of the defaults
    bare = {'state_dict': model.state_dict(), 'meta': {BACKBONE_META_KEY: {}}}
    load_pretrained(RatsViT(**kwargs, logits='cosine'), bare, strict=True)
    # a dot-product checkpoint (timm, DINO, the paper's RATS) may initialise a cosine model
    result = load_pretrained(RatsViT(**kwargs, logits='cosine'), RatsViT(**kwargs).state_dict())
    assert sorted(result.missing_keys) == ['blocks.0.attn.logit_scale',
                                           'blocks.1.attn.logit_scale']


def test_atomic_save_keeps_the_previous_file_when_the_write_fails(tmp_path, monkeypatch):
    """A write killed part-way (simulated by ``torch.save`` failing after some bytes) leaves
    the previous file intact and no temporary file behind."""
    from rats_mm.models import weights as weights_module
    path = tmp_path / 'w.pth'
    weights_module.atomic_save({'a': torch.ones(3)}, str(path))
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 partial')
        raise KeyboardInterrupt('killed mid-write')
    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt):
        weights_module.atomic_save({'a': torch.zeros(3)}, str(path))
    monkeypatch.setattr(torch, 'save', real_save)
    assert torch.equal(torch.load(path, weights_only=True)['a'], torch.ones(3))
    assert [f.name for f in tmp_path.iterdir()] == ['w.pth']


def test_position_grid_resampled_bicubically_when_the_grid_changes():
    """A 32 px / patch 8 checkpoint (4 x 4 grid) loaded into a 48 px model (6 x 6): the stored
    grid equals timm's bicubic resample_abs_pos_embed of the source's patch positions, and the
    loaded model reproduces timm's own ViT run at 48 px with dynamic_img_size (the path every
    dense fine-tune takes, 224 px pretraining into a 512 or 1024 px backbone)."""
    from timm.layers import resample_abs_pos_embed
    ref = timm_vit()
    model = RatsViT(img_size=48, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                    num_registers=0, class_token=True, attn_mode='full').eval()
    sd = checkpoint_filter_fn(ref.state_dict(), model)
    want = resample_abs_pos_embed(ref.pos_embed[:, 1:].detach(), new_size=[6, 6],
                                  old_size=[4, 4], num_prefix_tokens=0,
                                  interpolation='bicubic')
    assert sd['pos_embed'].shape == (1, 36, 32)
    torch.testing.assert_close(sd['pos_embed'], want, atol=0, rtol=0)
    model.load_state_dict(sd, strict=True)
    dynamic = VisionTransformer(num_classes=0, dynamic_img_size=True, **TINY).eval()
    dynamic.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        got = model.forward_tokens(x)['x_norm_patchtokens']
        reference = dynamic.forward_features(x)[:, 1:]                   # (B, 36, D)
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=1e-5)

