"""The analysis CLIs (tools/analysis/*.py) and their helpers (rats_mm.analysis.io,
rats_mm.runtime.backbones) on tiny models: a RATS and a plain ViT saved as exported
backbones, described by a pretraining-style and a downstream-style config, run on the
synthetic set and on a generic-layout folder made here (odd image sizes, part ids up to
254)."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from analysis_tool_support import (REPO, RATS, TINY, VIT, fails, png_size, run_tool,
                                   tool_module)
from rats_mm.analysis.io import prepare_image, prepare_labels
from rats_mm.runtime.backbones import backbone_from_config, backbone_kwargs, load_backbone
from rats_mm.models import RatsViT


# ----------------------------------------------------------------------------- backbone_io

def test_backbone_from_any_config(assets, tmp_path):
    assert backbone_kwargs(assets / 'vit.py') == VIT
    vit = backbone_from_config(str(assets / 'vit.py'))
    assert vit.num_registers == 0 and vit.has_class_token
    assert backbone_from_config(os.path.join(REPO, 'configs/demo/dino_vit_synthetic.py')
                                ).attn_mode == 'full'
    bad = tmp_path / 'bad.py'
    bad.write_text(f'model = dict(backbone=dict(foo=1, **{RATS!r}))\n')
    with pytest.raises(ValueError, match=r"bad.py: model.backbone key\(s\) \['foo'\]"):
        backbone_from_config(bad)
    bad.write_text("model = dict(backbone=dict(type='ResNet', depth=50))\n")
    with pytest.raises(ValueError, match='is not RatsViT'):
        backbone_from_config(bad)


def test_load_backbone_checks(assets, tmp_path):
    sd = torch.load(assets / 'rats.pth')
    torch.save({'state_dict': {f'teacher.backbone.{k}': v for k, v in sd.items()}},
               tmp_path / 'pretrain.pth')  # pretraining-checkpoint layout
    model = load_backbone(assets / 'rats.py', str(tmp_path / 'pretrain.pth'))
    assert not model.training and torch.equal(model.registers, sd['registers'])
    with pytest.raises(RuntimeError, match='wide.pth does not fit the backbone of config'):
        load_backbone(assets / 'vit.py', str(assets / 'wide.pth'))
    torch.save({'head.weight': torch.zeros(2)}, tmp_path / 'junk.pth')
    with pytest.raises(RuntimeError, match='junk.pth does not fit'):
        load_backbone(assets / 'rats.py', str(tmp_path / 'junk.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_backbone(assets / 'rats.py', str(tmp_path / 'missing.pth'))


def test_prepare_image_and_labels_align():
    image = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    mask[:, 35:] = 254
    for size, want in ((None, (48, 64)), (40, (40, 56)), (33, (32, 40))):
        x = prepare_image(image, 8, size)
        labels = prepare_labels(mask, 8, size)
        assert x.shape == (1, 3, *want) and labels.shape == want, size
        assert set(np.unique(labels)) <= {0, 254}
    with pytest.raises(ValueError, match='no 8x8 patch'):
        prepare_image(np.zeros((5, 70, 3), np.uint8), 8)


# ----------------------------------------------------------------------------- the CLIs

def grid_png_size(height, width, panels):
    """Pixel size of a heat-map grid of one row: 2 x 2 inch panels (the height scaled by the
    image's aspect) and a 0.3 inch title band, at 100 dpi (whole pixels, rounded down)."""
    return 200 * panels, int(100 * (2 * height / width + 0.3) + 1e-6)


def overlay_png_size(height, width):
    """Pixel size of an overlay: a 4 inch wide image and a 1.4 inch legend, at 100 dpi."""
    return 540, int(400 * height / width + 1e-6)


def test_similarity_maps_cli(assets, synthetic_root, tmp_path, one_thread, drawn_colours):
    val = os.path.join(synthetic_root, 'images', 'validation')
    generic = assets / 'generic' / 'images' / 'a.png'
    proc = run_tool('similarity_maps.py', assets / 'rats.py', assets / 'rats.pth', val, generic,
                    '--out-dir', tmp_path)
    files = sorted(os.listdir(val))
    stems = [os.path.splitext(f)[0] for f in files] + ['a']
    # the synthetic images are 96 x 96; a.png (50 x 70) is centre-cropped to 48 x 64
    sizes = [(96, 96)] * len(files) + [(48, 64)]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(stems) == 5
    for line, stem, (h, w) in zip(lines, stems, sizes):
        assert f': {w}x{h}, 4 registers (cosine) -> ' in line and f'{stem}_overlay.png' in line
        grid, overlay = tmp_path / f'{stem}_similarity.png', tmp_path / f'{stem}_overlay.png'
        assert png_size(grid) == grid_png_size(h, w, panels=1 + 4)  # the image + 4 registers
        assert png_size(overlay) == overlay_png_size(h, w)
        assert drawn_colours(grid) > 100 and drawn_colours(overlay) > 100
    # the overlay of a.png, recomputed here: each 8 x 8 patch tinted half and half with the
    # colour of the register whose final normed token is most cosine-similar to its own
    from rats_mm.analysis import register_palette
    model = RatsViT(**RATS).eval()
    model.load_state_dict(torch.load(assets / 'rats.pth'))
    crop = np.asarray(Image.open(generic).convert('RGB'))[1:49, 3:67]        # (48, 64, 3)
    with torch.no_grad():
        tokens = model.forward_tokens(prepare_image(crop, 8))
    registers = torch.nn.functional.normalize(tokens['x_norm_regtokens'][0], dim=-1)
    patches = torch.nn.functional.normalize(tokens['x_norm_patchtokens'][0], dim=-1)
    labels = (registers @ patches.T).argmax(0).reshape(6, 8).numpy()        # (6, 8) grid
    labels = labels.repeat(8, axis=0).repeat(8, axis=1)                      # (48, 64) pixels
    tinted = (0.5 * crop + 0.5 * register_palette(4).astype(np.float64)[labels]).astype(np.uint8)
    with Image.open(tmp_path / 'a_overlay.png') as im:
        drawn = np.asarray(im.convert('RGB'))[:300, :400]  # the image panel, 6.25 x scale
    centres = ((np.arange(48) + 0.5) * 300 / 48).astype(int), \
        ((np.arange(64) + 0.5) * 400 / 64).astype(int)
    np.testing.assert_array_equal(drawn[centres[0]][:, centres[1]], tinted)
    assert len(np.unique(labels)) > 1


def test_similarity_maps_errors_and_compress(assets, tmp_path, one_thread, drawn_colours):
    image = assets / 'generic' / 'images' / 'b.jpg'
    module = tool_module('similarity_maps.py')
    # a plain ViT has no registers: its [CLS] token's map is drawn instead
    module.main([str(assets / 'vit.py'), str(assets / 'vit.pth'), str(image), '--out-dir',
                 str(tmp_path / 'vit')])
    # b.jpg (61 x 45) is cropped to 56 x 40: the image and the [CLS] token's map
    assert png_size(tmp_path / 'vit' / 'b_similarity.png') == grid_png_size(56, 40, panels=2)
    assert drawn_colours(tmp_path / 'vit' / 'b_similarity.png') > 100
    msg = fails('similarity_maps.py', [assets / 'vit.py', assets / 'vit.pth', image,
                                       '--out-dir', tmp_path, '--source', 'compress'])
    assert "attn_mode='rats'" in msg
    module.main([str(assets / 'rats.py'), str(assets / 'rats.pth'), str(image), '--out-dir',
                 str(tmp_path), '--source', 'compress', '--size', '24'])
    # short side resized to 24 (61 x 45 -> 33 x 24), then cropped to 32 x 24
    assert png_size(tmp_path / 'b_similarity.png') == grid_png_size(32, 24, panels=5)
    assert png_size(tmp_path / 'b_overlay.png') == overlay_png_size(32, 24)
    assert drawn_colours(tmp_path / 'b_overlay.png') > 100


def check_scores(result):
    for key in ('miou', 'nmi', 'ari'):
        assert 0.0 <= result[key] <= 1.0, (key, result[key])
    assert len(result['per_class_iou']) == result['num_gt']


def test_part_eval_cli(assets, synthetic_root, tmp_path):
    out = tmp_path / 'rats.json'
    run_tool('part_eval.py', assets / 'rats.py', assets / 'rats.pth', '--data-root',
             synthetic_root, '--split', 'validation', '--out', out)
    result = json.loads(out.read_text())
    check_scores(result)
    assert result['method'] == 'registers' and result['mode'] == 'hungarian'
    assert result['num_images'] == 4 and result['num_pred'] == 4
    # the JSON the tool writes is the library's in-process result
    from rats_mm.analysis import evaluate_parts
    model = load_backbone(str(assets / 'rats.py'), str(assets / 'rats.pth'))
    here = evaluate_parts(model, synthetic_root, split='validation')
    for key in ('miou', 'nmi', 'ari', 'pixel_accuracy', 'num_gt', 'present_classes'):
        assert result[key] == pytest.approx(here[key]), key
    for c in here['present_classes']:  # absent classes have no IoU (NaN / null)
        assert result['per_class_iou'][c] == pytest.approx(here['per_class_iou'][c])
    # the plain ViT, downstream config, k-means, on the odd-sized generic folder
    out = tmp_path / 'vit.json'
    proc = run_tool('part_eval.py', assets / 'vit.py', assets / 'vit.pth', '--data-root',
                    assets / 'generic', '--method', 'kmeans', '--num-clusters', 3, '--mode',
                    'majority', '--out', out)
    assert 'mIoU' in proc.stdout
    result = json.loads(out.read_text())
    check_scores(result)
    assert (result['num_images'], result['num_pred'], result['num_gt']) == (3, 3, 255)
    assert result['present_classes'] == [0, 3, 254]


def test_part_eval_options_and_errors(assets, tmp_path, one_thread):
    module = tool_module('part_eval.py')
    result = module.main([str(assets / 'rats.py'), str(assets / 'rats.pth'), '--data-root',
                          str(assets / 'generic'), '--background-threshold', '0.2',
                          '--size', '40', '--method', 'registers', '--max-images', '2'])
    check_scores(result)
    assert result['num_pred'] == 5 and result['num_images'] == 2
    result = module.main([str(assets / 'rats.py'), str(assets / 'rats.pth'), '--data-root',
                          str(assets / 'generic'), '--method', 'kmeans'])
    assert result['num_pred'] == 4  # K defaults to the number of registers
    vit = [assets / 'vit.py', assets / 'vit.pth', '--data-root', assets / 'generic']
    assert 'no registers' in fails('part_eval.py', vit + ['--method', 'registers'])
    result = module.main([str(a) for a in vit])  # default for a plain ViT: k-means with
    assert result['method'] == 'kmeans'          # as many clusters as part classes present
    assert result['num_pred'] == len(result['present_classes']) == 3
    msg = fails('part_eval.py', [assets / 'vit.py', assets / 'vit.pth', '--data-root',
                                 tmp_path / 'nowhere'])
    assert 'nowhere does not exist' in msg
    msg = fails('part_eval.py', vit + ['--split', 'training', '--method', 'kmeans',
                                       '--num-clusters', 2])
    assert 'no split folder' in msg


def test_mismatched_checkpoint_exits_with_message(assets):
    msg = fails('part_eval.py', [assets / 'vit.py', assets / 'wide.pth', '--data-root',
                                 assets / 'generic', '--method', 'kmeans'])
    assert msg.startswith('error: checkpoint ') and 'wide.pth does not fit the backbone' in msg


def test_part_eval_broadcast_assignment_matches_the_model(assets, tmp_path, one_thread):
    """``--assignment broadcast``: each patch goes to the register it reads most from in the
    last block's broadcast step; the scores equal those of that labelling computed here."""
    from rats_mm.analysis import part_miou, upsample_labels
    from rats_mm.analysis.parts.readers import PartFolder
    module = tool_module('part_eval.py')
    argv = [str(assets / 'rats.py'), str(assets / 'rats.pth'), '--data-root',
            str(assets / 'generic'), '--assignment', 'broadcast']
    result = module.main(argv)
    assert result['patch_assignment'] == 'broadcast' and result['num_pred'] == 4
    model = load_backbone(str(assets / 'rats.py'), str(assets / 'rats.pth'))
    folder = PartFolder(str(assets / 'generic'))
    preds, masks = [], []
    for i in range(len(folder)):
        item = folder[i]
        image = prepare_image(item['image'], 8)
        labels = model.last_broadcast_weights(image)[0].argmax(-1)
        grid = (image.shape[-2] // 8, image.shape[-1] // 8)
        mask = prepare_labels(item['parts'], 8)
        preds.append(upsample_labels(labels[None], grid, mask.shape)[0].numpy())
        masks.append(mask)
    want = part_miou(preds, masks, 4, 255)
    assert result['miou'] == pytest.approx(want['miou'])
    vitreg = dict(TINY, num_registers=4, attn_mode='full', class_token=True)
    (tmp_path / 'vitreg.py').write_text(f'model = dict(backbone={vitreg!r})\n')
    torch.save(RatsViT(**vitreg).state_dict(), tmp_path / 'vitreg.pth')
    msg = fails('part_eval.py', [tmp_path / 'vitreg.py', tmp_path / 'vitreg.pth', '--data-root',
                                 assets / 'generic', '--assignment', 'broadcast'])
    assert "needs a RATS model (attn_mode='rats')" in msg


def test_load_backbone_rebuilds_the_compress_step_the_weights_recorded(assets, tmp_path,
                                                                      capsys):
    """A competition backbone read with a config that leaves compress at its default is
    rebuilt with competition (and says so): the weights alone cannot show the step."""
    from rats_mm.models.weights import backbone_options, save_backbone
    trained = RatsViT(**RATS, compress='competition').eval()
    save_backbone(trained.state_dict(), str(tmp_path / 'comp.pth'), backbone_options(trained))
    model = load_backbone(assets / 'rats.py', str(tmp_path / 'comp.pth'))
    assert model.compress == 'competition'
    assert "trained with compress='competition'" in capsys.readouterr().err
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x), trained(x))
    cosine = RatsViT(**RATS, logits='cosine').eval()
    save_backbone(cosine.state_dict(), str(tmp_path / 'cos.pth'), backbone_options(cosine))
    model = load_backbone(assets / 'rats.py', str(tmp_path / 'cos.pth'))
    assert model.logits == 'cosine' and model.compress == 'attention'
    assert "trained with logits='cosine'" in capsys.readouterr().err
    assert torch.equal(model(x), cosine(x))


def test_load_backbone_rebuilds_the_read_out_and_register_count_recorded(assets, tmp_path,
                                                                         capsys):
    """A backbone trained with 6 registers read side by side, read with the config's 4
    registers and register-mean pool, comes back as it was trained: model(x) is what its DINO
    head read, not the mean of adapted registers."""
    from rats_mm.models.weights import backbone_options, save_backbone
    trained = RatsViT(**{**RATS, 'num_registers': 6}, global_pool='registers').eval()
    save_backbone(trained.state_dict(), str(tmp_path / 'reg.pth'), backbone_options(trained))
    model = load_backbone(assets / 'rats.py', str(tmp_path / 'reg.pth'))
    assert (model.global_pool, model.num_registers) == ('registers', 6)
    err = capsys.readouterr().err
    assert "trained with global_pool='registers'" in err and 'num_registers=6' in err
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 6 * RATS['embed_dim'])
    assert torch.equal(model(x), trained(x))
    # a config may name the read-out itself (a DINO config's backbone): no note then
    config = tmp_path / 'reg.py'
    described = dict(RATS, num_registers=6, global_pool='registers')
    config.write_text(f'model = dict(backbone={described!r})\n')
    assert torch.equal(load_backbone(config, str(tmp_path / 'reg.pth'))(x), trained(x))
    assert 'note:' not in capsys.readouterr().err
    # a frozen probe still reads any embedding of it, e.g. the register mean
    from rats_mm.analysis.probes.features import FrozenEmbedding
    torch.testing.assert_close(FrozenEmbedding(model, 'pooled')(x),
                               trained.forward_features(x)[:, :6].mean(1))
    # the patch mean over normed tokens comes back with its norm where it was trained
    patches = RatsViT(**RATS, global_pool='avg', fc_norm=False).eval()
    save_backbone(patches.state_dict(), str(tmp_path / 'avg.pth'), backbone_options(patches))
    model = load_backbone(assets / 'rats.py', str(tmp_path / 'avg.pth'))
    assert model.global_pool == 'avg' and isinstance(model.fc_norm, torch.nn.Identity)
    assert torch.equal(model(x), patches(x))
    # weights saved before the read-out was recorded keep the config's
    old = {'state_dict': trained.state_dict(),
           'meta': {'rats_mm_backbone': {'compress': 'attention', 'logits': 'dot'}}}
    torch.save(old, tmp_path / 'old.pth')
    model = load_backbone(assets / 'rats.py', str(tmp_path / 'old.pth'))
    assert (model.global_pool, model.num_registers) == ('token', 4)
