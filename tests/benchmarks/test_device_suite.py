"""benchmarks/device_suite.py --smoke: every part runs on the CPU with OpenMMLab
unimportable and writes its JSON and table."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = ("import runpy, sys; sys.modules.update(dict.fromkeys(['mmengine', 'mmcv', 'mmseg', "
       "'mmdet'])); sys.path.insert(0, 'benchmarks'); "
       "sys.argv = ['device_suite.py', '--smoke', '--out', {out!r}]; "
       "runpy.run_path('benchmarks/device_suite.py', run_name='__main__')")


def test_device_suite_smoke_without_openmmlab(tmp_path):
    out = str(tmp_path / 'suite')
    proc = subprocess.run([sys.executable, '-c', RUN.format(out=out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(os.path.join(out, 'device_suite.json')) as f:
        result = json.load(f)
    sizes = result['config']['sizes']
    assert [(r['size'], r['mode']) for r in result['scaling']] == [
        (s, m) for s in sizes for m in ('infer', 'train')]
    for row in result['scaling']:
        assert row['rats_img_s'] > 0 and row['vit_img_s'] > 0
    assert result['dino_step']['rats_img_s'] > 0
    # a ratio of two medians: timing noise on a loaded CPU can put it above 1, so only its
    # presence for every size is checked, not its value
    assert set(result['attention_share']) == {str(size) for size in sizes}
    assert all(share > 0 for share in result['attention_share'].values())
    # fp32 on the CPU against fp32 math under bf16 autocast: close, but not identical
    for err in result['precision'].values():
        assert 0 < err['relative_l2'] < 0.05
    table = open(os.path.join(out, 'device_suite.md')).read()
    assert table.count('\n| S |') == len(result['scaling'])
