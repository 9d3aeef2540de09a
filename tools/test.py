"""Evaluate a checkpoint (mIoU for mmseg configs, AP^m for mmdet configs) and write the
metrics to WORK_DIR/test_metrics.json:

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_GPUS [args]
"""
import argparse
import os
import sys


from mmengine.dist import is_main_process
from mmengine.runner import Runner

from rats_mm.files import write_json
from rats_mm.runtime.launch import (add_common_args, settle_run_config, setup_distributed,
                                    shutdown_distributed)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint to evaluate')
    p.add_argument('--show-dir', help='write prediction overlays to this directory')
    return add_common_args(p).parse_args()


def enable_overlays(cfg, show_dir):
    """Turn on the config's visualisation hook and point its output at ``show_dir``."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs default_hooks.visualization in the config')
    hook.update(draw=True, interval=1)
    # mmseg's SegVisualizationHook reads runner.iter, which makes mmengine build the train
    # loop and its dataset; point that at the test data so testing never needs the training
    # set on disk
    if cfg.get('train_dataloader') is not None:
        cfg.train_dataloader.dataset = cfg.test_dataloader.dataset
    if 'Seg' in hook['type']:
        cfg.visualizer.save_dir = show_dir  # mmseg writes under the visualiser's save_dir
    else:
        hook['test_out_dir'] = os.path.abspath(show_dir)  # mmdet: the hook's own folder


def main():
    args = parse_args()
    if not os.path.isfile(args.checkpoint):
        sys.exit(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = settle_run_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_overlays(cfg, args.show_dir)
    setup_distributed(cfg)
    metrics = Runner.from_cfg(cfg).test()
    if is_main_process():
        for key, value in metrics.items():
            print(f'{key}: {value}')
        write_json(os.path.join(cfg.work_dir, 'test_metrics.json'), metrics, indent=1,
                   default=float)
    shutdown_distributed()


if __name__ == '__main__':
    main()
