"""The k-NN monitor: features sharded over ranks and gathered in dataset order."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rats_mm.analysis.probes.features import extract_features
from rats_mm.pretrain.hooks import knn_top1


class TinyDataset(torch.utils.data.Dataset):
    """Item i: an image filled with i (3, 4, 4), label i % 3."""

    def __init__(self, count):
        self.count = count
        self.labels = [i % 3 for i in range(count)]

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return {'inputs': torch.full((3, 4, 4), float(i)), 'label': self.labels[i],
                'skipped': 0}


def network(x):
    return torch.stack([x.mean(dim=(1, 2, 3)), torch.ones(len(x))], dim=1)   # (B, 2)


def _rank(rank, world, path, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    feats, labels = extract_features(network, TinyDataset(7), batch_size=2, num_workers=0,
                                      device='cpu')
    torch.save((feats, labels), f'{path}.{rank}')
    dist.destroy_process_group()


def test_two_ranks_gather_the_features_in_dataset_order(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path / 'f'), 29600 + os.getpid() % 100), nprocs=2)
    single = extract_features(network, TinyDataset(7), batch_size=3, num_workers=0,
                               device='cpu')
    assert torch.equal(single[0][:, 0], torch.arange(7.0))
    for rank in range(2):
        feats, labels = torch.load(tmp_path / f'f.{rank}')
        assert torch.equal(feats, single[0]) and torch.equal(labels, single[1])


def test_knn_top1_on_separable_features():
    class Clustered(TinyDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item['inputs'] = torch.full((3, 4, 4), 10.0 * self.labels[i] + 0.1 * i)
            return item

    def embed(x):  # one-hot of the cluster: perfectly separable
        return torch.nn.functional.one_hot((x.mean(dim=(1, 2, 3)) // 10).long(), 3).float()
    assert knn_top1(embed, Clustered(12), Clustered(6), k=3, batch_size=4,
                    num_workers=0) == 1.0
