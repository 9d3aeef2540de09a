"""Train an mmseg or mmdet model (e.g. Mask2Former with register queries).

The config's default_scope decides which library's registries build it.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    bash tools/dist_train.sh CONFIG NUM_GPUS [args]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rats_mm.engine.launch import train_main  # noqa: E402

if __name__ == '__main__':
    train_main(__doc__.splitlines()[0])
