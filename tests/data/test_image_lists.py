import subprocess
import sys
from pathlib import Path

import pytest

from rats_mm.data import class_subset_lines

ROOT = Path(__file__).resolve().parents[2]


def make_tree(root):
    for cls, count in (('n02', 3), ('n01', 5)):
        (root / 'train' / cls).mkdir(parents=True)
        for i in range(count):
            (root / 'train' / cls / f'{i}.JPEG').write_bytes(b'x')
    (root / 'train' / 'n01' / 'notes.txt').write_text('not an image')
    return root / 'train'


def test_class_subset_lines_draws_per_class_in_sorted_class_order(tmp_path):
    lines = class_subset_lines(str(make_tree(tmp_path)), per_class=4, seed=0)
    labels = [int(line.split()[1]) for line in lines]
    assert labels == [0] * 4 + [1] * 3                  # n01 -> 0 (4 of 5), n02 -> 1 (all 3)
    assert all(line.startswith(('train/n01/', 'train/n02/')) for line in lines)
    assert not any('notes.txt' in line for line in lines)
    assert lines == class_subset_lines(str(tmp_path / 'train'), per_class=4, seed=0)
    with pytest.raises(ValueError, match='per_class'):
        class_subset_lines(str(tmp_path / 'train'), per_class=0)
    with pytest.raises(FileNotFoundError, match='no class sub-folders'):
        class_subset_lines(str(tmp_path / 'train' / 'n01'), per_class=1)


def test_make_knn_bank_list_is_read_by_the_image_folder_dataset(tmp_path):
    from rats_mm.pretrain.pipeline import ImageFolderDataset
    train = make_tree(tmp_path)
    out = tmp_path / 'bank.txt'
    subprocess.run([sys.executable, 'tools/make_knn_bank.py', str(train), str(out), '2'],
                   cwd=ROOT, check=True, capture_output=True)
    ds = ImageFolderDataset(str(tmp_path), pipeline=lambda img: img, ann_file=str(out))
    assert ds.labels == [0, 0, 1, 1]
    assert all(Path(p).is_file() for p in ds.paths)
