"""The install check fails for an mmcv without its compiled ops (the import alone did not)."""
import sys

import pytest

from rats_mm.runtime import install_check


def test_install_check_passes_here(capsys):
    install_check.main()
    assert 'rats_mm install ok' in capsys.readouterr().out


def test_install_check_fails_without_mmcv_ops(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)  # as if mmcv was built without ops
    from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401  (still imports)
    with pytest.raises(ImportError):
        install_check.main()
