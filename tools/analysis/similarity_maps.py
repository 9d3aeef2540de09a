"""Register similarity maps: per image, one heat map per register and a part overlay.

    python tools/analysis/similarity_maps.py CONFIG CKPT IMAGES... --out-dir D
        [--source cosine|compress] [--size S]

IMAGES are image files or folders (searched recursively). For each image writes
D/<stem>_similarity.png (the image, then each register's map over it) and
D/<stem>_overlay.png (each patch tinted with the colour of its most similar register, with a
legend). ``cosine``: cosine similarity of each final normed register with every final normed
patch; ``compress``: the last block's compress attention weights (RATS models only). Any image
size works: it is centre-cropped to a multiple of the patch size (after an optional resize of
the short side to S).
"""
import os


from rats_mm.analysis import (register_patch_similarity, render_part_overlay,
                              render_similarity_grid, similarity_maps, upsample_labels)
from rats_mm.analysis.io import (IMAGE_EXTENSIONS, add_model_args,
                                        features, fit_to_patches, load_image, make_parser,
                                        model_from_args, prefix_tokens, prepare_image, run_cli)


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


def expand_images(paths):
    """Files as given, folders expanded to their images (sorted, recursive)."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {p}')
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f'image file {p} does not exist')
    return files


def output_stems(files):
    """Output name per image: the file stem, index-prefixed when stems collide."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    if len(set(stems)) == len(stems):
        return stems
    return [f'{i:04d}_{s}' for i, s in enumerate(stems)]


def main(argv=None):
    """Write the similarity grid and overlay PNG of every image."""
    args = parse_args(argv)
    files = expand_images(args.images)
    model = model_from_args(args)
    N = model.num_registers or 1  # a plain ViT: its [CLS] token's map (DINO's classic)
    tokens = 'registers' if model.num_registers else '[CLS] token (no registers)'
    if args.source == 'compress' and model.attn_mode != 'rats':
        raise ValueError(f"--source compress needs a RATS model (attn_mode='rats'); the "
                         f"model of {args.config} has attn_mode={model.attn_mode!r}")
    os.makedirs(args.out_dir, exist_ok=True)
    p = model.patch_size
    for path, stem in zip(files, output_stems(files)):
        image = fit_to_patches(load_image(path), p, args.size)               # (H, W, 3)
        x = prepare_image(image, p)
        out = features(model, x)
        if args.source == 'cosine':
            sim = register_patch_similarity(out['x_norm_patchtokens'], prefix_tokens(out))
        else:
            dev = next(model.parameters()).device
            sim = model.last_compress_weights(x.to(dev)).float().cpu()      # (1, N, L)
        H, W = image.shape[:2]
        maps = similarity_maps(sim, out['grid_size'], (H, W))[0]            # (N, H, W)
        grid_png = os.path.join(args.out_dir, f'{stem}_similarity.png')
        render_similarity_grid(image, maps, grid_png)
        labels = upsample_labels(sim.argmax(dim=1), out['grid_size'], (H, W))[0]
        overlay_png = os.path.join(args.out_dir, f'{stem}_overlay.png')
        render_part_overlay(image, labels, overlay_png, N)
        print(f'{path}: {W}x{H}, {N} {tokens} ({args.source}) -> {grid_png}, {overlay_png}')


if __name__ == '__main__':
    run_cli(main)
