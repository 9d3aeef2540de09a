"""timm's own model tests (``tests/test_models.py`` of the pinned timm, read from its source
distribution, which ``make install`` keeps in ``.venv/share/timm-sdist``) on
``rats_tiny_patch16`` and ``rats_small_patch16``.

timm chooses its tests' models by lists in that file: the modules whose models have
``forward_intermediates`` (``FEAT_INTER_FILTERS``) and the ViT-like models whose
``forward_features`` is a token sequence, not a spatial map (``NON_STD_FILTERS``: they run
``test_model_default_cfgs_non_std`` instead of ``test_model_default_cfgs`` and skip the
hook-based ``test_model_forward_features``). The first run adds RATS to both lists as timm
adds its own ViTs; the second leaves ``NON_STD_FILTERS`` alone and runs
``test_model_forward_features`` (``features_only=True``) as timm runs it on a CNN.
"""
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import pytest
import timm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SDIST = os.environ.get('RATS_MM_TIMM_SDIST', os.path.join(
    ROOT, '.venv', 'share', 'timm-sdist', f'timm-{timm.__version__}.tar.gz'))
MODELS = ('rats_tiny_patch16', 'rats_small_patch16')
AS_TIMM_VIT = ('test_model_forward', 'test_model_backward', 'test_model_default_cfgs',
               'test_model_default_cfgs_non_std', 'test_model_forward_intermediates',
               'test_model_forward_intermediates_features', 'test_model_forward_fx',
               'test_model_backward_fx')
# timm's ViT rule excludes these two for our models: they are the std-model tests
NOT_FOR_VITS = ('test_model_default_cfgs', 'test_model_forward_features')


def _write_timm_tests(folder, as_timm_vit):
    """timm's test file with RATS in its model lists, and a conftest registering RATS."""
    if not os.path.isfile(SDIST):
        pytest.fail(f'{SDIST} is missing: `make install` downloads timm '
                    f'{timm.__version__} source distribution (or set RATS_MM_TIMM_SDIST)')
    with tarfile.open(SDIST) as tar:
        source = tar.extractfile(f'timm-{timm.__version__}/tests/test_models.py').read()
    source = source.decode()
    edits = [('FEAT_INTER_FILTERS = [', "FEAT_INTER_FILTERS = ['rats_vit', ")]
    if as_timm_vit:
        edits.append(('NON_STD_FILTERS = [', "NON_STD_FILTERS = ['rats_*', "))
    for old, new in edits:
        assert source.count(old) == 1, f'{old!r} is no longer in timm\'s test_models.py'
        source = source.replace(old, new)
    (folder / 'test_models.py').write_text(source)
    (folder / 'conftest.py').write_text('import rats_mm.models  # registers RATS with timm\n')


def _run_timm_tests(folder, tests):
    """Run ``tests`` of the written file on MODELS; {test id: outcome}."""
    report = folder / 'report.xml'
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', f'--rootdir={folder}',
           f'--junitxml={report}', '-k', ' or '.join(MODELS),
           *[f'test_models.py::{t}' for t in tests]]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=1200)
    outcomes = {}
    for case in ET.parse(report).iter('testcase'):
        kinds = [child.tag for child in case if child.tag in ('failure', 'error', 'skipped')]
        outcomes[case.get('name')] = kinds[0] if kinds else 'passed'
    return outcomes, proc.stdout[-6000:]


def _expected(tests):
    return {f'{t}[1-{m}]' if t not in ('test_model_backward', 'test_model_backward_fx')
            else f'{t}[2-{m}]' for t in tests for m in MODELS}


def test_timm_model_tests_pass_with_rats_listed_as_timm_lists_its_vits(tmp_path):
    _write_timm_tests(tmp_path, as_timm_vit=True)
    outcomes, log = _run_timm_tests(tmp_path, AS_TIMM_VIT)
    want = _expected([t for t in AS_TIMM_VIT if t not in NOT_FOR_VITS])
    assert outcomes == {name: 'passed' for name in want}, log


def test_timm_features_only_test_passes(tmp_path):
    _write_timm_tests(tmp_path, as_timm_vit=False)
    outcomes, log = _run_timm_tests(tmp_path, ['test_model_forward_features'])
    assert outcomes == {name: 'passed' for name in _expected(['test_model_forward_features'])}, log
