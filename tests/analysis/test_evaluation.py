"""Probes, object discovery and register usage against independent references."""
import json

import numpy as np
import pytest
import torch

from rats_mm.analysis.discovery.boxes import corloc_hits, read_coco_boxes, read_voc_boxes
from rats_mm.analysis.discovery.objects import (_to_image_box, lost_foreground, mask_box,
                                        register_foreground)
from rats_mm.analysis.probes.classifiers import knn_probe, linear_probe
from rats_mm.analysis.registers.usage import assignment_statistics


def _numpy_knn(bank, bank_y, query, k, t, num_classes):
    """Brute-force reference of DINO's weighted vote."""
    b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    votes = np.zeros((len(q), num_classes))
    for i, row in enumerate(q @ b.T):
        for j in np.argsort(-row)[:k]:
            votes[i, bank_y[j]] += np.exp(row[j] / t)
    return votes


def test_knn_probe_matches_a_brute_force_vote():
    rng = np.random.default_rng(0)
    bank, query = rng.normal(size=(60, 5)), rng.normal(size=(25, 5))
    bank_y, query_y = rng.integers(0, 7, 60), rng.integers(0, 7, 25)
    result = knn_probe(torch.tensor(bank), torch.tensor(bank_y + 10),  # any label ids
                       torch.tensor(query), torch.tensor(query_y + 10), ks=(3, 20))
    classes = np.unique(bank_y)
    remap = {c: i for i, c in enumerate(classes)}
    qy = np.array([remap.get(y, -1) for y in query_y])
    for k in (3, 20):
        votes = _numpy_knn(bank, np.array([remap[y] for y in bank_y]), query, k, 0.07,
                           len(classes))
        # rank of the true class among the voted classes (an unvoted class never counts)
        own = np.array([votes[i, y] if y >= 0 else 0 for i, y in enumerate(qy)])
        rank = (votes > own[:, None]).sum(1)
        assert result['per_k'][k]['top1'] == pytest.approx(np.mean((own > 0) & (rank < 1)))
        assert result['per_k'][k]['top5'] == pytest.approx(np.mean((own > 0) & (rank < 5)))
    assert result['k'] == 20 and result['top1'] == result['per_k'][20]['top1']


def test_linear_probe_separates_clusters_and_not_noise():
    g = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(4, 16, generator=g)
    y = torch.arange(200) % 4
    x = centres[y] + torch.randn(200, 16, generator=g)
    result = linear_probe(x[:150], y[:150], x[150:], y[150:], epochs=20)
    assert result['top1'] == 1.0 and result['lr'] in result['holdout_top1']
    noise = linear_probe(torch.randn(150, 16, generator=g), y[:150],
                         torch.randn(400, 16, generator=g), torch.arange(400) % 4, epochs=20)
    assert noise['top1'] < 0.4  # chance is 0.25
    with pytest.raises(ValueError, match='holdout=1.5'):
        linear_probe(x, y, x, y, holdout=1.5)


def test_lost_finds_the_small_anticorrelated_block():
    keys = torch.tensor([-1.0, 0.1]).repeat(4, 5, 1)                       # background
    keys[1:3, 2:4] = torch.tensor([1.0, 0.0])                              # object, 2x2
    seed, mask = lost_foreground(keys.view(20, 2), (4, 5))
    expected = np.zeros((4, 5), bool)
    expected[1:3, 2:4] = True
    assert divmod(seed, 5)[0] in (1, 2) and np.array_equal(mask, expected)
    assert mask_box(mask, 8).tolist() == [16, 8, 32, 24]


def test_register_foreground_drops_border_registers():
    registers = torch.eye(3)                                               # (N, D)
    labels = torch.zeros(5, 5, dtype=torch.long)                           # register 0: ring
    labels[1:4, 1:3], labels[1:4, 3] = 1, 2
    labels[2, 2] = 0  # a background patch inside: the largest component is still 1 + 2
    mask, background = register_foreground(registers[labels.view(-1)], registers, (5, 5))
    assert background == [0]
    assert mask.sum() == 8 and not mask[0].any() and mask[1:4, 3].all()
    empty, _ = register_foreground(registers[torch.zeros(25, dtype=torch.long)], registers,
                                   (5, 5))
    assert not empty.any() and mask_box(empty, 4).tolist() == [0, 0, 20, 20]


def test_boxes_map_back_through_resize_and_crop():
    # 100 x 100, patch 8, native size: crop 96 centred (offset 2)
    assert _to_image_box(np.array([8, 8, 16, 16.]), (100, 100), 8, None).tolist() == \
        [10, 10, 18, 18]
    # 62 (h) x 107 (w), patch 8, native size: crop 56 x 104, top 3 and left 1 differ, so a
    # box keeps x with x and y with y: x + left, y + top
    assert _to_image_box(np.array([8, 8, 16, 16.]), (62, 107), 8, None).tolist() == \
        [9, 11, 17, 19]
    # 50 (h) x 100 (w) resized to short side 40 -> 80 x 40, no crop needed; scale 1.25
    assert _to_image_box(np.array([0, 0, 80, 40.]), (50, 100), 8, 40).tolist() == \
        [0, 0, 100, 50]


def test_corloc_uses_iou_with_any_box():
    gts = [np.array([[0, 0, 10, 10], [20, 20, 30, 30.]]), np.array([[0, 0, 10, 10.]]),
           np.zeros((0, 4))]
    # IoU with the second box 100 / 150 = 0.67; with [0,0,10,10]: 50 / 100 = 0.5 (counts)
    assert corloc_hits([[20, 20, 30, 35], [0, 0, 10, 5], [0, 0, 1, 1]], gts) == \
        [True, True, False]
    assert corloc_hits([[0, 0, 10, 4.9]], gts[1:2]) == [False]
    with pytest.raises(ValueError, match='2 predicted boxes for 3 images'):
        corloc_hits([[0, 0, 1, 1]] * 2, gts)


def test_coco_and_voc_readers(tmp_path):
    coco = {'images': [{'id': 1, 'file_name': 'a.png'}, {'id': 2, 'file_name': 'b.png'}],
            'annotations': [{'image_id': 1, 'bbox': [2, 3, 4, 5]},
                            {'image_id': 2, 'bbox': [0, 0, 1, 1], 'iscrowd': 1}]}
    (tmp_path / 'i.json').write_text(json.dumps(coco))
    items = read_coco_boxes(str(tmp_path / 'i.json'))
    assert [i['file_name'] for i in items] == ['a.png']
    assert items[0]['boxes'].tolist() == [[2, 3, 6, 8]]
    ann = tmp_path / 'Annotations'
    ann.mkdir()
    (ann / 'x.xml').write_text(
        '<annotation><filename>x.jpg</filename><object><bndbox><xmin>1</xmin><ymin>2</ymin>'
        '<xmax>10</xmax><ymax>20</ymax></bndbox></object></annotation>')
    (tmp_path / 'set.txt').write_text('x\n')
    for voc in (read_voc_boxes(str(ann)), read_voc_boxes(str(tmp_path / 'set.txt'),
                                                         str(tmp_path))):
        assert voc[0]['file_name'] == 'x.jpg' and voc[0]['boxes'].tolist() == [[0, 1, 10, 20]]
    (tmp_path / 'set.txt').write_text('x\nmissing\n')
    with pytest.raises(FileNotFoundError, match='missing.xml'):
        read_voc_boxes(str(tmp_path / 'set.txt'), str(tmp_path))


def test_assignment_statistics_by_hand():
    # 2 images of 4 patches, N = 4 registers in 2 heads
    labels = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 2]])
    stats = assignment_statistics(labels, 4, 2)
    assert stats['win_fraction'] == [5 / 8, 1 / 8, 2 / 8, 0]
    assert stats['head_win_fraction'] == [6 / 8, 2 / 8]
    second = -(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5))
    assert stats['entropy_per_image'] == pytest.approx(second / 2)
    assert stats['effective_registers_per_image'] == pytest.approx((1 + np.exp(second)) / 2)
    assert stats['dead_registers'] == [3]
    assert stats['registers_used_per_image'] == 2.0  # 1 and 3 registers above 5 %
