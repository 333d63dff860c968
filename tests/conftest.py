import contextlib
import copy
import gc
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmseg_cdcl  # noqa: F401  (registers the components)

# shrink_config: re-exported for the tests that take it from here
from mmseg_cdcl.testing import make_demo_data, shrink_config, unformatted  # noqa: F401
from mmseg_cdcl.utils.mmengine_internals import memoized_package_config_lookup


def pytest_configure(config):
    """The tests load the shipped configs many times in one process: each ``mmseg::`` base is
    looked up in MMSeg's model index once (0.2-0.6 s a lookup). The test process's choice: the
    plugin leaves mmengine's lookup alone in a user's process."""
    stack = contextlib.ExitStack()
    stack.enter_context(memoized_package_config_lookup())
    config.add_cleanup(stack.close)


# `make test`'s schedule (-n 2 --dist loadgroup, tests/conftest.py's scheduler): the tests of a
# module in ONE_WORKER share a costly module-scoped fixture and go to one worker together, so the
# other neither waits for it nor makes it again (pytest-xdist 3.8's xdist_group marks do not
# group under pytest 9.2: it no longer reads the node ids they rename); each other test goes to
# whichever worker is free. The modules of LONGEST_FIRST (in that order, then the rest as
# collected) are queued first: no long test is left for the end while one worker idles.
ONE_WORKER = {
    'tests/test_tools/test_run_demo.py',
    'tests/test_tools/test_dist_train.py',
    'tests/test_apis/test_add_dataset_branch.py',
    'tests/test_import_side_effects.py',
    'tests/test_registration.py',
    'tests/test_tools/test_wheel.py',
}
LONGEST_FIRST = [
    'tests/test_tools/test_run_demo.py',
    'tests/test_tools/test_dist_train.py',
    'tests/test_tools/test_convert_config.py',
    'tests/test_tools/test_benchmark.py',
    'tests/test_tools/test_train.py',
    'tests/test_deployment_matrix.py',
    'tests/test_apis/test_add_dataset_branch.py',
    'tests/test_tools/test_resume.py',
    'tests/test_tools/test_wheel.py',
    'tests/test_tools/test_infer.py',
    'tests/test_utils/test_safe_checkpoint.py',
    'tests/test_apis/test_export.py',
    'tests/test_import_side_effects.py',
]


def _module(nodeid):
    return nodeid.split('::', 1)[0]


def pytest_collection_modifyitems(config, items):
    if 'PYTEST_XDIST_WORKER' in os.environ:  # the order the scheduler queues (same on each)
        rank = {m: i for i, m in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(_module(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue('dist') != 'loadgroup':
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleGroups(LoadGroupScheduling):
        def _split_scope(self, nodeid):
            module = _module(nodeid)
            return module if module in ONE_WORKER else super()._split_scope(nodeid)

    config.option.loadscopereorder = False  # LONGEST_FIRST's order, not the groups' sizes
    return ModuleGroups(config, log)


def pytest_collection_finish(session):
    """The objects of the imports are never garbage: mmengine's gc.collect() at each dataset it
    builds (0.4 s each with torch imported) scans only the tests' own."""
    gc.freeze()


if 'PYTEST_XDIST_WORKER' in os.environ:
    # `make test` runs two workers on two cores: one thread each, for them and the tools they
    # start, since two threads per process on a busy core spin waiting for each other.
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build from MMSeg's registries, as MMSeg's own tests and tools do."""
    init_default_scope('mmseg')


def small_cdcl_cfg(num_classes=(5, 3), names=('a', 'b'), **model_kwargs):
    """A CDCL PSPNet-R18-D8 as the paper's, with thin heads so CPU tests stay fast."""
    n = len(num_classes)
    return dict(
        type='CDCLEncoderDecoder',
        dataset_names=list(names),
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255,
        ),
        backbone=dict(
            type='DABResNetV1c',
            num_datasets=n,
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            contract_dilation=True,
            norm_eval=False,
            style='pytorch',
        ),
        decode_head=dict(
            type='DABPSPHead',
            in_channels=512,
            in_index=3,
            channels=32,
            pool_scales=(1, 2, 3, 6),
            dropout_ratio=0.1,
            num_classes=list(num_classes),
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
        ),
        auxiliary_head=dict(
            type='DABFCNHead',
            in_channels=256,
            in_index=2,
            channels=16,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            num_classes=list(num_classes),
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4),
        ),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'),
        **model_kwargs,
    )


def seg_samples(dataset_idx, num_classes, size=(32, 32), seed=0):
    """SegDataSamples with random labels in each sample's own label space."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(seed)
    samples = []
    for d in dataset_idx:
        sample = SegDataSample(
            metainfo=dict(
                dataset_idx=d,
                img_shape=size,
                ori_shape=size,
                pad_shape=size,
                padding_size=[0, 0, 0, 0],
            )
        )
        label = torch.randint(0, num_classes[d], (1, *size), generator=gen)
        label[:, :2] = 255  # an ignored border
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return samples


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Test-time augmentation of one view, the test pipeline's (the test-size configs' 128x64): its
# merged prediction must be the plain one.
ONE_VIEW = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(128, 64), keep_ratio=True)],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ],
    ),
]


def shared_folder(tmp_path_factory, name, make):
    """A folder that ``make(folder)`` fills once per test run. Under pytest-xdist (``make test``
    runs two workers) the first worker to ask fills it and the others wait for it and reuse it:
    pytest-xdist's FileLock pattern, over the run's temporary folder that the workers share."""
    if 'PYTEST_XDIST_WORKER' not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent
    folder, done = root / name, root / f'{name}.done'
    with FileLock(str(root / f'{name}.lock')):
        if not done.exists():  # none made, or a worker failed making it: (re)make it here
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope='session')
def data_cwd(tmp_path_factory):
    """A folder whose ``data/`` holds small generated Cityscapes, BDD100K and CamVid in their
    real layouts, so the real configs' ``data/<dataset>`` roots resolve from it (and each
    image's label in the 19 universal classes, ``<dataset>/universal_annotations/``)."""
    return shared_folder(
        tmp_path_factory,
        'cwd',
        lambda cwd: make_demo_data(
            str(cwd / 'data'),
            num_images=dict(train=6, val=3, test=2),
            image_size=(64, 128),
            seed=0,
            universal_labels=True,
        ),
    )


@pytest.fixture(scope='session')
def trained_cdcl(data_cwd, tmp_path_factory):
    """A two-iteration run of tools/train.py on configs/cdcl_cityscapes_camvid.py at test size,
    trained once for the tests of the tools that read a trained model: its folder holds
    config.py and iter_2.pth (whose meta holds the MultiDataset's dataset_meta)."""

    def train(work_dir):
        cfg = shrink_config(
            Config.fromfile(os.path.join(REPO, 'configs', 'cdcl_cityscapes_camvid.py'))
        )
        cfg.default_hooks.pop('visualization')
        unformatted(cfg).dump(str(work_dir / 'config.py'))
        result = subprocess.run(
            [
                sys.executable,
                os.path.join(REPO, 'tools', 'train.py'),
                str(work_dir / 'config.py'),
                '--work-dir',
                str(work_dir),
            ],
            cwd=data_cwd,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    return shared_folder(tmp_path_factory, 'cdcl_cityscapes_camvid', train)


@pytest.fixture(scope='session')
def trained_universal(data_cwd, tmp_path_factory):
    """A two-iteration run of configs/cdcl_universal_cityscapes_camvid.py (one classifier of the
    19 universal classes) at test size, in this process: its folder holds config.py and
    iter_2.pth."""

    def train(work_dir):
        cfg = shrink_config(
            Config.fromfile(os.path.join(REPO, 'configs', 'cdcl_universal_cityscapes_camvid.py'))
        )
        cfg.default_hooks.pop('visualization')
        cfg.val_dataloader.dataset.datasets.cityscapes.indices = 1  # validation as it runs
        cfg.val_dataloader.dataset.datasets.camvid.indices = 1
        unformatted(cfg).dump(str(work_dir / 'config.py'))
        cwd = os.getcwd()
        os.chdir(data_cwd)
        try:
            cfg = unformatted(cfg)
            cfg.work_dir = str(work_dir)
            cfg.experiment_name = cfg.visualizer.name = f'universal_{time.time_ns()}'
            Runner.from_cfg(cfg).train()
        finally:
            os.chdir(cwd)

    return shared_folder(tmp_path_factory, 'cdcl_universal_cityscapes_camvid', train)


def model_heads(model):
    """The head configs of a model config: its decode and auxiliary heads, each one or a list."""
    return [
        head
        for key in ('decode_head', 'auxiliary_head')
        for head in (lambda v: v if isinstance(v, list) else [v] * (v is not None))(model.get(key))
    ]


def thin_model(model, channels=64):
    """A model config at test size (in place, returned): every head at most ``channels`` wide
    (``channels``, ``ocr_channels``) and a ResNet-50/101 that feeds its heads directly (no neck)
    a ResNet-18, the heads' ``in_channels`` a quarter, as MMSeg's r18 configs have them. What
    converting a model to CDCL does is the same at any width and depth."""
    heads = model_heads(model)
    backbone = model.get('backbone', {})
    if backbone.get('type', '').startswith('ResNet') and backbone.get('depth', 18) > 34:
        if model.get('neck') is None:
            backbone.depth = 18
            for head in heads:
                width = head.in_channels
                head.in_channels = (
                    [c // 4 for c in width] if isinstance(width, list) else width // 4
                )
    for head in heads:
        if 'mla_channels' in head or head.get('num_convs') == 0:
            continue  # widths tied to others: SETR-MLA's, an FCN head's without convs
        for key in ('channels', 'ocr_channels'):
            if key in head:
                head[key] = min(head[key], channels)
    return model


def assert_mixed_batch_equals_datasets_alone(model, x, samples, groups, buffers=True):
    """CDCL's central fact: a batch mixing the datasets gives the losses and gradients (and,
    with ``buffers``, the running statistics) of each dataset's samples ``groups[d]`` alone."""
    separate = copy.deepcopy(model)
    losses = model.loss(x, samples)
    model.parse_losses(losses)[0].backward()
    total = 0
    for rows in groups:
        alone = separate.loss(x[rows], [samples[i] for i in rows])
        for key, value in alone.items():
            if 'loss' in key:
                torch.testing.assert_close(losses[key], value, rtol=1e-9, atol=1e-9, msg=key)
        total = total + separate.parse_losses(alone)[0]
    total.backward()
    for (name, p), q in zip(model.named_parameters(), separate.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-7, atol=1e-9, msg=name)
    if buffers:
        for (name, b), c in zip(model.named_buffers(), separate.buffers()):
            torch.testing.assert_close(b, c, rtol=1e-9, atol=1e-9, msg=name)


def train_in_process(config, work_dir, data_cwd, monkeypatch):
    """What tools/train.py does with a config file (mmengine's Runner), in this process, where
    the command line adds nothing (tests/test_tools/test_train.py runs the command itself).
    Returns the last per-dataset validation metrics it logged."""
    monkeypatch.chdir(data_cwd)  # where the configs' data/<dataset> roots are
    cfg = unformatted(Config.fromfile(str(config)))  # no yapf pass per checkpoint saved
    cfg.work_dir = str(work_dir)
    # mmengine shares loggers and visualizers by name: this run's own, as in a fresh process
    cfg.experiment_name = cfg.visualizer.name = f'{os.path.basename(work_dir)}_{time.time()}'
    Runner.from_cfg(cfg).train()
    [scalars] = glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        return [json.loads(line) for line in f if 'mIoU' in line][-1]


@contextmanager
def logged():
    """The lines mmengine's current logger (the last Runner's) writes meanwhile."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
