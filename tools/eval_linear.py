"""Linear classification on frozen features (top-1 / top-5).

    python tools/eval_linear.py CONFIG CKPT --train-root DIR [--train-ann FILE]
        --val-root DIR [--val-ann FILE] [--embedding pooled|registers|heads|registers_avg|avg]
        [--size S] [--out F.json]
    torchrun --nproc_per_node=8 tools/eval_linear.py ...   (features on every rank)

Data as in tools/eval_knn.py. The features of the training images are extracted once,
standardised (training mean / std), and a linear layer is trained on them with SGD
(momentum 0.9, cosine schedule, 100 epochs, batch 256); the learning rate is chosen among
1e-3 / 1e-2 / 1e-1 / 1 on 10 % of the training images held out, never on the validation set,
then retrained on all of them. ``--embedding registers`` probes the concatenated final
registers of a RATS instead of its pooled embedding.
"""
from rats_mm.analysis.io import run_cli
from rats_mm.runtime.probe_cli import probe_main


def main(argv=None):
    """Run the linear probe; the result dict (None on ranks other than 0)."""
    return probe_main('linear', __doc__, argv)


if __name__ == '__main__':
    run_cli(main)
