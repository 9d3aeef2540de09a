import json

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from rats_mm.analysis import PartFolder, read_partimagenet, read_pascal_part


def write_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def make_folder(root, n=3):
    rng = np.random.default_rng(0)
    for i in range(n):
        rel = f'sub{i % 2}/img{i}'
        write_png(root / 'images' / f'{rel}.jpg' if i == 0 else root / 'images' / f'{rel}.png',
                  rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8))
        parts = np.full((6, 8), i, dtype=np.uint8)
        parts[0, 0] = 255
        write_png(root / 'parts' / f'{rel}.png', parts)
    return root


def test_part_folder_reads_items(tmp_path):
    ds = PartFolder(make_folder(tmp_path))
    assert len(ds) == 3
    item = ds[0]
    assert item['image'].shape == (6, 8, 3) and item['image'].dtype == np.uint8
    assert item['parts'].shape == (6, 8) and item['parts'].dtype == np.uint8
    assert item['parts'][0, 0] == 255
    assert {it['path'].rsplit('/', 1)[1] for it in ds} == {'img0.jpg', 'img1.png', 'img2.png'}
    assert ds.num_part_classes == 3  # ids 0, 1, 2 (255 is ignore)
    assert PartFolder(tmp_path, num_classes=5).num_part_classes == 5
    i = [p.name for p in ds.images].index('img2.png')
    with pytest.raises(ValueError, match=r'img2\.png holds id 2 >= num_classes=2'):
        PartFolder(tmp_path, num_classes=2)[i]


def test_part_folder_missing_mask_names_both_files(tmp_path):
    make_folder(tmp_path)
    (tmp_path / 'parts' / 'sub1' / 'img1.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'img1\.png.*parts/sub1/img1\.png'):
        PartFolder(tmp_path)


def test_part_folder_size_mismatch_names_both_files(tmp_path):
    make_folder(tmp_path)
    write_png(tmp_path / 'parts' / 'sub0' / 'img2.png', np.zeros((5, 8), np.uint8))
    ds = PartFolder(tmp_path)
    with pytest.raises(ValueError, match=r'images/sub0/img2\.png.*parts/sub0/img2\.png'):
        ds[[p.name for p in ds.images].index('img2.png')]


def test_part_folder_unreadable_and_bad_files(tmp_path):
    make_folder(tmp_path)
    (tmp_path / 'images' / 'sub1' / 'img1.png').write_bytes(b'not an image')
    ds = PartFolder(tmp_path)
    i = [p.name for p in ds.images].index('img1.png')
    with pytest.raises(ValueError, match=r'img1\.png'):
        ds[i]
    write_png(tmp_path / 'parts' / 'sub0' / 'img2.png', np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r'parts/sub0/img2\.png.*mode RGB'):
        PartFolder(tmp_path)[[p.name for p in ds.images].index('img2.png')]
    with pytest.raises(FileNotFoundError, match='no image folder'):
        PartFolder(tmp_path / 'nowhere')


def partimagenet_files(tmp_path):
    write_png(tmp_path / 'imgs' / 'a.jpg', np.zeros((10, 12, 3), np.uint8))
    write_png(tmp_path / 'imgs' / 'b.jpg', np.zeros((8, 8, 3), np.uint8))
    ann = {
        'images': [{'id': 7, 'file_name': 'a.jpg', 'height': 10, 'width': 12},
                   {'id': 9, 'file_name': 'b.jpg', 'height': 8, 'width': 8}],
        'categories': [{'id': 0, 'name': 'Bird Head', 'supercategory': 'Bird'},
                       {'id': 1, 'name': 'Bird Body', 'supercategory': 'Bird'}],
        'annotations': [
            {'id': 1, 'image_id': 7, 'category_id': 1, 'iscrowd': 0,
             'segmentation': [[0, 0, 6, 0, 6, 10, 0, 10]]},               # left half
            {'id': 2, 'image_id': 7, 'category_id': 0, 'iscrowd': 0,       # RLE: column 11
             'segmentation': {'size': [10, 12], 'counts': [110, 10]}},
        ]}
    path = tmp_path / 'train.json'
    path.write_text(json.dumps(ann))
    return path


def test_read_partimagenet_rasterises_parts(tmp_path):
    items = read_partimagenet(partimagenet_files(tmp_path), tmp_path / 'imgs')
    assert len(items) == 2
    a = items[0]
    assert a['image'].shape == (10, 12, 3) and a['parts'].shape == (10, 12)
    assert a['part_names'] == ['background', 'Bird Head', 'Bird Body']
    assert (a['parts'][:, :5] == 2).all() and (a['parts'][:, 7:11] == 0).all()
    assert (a['parts'][:, 11] == 1).all()
    assert (items[1]['parts'] == 0).all()  # no annotations: all background


def test_read_partimagenet_errors_name_files(tmp_path):
    ann_file = partimagenet_files(tmp_path)
    (tmp_path / 'imgs' / 'b.jpg').unlink()
    with pytest.raises(FileNotFoundError, match=r'b\.jpg'):
        read_partimagenet(ann_file, tmp_path / 'imgs')
    write_png(tmp_path / 'imgs' / 'b.jpg', np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r'b\.jpg.*train\.json'):
        read_partimagenet(ann_file, tmp_path / 'imgs')[1]
    with pytest.raises(FileNotFoundError, match=r'missing\.json'):
        read_partimagenet(tmp_path / 'missing.json', tmp_path / 'imgs')
    (tmp_path / 'bad.json').write_text('{"images": [')
    with pytest.raises(ValueError, match=r'bad\.json'):
        read_partimagenet(tmp_path / 'bad.json', tmp_path / 'imgs')


def struct_array(records, fields):
    """A MATLAB struct array (1 x n) as savemat writes it: a numpy structured array."""
    arr = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for k, rec in enumerate(records):
        for f in fields:
            arr[0, k][f] = rec[f]
    return arr


def write_pascal_part(path, objects, imname='2008_000001'):
    objs = struct_array([
        {'class': cls, 'class_ind': 1, 'mask': mask.astype(np.uint8),
         'parts': struct_array([{'part_name': n, 'mask': m.astype(np.uint8)} for n, m in parts],
                               ['part_name', 'mask'])}
        for cls, mask, parts in objects], ['class', 'class_ind', 'mask', 'parts'])
    savemat(path, {'anno': {'imname': imname, 'objects': objs}})
    return path


def box(y0, y1, x0, x1, shape=(6, 8)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_read_pascal_part(tmp_path):
    cow = box(0, 4, 0, 4)
    mat = write_pascal_part(tmp_path / 'a.mat', [
        ('cow', cow, [('head', box(0, 2, 0, 2)), ('torso', box(2, 4, 0, 3))]),
        ('boat', box(4, 6, 5, 8), []),
    ])
    item = read_pascal_part(mat, {'head': 1, 'cow/torso': 2, 'boat': 3})
    parts = item['parts']
    assert item['objects'] == ['cow', 'boat'] and parts.dtype == np.uint8
    assert (parts[0:2, 0:2] == 1).all() and (parts[2:4, 0:3] == 2).all()
    assert (parts[0:2, 2:4] == 255).all() and (parts[2:4, 3] == 255).all()  # gaps in the cow
    assert (parts[4:6, 5:8] == 3).all() and parts[5, 0] == 0
    # a single object with a single part (MATLAB 1x1 structs) and the 'ignore' policy
    one = write_pascal_part(tmp_path / 'b.mat', [('dog', cow, [('tail', box(0, 1, 0, 1))])])
    got = read_pascal_part(one, {'head': 1}, unmapped='ignore')['parts']
    assert got[0, 0] == 255 and got[5, 7] == 0


def test_read_pascal_part_errors_name_files(tmp_path):
    mat = write_pascal_part(tmp_path / 'c.mat', [('cow', box(0, 4, 0, 4),
                                                   [('leye', box(0, 1, 0, 1))])])
    with pytest.raises(ValueError, match=r"c\.mat.*'cow/leye'"):
        read_pascal_part(mat, {'head': 1})
    bad = write_pascal_part(tmp_path / 'd.mat', [('cow', box(0, 4, 0, 4),
                                                   [('head', np.zeros((3, 3), bool))])])
    with pytest.raises(ValueError, match=r'd\.mat.*head'):
        read_pascal_part(bad, {'head': 1})
    (tmp_path / 'e.mat').write_bytes(b'garbage')
    with pytest.raises(ValueError, match=r'e\.mat'):
        read_pascal_part(tmp_path / 'e.mat', {'head': 1})
    with pytest.raises(FileNotFoundError, match=r'f\.mat'):
        read_pascal_part(tmp_path / 'f.mat', {'head': 1})
    write_png(tmp_path / 'jpg' / '2008_000001.jpg', np.zeros((5, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r'c\.mat.*2008_000001\.jpg'):
        read_pascal_part(mat, {'leye': 1}, image_root=tmp_path / 'jpg')
