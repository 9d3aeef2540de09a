"""DINO self-distillation pretraining (RATS, ViT, ViT + registers) with mmengine's Runner.

    python tools/pretrain.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    bash tools/dist_pretrain.sh CONFIG NUM_PROCS [args]
"""
from rats_mm.runtime.launch import train_main

if __name__ == '__main__':
    train_main(__doc__.splitlines()[0])
