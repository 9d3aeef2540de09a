"""Generate the synthetic parts dataset (the project's embedded default data).

Example, from the repository root:
    python tools/make_synthetic.py data/synthetic --num-images 1000 --size 224 --seed 0

Writes ADE20K-style images/annotations folders, part masks, COCO instance JSON, image-level
labels and meta.json (see ``rats_mm.data.synthetic.generate_dataset``). Does nothing when
OUT_DIR already holds a dataset with the same settings, unless --overwrite is given.
"""
import argparse
import json


from rats_mm.data import generate_dataset


def parse_args(argv=None):
    """Command-line arguments.

    Args:
        argv: argument list (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='dataset root to write')
    parser.add_argument('--num-images', type=int, default=1000, help='total number of images')
    parser.add_argument('--size', type=int, default=224, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (>= 0)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='fraction of images in the validation split')
    parser.add_argument('--workers', type=int, default=1, help='rendering processes')
    parser.add_argument('--layout', default='scene',
                        choices=['scene', 'object_centric', 'isolated'],
                        help='scene: 1-3 objects and clutter; object_centric: one large '
                             'centred object per image (ImageNet-style); isolated: that object '
                             'on a plain grey background')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if OUT_DIR already holds this dataset')
    return parser.parse_args(argv)


def main(argv=None):
    """Generate the dataset and print the summary as JSON.

    Args:
        argv: argument list (None: ``sys.argv[1:]``).

    Returns:
        The summary dict from ``generate_dataset``.
    """
    args = parse_args(argv)
    summary = generate_dataset(args.out_dir, args.num_images, size=args.size, seed=args.seed,
                               val_fraction=args.val_fraction, workers=args.workers,
                               overwrite=args.overwrite, layout=args.layout)
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == '__main__':
    main()
