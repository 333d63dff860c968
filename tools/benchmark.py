"""Speed and memory of CDCL (A) against stock MMSeg (B), section by section.

    python tools/benchmark.py [--device cpu|cuda] [--only a,b,c,d,e] [--crop H W] [--batch B]
                              [--config STOCK_CONFIG]
                              [--amp] [--channels-last] [--contiguous] [--peak-tflops T]
                              [--pairs N] [--warmup N] [--threads N] [--num-workers N]
                              [--default-malloc]
                              [--out-dir DIR]

a. DSBN vs nn.BatchNorm2d, forward + backward, 2 datasets x B vs 2B.
b. model.train_step (SGD) of CDCL PSPNet-R18-D8, 2 (3) datasets x B, vs stock PSPNet-R18-D8,
   2B (3B): time, images/s (with the utilisation of the device's peak where it is known), and
   peak memory (peak RSS on CPU, max_memory_allocated on CUDA) measured in a fresh process per
   variant so that peaks do not mix. With --config, the conversion of that stock MMSeg config
   (``CDCLEncoderDecoder(num_classes=[...])``, as tools/convert_config.py writes it) against
   the stock model.
c. Inference routed to one dataset vs the exported plain model: time, FLOPs, params (--config
   as in b); and inference on images of unknown source (default_dataset='auto': the branch
   chosen from DSBN statistics) vs inference routed to one dataset.
d. Data loading: MultiDataset + MultiDatasetSampler vs ConcatDataset + InfiniteSampler.
e. Time from the start of a --resume to its first new iteration, checkpoint at iter 1000 vs 10.

Each section times A and B in one process in alternating pairs after warm-up, each pair started
by the other variant than the one before (e: a child process per run); the table gives medians,
min-max and the median (min-max) of the per-pair ratios A/B against the targets. --amp runs a, b
and c under bf16 autocast (b: mmengine's AmpOptimWrapper on CUDA), --channels-last puts their
models and inputs in channels_last memory format. CDCL batches alternate datasets as
MultiDatasetSampler makes them, or with --contiguous (implied by --channels-last, as the sampler
advises), hold each dataset's samples together as it does with interleave=False. CPU runs use
one torch thread unless --threads says otherwise: on a shared machine, with more, every parallel
op waits for the other jobs' time slices. The timing process keeps the memory it frees (glibc's
mallopt, unless --default-malloc): by default glibc gives large freed blocks back to the system
and page-faults them in again at the next allocation: up to thousands of faults per DSBN or
BatchNorm call, as many as the allocation history makes, not the code timed (PyTorch's CPU
tuning guide recommends a caching allocator, jemalloc or tcmalloc, for the same reason).
Writes <out-dir>/benchmark.json and benchmark.md and prints the table.
"""

import argparse
import copy
import ctypes
import ctypes.util
import itertools
import json
import logging
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

import mmcv
import mmengine
import mmseg
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config, ConfigDict
from mmengine.dataset import ConcatDataset, InfiniteSampler, pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from torch import nn
from torch.utils.data import DataLoader

from mmseg_cdcl import dataset_context
from mmseg_cdcl.apis import plain_model_cfg, plain_state_dict
from mmseg_cdcl.apis.add_dataset_branch import added_dataset_cfg
from mmseg_cdcl.datasets import MultiDatasetSampler
from mmseg_cdcl.datasets.samplers.multi_dataset_sampler import arrange
from mmseg_cdcl.engine import FirstIterationTimeHook
from mmseg_cdcl.models.layers import DSBN
from mmseg_cdcl.testing import make_demo_data, shrink_config, shrink_datasets
from mmseg_cdcl.utils import load_config, mmengine_checkpoints_allowed
from mmseg_cdcl.utils.mmengine_internals import memoized_config_formatting

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
CDCL_MODEL = osp.join(CONFIGS, '_base_', 'models', 'cdcl_pspnet_r18-d8.py')
STOCK_MODEL = osp.join(CONFIGS, '_base_', 'models', 'pspnet_r18-d8.py')
DEMO_CONFIG = osp.join(CONFIGS, 'demo', 'cdcl_cityscapes_bdd.py')
DEMO_DATA = osp.join(CONFIGS, 'demo', '_base_', 'demo_sizes.py')
DATASETS_USED = (('cityscapes', 19), ('bdd100k', 19), ('camvid', 11))  # as the paper's configs
NEW_CAMERA = 'new_camera'  # the dataset of section c's added branch
DSBN_SHAPES = ((64, 128, 128), (128, 64, 64), (512, 32, 32))  # (C, H, W) of ResNet-18-D8 stages
DSBN_INNER = 20  # forward + backward calls per timed repetition: one takes a few ms
LOAD_BATCHES = 32  # batches per timed repetition of a data loader
# Section d takes this many times --pairs: its repetitions last ~0.2 s, so that a few bursts of
# other work on a shared machine move a median of 9 ratios by several percent.
LOAD_PAIRS_FACTOR = 5
RESUME_ITERS = (1000, 10)  # A, B
# Targets (CPU medians of A/B): lowest, highest.
TARGETS = dict(
    a=(0, 1.10), b=(0, 1.05), c=(0.97, 1.03), d=(0.95, float('inf')), e=(0, 1.2), auto=(0, 1.15)
)
RESULT = 'BENCHMARK_RESULT '  # marks the result line of a child process
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
TRIM_BYTES = 2**31 - 1  # free memory atop the heap before glibc trims it: mallopt's int max
MMAP_BYTES = 32 << 20  # glibc's largest mmap threshold (64-bit): smaller blocks from the heap
# Dense bf16 tensor-core peaks (TFLOP/s, vendor datasheets) for the utilisation of b on CUDA.
PEAK_BF16_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}
TRAIN_MACS_PER_FORWARD = 3  # a training step: the forward, and a backward of about twice its work


# --- measuring ---------------------------------------------------------------------------------
def timed(fn, device):
    """A run that returns the seconds ``fn()`` took, the device synchronised."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else lambda: None

    def run():
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    return run


def alternate(run_a, run_b, pairs, warmup):
    """What run_a and run_b return: ``warmup`` pairs ignored, then A, B, B, A, A, B, ...: each
    pair in turn starts with the other, so that neither always runs in the state (caches,
    allocator) the other left."""
    values = ([], [])
    for i in range(warmup + pairs):
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            value = (run_a, run_b)[k]()
            if i >= warmup:
                values[k].append(value)
    return values


def row(section, name, a_label, a, b_label, b, unit, target=True, note='', limits=None):
    """A table row: each variant's median and range, the per-pair ratios A/B, the target
    (the section's, or ``limits``' key of TARGETS)."""

    def summary(label, values):
        return dict(
            label=label,
            median=statistics.median(values),
            min=min(values),
            max=max(values),
            values=list(values),
        )

    ratios = [x / y for x, y in zip(a, b)]
    lo, hi = TARGETS[limits or section]
    median = statistics.median(ratios)
    text = (
        ''
        if not target
        else f'≥ {lo:.2f}'
        if hi == float('inf')
        else f'≤ {hi:.2f}'
        if lo == 0
        else f'{(lo + hi) / 2:.2f} ± {(hi - lo) / 2:.2f}'
    )
    return dict(
        section=section,
        name=name,
        unit=unit,
        a=summary(a_label, a),
        b=summary(b_label, b),
        ratio=dict(median=median, min=min(ratios), max=max(ratios)),
        target=text,
        met=lo <= median <= hi if target else None,
        note=note,
    )


# --- models and batches ------------------------------------------------------------------------
def model_cfg(kind, num_datasets, crop, config=None, **model_kwargs):
    """CDCL PSPNet-R18-D8 over the first ``num_datasets`` datasets, or stock PSPNet-R18-D8; with
    ``config``, that stock MMSeg model and its conversion."""
    if config is not None:
        return converted_cfg(kind, num_datasets, crop, config, **model_kwargs)
    cfg = Config.fromfile(CDCL_MODEL if kind == 'cdcl' else STOCK_MODEL).model
    cfg.update(pretrained=None, **model_kwargs)
    cfg.data_preprocessor.size = crop
    if kind == 'cdcl':
        names, classes = zip(*DATASETS_USED[:num_datasets])
        cfg.dataset_names = list(names)
        cfg.backbone.num_datasets = num_datasets
        cfg.decode_head.num_classes = cfg.auxiliary_head.num_classes = list(classes)
    return cfg


def converted_cfg(kind, num_datasets, crop, config, **model_kwargs):
    """A stock MMSeg model config (no pretrained weights), or its CDCL conversion over the
    first ``num_datasets`` datasets."""
    cfg = load_config(config).model
    cfg.update(pretrained=None, **model_kwargs)
    cfg.backbone.init_cfg = None
    cfg.data_preprocessor.size = crop
    if kind == 'cdcl':
        names, classes = zip(*DATASETS_USED[:num_datasets])
        cfg.update(type='CDCLEncoderDecoder', dataset_names=list(names), num_classes=list(classes))
    return cfg


def model_name(args):
    return osp.basename(args.config).split('_')[0] if args.config else 'PSPNet'


def dataset_order(num_datasets, per_dataset, args):
    """The dataset of each sample of a batch, in MultiDatasetSampler's order (--contiguous)."""
    return arrange([[d] * per_dataset for d in range(num_datasets)], not args.contiguous)


def make_batch(num_datasets, per_dataset, crop, cdcl, args, labels=True):
    """``per_dataset`` random images of each dataset in the sampler's order; CDCL samples carry
    their ``dataset_idx``, stock ones nothing."""
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for d in dataset_order(num_datasets, per_dataset, args):
        inputs.append(torch.randint(0, 256, (3, *crop), dtype=torch.uint8, generator=gen))
        meta = dict(img_shape=crop, ori_shape=crop, pad_shape=crop, padding_size=[0] * 4)
        sample = SegDataSample(metainfo=dict(meta, dataset_idx=d) if cdcl else meta)
        if labels:
            num_classes = DATASETS_USED[d][1] if cdcl else 19
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, *crop), generator=gen)
            )
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def train_step(kind, num_datasets, args, device):
    """One training step of a model on its batch with the paper's SGD (momentum 0.9, wd 1e-4),
    under bf16 autocast with --amp."""
    crop = tuple(args.crop)
    model = MODELS.build(model_cfg(kind, num_datasets, crop, args.config)).to(device).train()
    model = model.to(memory_format=_memory_format(args))
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    batch = make_batch(num_datasets, args.batch, crop, kind == 'cdcl', args)
    if args.amp and device.type == 'cuda':  # what optim_wrapper=dict(type='AmpOptimWrapper')
        return partial(model.train_step, batch, AmpOptimWrapper(optimizer=sgd, dtype='bfloat16'))
    # AmpOptimWrapper is for accelerators: on the CPU, autocast around the step.
    return partial(_autocast(args, device, model.train_step), batch, OptimWrapper(sgd))


def _memory_format(args):
    return torch.channels_last if args.channels_last else torch.contiguous_format


def _autocast(args, device, fn):
    """``fn`` under bf16 autocast with --amp."""
    if not args.amp:
        return fn

    def run(*a, **kw):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn(*a, **kw)

    return run


# --- a. DSBN -----------------------------------------------------------------------------------
def bench_dsbn(args, device):
    rows = []
    for channels, h, w in DSBN_SHAPES:
        dsbn = DSBN(channels, num_datasets=2).to(device).train()
        bn = nn.BatchNorm2d(channels).to(device).train()
        # Under autocast a BatchNorm gets its conv's bf16 output; its parameters stay float32.
        x = torch.randn(
            2 * args.batch,
            channels,
            h,
            w,
            device=device,
            dtype=torch.bfloat16 if args.amp else torch.float32,
        )
        x = x.contiguous(memory_format=_memory_format(args)).requires_grad_()
        grad = torch.randn_like(x)

        faults = dict(a=[], b=[])

        def steps(norm, variant):
            def run():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                for _ in range(DSBN_INNER):
                    norm(x).backward(grad)
                faults[variant].append(
                    (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / DSBN_INNER
                )

            return timed(run, device)

        # Routed once, as a model's forward routes all its DSBNs: the layers alone are timed.
        with dataset_context(dsbn, dataset_order(2, args.batch, args)):
            a, b = alternate(steps(dsbn, 'a'), steps(bn, 'b'), args.pairs, args.warmup)
        # Page faults of the process (allocator), not of the device, also with --device cuda.
        note = 'page faults per call {:.0f} / {:.0f}'.format(
            *(statistics.median(faults[v][-args.pairs :]) for v in 'ab')
        )
        rows.append(
            row(
                'a',
                f'DSBN fwd+bwd, C={channels} {h}x{w}',
                f'DSBN 2 x {args.batch}',
                [t / DSBN_INNER for t in a],
                f'BatchNorm2d {2 * args.batch}',
                [t / DSBN_INNER for t in b],
                's',
                note=note,
            )
        )
    return rows


# --- b. training step --------------------------------------------------------------------------
def bench_train_step(args, device):
    rows = []
    macs = TRAIN_MACS_PER_FORWARD * _forward_macs(tuple(args.crop), args.config)
    peak = _peak_tflops(args, device)
    for n in (2, 3):
        labels = dict(cdcl=f'CDCL {n} x {args.batch}', stock=f'{model_name(args)} {n * args.batch}')
        steps = [timed(train_step(kind, n, args, device), device) for kind in labels]
        a, b = alternate(*steps, args.pairs, args.warmup)
        rows.append(
            row('b', f'train step, {n} datasets', labels['cdcl'], a, labels['stock'], b, 's')
        )
        images = n * args.batch
        speeds = [[images / t for t in times] for times in (a, b)]
        note = f'{macs / 1e9:.3g} G multiply-adds per training image (3 x forward)'
        if peak:
            use = [statistics.median(v) * 2 * macs / (peak * 1e12) for v in speeds]
            note += f'; {use[0]:.1%} (A), {use[1]:.1%} (B) of {peak:g} TFLOP/s'
        rows.append(
            row(
                'b',
                f'train throughput, {n} datasets',
                labels['cdcl'],
                speeds[0],
                labels['stock'],
                speeds[1],
                'images/s',
                target=False,
                note=note,
            )
        )
        peaks = alternate(
            *(partial(child, args, dict(kind='peak', model=kind, datasets=n)) for kind in labels),
            args.memory_pairs,
            0,
        )
        for key, what in (('peak', 'peak memory'), ('steps', 'memory of the steps')):
            rows.append(
                row(
                    'b',
                    f'{what}, {n} datasets',
                    labels['cdcl'],
                    [p[key] for p in peaks[0]],
                    labels['stock'],
                    [p[key] for p in peaks[1]],
                    'MiB',
                    target=key == 'peak',
                    note=peaks[0][0]['how'],
                )
            )
    return rows


def peak_memory(args, spec):
    """In a child process: peak memory over two train steps (the second is the steady state),
    and its increase over the memory before them."""
    device = torch.device(args.device)
    step = train_step(spec['model'], spec['datasets'], args, device)
    cuda = device.type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() / 2**20 if cuda else _proc_status_mib('VmRSS')
    for _ in range(2):
        step()
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _proc_status_mib('VmHWM')
    how = 'torch.cuda.max_memory_allocated' if cuda else 'peak RSS (VmHWM) of a fresh process'
    return dict(peak=peak, steps=peak - before, how=how)


def _forward_macs(crop, config=None):
    """Multiply-adds of one stock model's forward of a crop (mmengine counts one fused
    multiply-add as one FLOP); CDCL routed to one dataset has the same (section c)."""
    return _complexity(MODELS.build(model_cfg('stock', 1, crop, config)).eval(), crop)['flops']


def _complexity(model, crop):
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # the counter's per-op warnings
    return get_model_complexity_info(
        model, input_shape=(3, *crop), show_table=False, show_arch=False
    )


def _peak_tflops(args, device):
    """--peak-tflops, else the bf16 peak of a known GPU under --amp; None otherwise."""
    if args.peak_tflops or device.type != 'cuda' or not args.amp:
        return args.peak_tflops
    name = torch.cuda.get_device_name(device)
    return next((tflops for gpu, tflops in PEAK_BF16_TFLOPS.items() if gpu in name), None)


def _proc_status_mib(key):
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ':')) / 1024


# --- c. inference ------------------------------------------------------------------------------
def bench_inference(args, device):
    crop = tuple(args.crop)
    cfg = model_cfg('cdcl', 2, crop, args.config, default_dataset=DATASETS_USED[0][0])
    cdcl = MODELS.build(cfg).eval()
    plain = MODELS.build(ConfigDict(plain_model_cfg(cfg.to_dict(), 0))).eval()
    plain.load_state_dict(plain_state_dict(cdcl.state_dict(), 0, cdcl))
    stats = [_complexity(m, crop) for m in (cdcl, plain)]
    cdcl, plain = (m.to(device).to(memory_format=_memory_format(args)) for m in (cdcl, plain))
    batch = make_batch(1, args.batch, crop, False, args, labels=False)  # routed by default
    steps = [_autocast(args, device, partial(m.test_step, batch)) for m in (cdcl, plain)]
    # The model with a branch added for a new camera (tools/add_dataset_branch.py's config and
    # weights: the first dataset's branches copied), routed to it.
    added = MODELS.build(
        added_dataset_cfg(Config(dict(model=cfg.to_dict())), NEW_CAMERA, DATASETS_USED[0][0]).model
    )
    added.branch_map = {NEW_CAMERA: DATASETS_USED[0][0]}
    added.load_state_dict(cdcl.state_dict())
    added.default_dataset = NEW_CAMERA
    added = added.eval().to(device).to(memory_format=_memory_format(args))
    added_step = _autocast(args, device, partial(added.test_step, batch))
    auto = copy.deepcopy(cdcl)
    auto.default_dataset = 'auto'
    auto.branch_selector.num_layers = args.branch_layers
    auto_step = _autocast(args, device, partial(auto.test_step, batch))
    with torch.no_grad():
        a, b = alternate(*(timed(step, device) for step in steps), args.pairs, args.warmup)
        diff = max(
            (p.seg_logits.data - q.seg_logits.data).abs().max().item()
            for p, q in zip(*(step() for step in steps))
        )
        auto_times, routed = alternate(
            timed(auto_step, device), timed(steps[0], device), args.pairs, args.warmup
        )
        chosen = [r.dataset_name for r in auto_step()]
        added_times, plain_times = alternate(
            timed(added_step, device), timed(steps[1], device), args.pairs, args.warmup
        )
        added_diff = max(
            (p.seg_logits.data - q.seg_logits.data).abs().max().item()
            for p, q in zip(added_step(), steps[1]())
        )
    labels = 'CDCL routed to cityscapes', f'exported plain {model_name(args)}'
    flops, params = ([s[key] for s in stats] for key in ('flops', 'params'))
    return [
        row(
            'c',
            f'inference, batch {args.batch}',
            labels[0],
            a,
            labels[1],
            b,
            's',
            note=f'largest logit difference {diff:.1e}',
        ),
        row(
            'c',
            f'inference with an added branch, batch {args.batch}',
            f'CDCL + {NEW_CAMERA}, routed to it',
            added_times,
            labels[1],
            plain_times,
            's',
            note=f'{len(added.dataset_names)} branches, the new one a copy of '
            f'{DATASETS_USED[0][0]}: largest logit difference {added_diff:.1e}',
        ),
        row(
            'c',
            f'inference of unknown source, batch {args.batch}',
            'CDCL, branch auto',
            auto_times,
            labels[0],
            routed,
            's',
            limits='auto',
            note=f'branch from the first {auto.branch_selector.num_layers} DSBN layers; '
            f'chose {chosen} for random images',
        ),
        row(
            'c',
            f'FLOPs at 3x{crop[0]}x{crop[1]}',
            labels[0],
            flops[:1],
            labels[1],
            flops[1:],
            'FLOPs',
            target=False,
            note='equal' if flops[0] == flops[1] else 'NOT EQUAL',
        ),
        row(
            'c',
            'params (whole model)',
            labels[0],
            params[:1],
            labels[1],
            params[1:],
            'params',
            target=False,
            note="CDCL holds every dataset's BN and classifier",
        ),
    ]


# --- d. data loading ---------------------------------------------------------------------------
def bench_loading(args, data_root):
    """The demo's training datasets and pipeline (crops of ``--crop``) through both loaders."""
    crop, (h, w) = tuple(args.crop), _image_size(args)
    demo = Config.fromfile(DEMO_DATA)
    splits = dict(cityscapes=demo.demo_cityscapes_train, bdd100k=demo.demo_bdd100k_train)
    shrink_datasets(splits, crop, data_dir=osp.dirname(data_root))  # resized to (w, h)
    multi = DATASETS.build(dict(type='MultiDataset', datasets=splits))
    concat = ConcatDataset([DATASETS.build(s) for s in splits.values()])
    images = LOAD_BATCHES * 2 * args.batch
    loaders = (  # made per repetition with its own seed: both load other images each time
        lambda seed: DataLoader(
            multi,
            batch_sampler=MultiDatasetSampler(
                InfiniteSampler(multi, seed=seed),
                batch_sizes={name: args.batch for name in splits},
                interleave=not args.contiguous,
            ),
            num_workers=args.num_workers,
            collate_fn=pseudo_collate,
        ),
        lambda seed: DataLoader(
            concat,
            sampler=InfiniteSampler(concat, seed=seed),
            batch_size=2 * args.batch,
            num_workers=args.num_workers,
            collate_fn=pseudo_collate,
        ),
    )

    def throughput(make_loader):
        seeds = itertools.count()

        def run():
            start = time.perf_counter()
            batches = iter(make_loader(next(seeds)))  # worker start-up is timed too
            for _ in range(LOAD_BATCHES):
                next(batches)
            del batches
            return images / (time.perf_counter() - start)

        return run

    pairs = LOAD_PAIRS_FACTOR * args.pairs
    a, b = alternate(*map(throughput, loaders), pairs, args.warmup)
    return [
        row(
            'd',
            f'data loading, {args.num_workers} workers',
            f'MultiDataset + MultiDatasetSampler 2 x {args.batch}',
            a,
            f'ConcatDataset + InfiniteSampler {2 * args.batch}',
            b,
            'images/s',
            note=f'{images} images of {h}x{w} per repetition, {pairs} pairs, the demo '
            f'pipeline, crops {crop[0]}x{crop[1]}',
        )
    ]


def _image_size(args):
    return args.crop[0], 2 * args.crop[1]  # street scenes twice as wide as high


# --- e. resume ---------------------------------------------------------------------------------
def bench_resume(args, data_root, work_dir):
    """Train the demo config 10 iterations at 32x32 (in this process), copy its checkpoint as
    one of iteration 1000 (the loop, message hub and scheduler counters), and time a resume
    from each (in a fresh process)."""
    config = osp.join(work_dir, 'resume_config.py')
    # Two per dataset: PSPHead's 1x1 pooling has a BatchNorm over one dataset's samples.
    cfg = shrink_config(
        Config.fromfile(DEMO_CONFIG),
        crop=(32, 32),
        per_dataset=2,
        max_iters=RESUME_ITERS[1],
        data_dir=osp.dirname(data_root),
    )
    cfg.merge_from_dict(
        dict(
            val_dataloader=None,
            val_cfg=None,
            val_evaluator=None,
            test_dataloader=None,
            test_cfg=None,
            test_evaluator=None,
        )
    )
    cfg.param_scheduler[0].end = max(RESUME_ITERS) + 1
    cfg.default_hooks.pop('visualization')
    cfg.dump(config)
    # The run to resume trains here, untimed (its log off the console); each resume, timed, in
    # a fresh process.
    train_run(dict(config=config, work_dir=osp.join(work_dir, 'train'), log_level='WARNING'))
    with mmengine_checkpoints_allowed():
        source = torch.load(osp.join(work_dir, 'train', f'iter_{RESUME_ITERS[1]}.pth'))
    runs = []
    for iters in RESUME_ITERS:
        ckpt = dict(source, meta=dict(source['meta'], iter=iters))
        hub = ckpt['message_hub'] = dict(source['message_hub'])
        hub['runtime_info'] = dict(hub['runtime_info'], iter=iters - 1)
        ckpt['param_schedulers'] = [
            dict(s, last_step=iters, _global_step=iters) for s in source['param_schedulers']
        ]
        torch.save(ckpt, osp.join(work_dir, f'iter_{iters}.pth'))
        spec = dict(
            kind='train',
            config=config,
            work_dir=osp.join(work_dir, f'resume_{iters}'),
            checkpoint=osp.join(work_dir, f'iter_{iters}.pth'),
            iters=iters,
        )
        runs.append(lambda spec=spec: child(args, spec)['first_iter'])
    a, b = alternate(*runs, args.pairs, args.warmup)
    return [
        row(
            'e',
            'resume to first new iteration',
            f'checkpoint at iter {RESUME_ITERS[0]}',
            a,
            f'checkpoint at iter {RESUME_ITERS[1]}',
            b,
            's',
            note='from Runner.from_cfg to the end of the first new iteration, DATTrainLoop',
        )
    ]


def train_run(spec):
    """Train the config (the run to resume, in the benchmark's process) or resume it for one
    new iteration (in a child process), as tools/train.py does (mmengine formatting each
    config text once)."""
    from mmengine.runner import Runner

    cfg = Config.fromfile(spec['config'])
    cfg.work_dir = spec['work_dir']
    cfg.log_level = spec.get('log_level', cfg.get('log_level', 'INFO'))
    if spec.get('checkpoint'):
        cfg.merge_from_dict(dict(load_from=spec['checkpoint'], resume=True))
        cfg.train_cfg.max_iters = spec['iters'] + 1
    hook = FirstIterationTimeHook(time.perf_counter())
    with memoized_config_formatting():
        runner = Runner.from_cfg(cfg)
        runner.register_hook(hook)
        runner.train()
    return hook.times


# --- child processes, machine, output ----------------------------------------------------------
def child(args, spec):
    """``spec`` measured in a fresh process (peaks and start-up costs of its own)."""
    env = dict(os.environ, **({'CUDA_VISIBLE_DEVICES': ''} if args.device == 'cpu' else {}))
    cmd = [
        sys.executable,
        osp.abspath(__file__),
        '--device',
        args.device,
        '--crop',
        *map(str, args.crop),
        '--batch',
        str(args.batch),
        '--threads',
        str(args.threads),
        '--only',
        'b' if spec['kind'] == 'peak' else 'e',
        '--child',
        json.dumps(spec),
        *(['--config', args.config] if args.config else []),
        *(['--amp'] if args.amp else []),
        *(['--channels-last'] if args.channels_last else []),
        *(['--contiguous'] if args.contiguous else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        raise RuntimeError(
            f'benchmark child {spec} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}'
        )
    return json.loads(lines[-1][len(RESULT) :])


def keep_freed_memory():
    """Make glibc's malloc keep freed memory (no trimming, no mmap for large blocks); the name of
    the allocator setting in effect."""
    libc = ctypes.util.find_library('c')
    try:
        mallopt = ctypes.CDLL(libc).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc: its defaults stay
        return 'default'
    if mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) and mallopt(M_MMAP_THRESHOLD, MMAP_BYTES):
        return 'freed memory kept (mallopt)'
    return 'default'


def machine(device):
    with open('/proc/cpuinfo') as f:
        cpu = next(
            (line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
            platform.processor(),
        )
    gpu = f' ({torch.cuda.get_device_name()})' if device.type == 'cuda' else ''
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        device=str(device) + gpu,
        torch=torch.__version__,
        mmcv=mmcv.__version__,
        mmengine=mmengine.__version__,
        mmseg=mmseg.__version__,
        python=platform.python_version(),
    )


def _cell(stats, unit):
    """``median (min–max) unit``, seconds below one in ms."""
    scale, unit = (1e3, 'ms') if unit == 's' and stats['median'] < 1 else (1, unit)
    form = '{:,.0f}' if unit in ('FLOPs', 'params') else '{:.4g}' if 's' in unit else '{:,.1f}'
    median, low, high = (form.format(stats[k] * scale) for k in ('median', 'min', 'max'))
    return (median if len(stats['values']) == 1 else f'{median} ({low}–{high})') + f' {unit}'


def markdown(result):
    m = result['machine']
    lines = [
        f'Machine: {m["cpu"]}, {m["cores"]} cores ({m["torch_threads"]} torch threads), '
        f'device {m["device"]}; torch {m["torch"]}, mmcv {m["mmcv"]}, '
        f'mmengine {m["mmengine"]}, mmseg {m["mmseg"]}.  ',
        f'Settings: {result["settings"]}',
        '',
        '| | measurement | A | B | A median (min–max) | B median (min–max) | '
        'A/B median (min–max) | target | met | note |',
        '|' + '---|' * 10,
    ]
    for r in (r for rows in result['sections'].values() for r in rows):
        ratio = r['ratio']
        cells = [
            r['section'],
            r['name'],
            r['a']['label'],
            r['b']['label'],
            _cell(r['a'], r['unit']),
            _cell(r['b'], r['unit']),
            f'{ratio["median"]:.3f} ({ratio["min"]:.3f}–{ratio["max"]:.3f})',
            r['target'] or '—',
            {True: 'met', False: '**missed**', None: '—'}[r['met']],
            r['note'],
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda'")
    parser.add_argument('--only', default='a,b,c,d,e', help='sections, e.g. a,b')
    parser.add_argument('--crop', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2, help='B: images per dataset')
    parser.add_argument(
        '--config',
        help='sections b and c: a stock MMSeg model config (path or '
        'mmseg::...) and its CDCL conversion instead of PSPNet-R18-D8',
    )
    parser.add_argument(
        '--amp', action='store_true', help='bf16 autocast in a, b, c (b: AmpOptimWrapper on CUDA)'
    )
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='models and inputs of a, b, c in channels_last memory format',
    )
    parser.add_argument(
        '--contiguous',
        action='store_true',
        help="CDCL batches with each dataset's samples together (the sampler's "
        'interleave=False) instead of alternating datasets; implied by '
        '--channels-last',
    )
    parser.add_argument(
        '--peak-tflops',
        type=float,
        help="the device's peak TFLOP/s for the utilisation in b (default: the "
        'dense bf16 peak of a known GPU with --amp)',
    )
    parser.add_argument(
        '--branch-layers',
        type=int,
        default=1,
        help="c: DSBN layers whose statistics choose an image's branch "
        "(model.branch_selection's num_layers)",
    )
    parser.add_argument(
        '--pairs',
        type=int,
        default=9,
        help='timed A/B pairs (5 or more for a report; fewer for tests)',
    )
    parser.add_argument('--warmup', type=int, default=1, help='untimed A/B pairs first')
    parser.add_argument(
        '--memory-pairs',
        type=int,
        default=1,
        help='fresh processes per variant measuring peak memory (b)',
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help="torch threads on CPU, 0 for torch's default (default: 1)",
    )
    parser.add_argument('--num-workers', type=int, default=0, help='data loader workers (d)')
    parser.add_argument(
        '--default-malloc',
        action='store_true',
        help="time with glibc's default malloc settings (see above)",
    )
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'benchmark'))
    parser.add_argument('--child', help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args(argv)
    # DSBN sees alternating datasets side by side in NCHW only (MultiDatasetSampler.interleave).
    args.contiguous = args.contiguous or args.channels_last
    # The children run in the tools' parent folder: a config path is the user's folder's.
    if args.config and '::' not in args.config:
        args.config = osp.abspath(args.config)
    unknown = set(args.only.split(',')) - set('abcde')
    if unknown or min(args.pairs, args.batch, args.memory_pairs) < 1 or args.warmup < 0:
        parser.error(
            f'--only takes sections among a,b,c,d,e (got {sorted(unknown)}); '
            '--pairs, --batch and --memory-pairs must be >= 1, --warmup >= 0'
        )
    if 'b' in args.only and args.batch < 2:
        parser.error(
            "section b trains with BatchNorms after a 1x1 pooling (PSPNet's, "
            "DeepLab's), which need 2 or more of a dataset's samples: --batch must be "
            '>= 2'
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    init_default_scope('mmseg')
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        spec = json.loads(args.child)
        out = peak_memory(args, spec) if spec['kind'] == 'peak' else train_run(spec)
        print(RESULT + json.dumps(out), flush=True)
        return
    device = torch.device(args.device)
    sections = sorted(args.only.split(','))
    # The children (peak memory, resume) keep glibc's defaults: they measure memory and start-up.
    malloc = 'default' if args.default_malloc else keep_freed_memory()
    result = dict(
        machine=machine(device),
        sections={},
        settings=dict(
            crop=list(args.crop),
            batch=args.batch,
            pairs=args.pairs,
            warmup=args.warmup,
            threads=torch.get_num_threads(),
            num_workers=args.num_workers,
            amp=args.amp,
            channels_last=args.channels_last,
            contiguous=args.contiguous,
            malloc=malloc,
            config=args.config or "the paper's PSPNet-R18-D8",
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_root = osp.join(tmp, 'data', 'demo')
        if {'d', 'e'} & set(sections):
            make_demo_data(
                data_root,
                datasets=('cityscapes', 'bdd100k'),
                num_images=dict(train=16, val=1),
                image_size=_image_size(args),
            )
        runs = dict(
            a=partial(bench_dsbn, args, device),
            b=partial(bench_train_step, args, device),
            c=partial(bench_inference, args, device),
            d=partial(bench_loading, args, data_root),
            e=partial(bench_resume, args, data_root, tmp),
        )
        for section in sections:
            start = time.perf_counter()
            result['sections'][section] = runs[section]()
            print(f'section {section}: {time.perf_counter() - start:.1f} s', flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    table = markdown(result)
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
