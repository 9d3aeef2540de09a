import os

import numpy as np
import pytest
from PIL import Image


def write_image_folder(root, num_train=12, num_val=6, size=40, corrupt=()):
    """Random coloured images in the synthetic layout (images/<split>, labels/<split>.txt),
    the label being which colour channel dominates; ``corrupt`` adds unreadable files."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, 'labels'), exist_ok=True)
    for split, count in (('training', num_train), ('validation', num_val)):
        folder = os.path.join(root, 'images', split)
        os.makedirs(folder, exist_ok=True)
        lines = []
        for i in range(count):
            label = i % 3
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., label] += 150
            name = f'images/{split}/{i:04d}.png'
            Image.fromarray(img).save(os.path.join(root, name))
            lines.append(f'{name} {label + 1}')
        if split == 'training':
            for j, kind in enumerate(corrupt):
                name = f'images/{split}/bad{j}.jpg'
                write_corrupt(os.path.join(root, name), kind)
                lines.append(f'{name} 1')
        with open(os.path.join(root, 'labels', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


def write_corrupt(path, kind):
    if kind == 'empty':
        open(path, 'wb').close()
    elif kind == 'text':
        with open(path, 'w') as f:
            f.write('not an image')
    elif kind == 'truncated':
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(path, format='JPEG')
        data = open(path, 'rb').read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
    else:
        raise ValueError(kind)


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(str(tmp_path / 'data'))


@pytest.fixture
def make_image_folder():
    return write_image_folder
