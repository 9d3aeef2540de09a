"""Register similarity maps: per image, one heat map per register and a part overlay.

    python tools/analysis/similarity_maps.py CONFIG CKPT IMAGES... --out-dir D
        [--source cosine|compress] [--size S]

IMAGES are image files or folders (searched recursively). For each image writes
D/<stem>_similarity.png (the image, then each register's map over it) and
D/<stem>_overlay.png (each patch tinted with the colour of its most similar register, with a
legend). ``cosine``: cosine similarity of each final normed register with every final normed
patch (a model with a [CLS] token, a ViT with or without registers: the [CLS] token's one
map, what its image embedding is read from); ``compress``: the last block's compress
attention weights (RATS models only). Any image
size works: it is centre-cropped to a multiple of the patch size (after an optional resize of
the short side to S).
"""
from rats_mm.analysis.io import make_parser, run_cli
from rats_mm.runtime.backbones import add_model_args, model_from_args
from rats_mm.analysis.parts.maps import write_similarity_maps


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = add_model_args(make_parser(__doc__))
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--out-dir', required=True, help='output folder for the PNGs')
    p.add_argument('--source', default='cosine', choices=['cosine', 'compress'])
    return p.parse_args(argv)


def main(argv=None):
    """Write the similarity grid and overlay PNG of every image."""
    args = parse_args(argv)
    model = model_from_args(args)
    tokens = '1 [CLS] token' if model.has_class_token else f'{model.num_registers} registers'
    for item in write_similarity_maps(model, args.images, args.out_dir, args.source, args.size):
        W, H = item['size']
        print(f"{item['image']}: {W}x{H}, {tokens} ({args.source}) -> {item['similarity']}, "
              f"{item['overlay']}")


if __name__ == '__main__':
    run_cli(main)
