"""Compare downstream runs over seeds: mean ± std of every test metric per arm.

    python tools/analysis/compare_runs.py WORK_DIR [WORK_DIR ...] --out table.md
        [--metrics mIoU aAcc] [--json result.json]

Each WORK_DIR holds a run's ``test_metrics.json`` (tools/test.py CONFIG CKPT --work-dir
WORK_DIR) and the config its training dumped there; runs of one config form one arm (seeds
from the config's randomness.seed). Writes a markdown table (``mean ± std (n)``, sample std)
and, with --json, every figure. The README's protocol: 3 seeds per arm.
"""
import json
import os

from rats_mm.analysis.io import make_parser, run_cli
from rats_mm.analysis.runs import compare_runs, runs_table


def main(argv=None):
    p = make_parser(__doc__)
    p.add_argument('work_dirs', nargs='+', help='run folders with test_metrics.json')
    p.add_argument('--out', required=True, help='markdown table')
    p.add_argument('--metrics', nargs='+', default=None, help='columns (default: all)')
    p.add_argument('--json', default=None, help='also write every figure here')
    args = p.parse_args(argv)
    result = compare_runs(args.work_dirs)
    table = runs_table(result, args.metrics)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(table)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    print(table + f'wrote {args.out}')
    return result


if __name__ == '__main__':
    run_cli(main)
