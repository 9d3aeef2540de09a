"""benchmarks/device_suite.py --smoke: every part runs on the CPU with OpenMMLab unimportable;
its JSON and table report the rows asked for, images/s as batch / measured seconds, ratios of
the figures they report, and the table repeats the JSON."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = ("import runpy, sys; sys.modules.update(dict.fromkeys(['mmengine', 'mmcv', 'mmseg', "
       "'mmdet'])); sys.path.insert(0, 'benchmarks'); "
       "sys.argv = ['device_suite.py', '--smoke', '--out', {out!r}]; "
       "runpy.run_path('benchmarks/device_suite.py', run_name='__main__')")
# the smoke sizes: one arch S (64 wide, 2 blocks, 2 heads), patch 8, 32 and 64 px, 2 ** 9
# tokens per batch: 512 // 16 tokens = 32 images at 32 px, 512 // 64 = 8 at 64 px, halved
# for training; the DINO step runs 4 images
SIZES = (32, 64)
BATCHES = {(32, 'infer'): 32, (32, 'train'): 16, (64, 'infer'): 8, (64, 'train'): 4}
DINO_BATCH = 4


def table_rows(markdown):
    """The scaling table's data rows as lists of cell strings."""
    rows = [line.strip('|').split('|') for line in markdown.splitlines()
            if line.startswith('| S |')]
    return [[cell.strip() for cell in row] for row in rows]


def check_report(result, markdown):
    """What holds for any timing: the rows asked for, their batches, the ratios, the table."""
    assert [(r['arch'], r['size'], r['mode'], r['batch']) for r in result['scaling']] == [
        ('S', size, mode, BATCHES[size, mode]) for size in SIZES for mode in ('infer', 'train')]
    for row in result['scaling']:
        assert row['speedup'] == pytest.approx(row['rats_img_s'] / row['vit_img_s'], rel=1e-12)
        assert row['rats_peak_mb'] is None and row['vit_peak_mb'] is None  # CPU: not measured
    dino = result['dino_step']
    assert dino['speedup'] == pytest.approx(dino['rats_img_s'] / dino['vit_img_s'], rel=1e-12)
    assert sorted(result['attention_share']) == sorted(str(s) for s in SIZES)
    # the table repeats the JSON, one row per measurement, rounded as printed
    rows = table_rows(markdown)
    assert len(rows) == len(result['scaling'])
    for cells, r in zip(rows, result['scaling']):
        assert cells[:4] == ['S', str(r['size']), r['mode'], str(r['batch'])]
        assert cells[4:7] == [f"{r['rats_img_s']:.1f}", f"{r['vit_img_s']:.1f}",
                              f"{r['speedup']:.2f}"]
        assert cells[7:] == ['-', '-']
    assert (f"RATS {dino['rats_img_s']:.1f} img/s, ViT {dino['vit_img_s']:.1f} img/s, "
            f"ratio {dino['speedup']:.2f}.") in markdown
    assert 'DINO step (2 x 32 + 8 x 16 px)' in markdown
    shares = ', '.join(f'{s} px {result["attention_share"][str(s)]:.2f}' for s in SIZES)
    assert f'Register attention share of a block: {shares}.' in markdown
    # fp32 on the CPU against fp32 math under bf16 autocast: close, but not identical (bf16
    # keeps 8 significant bits: relative errors of the order of 2 ** -8)
    assert sorted(result['precision']) == ['x_norm_patchtokens', 'x_norm_regtokens']
    for err in result['precision'].values():
        assert 1e-5 < err['relative_l2'] < 0.05 and err['max_abs'] > 0


def test_device_suite_smoke_without_openmmlab(tmp_path):
    out = str(tmp_path / 'suite')
    proc = subprocess.run([sys.executable, '-c', RUN.format(out=out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(os.path.join(out, 'device_suite.json')) as f:
        result = json.load(f)
    with open(os.path.join(out, 'device_suite.md')) as f:
        markdown = f.read()
    check_report(result, markdown)
    for row in result['scaling']:
        assert row['rats_img_s'] > 0 and row['vit_img_s'] > 0
    # a ratio of two medians: timing noise on a loaded CPU can put it above 1
    assert all(share > 0 for share in result['attention_share'].values())


@pytest.fixture
def suite(monkeypatch):
    """benchmarks/device_suite.py imported here (its path edits and ``common`` undone)."""
    monkeypatch.setattr(sys, 'path', list(sys.path))
    had_common = 'common' in sys.modules
    spec = importlib.util.spec_from_file_location(
        '_device_suite_under_test', os.path.join(ROOT, 'benchmarks', 'device_suite.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    if not had_common:
        sys.modules.pop('common', None)


def test_reported_figures_are_batch_over_the_measured_seconds(suite, monkeypatch, tmp_path):
    """With the timer replaced by one that runs every callable once and returns known
    seconds, each reported figure is the batch divided by the seconds of its own
    measurement, and each share the ratio of its own two timings."""
    calls = []

    def timer(fns, device, repeats):
        assert device == 'cpu' and repeats == suite.SMOKE['repeats']
        for fn in fns.values():
            fn()
        k = len(calls) + 1  # different seconds for every measurement and callable
        secs = {name: 0.01 * k * (i + 2) for i, name in enumerate(sorted(fns))}
        calls.append(secs)
        return secs
    monkeypatch.setattr(suite, 'interleaved', timer)
    result = suite.main(['--smoke', '--out', str(tmp_path)])
    # 4 scaling rows, the DINO step, the attention share of 2 sizes, in that order
    assert [sorted(c) for c in calls] == [['rats', 'vit']] * 5 + [['attention', 'block']] * 2
    for row, secs in zip(result['scaling'], calls[:4]):
        assert row['rats_img_s'] == pytest.approx(row['batch'] / secs['rats'], rel=1e-12)
        assert row['vit_img_s'] == pytest.approx(row['batch'] / secs['vit'], rel=1e-12)
        assert row['speedup'] == pytest.approx(secs['vit'] / secs['rats'], rel=1e-12)
    dino = result['dino_step']
    assert dino['rats_img_s'] == pytest.approx(DINO_BATCH / calls[4]['rats'], rel=1e-12)
    assert dino['vit_img_s'] == pytest.approx(DINO_BATCH / calls[4]['vit'], rel=1e-12)
    for size, secs in zip(SIZES, calls[5:]):
        assert result['attention_share'][size] == pytest.approx(
            secs['attention'] / secs['block'], rel=1e-12)
    # what was written is what was returned
    with open(tmp_path / 'device_suite.json') as f:
        written = json.load(f)
    assert written['scaling'] == result['scaling'] and written['dino_step'] == dino
    assert written['attention_share'] == {str(k): v for k, v in
                                          result['attention_share'].items()}
    markdown = (tmp_path / 'device_suite.md').read_text()
    check_report(written, markdown)
    assert re.match(r'Device suite on cpu \(.*\) \(torch .*\), \d+ s\.', markdown)
