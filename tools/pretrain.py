"""DINO self-distillation pretraining (RATS, ViT, ViT + registers) with mmengine's Runner.

    python tools/pretrain.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    bash tools/dist_pretrain.sh CONFIG NUM_PROCS [args]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rats_mm.engine.launch import train_main  # noqa: E402

if __name__ == '__main__':
    train_main(__doc__.splitlines()[0])
