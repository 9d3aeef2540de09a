import pytest
import torch

from rats_mm.pretrain.pipeline import ImageFolderDataset, multicrop_collate

MULTICROP = dict(type='MultiCropAugmentation', global_crop_size=32, local_crop_size=16,
                 local_crops_number=2)


def test_unreadable_files_are_skipped_and_counted(tmp_path, make_image_folder, caplog):
    root = make_image_folder(str(tmp_path / 'd'), num_train=3,
                             corrupt=('empty', 'text', 'truncated'))
    ds = ImageFolderDataset(root, MULTICROP, ann_file='labels/training.txt')
    assert len(ds) == 6
    samples = [ds[i] for i in range(len(ds))]
    assert ds.num_skipped == 3
    assert sum(s['skipped'] for s in samples) == 3
    for s in samples:
        assert [tuple(c.shape) for c in s['inputs']] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 2
    batch = multicrop_collate(samples)
    assert batch['data_samples']['skipped'] == 3
    assert [tuple(c.shape) for c in batch['inputs']][:1] == [(6, 3, 32, 32)]


def test_folder_scan_uses_class_subfolders(tmp_path, make_image_folder):
    make_image_folder(str(tmp_path / 'd'), num_train=4, num_val=2)
    ds = ImageFolderDataset(str(tmp_path / 'd' / 'images'), dict(type='EvalTransform', size=16))
    assert ds.classes == ['training', 'validation'] and len(ds) == 6
    assert sorted(set(ds.labels)) == [0, 1]
    assert ds[0]['inputs'].shape == (3, 16, 16)
    flat = ImageFolderDataset(str(tmp_path / 'd' / 'images' / 'training'),
                              dict(type='EvalTransform', size=16))
    assert set(flat.labels) == {-1}


def test_bad_inputs_name_the_culprit(tmp_path, make_image_folder):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        ImageFolderDataset(str(tmp_path / 'nowhere'), MULTICROP)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images'):
        ImageFolderDataset(str(tmp_path / 'empty'), MULTICROP)
    root = make_image_folder(str(tmp_path / 'd'))
    with pytest.raises(FileNotFoundError, match='labels/missing.txt'):
        ImageFolderDataset(root, MULTICROP, ann_file='labels/missing.txt')
    bad = tmp_path / 'd' / 'labels' / 'bad.txt'
    bad.write_text('images/training/0000.png one\n')
    with pytest.raises(ValueError, match='bad.txt:1'):
        ImageFolderDataset(root, MULTICROP, ann_file=str(bad))


def test_all_unreadable_raises(tmp_path):
    (tmp_path / 'x').mkdir()
    (tmp_path / 'x' / 'a.jpg').write_text('not an image')
    ds = ImageFolderDataset(str(tmp_path / 'x'), MULTICROP)
    with pytest.raises(RuntimeError, match='no readable image'):
        ds[0]
    assert ds.num_skipped == 1


def test_eval_transform_grayscale_gives_equal_channels(tmp_path):
    import numpy as np
    from PIL import Image

    from rats_mm.pretrain.pipeline import EvalTransform
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8))
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    gray = EvalTransform(size=32, crop_ratio=1.0, mean=mean, std=std, grayscale=True)(img)
    colour = EvalTransform(size=32, crop_ratio=1.0, mean=mean, std=std)(img)
    assert gray.shape == colour.shape == (3, 32, 32)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert not torch.equal(colour[0], colour[1])


def test_uint8_views_normalised_on_the_device_equal_the_float_pipeline():
    """output='uint8' collates a quarter of the bytes; MultiCropDataPreprocessor turns them
    into the very numbers ToTensor + Normalize give on the host (same random views)."""
    import numpy as np
    from PIL import Image

    from rats_mm.pretrain.pipeline import MultiCropDataPreprocessor, multicrop_collate
    from rats_mm.ssl import MultiCropAugmentation
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
              for _ in range(3)]
    kwargs = dict(global_crop_size=32, local_crop_size=16, local_crops_number=2)
    batches = {}
    for output in ('float', 'uint8'):
        augment = MultiCropAugmentation(output=output, **kwargs)
        generator = torch.Generator().manual_seed(5)
        samples = [{'inputs': augment(im, generator), 'label': 0, 'skipped': 0}
                   for im in images]
        batches[output] = multicrop_collate(samples)
    uint8_views = batches['uint8']['inputs']
    assert all(v.dtype == torch.uint8 for v in uint8_views)
    assert sum(v.nbytes for v in uint8_views) * 4 == sum(v.nbytes for v in
                                                         batches['float']['inputs'])
    preprocessor = MultiCropDataPreprocessor()
    got = preprocessor(batches['uint8'], True)['inputs']
    for g, want in zip(got, batches['float']['inputs']):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, want, atol=1e-5, rtol=1e-5)
    single = torch.randn(2, 3, 8, 8)  # an evaluation batch: already normalised floats
    assert torch.equal(preprocessor({'inputs': single}, False)['inputs'], single)
    with pytest.raises(ValueError, match="output='half'"):
        MultiCropAugmentation(output='half')
