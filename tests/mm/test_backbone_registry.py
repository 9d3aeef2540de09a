import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

TINY = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_registers=4)


def registry(library):
    if library == 'mmseg':
        import rats_mm.mmseg  # noqa: F401  (registers RatsViT)
        from mmseg.registry import MODELS
    else:
        import rats_mm.mmdet  # noqa: F401
        from mmdet.registry import MODELS
    return MODELS


@pytest.mark.parametrize('library', ['mmseg', 'mmdet'])
def test_registry_builds_and_output_ends_with_registers(library):
    backbone = registry(library).build(dict(type='RatsViT', out_indices=(1,), **TINY))
    outs = backbone(torch.randn(2, 3, 96, 128))
    assert len(outs) == 2
    assert outs[0].shape == (2, 32, 6, 8)
    assert outs[-1].shape == (2, 4, 32)


def test_custom_imports_config_loads_plugin():
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    cfg = Config(dict(custom_imports=dict(imports=['rats_mm.mmseg'], allow_failed_imports=False),
                      model=dict(type='RatsViT', out_indices=(0, 1), **TINY)))
    import_modules_from_strings(**cfg.custom_imports)
    from mmseg.registry import MODELS
    outs = MODELS.build(cfg.model)(torch.randn(1, 3, 64, 48))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 4, 3), (1, 32, 4, 3), (1, 4, 32)]


def test_inputs_padded_to_patch_multiple():
    backbone = registry('mmseg').build(dict(type='RatsViT', **TINY))
    maps, regs = backbone(torch.randn(1, 3, 90, 120))
    assert maps.shape == (1, 32, 6, 8) and regs.shape == (1, 4, 32)


def test_pretrained_init_cfg_goes_through_checkpoint_filter(tmp_path):
    torch.manual_seed(0)
    ref = VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                            num_classes=0)
    path = tmp_path / 'vit.pth'
    torch.save(ref.state_dict(), path)
    backbone = registry('mmseg').build(dict(
        type='RatsViT', init_cfg=dict(type='Pretrained', checkpoint=str(path)), **TINY))
    backbone.init_weights()
    assert torch.equal(backbone.vit.blocks[1].mlp.fc1.weight, ref.blocks[1].mlp.fc1.weight)
    assert torch.allclose(backbone.vit.pos_embed, ref.pos_embed[:, 1:])


def test_frozen_stages():
    backbone = registry('mmdet').build(dict(type='RatsViT', frozen_stages=1, **TINY))
    backbone.train()
    assert not backbone.vit.blocks[0].attn.qkv.weight.requires_grad
    assert not backbone.vit.registers.requires_grad
    assert backbone.vit.blocks[1].attn.qkv.weight.requires_grad
    assert not backbone.vit.blocks[0].training and backbone.vit.blocks[1].training


@pytest.mark.parametrize('kwargs,match', [
    (dict(init_cfg=dict(type='Kaiming')), "only 'Pretrained'"),
    (dict(init_cfg=dict(type='Pretrained')), "needs a 'checkpoint'"),
    (dict(frozen_stages=5), 'frozen_stages=5'),
    (dict(out_indices=(7,)), 'out of range'),
])
def test_bad_config_fails_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        registry('mmseg').build(dict(type='RatsViT', **TINY, **kwargs))


def test_compiled_dense_backbone_equals_eager():
    """``compile=True`` in a dense config compiles the backbone in place: same keys, same
    maps and registers as eager, and the forward has no graph break."""
    import torch._dynamo as dynamo
    MODELS = registry('mmseg')
    torch.manual_seed(0)
    eager = MODELS.build(dict(type='RatsViT', out_indices=(0, 1), **TINY)).eval()
    compiled = MODELS.build(dict(type='RatsViT', out_indices=(0, 1), compile=True,
                                 **TINY)).eval()
    assert compiled._compiled_call_impl is not None and eager._compiled_call_impl is None
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        for got, want in zip(compiled(x), eager(x)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert dynamo.explain(eager)(x).graph_break_count == 0
