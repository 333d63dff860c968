"""``import mmseg_cdcl`` (and each of its public subpackages) adds registry entries and changes
nothing else of the process it is imported into: a user's MMSeg process (``custom_imports``).

A fresh interpreter imports every module of mmengine, MMSeg, mmcv, torch, numpy and yapf that
the plugin imports, takes a snapshot of the process's state, and forks one child per
subpackage; each child imports it and compares its state with the snapshot (the objects
themselves are kept, so that an identity compared is never a reused id)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

SUBPACKAGES = [
    'mmseg_cdcl',
    'mmseg_cdcl.apis',
    'mmseg_cdcl.datasets',
    'mmseg_cdcl.engine',
    'mmseg_cdcl.evaluation',
    'mmseg_cdcl.models',
    'mmseg_cdcl.visualization',
    'mmseg_cdcl.utils',
    'mmseg_cdcl.testing',
]

SNAPSHOT = r'''
import ast, gc, glob, importlib, json, logging, os, random, signal, sys, warnings

WATCHED = ('mmengine', 'mmseg', 'mmcv', 'torch', 'numpy', 'yapf')
root, modules = sys.argv[1], sys.argv[2:]


def plugin_imports():
    """What the plugin's modules import at their top level, from outside the plugin."""
    found = []

    def walk(body):
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((a.name, None) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.extend((node.module, a.name) for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                for part in (node.body, node.orelse, getattr(node, 'finalbody', [])):
                    walk(part)
                for handler in getattr(node, 'handlers', []):
                    walk(handler.body)

    for path in glob.glob(os.path.join(root, 'mmseg_cdcl', '**', '*.py'), recursive=True):
        with open(path) as f:
            walk(ast.parse(f.read()).body)
    return [(m, n) for m, n in found if m.split('.')[0] != 'mmseg_cdcl']


for module, name in plugin_imports():
    imported = importlib.import_module(module)
    if name is not None and not hasattr(imported, name):
        importlib.import_module(f'{module}.{name}')  # a submodule

import matplotlib
import numpy as np
import torch
from mmengine.fileio.backends import registry_utils
from mmengine.registry import Registry
import mmengine.registry.root as mmengine_root


def watched(name):
    return name.split('.')[0] in WATCHED


def contents(value):
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, set, frozenset)):
        return list(value)
    return None


def registries():
    found, todo = {}, [v for v in vars(mmengine_root).values() if isinstance(v, Registry)]
    while todo:
        registry = todo.pop()
        found[f'{registry.scope}.{registry.name}'] = registry
        todo.extend(registry._children.values())
    return found


def snapshot():
    """Each attribute of each watched module and of each class defined there (the object),
    the contents of those that are dicts, lists and sets, and the process's global state."""
    attributes, held = {}, {}
    with warnings.catch_warnings():  # reading e.g. torch.distributed.reduce_op warns
        warnings.simplefilter('ignore')
        for module_name, module in list(sys.modules.items()):
            if module is None or not watched(module_name):
                continue
            try:
                items = list(vars(module).items())
            except TypeError:
                continue
            classes = [(k, v) for k, v in items if isinstance(v, type)]
            items += [
                (f'{key}.{k}', v)
                for key, cls in classes
                if cls.__module__ == module_name
                for k, v in vars(cls).items()
            ]
            for key, value in items:
                attributes[f'{module_name}.{key}'] = value
                if contents(value) is not None:
                    held[f'{module_name}.{key}'] = (value, contents(value))
    named = [('', logging.getLogger())] + list(logging.Logger.manager.loggerDict.items())
    loggers = {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled,
               list(logger.filters))
        for name, logger in named
        if isinstance(logger, logging.Logger)
    }
    state = dict(
        safe_globals=set(torch.serialization.get_safe_globals()),
        backends=dict(registry_utils.backends),
        prefix_to_backends=dict(registry_utils.prefix_to_backends),
        gc=(gc.isenabled(), gc.get_freeze_count(), gc.get_threshold(), list(gc.callbacks)),
        warnings=(list(warnings.filters), warnings.showwarning, warnings.formatwarning),
        random=random.getstate(),
        numpy_random=np.random.get_state(),
        torch_random=torch.get_rng_state(),
        torch_settings=(torch.get_num_threads(), torch.get_default_dtype(),
                        torch.are_deterministic_algorithms_enabled(), torch.is_grad_enabled(),
                        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
                        torch.get_float32_matmul_precision()),
        environ=dict(os.environ),
        argv=list(sys.argv),
        path=(list(sys.path), list(sys.meta_path), list(sys.path_hooks)),
        hooks=(sys.excepthook, sys.displayhook, threading_excepthook()),
        signals={s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)},
        cwd=os.getcwd(),
        matplotlib=dict.copy(matplotlib.rcParams),
    )
    modules = {name for name in sys.modules if watched(name)}
    tables = {name: dict(registry._module_dict) for name, registry in registries().items()}
    return attributes, held, loggers, state, modules, tables


def threading_excepthook():
    import threading
    return threading.excepthook


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a is b or a == b


def changes(before, after):
    """What differs, each named; added registry entries (and mmengine file backends under new
    names, its registry of them) are not changes."""
    found = []
    attributes, held, loggers, state, modules, tables = before
    new_attributes, _, new_loggers, new_state, new_modules, new_tables = after
    for key, value in attributes.items():
        if key not in new_attributes:
            found.append(f'{key}: removed')
        elif new_attributes[key] is not value:
            found.append(f'{key}: replaced ({value!r:.80} -> {new_attributes[key]!r:.80})')
    found += [f'{key}: added' for key in sorted(new_attributes.keys() - attributes.keys())]
    backends = registry_utils.backends
    for key, (container, old) in held.items():
        new = contents(container)
        if isinstance(old, dict):
            added = new.keys() - old.keys()
            if added and container is not backends:
                found.append(f'{key}: keys added {sorted(map(repr, added))[:5]}')
            for k in old:
                if k not in new:
                    found.append(f'{key}[{k!r}]: removed')
                elif new[k] is not old[k]:
                    found.append(f'{key}[{k!r}]: replaced ({old[k]!r:.60} -> {new[k]!r:.60})')
        elif not same(old, new):
            found.append(f'{key}: contents changed ({len(old)} -> {len(new)} items)')
    for name, entry in loggers.items():
        if new_loggers.get(name) != entry:
            found.append(f'logger {name!r}: level, handlers or filters changed')
    for name in new_loggers.keys() - loggers.keys():
        level, handlers, *_ = new_loggers[name]
        if level or handlers:
            found.append(f'logger {name!r}: added with level {level} and {len(handlers)} handlers')
    for key, value in state.items():
        new = new_state[key]
        if key == 'safe_globals':
            if new != value:
                added = sorted(getattr(g, '__qualname__', repr(g)) for g in new - value)
                found.append(f'torch safe globals: {len(new - value)} added {added[:8]}, '
                             f'{len(value - new)} removed')
        elif key == 'backends':
            found += [f'mmengine file backend {k!r}: replaced' for k in value
                      if new.get(k) is not value[k]]
        elif not same(value, new):
            if isinstance(value, dict):
                keys = sorted(k for k in value.keys() | new.keys()
                              if k not in value or k not in new or not same(value[k], new[k]))
                found.append(f'{key}: {keys[:8]} changed')
            else:
                found.append(f'{key}: changed')
    found += [f'sys.modules: {m} imported (not preloaded)' for m in sorted(new_modules - modules)]
    for name, table in tables.items():
        new = new_tables.get(name, {})
        found += [f'registry {name}: {k!r} removed or replaced' for k in table
                  if new.get(k) is not table[k]]
    return found


before = snapshot()
children = {}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, compare, report
        os.close(read)
        before[3]['random'] = random.getstate()  # random reseeds itself in a forked child
        try:
            importlib.import_module(module)
            report = changes(before, snapshot())
        except BaseException as error:
            report = [f'import failed: {error!r}']
        with os.fdopen(write, 'w') as f:
            json.dump(report, f)
        os._exit(0)
    os.close(write)
    children[module] = (pid, read)
results = {}
for module, (pid, read) in children.items():
    with os.fdopen(read) as f:
        results[module] = json.load(f)
    os.waitpid(pid, 0)
print(json.dumps(results))
'''

# Used by the control: what the plugin's explicit, process-wide opt-ins and a careless plugin
# change, each of which the comparison must name.
CARELESS = textwrap.dedent("""
    import gc, logging, os, sys, warnings
    import mmengine.config.config
    import torch
    from mmengine.logging import HistoryBuffer
    import mmseg_cdcl
    from mmseg_cdcl.utils import use_atomic_local_writes

    mmseg_cdcl.allow_mmengine_checkpoints()
    use_atomic_local_writes()
    mmengine.config.config.FormatCode = lambda text, **kwargs: (text, False)
    HistoryBuffer.register_statistics = classmethod(lambda cls, method: method)
    gc.freeze()
    sys.argv.append('--extra')
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings('ignore', category=UserWarning)
    torch.manual_seed(1)
    os.environ['OMP_NUM_THREADS'] = '64'
""")


@pytest.fixture(scope='module')
def side_effects(tmp_path_factory):
    folder = tmp_path_factory.mktemp('careless')
    (folder / 'careless_plugin.py').write_text(CARELESS)
    env = dict(os.environ, PYTHONPATH=str(folder))
    done = subprocess.run(
        [sys.executable, '-c', SNAPSHOT, REPO, *SUBPACKAGES, 'careless_plugin'],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize('subpackage', SUBPACKAGES)
def test_importing_adds_registry_entries_and_changes_nothing_else(side_effects, subpackage):
    assert side_effects[subpackage] == [], f'import {subpackage} changed:\n' + '\n'.join(
        side_effects[subpackage]
    )


def test_the_comparison_names_each_process_wide_change(side_effects):
    """The control: the explicit opt-ins (process-wide by the user's choice) and the changes a
    plugin must not make at import, each named."""
    found = side_effects['careless_plugin']
    expected = [
        'torch safe globals: ',
        "mmengine file backend 'local': replaced",
        "prefix_to_backends: [''] changed",
        'mmengine.config.config.FormatCode: replaced',
        'mmengine.logging.history_buffer.HistoryBuffer.register_statistics: replaced',
        'gc: changed',
        'argv: changed',
        "logger '': level, handlers or filters changed",
        'warnings: changed',
        'torch_random: changed',
        "environ: ['OMP_NUM_THREADS'] changed",
    ]
    for change in expected:
        assert any(line.startswith(change) for line in found), (change, found)
