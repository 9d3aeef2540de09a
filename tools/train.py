"""Train an mmseg or mmdet model (the config's default_scope decides which), e.g. Mask2Former
with register queries:

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    bash tools/dist_train.sh CONFIG NUM_GPUS [args]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmengine.runner import Runner  # noqa: E402

from rats_mm.engine.launch import load_config, setup_distributed, train_parser  # noqa: E402


def main():
    args = train_parser(__doc__.splitlines()[0]).parse_args()
    cfg = load_config(args)
    setup_distributed(cfg)
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
