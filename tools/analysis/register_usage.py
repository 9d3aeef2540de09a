"""How a RATS uses its registers over a dataset (the measurement for choosing N).

    python tools/analysis/register_usage.py CONFIG CKPT --data-root D [--split SUBDIR]
        [--max-images M] [--size S] --out-dir O

Each patch goes to its most similar register (cosine). Writes O/register_usage.json: the
share of patches each register and each head wins (``win_fraction``,
``head_win_fraction``), the mean per-image assignment entropy and its exponential
(``effective_registers_per_image``: N if all registers win equally, 1 if one wins all),
``registers_used_per_image`` (registers winning > 5 % of an image), ``dead_registers``
(never winning a patch), ``registers_per_object`` (registers winning the foreground patches
of an image, from D/parts masks), register similarity within / across heads and, for a
RATS, ``attention_by_block``: per block, how peaked and how alike the registers' compress
maps are and how uniform communicate and broadcast are (1.0 = uniform: the registers all
carry the image mean); and O/register_usage.png (share won per register, coloured by head).
"""
import os

from rats_mm.analysis.io import make_parser, run_cli, write_json
from rats_mm.analysis.registers.usage import register_usage, render_register_usage
from rats_mm.runtime.backbones import add_model_args, model_from_args


def parse_args(argv=None):
    """Args:
        argv (list[str] | None): Arguments (None: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = add_model_args(make_parser(__doc__))
    p.add_argument('--data-root', required=True, help='folder with images/ (and parts/)')
    p.add_argument('--split', default=None, help='only images under images/SPLIT')
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--out-dir', required=True, help='folder for the JSON and the PNG')
    return p.parse_args(argv)


def main(argv=None):
    """Measure register usage, print the headline figures, write JSON and PNG."""
    args = parse_args(argv)
    result = register_usage(model_from_args(args), args.data_root, split=args.split,
                            max_images=args.max_images, size=args.size)
    result.update(config=args.config, checkpoint=args.checkpoint, data_root=args.data_root,
                  split=args.split, size=args.size)
    png = render_register_usage(result, os.path.join(args.out_dir, 'register_usage.png'))
    print(f"{result['num_images']} images: effective registers per image "
          f"{result['effective_registers_per_image']:.2f} of {result['num_registers']}, "
          f"dead {result['dead_registers']}, per object {result['registers_per_object']}")
    for i, block in enumerate(result.get('attention_by_block') or []):
        print(f'block {i}: ' + ', '.join(
            f'{k} {v:.3f}' for k, v in block.items() if v is not None))
    print(f"wrote {write_json(os.path.join(args.out_dir, 'register_usage.json'), result)}, "
          f'{png}')
    return result


if __name__ == '__main__':
    run_cli(main)
