"""Train an mmseg or mmdet model (e.g. Mask2Former with register queries).

The config's default_scope decides which library's registries build it.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    bash tools/dist_train.sh CONFIG NUM_GPUS [args]
"""
from rats_mm.runtime.launch import train_main

if __name__ == '__main__':
    train_main(__doc__.splitlines()[0])
