import pytest

from rats_mm.data import generate_dataset


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A tiny generated synthetic parts set (12 training + 4 validation images, 96 px)."""
    root = tmp_path_factory.mktemp('synthetic')
    generate_dataset(str(root), num_images=16, size=96, seed=3, val_fraction=0.25)
    return str(root)


@pytest.fixture
def drawn_colours():
    """Number of distinct RGB colours of a written picture: a blank or failed figure has a
    handful, a drawn heat map or overlay hundreds."""
    import numpy as np
    from PIL import Image

    def count(path):
        with Image.open(path) as im:
            assert im.format == 'PNG'
            pixels = np.asarray(im.convert('RGB')).reshape(-1, 3)
        return len(np.unique(pixels, axis=0))
    return count


@pytest.fixture(autouse=True, scope='session')
def dataset_check_cache(tmp_path_factory):
    """Stamps of passed dataset checks (rats_mm.dense.dataset_checks) in a temporary folder,
    not in the user's ~/.cache."""
    import os
    folder = str(tmp_path_factory.mktemp('rats_mm_cache'))
    old = os.environ.get('RATS_MM_CACHE')
    os.environ['RATS_MM_CACHE'] = folder
    yield folder
    if old is None:
        os.environ.pop('RATS_MM_CACHE', None)
    else:
        os.environ['RATS_MM_CACHE'] = old
