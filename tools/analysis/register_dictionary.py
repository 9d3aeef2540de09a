"""Register dictionary: cluster every image's register embeddings into part entries.

    python tools/analysis/register_dictionary.py CONFIG CKPT --data-root D --out-dir O
        [--num-entries E] [--max-images M] [--top-k K] [--split SUBDIR] [--size S]

Images come from D/images/** (or D/** without an images folder), categories from
D/labels/*.txt (``images/x.jpg <category id>`` lines; then only listed images are used) with
names from D/meta.json, when present. Writes O/dictionary.json (entries: which registers,
which categories, mean similarity; the entry x category matrix, cross-category proximity, and
each entry's top images), O/dictionary_heatmap.png and O/entry_XX.png: the K images whose
register embedding is closest to the entry's centroid, each with that register's cosine
similarity map over the image.
"""
import os


import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rats_mm.analysis import (build_register_dictionary, register_patch_similarity,  # noqa
                              render_dictionary_heatmap, similarity_maps)
from rats_mm.analysis.io import (add_model_args, category_labels, features,  # noqa
                                        fit_to_patches, image_files, load_image, make_parser,
                                        model_from_args, prefix_tokens, prepare_image, run_cli,
                                        write_json)


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = add_model_args(make_parser(__doc__))
    p.add_argument('--data-root', required=True, help='dataset folder (images/, labels/)')
    p.add_argument('--out-dir', required=True, help='output folder')
    p.add_argument('--num-entries', type=int, default=None, help='default: N registers')
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--top-k', type=int, default=6, help='images shown per entry')
    p.add_argument('--split', default=None, help='only images under images/SPLIT')
    p.add_argument('--seed', type=int, default=0, help='k-means seed')
    return p.parse_args(argv)


def collect(model, files, size):
    """Per image: (N, D) registers and (N, L) register-patch cosine maps with their grid."""
    regs, sims = [], []
    for path in files:
        out = features(model, prepare_image(path, model.patch_size, size))
        tokens = prefix_tokens(out)                                        # (1, N or 1, D)
        regs.append(tokens[0])
        sim = register_patch_similarity(out['x_norm_patchtokens'], tokens)
        sims.append((sim[0], out['grid_size']))
    return torch.stack(regs), sims                                          # (M, N, D)


def top_images(emb, result, k):
    """Per entry, up to k (image, register, cosine) members closest to its centroid."""
    x = F.normalize(emb, dim=-1)                                            # (M, N, D)
    cos = torch.einsum('mnd,ed->emn', x, F.normalize(result['centroids'], dim=-1))
    cos = cos.masked_fill(result['labels'][None] != torch.arange(len(cos))[:, None, None],
                          float('-inf'))                                   # members only
    best, reg = cos.max(dim=2)                                              # (E, M)
    tops = []
    for e in range(len(cos)):
        order = [int(m) for m in best[e].argsort(descending=True)[:k] if best[e, m] > -1e9]
        tops.append([(m, int(reg[e, m]), float(best[e, m])) for m in order])
    return tops


def render_entry(entry, top, files, sims, names, size, patch_size, path):
    """Save one entry's row: each top image with its register's similarity map over it."""
    fig = Figure(figsize=(2.0 * max(len(top), 1), 2.4), dpi=100)
    axes = fig.subplots(1, max(len(top), 1), squeeze=False)[0]
    for ax in axes:
        ax.set_axis_off()
    for ax, (m, r, score) in zip(axes, top):
        image = fit_to_patches(load_image(files[m]), patch_size, size)
        H, W = image.shape[:2]
        heat = similarity_maps(sims[m][0][None, r:r + 1], sims[m][1], (H, W))[0, 0].numpy()
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-8)
        ax.imshow(image)
        ax.imshow(heat, cmap='inferno', alpha=0.55, vmin=0, vmax=1)
        label = f'{names[m]} ' if names else ''
        ax.set_title(f'{label}r{r} cos {score:.2f}', fontsize=7)
    common = sorted(entry['registers'].items(), key=lambda rc: -rc[1])[:6]
    regs = ', '.join(f'r{r} x{c}' for r, c in common)
    fig.suptitle(f"entry {entry['id']}: {entry['size']} members ({regs})", fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=fig.dpi)


def select_images(args):
    """Images to use, with dense category indices, names and original ids (or Nones).

    Args:
        args (argparse.Namespace): Parsed arguments.

    Returns:
        tuple: files (list[Path]), categories (list[int] | None, dense over the ids present),
        names (list[str] | None) and ids (list[int] | None) of the dense categories.
    """
    files = image_files(args.data_root, args.split)
    cat_map, cat_names = category_labels(args.data_root)
    if cat_map is not None:
        files = [f for f in files if str(f.resolve()) in cat_map]
        if not files:
            raise ValueError(f'no image under {args.data_root} is listed in its labels/*.txt')
    files = files[:args.max_images] if args.max_images else files
    cats = names = present = None
    if cat_map is not None:  # dense category indices over the ids present, with names
        ids = [cat_map[str(f.resolve())] for f in files]
        present = sorted(set(ids))
        cats = [present.index(i) for i in ids]
        names = [cat_names.get(i, str(i)) for i in present]
    return files, cats, names, present


def main(argv=None):
    """Build the dictionary over the dataset and write its JSON and PNGs."""
    args = parse_args(argv)
    files, cats, names, present = select_images(args)
    model = model_from_args(args)
    emb, sims = collect(model, files, args.size)  # a plain ViT: its [CLS] token per image
    E = args.num_entries or model.num_registers or len(names or ()) or 8
    if not 1 <= E <= emb.shape[0] * emb.shape[1]:
        raise ValueError(f'--num-entries {E} must lie in [1, {emb.shape[0] * emb.shape[1]}] '
                         f'({emb.shape[0]} images x {emb.shape[1]} registers)')
    result = build_register_dictionary(emb, cats, E, seed=args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    render_dictionary_heatmap(result, names or ['all'],
                              os.path.join(args.out_dir, 'dictionary_heatmap.png'))
    image_names = None if cats is None else [names[c] for c in cats]
    for entry, top in zip(result['entries'], top_images(emb, result, args.top_k)):
        render_entry(entry, top, files, sims, image_names, args.size, model.patch_size,
                     os.path.join(args.out_dir, f"entry_{entry['id']:02d}.png"))
        entry['top_images'] = [{'path': str(files[m]), 'register': r, 'cosine': s}
                               for m, r, s in top]
    out = {k: result[k] for k in ('entries', 'entry_category', 'entry_category_counts',
                                  'cross_category_proximity', 'category_entry_overlap')}
    out.update(category_names=names, category_ids=present, num_images=len(files),
               num_registers=model.num_registers, num_entries=E, config=args.config,
               checkpoint=args.checkpoint, images=[str(f) for f in files],
               register_entries=result['labels'])
    path = write_json(os.path.join(args.out_dir, 'dictionary.json'), out)
    print(f'{len(files)} images x {model.num_registers} registers -> {E} entries '
          f'({"no" if cats is None else len(set(cats))} categories): wrote {path} and PNGs '
          f'in {args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
