"""Neck, register queries and the register-query Mask2Former heads."""
import pytest
import torch
from mmengine.config import Config

import rats_mm.mmdet  # noqa: F401  (registers into mmdet)
import rats_mm.mmseg  # noqa: F401  (registers into mmseg)
from rats_mm.dense.neck import SimpleFeaturePyramid
from rats_mm.dense.register_queries import RegisterQueries

DEMO_SEG = 'configs/demo/m2f_rats_synthetic_seg.py'
DEMO_INS = 'configs/demo/m2f_rats_synthetic_ins.py'


def test_neck_levels_and_registers_passed_through():
    neck = SimpleFeaturePyramid(32, 16, scale_factors=(4.0, 2.0, 1.0, 0.5))
    maps = torch.randn(2, 32, 8, 12)
    registers = torch.randn(2, 4, 32)
    *levels, regs = neck((maps, registers))
    assert [tuple(x.shape) for x in levels] == [(2, 16, 32, 48), (2, 16, 16, 24),
                                                (2, 16, 8, 12), (2, 16, 4, 6)]
    assert regs is registers
    per_level = neck((maps, maps * 2, maps * 3, maps * 4, registers))
    assert torch.allclose(per_level[2], neck.levels[2](maps * 3))
    dropped = SimpleFeaturePyramid(32, 16, pass_registers=False)((maps, registers))
    assert len(dropped) == 4


@pytest.mark.parametrize('inputs,match', [
    ((torch.randn(1, 32, 4, 4), torch.randn(1, 32, 4, 4)), 'must end with registers'),
    ((torch.randn(1, 32, 4, 4),) * 2 + (torch.randn(1, 4, 32),), '2 backbone maps'),
])
def test_neck_errors(inputs, match):
    with pytest.raises(ValueError, match=match):
        SimpleFeaturePyramid(32, 16)(inputs)
    with pytest.raises(ValueError, match='scale factor 3'):
        SimpleFeaturePyramid(32, 16, scale_factors=(3.0,))


def test_register_queries_content_and_positions():
    rq = RegisterQueries(in_channels=32, num_registers=4, feat_channels=16,
                         num_extra_queries=2)
    regs = torch.randn(3, 4, 32)
    content, position = rq(regs)
    assert content.shape == position.shape == (3, 6, 16)
    assert torch.allclose(content[1, :4], rq.content(regs[1]))       # per-image content
    assert torch.equal(position[0], position[2])                      # shared positions
    assert torch.equal(content[0, 4:], content[2, 4:])                # learned extras
    with pytest.raises(ValueError, match=r'registers \(B, 4, 32\)'):
        rq(torch.randn(3, 5, 32))
    with pytest.raises(ValueError, match='num_registers=0'):
        RegisterQueries(32, 0, 16)


def build_demo(config, **head_overrides):
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    key = 'decode_head' if 'seg' in config else 'panoptic_head'
    cfg.model[key].update(head_overrides)
    if 'seg' in config:
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return MODELS.build(cfg.model), key


@pytest.mark.parametrize('config', [DEMO_SEG, DEMO_INS])
def test_head_queries_come_from_registers(config):
    torch.manual_seed(0)
    model, key = build_demo(config)
    head = getattr(model, key)
    head.eval()
    feats = model.extract_feat(torch.randn(2, 3, 96, 96))
    samples = _samples(config)
    cls1, _ = head(feats, samples)
    moved = (*feats[:-1], feats[-1] + torch.randn_like(feats[-1]))
    cls2, _ = head(moved, samples)
    assert cls1[0].shape[:2] == (2, 16)           # 12 register + 4 extra queries
    assert not torch.allclose(cls1[0], cls2[0])   # the registers drive the queries
    assert not hasattr(head, 'query_feat')        # no learned table left unused


@pytest.mark.parametrize('config', [DEMO_SEG, DEMO_INS])
def test_register_query_head_equals_upstream_fed_the_same_queries(config):
    """An upstream head with the same arguments and weights, whose query tables hold one
    image's register queries, predicts what the register-query head predicts."""
    torch.manual_seed(0)
    model, key = build_demo(config)
    head = getattr(model, key).eval()
    feats = model.extract_feat(torch.randn(1, 3, 96, 96))
    content, position = head.register_queries(feats[-1])
    channels = head.register_queries.position.embedding_dim
    assert content.shape == position.shape == (1, 16, channels)
    cfg = Config.fromfile(config).model[key]
    cfg.pop('register_queries')
    cfg.pop('type')
    if 'seg' in config:
        from mmseg.models.decode_heads import Mask2FormerHead
    else:
        from mmdet.models.dense_heads import Mask2FormerHead
    upstream = Mask2FormerHead(**cfg).eval()
    missing, unexpected = upstream.load_state_dict(head.state_dict(), strict=False)
    assert set(missing) == {'query_feat.weight', 'query_embed.weight'}
    assert all(k.startswith('register_queries.') for k in unexpected)
    assert isinstance(upstream.query_feat, torch.nn.Embedding)
    with torch.no_grad():
        upstream.query_feat.weight.copy_(content[0])
        upstream.query_embed.weight.copy_(position[0])
        samples = _samples(config)[:1]
        ours = head(feats, samples)
        theirs = upstream(list(feats[:-1]), samples)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize('config', [DEMO_SEG, DEMO_INS])
def test_switched_off_head_is_the_upstream_head(config):
    torch.manual_seed(0)
    model, key = build_demo(config, register_queries=None, num_queries=16)
    head = getattr(model, key)
    head.eval()
    upstream = type(head).__mro__[2]              # the library's own Mask2FormerHead
    feats = model.extract_feat(torch.randn(2, 3, 96, 96))
    samples = _samples(config)
    ours, _ = head(feats, samples)
    theirs, _ = upstream.forward(head, list(feats[:-1]), samples)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    moved = (*feats[:-1], feats[-1] + 1.0)        # registers are ignored
    assert torch.equal(head(moved, samples)[0][-1], ours[-1])


def test_num_queries_must_match_registers():
    with pytest.raises(ValueError, match='num_queries=20 but register queries give 12'):
        build_demo(DEMO_SEG, num_queries=20)


def _samples(config):
    meta = dict(img_shape=(96, 96), pad_shape=(96, 96), batch_input_shape=(96, 96),
                ori_shape=(96, 96))
    if 'seg' in config:
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=meta) for _ in range(2)]
    from mmdet.structures import DetDataSample
    return [DetDataSample(metainfo=meta) for _ in range(2)]


@pytest.mark.parametrize('register_queries', [True, False])
def test_sliding_window_logits_stitch_the_windows(register_queries):
    """mode='slide' on a non-square image larger than the crop (80 x 112, crop 64, stride
    48: windows rows [0, 64) and [16, 80), columns [0, 64) and [48, 112)) gives the average
    of each window's own whole-image logits where windows overlap; upstream mmseg 1.2.2 raised
    a size mismatch (masks upsampled to the whole padded image)."""
    torch.manual_seed(0)
    overrides = {} if register_queries else dict(register_queries=None, num_queries=16)
    model, _ = build_demo(DEMO_SEG, **overrides)
    model.eval()
    image = torch.randn(1, 3, 80, 112)
    meta = dict(img_shape=(80, 112), ori_shape=(80, 112), pad_shape=(80, 112))
    from mmengine.config import ConfigDict
    model.test_cfg = ConfigDict(mode='slide', crop_size=(64, 64), stride=(48, 48))
    with torch.no_grad():
        got = model.inference(image, [meta])                               # (1, C, 80, 112)
    model.test_cfg = ConfigDict(mode='whole')
    want = torch.zeros_like(got)
    count = torch.zeros(1, 1, 80, 112)
    with torch.no_grad():
        for y1, y2 in ((0, 64), (16, 80)):
            for x1, x2 in ((0, 64), (48, 112)):
                crop = image[:, :, y1:y2, x1:x2]
                shape = tuple(crop.shape[-2:])
                logits = model.encode_decode(crop, [dict(img_shape=shape, ori_shape=shape,
                                                         pad_shape=shape)])
                want[:, :, y1:y2, x1:x2] += logits
                count[:, :, y1:y2, x1:x2] += 1
    assert got.shape == (1, 7, 80, 112)
    torch.testing.assert_close(got, want / count, atol=1e-5, rtol=1e-5)
