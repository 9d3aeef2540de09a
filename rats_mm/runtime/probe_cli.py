"""What ``tools/eval_knn.py`` and ``tools/eval_linear.py`` share: arguments, the datasets
(with the config's evaluation transform), distributed start-up under ``torchrun``, and the
probe run itself (features on every rank, the probe on rank 0, on its GPU when there is one,
else on every core)."""
import os

import torch
import torch.distributed as dist

from ..analysis.io import make_parser, write_json
from ..analysis.probes.classifiers import knn_probe, linear_probe
from ..analysis.probes.features import FrozenEmbedding, dist_info, extract_features
from ..models.embedding import EMBEDDINGS
from ..data.images import EvalTransform, ImageFolderDataset
from .backbones import add_model_args, load_backbone, read_config

__all__ = ['eval_transform', 'probe_backbone', 'probe_dataset', 'probe_main', 'probe_parser']


def probe_parser(doc):
    """Parser of the probe tools: CONFIG CKPT, the two datasets, features, output."""
    p = add_model_args(make_parser(doc))
    p.add_argument('--train-root', required=True, help='training images (ImageNet layout, '
                   'or the root of the paths in --train-ann)')
    p.add_argument('--train-ann', default=None, help='"relative/path label" lines')
    p.add_argument('--val-root', required=True, help='validation images')
    p.add_argument('--val-ann', default=None, help='"relative/path label" lines')
    p.add_argument('--embedding', default='pooled', choices=EMBEDDINGS,
                   help="what the probe reads: 'pooled', the image embedding ([CLS] or "
                        "register mean); 'registers', the final registers concatenated; "
                        "'heads', each head's registers on its channels; 'registers_avg', "
                        "the registers and the patch mean; 'avg', the patch mean")
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--out', default=None, help='JSON file for the result')
    return p


def eval_transform(config, size=None):
    """The config's ``eval_pipeline`` (what its k-NN monitor used) or, without one, DINO's
    (resize to size / 0.875, centre-crop size; size defaults to the backbone's img_size).
    ``size`` overrides the crop size of either."""
    cfg = read_config(config)
    spec = dict(cfg.get('eval_pipeline') or {})
    if not spec:
        img_size = cfg.model.backbone.get('img_size', 224)
        spec = dict(size=img_size if isinstance(img_size, int) else img_size[0])
    spec.pop('type', None)
    if size is not None:
        spec['size'] = size
    return EvalTransform(**spec)


def probe_dataset(root, ann_file, transform):
    """An ``ImageFolderDataset`` of labelled images; ``ann_file`` is taken as given when it
    exists, else relative to ``root``. Raises ValueError when no image carries a label."""
    if ann_file and os.path.isfile(ann_file):
        ann_file = os.path.abspath(ann_file)
    dataset = ImageFolderDataset(root, transform, ann_file=ann_file)
    if all(label < 0 for label in dataset.labels):
        raise ValueError(f'no labels for the images under {root}: give an ann file or use '
                         'class sub-folders (ImageNet layout)')
    return dataset


def probe_backbone(config, checkpoint, data_root, embedding='pooled'):
    """k-NN and linear probe of a saved backbone on a generated dataset (its
    ``labels/training.txt`` -> ``labels/validation.txt``), as ``tools/eval_knn.py`` and
    ``tools/eval_linear.py`` run them, from one feature extraction in this process.

    Args:
        config (str): The backbone's config (model and evaluation transform).
        checkpoint (str): Its weights.
        data_root (str): Dataset with ``labels/<split>.txt``.
        embedding (str): What the probe reads, one of ``EMBEDDINGS`` (see ``FrozenEmbedding``).

    Returns:
        dict: ``knn`` and ``linear`` top-1 accuracies in [0, 1].
    """
    transform = eval_transform(config)
    network = FrozenEmbedding(load_backbone(config, checkpoint), embedding)
    (train_x, train_y), (val_x, val_y) = (
        extract_features(network, probe_dataset(data_root, f'labels/{split}.txt', transform),
                         num_workers=0)
        for split in ('training', 'validation'))
    return {'knn': knn_probe(train_x, train_y, val_x, val_y)['top1'],
            'linear': linear_probe(train_x, train_y, val_x, val_y)['top1']}


def _init_distributed(device):
    """Join the ``torchrun`` process group, if launched by one (NCCL on GPU, gloo on CPU).

    Returns:
        torch.device: ``device``; on CUDA the local rank's GPU.
    """
    device = torch.device(device)
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    if device.type == 'cuda':
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
        torch.cuda.set_device(device)
    return device


def _use_every_core(device):
    """On a CPU, the probe (rank 0 alone, the other ranks are done) gets every core this
    process may use: torchrun sets ``OMP_NUM_THREADS=1`` for the extraction."""
    if device.type == 'cpu':
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                              else os.cpu_count() or 1)


def probe_main(kind, doc, argv=None, **probe_options):
    """The whole of a probe tool: parse, extract train / val features, probe, write.

    Args:
        kind (str): ``'knn'`` (``knn_probe``) or ``'linear'`` (``linear_probe``).
        doc (str): The tool's description.
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).
        **probe_options: Passed to the probe function.

    Returns:
        dict | None: The result (rank 0; None on the other ranks).
    """
    args = probe_parser(doc).parse_args(argv)
    device = _init_distributed(args.device)
    transform = eval_transform(args.config, args.size)
    train = probe_dataset(args.train_root, args.train_ann, transform)
    val = probe_dataset(args.val_root, args.val_ann, transform)
    network = FrozenEmbedding(load_backbone(args.config, args.checkpoint,
                                            args.trust_checkpoint), args.embedding).to(device)
    options = dict(batch_size=args.batch_size, num_workers=args.num_workers, device=device,
                   progress=True)
    train_x, train_y = extract_features(network, train, **options)
    val_x, val_y = extract_features(network, val, **options)
    if dist_info()[0] != 0:
        return None
    _use_every_core(device)
    probe = knn_probe if kind == 'knn' else linear_probe
    result = probe(train_x, train_y, val_x, val_y, device=device, **probe_options)
    result.update(embedding=args.embedding, feature_dim=train_x.shape[1], config=args.config,
                  checkpoint=args.checkpoint, train_root=args.train_root,
                  val_root=args.val_root)
    print(f"{kind} probe ({args.embedding}, {result['num_train']} train / {result['num_val']} "
          f"val images, {result['num_classes']} classes): top-1 {100 * result['top1']:.2f}  "
          f"top-5 {100 * result['top5']:.2f}")
    if args.out:
        print(f'wrote {write_json(args.out, result)}')
    return result
