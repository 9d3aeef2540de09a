"""Write a labelled subset of an ImageNet-layout folder as a ``path label`` list (the k-NN
monitor's bank), paths relative to the folder's parent.

    python tools/make_knn_bank.py data/imagenet/train data/imagenet/knn_bank.txt 10
"""
import argparse

from rats_mm.data import class_subset_lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='folder with one sub-folder per class')
    parser.add_argument('out', help='list file to write')
    parser.add_argument('per_class', type=int, help='images per class')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    lines = class_subset_lines(args.data_root, args.per_class, args.seed)
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'wrote {len(lines)} images to {args.out}')


if __name__ == '__main__':
    main()
