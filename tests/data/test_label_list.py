"""``labels/<split>.txt``: one parser (``rats_mm.data.images.read_label_list``) behind the
image folder, the science run's labelled images and the analyses' categories, so they agree
on blank lines and name the file and line of a bad one."""
import numpy as np
import pytest
from PIL import Image

from rats_mm.analysis.io import category_labels
from rats_mm.data.images import ImageFolderDataset, read_label_list
from rats_mm.science.rendering import load_labelled_images


def _dataset(root, lines):
    (root / 'images').mkdir()
    (root / 'labels').mkdir()
    for name in ('a.png', 'b.png'):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'images' / name)
    (root / 'labels' / 'training.txt').write_text(lines)
    return root


def test_blank_lines_are_skipped_by_every_reader(tmp_path):
    root = _dataset(tmp_path, 'images/a.png 3\n\n  \nimages/b.png 1\n')
    assert read_label_list(root / 'labels' / 'training.txt') == [('images/a.png', 3),
                                                                   ('images/b.png', 1)]
    folder = ImageFolderDataset(str(root), None, ann_file=str(root / 'labels' / 'training.txt'))
    assert list(folder.labels) == [3, 1]
    images, labels = load_labelled_images(str(root), 'training')
    assert images.shape == (2, 3, 8, 8) and labels.tolist() == [3, 1]
    cats, _ = category_labels(str(root))
    assert sorted(cats.values()) == [1, 3]


@pytest.mark.parametrize('bad', ['images/b.png one', 'images/b.png', 'images/b.png 1 2'])
def test_a_bad_line_names_the_file_and_line_in_every_reader(tmp_path, bad):
    root = _dataset(tmp_path, f'images/a.png 3\n\n{bad}\n')
    where = 'training.txt:3: expected "path label"'
    with pytest.raises(ValueError, match=where):
        ImageFolderDataset(str(root), None, ann_file=str(root / 'labels' / 'training.txt'))
    with pytest.raises(ValueError, match=where):
        load_labelled_images(str(root), 'training')
    with pytest.raises(ValueError, match=where):
        category_labels(str(root))
