"""Downstream comparisons over seeds: each run's test metrics grouped by arm, mean and
sample standard deviation per metric (``tools/analysis/compare_runs.py``).

A run is a work dir holding ``test_metrics.json`` (written by ``tools/test.py``) and the
config the training dumped there (``<config name>.py``); runs of one config are one arm, its
seeds read from the config's ``randomness = dict(seed=N)``. ``rats_mm.analysis.runs.science``
tabulates ``tools/science.py`` runs the same way.
"""
import json
import math
import os
import runpy

__all__ = ['collect_runs', 'compare_runs', 'format_stat', 'grouped_stats', 'mean_std',
           'metric_stats', 'run_seed', 'runs_table']


def run_seed(config_file):
    """The seed of a dumped config, read as mmengine reads a config: the file is run as
    Python and its final ``randomness`` is looked at (a later assignment overrides an earlier
    one, as it does in the run).

    Args:
        config_file (str): A config the training dumped into its work dir.

    Returns:
        int | None: ``randomness['seed']``, None when the config sets no seed.

    Raises:
        ValueError: When the file does not run, naming it.
    """
    try:
        namespace = runpy.run_path(config_file)
    except Exception as e:
        raise ValueError(f'{config_file}: cannot read the config ({type(e).__name__}: {e})') from e
    seed = (namespace.get('randomness') or {}).get('seed')
    return None if seed is None else int(seed)


def _read_run(work_dir):
    """(arm, seed, metrics) of one work dir."""
    metrics_file = os.path.join(work_dir, 'test_metrics.json')
    if not os.path.isfile(metrics_file):
        raise FileNotFoundError(f'{work_dir}: no test_metrics.json (run tools/test.py with '
                                '--work-dir there first)')
    with open(metrics_file) as f:
        metrics = {k: float(v) for k, v in json.load(f).items()
                   if isinstance(v, (int, float))}
    configs = sorted(f for f in os.listdir(work_dir) if f.endswith('.py'))
    arm, seed = os.path.basename(os.path.normpath(work_dir)), None
    if configs:
        arm = os.path.splitext(configs[0])[0]
        seed = run_seed(os.path.join(work_dir, configs[0]))
    return arm, seed, metrics


def collect_runs(work_dirs):
    """Args:
        work_dirs (Sequence[str]): Run folders.

    Returns:
        list[dict]: ``work_dir``, ``arm``, ``seed`` and ``metrics`` of each run.
    """
    runs = []
    for work_dir in work_dirs:
        arm, seed, metrics = _read_run(work_dir)
        runs.append(dict(work_dir=work_dir, arm=arm, seed=seed, metrics=metrics))
    return runs


def mean_std(values):
    """Mean and sample standard deviation (n - 1; None for a single value) of floats."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def metric_stats(values):
    """``{name: [floats]}`` -> ``{name: {mean, std, n}}`` (std None for one value)."""
    stats = {}
    for name, vals in values.items():
        mean, std = mean_std(vals)
        stats[name] = {'mean': mean, 'std': std, 'n': len(vals)}
    return stats


def format_stat(stat, digits=2):
    """``mean ± std (n=k)`` of a :func:`metric_stats` entry; ``-`` for None."""
    if stat is None:
        return '-'
    if stat['std'] is None:
        return f"{stat['mean']:.{digits}f} (n=1)"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f} (n={stat['n']})"


def grouped_stats(records, keys, metrics):
    """Mean and sample std of ``metrics`` over records that agree on ``keys``.

    Args:
        records (Sequence[dict]): Flat records (one per run); a metric that is missing or
            None in a record is left out of that record's group.
        keys (Sequence[str]): The fields that name a group.
        metrics (Sequence[str]): The fields to summarise.

    Returns:
        list[tuple]: ``(group values, records in the group, metric_stats)``, sorted by group.
    """
    groups = {}
    for record in records:
        groups.setdefault(tuple(record[k] for k in keys), []).append(record)
    out = []
    for group in sorted(groups):
        rows = groups[group]
        values = {m: [float(r[m]) for r in rows if r.get(m) is not None] for m in metrics}
        out.append((group, len(rows), metric_stats({m: v for m, v in values.items() if v})))
    return out


def compare_runs(work_dirs):
    """Mean and sample std (n - 1) of every metric per arm.

    Args:
        work_dirs (Sequence[str]): Run folders (several seeds of each arm).

    Returns:
        dict: ``arms`` {arm: {``seeds``, ``runs``, ``metrics`` {name: {mean, std, n}}}} and
        ``runs`` (what :func:`collect_runs` read). A seed seen twice in one arm is an error
        naming both folders.
    """
    runs = collect_runs(work_dirs)
    arms = {}
    for run in runs:
        arm = arms.setdefault(run['arm'], {'seeds': [], 'runs': [], 'values': {}})
        if run['seed'] is not None and run['seed'] in arm['seeds']:
            first = arm['runs'][arm['seeds'].index(run['seed'])]
            raise ValueError(f"{run['work_dir']} and {first}: the same arm ({run['arm']}) "
                             f"with the same seed {run['seed']}")
        arm['seeds'].append(run['seed'])
        arm['runs'].append(run['work_dir'])
        for name, value in run['metrics'].items():
            arm['values'].setdefault(name, []).append(value)
    for arm in arms.values():
        arm['metrics'] = metric_stats(arm.pop('values'))
    return {'arms': arms, 'runs': runs}


def runs_table(result, metrics=None):
    """Markdown: one row per arm, ``mean ± std (n)`` per metric.

    Args:
        result (dict): :func:`compare_runs`'s result.
        metrics (Sequence[str] | None): Columns (default: every metric of any arm, sorted).

    Returns:
        str: The table.
    """
    arms = result['arms']
    names = list(metrics) if metrics else sorted(
        {m for arm in arms.values() for m in arm['metrics']})
    lines = ['| arm | seeds | ' + ' | '.join(names) + ' |', '| --- ' * (len(names) + 2) + '|']
    for arm_name, arm in arms.items():
        cells = [format_stat(arm['metrics'].get(name)) for name in names]
        seeds = ', '.join('?' if s is None else str(s) for s in arm['seeds'])
        lines.append(f'| {arm_name} | {seeds} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
