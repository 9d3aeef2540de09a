"""The timm model interface of RatsViT: what a timm user reaches for first."""
import pytest
import timm
import torch
from timm.models import get_pretrained_cfg_value
from timm.models.vision_transformer import VisionTransformer
from torchvision.models.feature_extraction import create_feature_extractor

from rats_mm.models import RatsViT, checkpoint_filter_fn

SMALL_TIMM = dict(img_size=32, embed_dim=32, depth=3, num_heads=2, num_registers=4)
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2)
MODES = {'rats': dict(num_registers=4),
         'vit_registers': dict(num_registers=2, attn_mode='full', class_token=True),
         'vit': dict(num_registers=0, attn_mode='full', class_token=True)}


def test_small_model_classifier_pre_logits_and_reset_classifier():
    torch.manual_seed(0)
    model = timm.create_model('rats_small_patch16', num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        features = model.forward_features(x)
        assert features.shape == (2, 48 + 196, 384)       # (B, T, D) normed tokens
        pre = model.forward_head(features, pre_logits=True)
        assert pre.shape == (2, 384)
        assert torch.allclose(model.head(pre), model(x), atol=1e-5)
        model.reset_classifier(0)
        assert model(x).shape == (2, 384)
        assert torch.allclose(model(x), pre, atol=1e-5)
    assert get_pretrained_cfg_value('rats_small_patch16', 'input_size') == (3, 224, 224)
    assert model.num_features == model.head_hidden_size == 384 and model.num_classes == 0


def test_features_only_gives_the_maps_of_forward_intermediates():
    torch.manual_seed(0)
    features = timm.create_model('rats_small_patch16', features_only=True,
                                 out_indices=(2, 5, 8, 11)).eval()
    torch.manual_seed(0)
    model = timm.create_model('rats_small_patch16').eval()         # the same init
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        maps = features(x)
        want = model.forward_intermediates(x, indices=(2, 5, 8, 11), intermediates_only=True)
    assert [tuple(m.shape) for m in maps] == [(2, 384, 14, 14)] * 4
    assert features.feature_info.channels() == [384] * 4
    assert features.feature_info.reduction() == [16] * 4
    for got, ref in zip(maps, want):
        assert torch.allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize('mode', sorted(MODES))
def test_token_pool_is_the_image_embedding_of_forward_tokens(mode):
    torch.manual_seed(0)
    model = RatsViT(**TINY, **MODES[mode]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_tokens(x)
        embedding = model(x)
        features = model.forward_features(x)
    assert torch.equal(embedding, tokens['x_norm_clstoken'])
    cls, registers, _ = model.token_groups(features)
    assert torch.allclose(embedding, cls if cls is not None else registers.mean(1))
    assert torch.allclose(features, model.norm(tokens['x_prenorm']))


def test_register_pools_against_a_per_register_reference():
    model = RatsViT(**TINY, num_registers=6).eval()   # 2 heads, 3 registers each
    x = torch.randn(2, 3, 32, 32)
    tokens = model.forward_features(x)
    regs, patches = tokens[:, :6], tokens[:, 6:]                              # (B, N, D)
    d = model.embed_dim // 2
    heads = torch.cat([regs[:, 3 * h:3 * h + 3, h * d:(h + 1) * d].mean(1) for h in range(2)],
                      dim=1)
    expected = {'registers': torch.cat([regs[:, i] for i in range(6)], dim=1),
                'heads': heads,
                'registers_avg': torch.cat([*(regs[:, i] for i in range(6)), patches.mean(1)],
                                           dim=1)}
    for pool, want in expected.items():
        pooled = RatsViT(**TINY, num_registers=6, global_pool=pool)
        pooled.load_state_dict(model.state_dict())
        got = pooled.eval()(x)
        assert pooled.head_hidden_size == want.shape[1]
        torch.testing.assert_close(got, want)
    classifier = RatsViT(**TINY, num_registers=6, global_pool='registers', num_classes=5)
    assert classifier(x).shape == (2, 5)
    assert classifier.head.in_features == 6 * model.embed_dim


def test_register_pools_refuse_models_they_cannot_read():
    with pytest.raises(ValueError, match="global_pool='registers' reads the registers"):
        RatsViT(**TINY, num_registers=0, attn_mode='full', class_token=True,
                global_pool='registers')
    with pytest.raises(ValueError, match="global_pool='heads' needs registers partitioned"):
        RatsViT(**TINY, num_registers=4, attn_mode='full', class_token=True,
                global_pool='heads')
    with pytest.raises(ValueError, match='fc_norm norms a D-wide pooled token'):
        RatsViT(**TINY, num_registers=6, global_pool='registers', fc_norm=True)
    with pytest.raises(ValueError, match='fc_norm norms a D-wide pooled token'):
        RatsViT(**TINY, num_registers=6, global_pool='avg').reset_classifier(5, 'registers')


def test_avg_pool_norms_the_patch_mean_like_timm():
    torch.manual_seed(0)
    model = RatsViT(**TINY, num_registers=4, global_pool='avg', num_classes=5).eval()
    assert isinstance(model.norm, torch.nn.Identity)               # timm's fc_norm rule
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)                          # not normed
        pre = model.forward_head(tokens, pre_logits=True)
        assert model(x).shape == (2, 5)
    assert torch.allclose(pre, model.fc_norm(tokens[:, 4:].mean(1)), atol=1e-6)
    with pytest.raises(ValueError, match="global_pool='map' is not one of"):
        RatsViT(**TINY, num_registers=4, global_pool='map')


def test_the_head_matches_timms_vision_transformer_with_the_same_weights():
    """A full-attention RatsViT with [CLS] loads timm's ViT, head included, through
    checkpoint_filter_fn and gives its logits for 'token' and 'avg' pooling."""
    for pool in ('token', 'avg'):
        torch.manual_seed(0)
        ref = VisionTransformer(**TINY, num_classes=7,
                                global_pool=pool).eval()
        model = RatsViT(**TINY, num_registers=0, attn_mode='full', class_token=True,
                        num_classes=7, global_pool=pool).eval()
        result = model.load_state_dict(checkpoint_filter_fn(ref.state_dict(), model),
                                       strict=True)                  # head and fc_norm kept
        assert not result.missing_keys and not result.unexpected_keys
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(model(x), ref(x), atol=1e-5), pool


def test_reset_classifier_keeps_device_dtype_training_and_pool():
    model = RatsViT(**TINY, num_registers=4).double().train()
    model.reset_classifier(3)
    assert model.head.weight.dtype == torch.float64 and model.head.training
    assert model.global_pool == 'token' and model.get_classifier() is model.head
    model.reset_classifier(0, '')
    tokens = model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert tokens.shape == (1, 4 + 16, 32)                          # no pool, no head


def test_default_model_has_no_new_checkpoint_keys():
    """Checkpoints saved before the head existed load strictly (no head / fc_norm keys)."""
    keys = set(RatsViT(**TINY, num_registers=4).state_dict())
    assert not any(k.startswith(('head.', 'fc_norm.', 'head_drop.')) for k in keys)
    assert {'registers', 'pos_embed', 'patch_embed.proj.weight', 'norm.weight'} <= keys


def test_group_matcher_drives_timms_layer_decay():
    from timm.optim import param_groups_layer_decay
    model = RatsViT(**TINY, num_registers=4, num_classes=3)
    groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.5)
    scales = sorted({g['lr_scale'] for g in groups})
    assert len(scales) == len(model.blocks) + 2                    # stem, blocks, norm/head
    names = {id(p): n for n, p in model.named_parameters()}
    by_name = {names[id(p)]: g['lr_scale'] for g in groups for p in g['params']}
    assert by_name['registers'] == min(scales) and by_name['head.weight'] == 1.0
    assert by_name['blocks.0.attn.qkv.weight'] < by_name['blocks.2.attn.qkv.weight']


def test_prune_intermediate_layers():
    model = RatsViT(**TINY, num_registers=4, num_classes=3)
    assert model.prune_intermediate_layers((0, 1), prune_norm=True) == [0, 1]
    assert len(model.blocks) == 2 and isinstance(model.norm, torch.nn.Identity)
    assert model.num_classes == 0 and model.global_pool == ''


def test_factory_device_and_dtype():
    model = timm.create_model('rats_tiny_patch16', device='meta', dtype=torch.bfloat16)
    assert {p.device.type for p in model.parameters()} == {'meta'}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with pytest.raises(TypeError):
        timm.create_model('rats_tiny_patch16', device='meta', not_a_model_arg=1)


def test_pretrained_without_a_file_names_load_pretrained():
    with pytest.raises(ValueError, match=r'rats_mm\.models\.load_pretrained'):
        timm.create_model('rats_tiny_patch16', pretrained=True)


def test_pretrained_file_loads_through_the_checkpoint_filter(tmp_path):
    """A local file in pretrained_cfg_overlay loads: the project's own weights and a timm ViT's
    (converted by checkpoint_filter_fn)."""
    torch.manual_seed(0)
    source = timm.create_model('rats_tiny_patch16', **SMALL_TIMM)
    torch.save(source.state_dict(), tmp_path / 'rats.pth')
    loaded = timm.create_model('rats_tiny_patch16', pretrained=True, **SMALL_TIMM,
                               pretrained_cfg_overlay=dict(file=str(tmp_path / 'rats.pth')))
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=3, num_heads=2,
                            num_classes=9)
    torch.save(vit.state_dict(), tmp_path / 'vit.pth')
    as_vit = timm.create_model('rats_tiny_patch16', pretrained=True, img_size=32, embed_dim=32,
                               depth=3, num_heads=2, num_registers=0, attn_mode='full',
                               class_token=True,
                               pretrained_cfg_overlay=dict(file=str(tmp_path / 'vit.pth')))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(as_vit.forward_features(x), vit.forward_features(x), atol=1e-5)
    with_head = timm.create_model('rats_tiny_patch16', pretrained=True, img_size=32,
                                  embed_dim=32, depth=3, num_heads=2, num_registers=0,
                                  attn_mode='full', class_token=True, num_classes=9,
                                  pretrained_cfg_overlay=dict(file=str(tmp_path / 'vit.pth')))
    assert torch.equal(with_head.head.weight, vit.head.weight)  # the same classifier is kept


def test_pretrained_file_through_timm_checks_the_recorded_options(tmp_path):
    """timm's loader reads a file with the project's loader: weights saved with their
    options (save_backbone) refuse a model built with other ones."""
    from rats_mm.models.weights import backbone_options, save_backbone
    source = timm.create_model('rats_tiny_patch16', **SMALL_TIMM, compress='competition')
    save_backbone(source.state_dict(), str(tmp_path / 'b.pth'), backbone_options(source))
    overlay = dict(file=str(tmp_path / 'b.pth'))
    with pytest.raises(ValueError, match="trained with compress='competition'"):
        timm.create_model('rats_tiny_patch16', pretrained=True, **SMALL_TIMM,
                          pretrained_cfg_overlay=overlay)
    loaded = timm.create_model('rats_tiny_patch16', pretrained=True, **SMALL_TIMM,
                               compress='competition', pretrained_cfg_overlay=overlay)
    assert torch.equal(loaded.registers, source.registers)


def test_backbones_take_no_classifier_options():
    from rats_mm.dense.backbone import RatsViTBackbone
    with pytest.raises(ValueError, match=r"\['global_pool'\]: a dense backbone has no"):
        RatsViTBackbone(**TINY, num_registers=4, global_pool='avg')
    from rats_mm.analysis.probes.features import FrozenEmbedding
    with pytest.raises(ValueError, match='needs num_classes=0'):
        FrozenEmbedding(RatsViT(**TINY, num_registers=4, num_classes=3))


def test_get_intermediate_layers_is_forward_intermediates():
    model = RatsViT(**TINY, num_registers=4).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        tokens = model.get_intermediate_layers(x, n=2)
        maps = model.get_intermediate_layers(x, n=(0,), reshape=True, norm=True)
        want = model.forward_intermediates(x, indices=2, output_fmt='NLC',
                                           intermediates_only=True)
    assert len(tokens) == 2 and all(torch.equal(a, b) for a, b in zip(tokens, want))
    assert maps[0].shape == (1, 32, 4, 4)


@pytest.mark.parametrize('mode', sorted(MODES))
def test_fx_feature_extraction_matches_eager(mode):
    """torch.fx traces the model (torchvision's feature extractor, timm's fx path): the
    input-size checks stay single calls and the graph gives the eager output."""
    torch.manual_seed(0)
    model = RatsViT(**TINY, **MODES[mode], num_classes=3).eval()
    extractor = create_feature_extractor(model, return_nodes={'blocks.1': 'mid',
                                                              'head': 'logits'})
    x = torch.randn(2, 3, 48, 32)                                  # not the stored grid
    with torch.no_grad():
        out = extractor(x)
        assert torch.allclose(out['logits'], model(x), atol=1e-5)
    with pytest.raises(ValueError, match='not a multiple of the patch size'):
        extractor(torch.randn(1, 3, 30, 32))
