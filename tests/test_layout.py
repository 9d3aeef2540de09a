"""The layout's dependency rules (docs/architecture.md section 2), read from the imports of
every module (top-level and function-level, resolved from relative form)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'rats_mm'
CORE = ('layers', 'models', 'ssl', 'data', 'analysis', 'science')
OPENMMLAB = ('mmengine', 'mmcv', 'mmseg', 'mmdet')


def _module(path):
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path, top_level_only=False):
    """Absolute names of the modules a file imports."""
    tree = ast.parse(path.read_text())
    module = _module(path)
    package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.add(name)
            found.update(f'{name}.{a.name}' for a in node.names)  # submodules imported by name
    return found


def _files(*subpackages):
    for sub in subpackages:
        yield from sorted((PACKAGE / sub).rglob('*.py'))


def _offenders(files, forbidden):
    bad = {}
    for path in files:
        hits = sorted(n for n in _imports(path) if n.split('.')[0] in forbidden or any(
            n == f or n.startswith(f + '.') for f in forbidden))
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    return bad


def test_the_pure_core_imports_no_openmmlab_and_no_glue():
    glue = tuple(f'rats_mm.{g}' for g in ('pretrain', 'dense', 'runtime', 'mmseg', 'mmdet'))
    assert _offenders(_files(*CORE), OPENMMLAB + glue) == {}


@pytest.mark.parametrize('package,forbidden', [
    ('runtime', ('rats_mm.pretrain', 'rats_mm.dense', 'rats_mm.mmseg', 'rats_mm.mmdet')),
    ('dense', ('rats_mm.pretrain', 'rats_mm.analysis', 'rats_mm.runtime')),
    ('mmseg', ('rats_mm.pretrain', 'rats_mm.analysis', 'rats_mm.runtime')),
    ('mmdet', ('rats_mm.pretrain', 'rats_mm.analysis', 'rats_mm.runtime')),
])
def test_glue_depends_only_downwards(package, forbidden):
    """runtime (shared by every run) never reaches into pretraining; a segmentation or
    detection run imports nothing of pretraining or the analyses."""
    assert _offenders(_files(package), forbidden) == {}


def test_analysis_is_grouped_and_free_of_import_cycles():
    entries = [p for p in (PACKAGE / 'analysis').iterdir()
               if p.suffix == '.py' or (p / '__init__.py').is_file()]
    assert len(entries) <= 8, sorted(p.name for p in entries)
    modules = {_module(p): p for p in _files('analysis') if p.name != '__init__.py'}
    graph = {m: {n for n in _imports(p) if n in modules}  # lazy imports count too
             for m, p in modules.items()}
    state = {}

    def visit(node, trail):
        if state.get(node) == 'done':
            return
        assert state.get(node) != 'open', f'import cycle: {" -> ".join(trail + [node])}'
        state[node] = 'open'
        for nxt in graph[node]:
            visit(nxt, trail + [node])
        state[node] = 'done'
    for node in graph:
        visit(node, [])


MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_sixty_lines():
    """Every function and method under rats_mm/, docstring included (end - start + 1)."""
    long = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f'{path.relative_to(ROOT)}:{node.lineno} {node.name}'] = length
    assert long == {}


def _calls(name):
    """``file:line`` of every call of a function named ``name`` under rats_mm/."""
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', None)
                if called == name:
                    found.append(f'{path.relative_to(ROOT)}:{node.lineno}')
    return found


def test_the_teacher_is_built_in_one_place():
    """One DINO model: both drivers get their teacher from DINODistillation."""
    calls = _calls('build_teacher')
    assert len(calls) == 1 and calls[0].startswith('rats_mm/ssl/distill.py:'), calls


def test_the_imagenet_normalisation_is_defined_once():
    """The mean / std literals and the grayscale weights live in rats_mm/data/images.py."""
    holders = {literal: sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob('*.py')
                               if literal in p.read_text())
               for literal in ('0.485', '0.229', '0.587')}
    assert holders == dict.fromkeys(holders, ['rats_mm/data/images.py'])


def test_the_demo_tool_imports_what_it_uses():
    """tools/demo.py's imports resolve (its steps run only under ``__main__``): a name the
    library stopped exporting fails here, not after `make demo` has trained for minutes."""
    import runpy
    namespace = runpy.run_path('tools/demo.py', run_name='imported_by_test')
    assert callable(namespace['main'])
