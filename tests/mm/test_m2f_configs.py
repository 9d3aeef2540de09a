"""The main Mask2Former configs load, build on CPU and size their queries from the backbone."""
import pytest
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

CONFIGS = {
    'configs/m2f_rats_ade20k.py': ('mmseg', 'decode_head', 48, 52),
    'configs/m2f_rats_vitb_ade20k.py': ('mmseg', 'decode_head', 96, 4),
    'configs/m2f_vit_ade20k.py': ('mmseg', 'decode_head', 0, None),
    'configs/m2f_rats_coco.py': ('mmdet', 'panoptic_head', 48, 52),
    'configs/m2f_vit_coco.py': ('mmdet', 'panoptic_head', 0, None),
    'configs/m2f_rats_learnedq_ade20k.py': ('mmseg', 'decode_head', 48, None),
    'configs/m2f_rats_learnedq_coco.py': ('mmdet', 'panoptic_head', 48, None),
    'configs/m2f_vitreg_ade20k.py': ('mmseg', 'decode_head', 4, None),
    'configs/m2f_vitreg_coco.py': ('mmdet', 'panoptic_head', 4, None),
    'configs/m2f_vit_vitb_ade20k.py': ('mmseg', 'decode_head', 0, None),
}


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_main_config_builds(path):
    library, head_key, registers, extra = CONFIGS[path]
    cfg = Config.fromfile(path)
    import_modules_from_strings(**cfg.custom_imports)
    head_cfg = cfg.model[head_key]
    assert cfg.model.backbone.num_registers == registers
    if extra is None:  # baseline: the upstream head's learned queries
        assert head_cfg.register_queries is None and head_cfg.num_queries == 100
    else:
        assert head_cfg.num_queries == registers + extra
        assert head_cfg.register_queries.num_registers == registers
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    cfg.model.backbone.init_cfg = None  # no checkpoint on this machine
    if library == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    head = getattr(model, head_key)
    assert (head.register_queries is None) == (extra is None)
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimWrapperConstructor'


def test_layer_decay_groups():
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    from rats_mm.runtime.precision import settle_precision
    cfg = Config.fromfile('configs/demo/m2f_rats_synthetic_seg.py')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # bf16 from m2f_rats_ade20k.py
    assert settle_precision(cfg) == 'fp32' and cfg.optim_wrapper.type == 'OptimWrapper'
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    by_param = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    named = dict(model.named_parameters())
    base = cfg.optim_wrapper.optimizer.lr
    block0 = by_param[id(named['backbone.vit.blocks.0.attn.qkv.weight'])]
    block3 = by_param[id(named['backbone.vit.blocks.3.attn.qkv.weight'])]
    assert block0['lr'] == pytest.approx(base * 0.9 ** 4)
    assert block3['lr'] == pytest.approx(base * 0.9 ** 1)
    assert by_param[id(named['decode_head.register_queries.content.1.weight'])]['lr'] == base
    for name in ('backbone.vit.registers', 'backbone.vit.pos_embed',
                 'decode_head.register_queries.position.weight', 'decode_head.level_embed.weight'):
        assert by_param[id(named[name])]['weight_decay'] == 0.0, name
    assert block0['weight_decay'] == cfg.optim_wrapper.optimizer.weight_decay
