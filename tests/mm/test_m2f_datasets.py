"""Datasets fail at build time, naming the file at fault."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import rats_mm.mmdet  # noqa: F401
import rats_mm.mmseg  # noqa: F401


def seg_dataset(root):
    from mmseg.registry import DATASETS
    return DATASETS.build(dict(
        type='SyntheticPartsSegDataset', data_root=root, pipeline=[],
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')))


def coco_dataset(root, ann_file='instances_training.json'):
    from mmdet.registry import DATASETS
    return DATASETS.build(dict(type='SyntheticPartsCocoDataset', data_root=root,
                               ann_file=ann_file, pipeline=[],
                               data_prefix=dict(img='images/training/')))


@pytest.fixture
def copy_root(synthetic_root, tmp_path):
    root = tmp_path / 'copy'
    shutil.copytree(synthetic_root, root)
    return str(root)


def test_good_datasets_build(synthetic_root):
    assert len(seg_dataset(synthetic_root)) == 12
    assert seg_dataset(synthetic_root).metainfo['classes'][0] == 'background'
    assert len(coco_dataset(synthetic_root)) > 0


def test_missing_annotation_is_named(copy_root):
    victim = os.path.join(copy_root, 'annotations', 'training', '000003.png')
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match='000003.png'):
        seg_dataset(copy_root)


def test_label_above_num_classes_is_named(copy_root):
    path = os.path.join(copy_root, 'annotations', 'training', '000005.png')
    mask = np.array(Image.open(path))
    mask[0, 0] = 9  # 7 classes: 0..6, 255 ignore
    Image.fromarray(mask).save(path)
    with pytest.raises(ValueError, match=r'000005.png: label\(s\) \[9\]'):
        seg_dataset(copy_root)


@pytest.mark.parametrize('edit,match', [
    (lambda c: c['annotations'][1].pop('segmentation'),
     r"annotations\[1\] lacks required field\(s\) \['segmentation'\]"),
    (lambda c: c['images'][0].pop('file_name'), r"images\[0\] lacks"),
    (lambda c: c.pop('categories'), 'missing the "categories" list'),
    (lambda c: c['annotations'][0].update(category_id=99),
     r'annotations\[0\] refers to unknown category_id 99'),
])
def test_broken_coco_json_is_named(copy_root, edit, match):
    path = os.path.join(copy_root, 'instances_training.json')
    coco = json.load(open(path))
    edit(coco)
    json.dump(coco, open(path, 'w'))
    with pytest.raises(ValueError, match='instances_training.json: ' + match):
        coco_dataset(copy_root)


def _count_mask_reads(monkeypatch):
    import rats_mm.mmseg.datasets as seg
    reads = []
    real_open = seg.Image.open

    def counting_open(path, *args, **kwargs):
        reads.append(path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(seg.Image, 'open', counting_open)
    return reads


def test_label_check_runs_once_per_set_of_files_and_on_rank_0_only(copy_root, monkeypatch):
    """The ADE20K check read every mask at every start on every rank: now the first start of
    rank 0 reads them, the next remembers, other ranks never read, and a changed mask is
    checked again."""
    import rats_mm.dense.dataset_checks as checks
    reads = _count_mask_reads(monkeypatch)
    seg_dataset(copy_root)
    assert len(reads) == 12
    reads.clear()
    seg_dataset(copy_root)
    assert reads == []                        # remembered
    path = os.path.join(copy_root, 'annotations', 'training', '000005.png')
    mask = np.array(Image.open(path))
    mask[0, 0] = 9
    Image.fromarray(mask).save(path)
    monkeypatch.setattr(checks, 'get_rank', lambda: 1)
    reads.clear()
    assert len(seg_dataset(copy_root)) == 12  # rank 1 trusts rank 0
    assert reads == []
    monkeypatch.setattr(checks, 'get_rank', lambda: 0)
    with pytest.raises(ValueError, match=r'000005.png: label\(s\) \[9\]'):
        seg_dataset(copy_root)                # the changed file is checked again


def test_coco_json_is_read_once_per_build(copy_root, monkeypatch):
    """The check reads the JSON mmdet has loaded: the file is parsed once, not twice."""
    loads = []
    real_load = json.load

    def counting_load(f, *args, **kwargs):
        loads.append(getattr(f, 'name', None))
        return real_load(f, *args, **kwargs)
    monkeypatch.setattr(json, 'load', counting_load)
    assert len(coco_dataset(copy_root)) > 0
    assert [os.path.basename(str(n)) for n in loads] == ['instances_training.json']
