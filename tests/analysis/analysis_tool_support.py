"""What the analysis-tool tests share: tiny model settings, running a tool in a subprocess or
in process, and reading a written PNG's size."""
import importlib.util
import os
import subprocess
import sys

import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, 'tools', 'analysis')
TINY = dict(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2)
RATS = dict(TINY, num_registers=4, attn_mode='rats', class_token=False)
VIT = dict(TINY, num_registers=0, attn_mode='full', class_token=True)


def run_tool(name, *args, ok=True):
    """Run tools/analysis/<name>.py in a subprocess from the repo root."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, name), *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


def tool_module(name):
    """Import a tool by file path (for the fast in-process error checks)."""
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', os.path.join(TOOLS, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fails(name, argv):
    """Run a tool's main in process; return the error message it exits with."""
    module = tool_module(name)
    with pytest.raises(SystemExit) as info:
        module.run_cli(module.main, [str(a) for a in argv])
    return str(info.value.code)


def png_size(path):
    with Image.open(path) as im:
        assert im.format == 'PNG'
        return im.size
