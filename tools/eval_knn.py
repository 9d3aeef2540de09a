"""Weighted k-NN classification on frozen features, as DINO's eval_knn.py.

    python tools/eval_knn.py CONFIG CKPT --train-root DIR [--train-ann FILE]
        --val-root DIR [--val-ann FILE] [--embedding pooled|registers|heads|registers_avg|avg]
        [--size S] [--out F.json]
    torchrun --nproc_per_node=8 tools/eval_knn.py ...   (features on every rank)

Images are read from an ImageNet-layout folder (labels from the first-level sub-folders) or
from "relative/path label" lists (an ann file as given, or relative to its root), and go
through the config's evaluation transform (``eval_pipeline``; otherwise resize + centre-crop
to the backbone's image size). Cosine similarity, temperature 0.07, k in 10 / 20 / 100 / 200;
``top1`` / ``top5`` are those of k = 20 (DINO's reported figure), every k in ``per_k``.
"""
from rats_mm.analysis.io import run_cli
from rats_mm.runtime.probe_cli import probe_main


def main(argv=None):
    """Run the k-NN probe; the result dict (None on ranks other than 0)."""
    return probe_main('knn', __doc__, argv)


if __name__ == '__main__':
    run_cli(main)
