import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from rats_mm.data import (CATEGORIES, CATEGORY_PARTS, IGNORE_INDEX, PART_TYPES, SYNTHETIC_VERSION,
                          generate_dataset, render_sample)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PART_ID = {name: i + 1 for i, name in enumerate(PART_TYPES)}
SHARED_PARTS = ('wheel', 'window', 'door', 'head', 'torso', 'leg', 'tail')
# pycocotools 2.0.11 under numpy 2 warns inside mask.decode; not ours to fix
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


@pytest.fixture(scope='module')
def samples():
    return [render_sample(i, size=96, seed=0) for i in range(60)]


def test_catalogue():
    assert len(CATEGORIES) >= 5 and set(CATEGORY_PARTS) == set(CATEGORIES)
    for parts in CATEGORY_PARTS.values():
        assert 3 <= len(parts) <= 6 and set(parts) <= set(PART_TYPES)
    for part in SHARED_PARTS:
        assert sum(part in parts for parts in CATEGORY_PARTS.values()) >= 2, part


def test_deterministic_and_seed_dependent():
    a, b = render_sample(3, size=64, seed=0), render_sample(3, size=64, seed=0)
    for key in ('image', 'part_mask', 'semantic_mask'):
        np.testing.assert_array_equal(a[key], b[key])
    assert a['label'] == b['label'] and len(a['instances']) == len(b['instances'])
    for inst_a, inst_b in zip(a['instances'], b['instances']):
        np.testing.assert_array_equal(inst_a['mask'], inst_b['mask'])
        assert inst_a['bbox'] == inst_b['bbox']
    assert not np.array_equal(a['image'], render_sample(3, size=64, seed=1)['image'])
    assert not np.array_equal(a['image'], render_sample(4, size=64, seed=0)['image'])


@pytest.mark.parametrize('size', [64, 97, 512])
def test_any_size(size):
    sample = render_sample(0, size=size, seed=2)
    assert sample['image'].shape == (size, size, 3) and sample['image'].dtype == np.uint8
    for key in ('part_mask', 'semantic_mask'):
        assert sample[key].shape == (size, size) and sample[key].dtype == np.uint8
    assert sample['instances'] and sample['instances'][0]['mask'].shape == (size, size)


def test_masks_consistent(samples):
    for sample in samples:
        parts, semantic = sample['part_mask'], sample['semantic_mask']
        np.testing.assert_array_equal(parts == IGNORE_INDEX, semantic == IGNORE_INDEX)
        np.testing.assert_array_equal(parts == 0, semantic == 0)
        covered = np.zeros(parts.shape, dtype=np.int64)
        for inst in sample['instances']:
            mask, cat = inst['mask'], inst['category_id']
            covered += mask
            assert np.all(semantic[mask] == cat)
            allowed = {PART_ID[p] for p in CATEGORY_PARTS[CATEGORIES[cat - 1]]}
            assert set(np.unique(parts[mask]).tolist()) <= allowed
            rows, cols = np.nonzero(mask)
            x, y, w, h = inst['bbox']
            assert (x, y, w, h) == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
        assert covered.max() <= 1  # visible regions do not overlap
        labelled = (semantic > 0) & (semantic != IGNORE_INDEX)
        np.testing.assert_array_equal(covered.astype(bool), labelled)  # part pixels in instances
        for cat in range(1, len(CATEGORIES) + 1):
            union = np.zeros(parts.shape, dtype=bool)
            for inst in sample['instances']:
                if inst['category_id'] == cat:
                    union |= inst['mask']
            np.testing.assert_array_equal(union, semantic == cat)
        largest = max(sample['instances'], key=lambda inst: inst['mask'].sum())
        assert sample['label'] == largest['category_id']


def test_scenes_vary(samples):
    counts = [len(s['instances']) for s in samples]
    assert min(counts) >= 1 and max(counts) >= 3
    assert {s['label'] for s in samples} == set(range(1, len(CATEGORIES) + 1))
    cut = [any(inst['mask'][0].any() or inst['mask'][-1].any() or inst['mask'][:, 0].any()
               or inst['mask'][:, -1].any() for inst in s['instances']) for s in samples]
    assert sum(cut) >= 10  # objects partly out of frame occur


def test_shared_part_ids_occur_in_several_categories(samples):
    seen = {part: set() for part in SHARED_PARTS}
    for sample in samples:
        for inst in sample['instances']:
            present = np.unique(sample['part_mask'][inst['mask']])
            for part in SHARED_PARTS:
                if PART_ID[part] in present:
                    seen[part].add(inst['category_id'])
    for part in ('wheel', 'window', 'head', 'leg', 'tail'):
        assert len(seen[part]) >= 2, (part, seen[part])


def part_mean_colours(samples, min_pixels=40):
    """(mean RGB, part id) for every part of every instance with enough visible pixels."""
    colours, ids = [], []
    for sample in samples:
        image = sample['image'].reshape(-1, 3).astype(np.float64)
        for inst in sample['instances']:
            inst_parts = np.where(inst['mask'], sample['part_mask'], 0).ravel()
            for part in np.unique(inst_parts[inst_parts > 0]):
                selected = inst_parts == part
                if selected.sum() >= min_pixels:
                    colours.append(image[selected].mean(axis=0))
                    ids.append(int(part))
    return np.array(colours), np.array(ids)


def test_colour_alone_does_not_identify_a_part(samples):
    colours, ids = part_mean_colours(samples)
    common = [p for p in np.unique(ids) if (ids == p).sum() >= 8]
    assert len(common) >= 5
    for part in common:  # the same part type varies a lot in colour between instances
        assert colours[ids == part].std(axis=0).max() > 25.0, PART_TYPES[part - 1]
    # nearest class-mean on mean colour, evaluated on the samples it was fitted on (optimistic)
    keep = np.isin(ids, common)
    colours, ids = colours[keep], ids[keep]
    centroids = np.stack([colours[ids == p].mean(axis=0) for p in common])
    nearest = np.array(common)[np.argmin(((colours[:, None] - centroids) ** 2).sum(-1), axis=1)]
    assert (nearest == ids).mean() < 0.5


def read_png(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def test_generate_dataset_layout_and_coco(tmp_path):
    out = str(tmp_path / 'synth')
    summary = generate_dataset(out, 10, size=64, seed=5, val_fraction=0.2)
    assert summary['splits'] == {'training': 8, 'validation': 2} and not summary['skipped']
    names = {'training': [f'{i:06d}' for i in range(8)], 'validation': ['000008', '000009']}
    for split, stems in names.items():
        for folder, ext in (('images', '.jpg'), ('annotations', '.png'), ('parts', '.png')):
            assert sorted(os.listdir(os.path.join(out, folder, split))) == [s + ext for s in stems]
        with open(os.path.join(out, 'labels', split + '.txt')) as f:
            lines = [line.split() for line in f.read().splitlines()]
        assert [path for path, _ in lines] == [f'images/{split}/{s}.jpg' for s in stems]
        assert all(1 <= int(label) <= len(CATEGORIES) for _, label in lines)
    meta = json.load(open(os.path.join(out, 'meta.json')))
    assert meta['categories'] == CATEGORIES and meta['part_types'] == PART_TYPES
    assert meta['category_parts'] == CATEGORY_PARTS and meta['version'] == SYNTHETIC_VERSION
    assert (meta['num_images'], meta['size'], meta['seed']) == (10, 64, 5)

    sample = render_sample(8, size=64, seed=5)
    semantic = read_png(os.path.join(out, 'annotations', 'validation', '000008.png'))
    np.testing.assert_array_equal(semantic, sample['semantic_mask'])
    np.testing.assert_array_equal(read_png(os.path.join(out, 'parts', 'validation',
                                                        '000008.png')), sample['part_mask'])
    image = cv2.imread(os.path.join(out, 'images', 'validation', '000008.jpg'))[..., ::-1]
    assert np.abs(image.astype(int) - sample['image']).mean() < 6  # JPEG quality 95

    coco = COCO(os.path.join(out, 'instances_validation.json'))
    assert sorted(c['name'] for c in coco.loadCats(coco.getCatIds())) == sorted(CATEGORIES)
    ann_ids = coco.getAnnIds()
    assert len(ann_ids) == summary['num_instances']['validation'] and min(ann_ids) >= 1
    for img in coco.loadImgs(coco.getImgIds()):
        semantic = read_png(os.path.join(out, 'annotations', 'validation',
                                         img['file_name'].replace('.jpg', '.png')))
        decoded = np.zeros_like(semantic)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
            assert isinstance(ann['segmentation']['counts'], str) and ann['iscrowd'] == 0
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            assert ann['area'] == mask.sum()
            assert np.allclose(mask_utils.toBbox(ann['segmentation']), ann['bbox'])
            decoded[mask] = ann['category_id']
        labelled = semantic != IGNORE_INDEX
        np.testing.assert_array_equal(decoded[labelled], semantic[labelled])


def test_skip_if_present_and_overwrite(tmp_path):
    out = str(tmp_path / 'synth')
    generate_dataset(out, 4, size=32, seed=0)
    jpg = os.path.join(out, 'images', 'training', '000000.jpg')
    os.utime(jpg, (0, 0))
    again = generate_dataset(out, 4, size=32, seed=0)
    assert again['skipped'] and os.path.getmtime(jpg) == 0
    assert not generate_dataset(out, 4, size=32, seed=0, overwrite=True)['skipped']
    assert os.path.getmtime(jpg) > 0
    changed = generate_dataset(out, 3, size=32, seed=1, val_fraction=0.0)
    assert not changed['skipped'] and changed['splits'] == {'training': 3, 'validation': 0}
    assert len(os.listdir(os.path.join(out, 'images', 'training'))) == 3
    assert os.listdir(os.path.join(out, 'images', 'validation')) == []


def test_workers_give_the_same_dataset(tmp_path):
    one = generate_dataset(str(tmp_path / 'one'), 6, size=32, seed=3)
    two = generate_dataset(str(tmp_path / 'two'), 6, size=32, seed=3, workers=2)
    assert one['num_instances'] == two['num_instances']
    for name in ('instances_training.json', 'instances_validation.json', 'labels/training.txt'):
        assert open(tmp_path / 'one' / name).read() == open(tmp_path / 'two' / name).read()


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    result = subprocess.run([sys.executable, 'tools/make_synthetic.py', str(out), '--num-images',
                             '3', '--size', '32', '--seed', '1', '--val-fraction', '0.34'],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout)
    assert summary['splits'] == {'training': 2, 'validation': 1} and not summary['skipped']
    assert (out / 'images' / 'validation' / '000002.jpg').exists()
    assert (out / 'meta.json').exists()


def test_no_openmmlab_import():
    code = ('import sys, rats_mm.data; '
            'bad = [m for m in sys.modules if m.split(".")[0] in '
            '("mmengine", "mmcv", "mmseg", "mmdet", "torch")]; assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True)


def test_object_centric_layout_has_one_large_centred_subject():
    from rats_mm.data import render_sample
    shares = []
    for index in range(12):
        sample = render_sample(index, size=64, seed=5, layout='object_centric')
        assert len(sample['instances']) == 1
        inst = sample['instances'][0]
        x, y, w, h = inst['bbox']
        assert abs((x + w / 2) - 32) < 16 and abs((y + h / 2) - 32) < 16
        shares.append(inst['area'] / 64 ** 2)
        again = render_sample(index, size=64, seed=5, layout='object_centric')
        assert np.array_equal(sample['image'], again['image'])
    scene_shares = [max(i['area'] for i in render_sample(k, size=64, seed=5)['instances'])
                    / 64 ** 2 for k in range(12)]
    assert np.mean(shares) > np.mean(scene_shares)
    with pytest.raises(ValueError, match="layout='tiled'"):
        render_sample(0, size=64, layout='tiled')
