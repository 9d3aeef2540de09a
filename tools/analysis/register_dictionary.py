"""Register dictionary: cluster every image's register embeddings into part entries.

    python tools/analysis/register_dictionary.py CONFIG CKPT --data-root D --out-dir O
        [--num-entries E] [--max-images M] [--top-k K] [--split SUBDIR] [--size S]

Images come from D/images/** (or D/** without an images folder), categories from
D/labels/*.txt (``images/x.jpg <category id>`` lines; then only listed images are used) with
names from D/meta.json, when present. Writes O/dictionary.json (entries: which registers,
which categories, mean similarity; the entry x category matrix, cross-category proximity, and
each entry's top images), O/dictionary_heatmap.png and O/entry_XX.png: the K images whose
register embedding is closest to the entry's centroid, each with that register's cosine
similarity map over the image. A model with a [CLS] token (a ViT, with or without
registers) contributes that token, what its image embedding is read from.
"""
import os

from rats_mm.analysis.parts.dictionary_report import register_dictionary_report
from rats_mm.analysis.io import make_parser, run_cli, write_json
from rats_mm.runtime.backbones import add_model_args, model_from_args


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = add_model_args(make_parser(__doc__))
    p.add_argument('--data-root', required=True, help='dataset folder (images/, labels/)')
    p.add_argument('--out-dir', required=True, help='output folder')
    p.add_argument('--num-entries', type=int, default=None,
                   help='default: N registers (a model with a [CLS] token: the number of '
                   'categories, or 8)')
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--top-k', type=int, default=6, help='images shown per entry')
    p.add_argument('--split', default=None, help='only images under images/SPLIT')
    p.add_argument('--seed', type=int, default=0, help='k-means seed')
    return p.parse_args(argv)


def main(argv=None):
    """Build the dictionary over the dataset and write its JSON and PNGs."""
    args = parse_args(argv)
    model = model_from_args(args)
    out = register_dictionary_report(model, args.data_root, args.out_dir, args.num_entries,
                                     args.top_k, args.split, args.max_images, args.size,
                                     args.seed)
    out.update(config=args.config, checkpoint=args.checkpoint)
    path = write_json(os.path.join(args.out_dir, 'dictionary.json'), out)
    cats = out['category_names']
    print(f"{out['num_images']} images x {model.num_registers} registers -> "
          f"{out['num_entries']} entries ({'no' if cats is None else len(cats)} categories): "
          f'wrote {path} and PNGs in {args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
