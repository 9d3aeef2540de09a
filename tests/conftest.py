import pytest

from rats_mm.data import generate_dataset


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A tiny generated synthetic parts set (12 training + 4 validation images, 96 px)."""
    root = tmp_path_factory.mktemp('synthetic')
    generate_dataset(str(root), num_images=16, size=96, seed=3, val_fraction=0.25)
    return str(root)
