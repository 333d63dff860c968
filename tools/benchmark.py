"""Speed and memory of CDCL against stock MMSeg, section by section, A (CDCL) against B (stock).

    python tools/benchmark.py [--device cpu|cuda] [--only a,b,c,d,e] [--crop H W] [--batch B]
                              [--pairs N] [--warmup N] [--num-workers N] [--out-dir DIR]

a. DSBN vs nn.BatchNorm2d, forward + backward, 2 datasets x B (contiguous groups) vs 2B.
b. model.train_step of CDCL PSPNet-R18-D8, 2 (3) datasets x B, vs stock PSPNet-R18-D8, 2B (3B):
   time, and peak memory (peak RSS on CPU, max_memory_allocated on CUDA) in a fresh process
   per variant.
c. Inference routed to one dataset vs the exported plain model: time, FLOPs, params.
d. Data loading: MultiDataset + MultiDatasetSampler vs ConcatDataset + InfiniteSampler.
e. Time from the start of a --resume to the first new iteration, checkpoint at iter 1000 vs 10.

Times come from one process alternating A, B, A, B, ... after warm-up (e: one child process
per run); the table gives medians, min-max and the median (min-max) of the per-pair ratios A/B.
Writes <out-dir>/benchmark.json and benchmark.md and prints the table.
"""
import argparse
import json
import logging
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import mmcv
import mmengine
import mmseg
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config, ConfigDict
from mmengine.dataset import ConcatDataset, InfiniteSampler, pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from torch import nn
from torch.utils.data import DataLoader

from mmseg_cdcl import dataset_context
from mmseg_cdcl.apis import plain_model_cfg, plain_state_dict
from mmseg_cdcl.datasets import MultiDatasetSampler
from mmseg_cdcl.models.layers import DSBN

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CDCL_MODEL = osp.join(REPO, 'configs', '_base_', 'models', 'cdcl_pspnet_r18-d8.py')
STOCK_MODEL = osp.join(REPO, 'configs', '_base_', 'models', 'pspnet_r18-d8.py')
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'cdcl_cityscapes_bdd.py')
DATASETS_USED = (('cityscapes', 19), ('bdd100k', 19), ('camvid', 11))  # as the paper's configs
DSBN_SHAPES = ((64, 128, 128), (128, 64, 64), (512, 32, 32))  # (C, H, W): ResNet-18-D8 stages
DSBN_INNER = 10  # forward + backward calls per timed repetition: single ones are ~ms
LOAD_BATCHES = 8  # batches per timed repetition of the data loaders
RESUME_ITERS = (1000, 10)  # A, B
# Targets on CPU medians: (lowest, highest) ratio A/B.
TARGETS = dict(a=(0, 1.10), b=(0, 1.05), c=(0.97, 1.03), d=(0.95, float('inf')), e=(0, 1.2))
RESULT = 'BENCHMARK_RESULT '  # marks a child process's result line


# --- timing ---------------------------------------------------------------------------------
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, device):
    """A run that returns the seconds ``fn()`` took (the device synchronised)."""
    def run():
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start
    return run


def alternate(run_a, run_b, args):
    """Measurements of run_a and run_b: ``args.warmup`` untimed pairs, then A, B, A, B, ..."""
    values = ([], [])
    for i in range(args.warmup + args.pairs):
        for k, run in enumerate((run_a, run_b)):
            value = run()
            if i >= args.warmup:
                values[k].append(value)
    return values


def row(section, name, a_label, a, b_label, b, unit, target=True, note=''):
    """One table row: both variants' medians and ranges, the ratio A/B per pair, the target."""
    def summary(label, values):
        return dict(label=label, median=statistics.median(values), min=min(values),
                    max=max(values), values=list(values))
    ratios = [x / y for x, y in zip(a, b)]
    ratio = dict(median=statistics.median(ratios), min=min(ratios), max=max(ratios))
    lo, hi = TARGETS[section]
    met = lo <= ratio['median'] <= hi if target else None
    text = ('' if not target else f'≥ {lo:.2f}' if hi == float('inf') else
            f'≤ {hi:.2f}' if lo == 0 else f'{(lo + hi) / 2:.2f} ± {(hi - lo) / 2:.2f}')
    return dict(section=section, name=name, unit=unit, a=summary(a_label, a),
                b=summary(b_label, b), ratio=ratio, target=text, met=met, note=note)


# --- models and batches -----------------------------------------------------------------------
def model_cfg(kind, num_datasets, crop, **model_kwargs):
    """CDCL PSPNet-R18-D8 over the first ``num_datasets`` datasets, or stock PSPNet-R18-D8."""
    cfg = Config.fromfile(CDCL_MODEL if kind == 'cdcl' else STOCK_MODEL).model
    cfg.update(pretrained=None, **model_kwargs)
    cfg.data_preprocessor.size = crop
    if kind == 'cdcl':
        names, classes = zip(*DATASETS_USED[:num_datasets])
        cfg.update(dataset_names=list(names))
        cfg.backbone.num_datasets = num_datasets
        cfg.decode_head.num_classes = cfg.auxiliary_head.num_classes = list(classes)
    return cfg


def make_batch(num_datasets, per_dataset, crop, cdcl, labels=True):
    """``per_dataset`` random images of each dataset, contiguous per dataset as the sampler
    makes them; CDCL samples carry ``dataset_idx``, stock ones nothing."""
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for d in range(num_datasets):
        for _ in range(per_dataset):
            inputs.append(torch.randint(0, 256, (3, *crop), dtype=torch.uint8, generator=gen))
            meta = dict(img_shape=crop, ori_shape=crop, pad_shape=crop, padding_size=[0] * 4)
            sample = SegDataSample(metainfo=dict(meta, dataset_idx=d) if cdcl else meta)
            if labels:
                num_classes = DATASETS_USED[d][1] if cdcl else 19
                sample.gt_sem_seg = PixelData(
                    data=torch.randint(0, num_classes, (1, *crop), generator=gen))
            samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def sgd(model):
    """The paper's optimizer (SGD, momentum 0.9, weight decay 1e-4)."""
    return OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4))


# --- a. DSBN -----------------------------------------------------------------------------------
def bench_dsbn(args, device):
    rows = []
    for channels, h, w in DSBN_SHAPES:
        dsbn = DSBN(channels, num_datasets=2).to(device).train()
        bn = nn.BatchNorm2d(channels).to(device).train()
        x = torch.randn(2 * args.batch, channels, h, w, device=device, requires_grad=True)
        grad = torch.randn_like(x)
        routing = [0] * args.batch + [1] * args.batch

        def dsbn_step():
            for _ in range(DSBN_INNER):
                with dataset_context(dsbn, routing):
                    dsbn(x).backward(grad)

        def bn_step():
            for _ in range(DSBN_INNER):
                bn(x).backward(grad)

        a, b = alternate(timed(dsbn_step, device), timed(bn_step, device), args)
        rows.append(row('a', f'DSBN fwd+bwd, C={channels} {h}x{w}',
                        f'DSBN 2 x {args.batch}', [t / DSBN_INNER for t in a],
                        f'BatchNorm2d {2 * args.batch}', [t / DSBN_INNER for t in b], 's'))
    return rows


# --- b. training step --------------------------------------------------------------------------
def train_variants(args, num_datasets):
    return (('cdcl', f'CDCL {num_datasets} x {args.batch}'),
            ('stock', f'PSPNet {num_datasets * args.batch}'))


def bench_train_step(args, device):
    rows = []
    for n in (2, 3):
        steps = []
        for kind, _ in train_variants(args, n):
            model = MODELS.build(model_cfg(kind, n, tuple(args.crop))).to(device).train()
            batch, optim = make_batch(n, args.batch, tuple(args.crop), kind == 'cdcl'), sgd(model)
            steps.append(timed(lambda m=model, b=batch, o=optim: m.train_step(b, o), device))
        (_, a_label), (_, b_label) = train_variants(args, n)
        a, b = alternate(*steps, args)
        rows.append(row('b', f'train step, {n} datasets', a_label, a, b_label, b, 's'))
        peaks = {kind: [] for kind, _ in train_variants(args, n)}
        for _ in range(args.memory_pairs):
            for kind, _ in train_variants(args, n):
                peaks[kind].append(child(args, dict(kind='peak', model=kind, datasets=n)))
        for key, what in (('peak', 'peak memory'), ('step', 'memory of the steps')):
            rows.append(row('b', f'{what}, {n} datasets',
                            a_label, [p[key] for p in peaks['cdcl']],
                            b_label, [p[key] for p in peaks['stock']], 'MiB',
                            target=key == 'peak', note=peaks['cdcl'][0]['how']))
    return rows


def peak_memory(args, spec):
    """In a child process: peak memory of two train steps (the second is the steady state)."""
    device = torch.device(args.device)
    model = MODELS.build(model_cfg(spec['model'], spec['datasets'], tuple(args.crop)))
    model = model.to(device).train()
    batch, optim = make_batch(spec['datasets'], args.batch, tuple(args.crop),
                              spec['model'] == 'cdcl'), sgd(model)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _proc_status_mib('VmRSS')
    for _ in range(2):
        model.train_step(batch, optim)
    if device.type == 'cuda':
        peak, how = torch.cuda.max_memory_allocated() / 2**20, 'torch.cuda.max_memory_allocated'
    else:
        peak, how = _proc_status_mib('VmHWM'), 'peak RSS (VmHWM) of a fresh process'
    return dict(peak=peak, step=peak - before, how=how)


def _proc_status_mib(key):
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ':')) / 1024


# --- c. inference ------------------------------------------------------------------------------
def bench_inference(args, device):
    crop = tuple(args.crop)
    cfg = model_cfg('cdcl', 2, crop, default_dataset=DATASETS_USED[0][0])
    cdcl, plain = MODELS.build(cfg).eval(), MODELS.build(
        ConfigDict(plain_model_cfg(cfg.to_dict(), 0))).eval()
    plain.load_state_dict(plain_state_dict(cdcl.state_dict(), 0))
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # the counter's per-op warnings
    stats = [get_model_complexity_info(
        m, input_shape=(3, *crop), show_table=False, show_arch=False) for m in (cdcl, plain)]
    cdcl, plain = cdcl.to(device), plain.to(device)
    batch = make_batch(1, args.batch, crop, cdcl=False, labels=False)  # no dataset: the default
    with torch.no_grad():
        a, b = alternate(timed(lambda: cdcl.test_step(batch), device),
                         timed(lambda: plain.test_step(batch), device), args)
        diff = max((p.seg_logits.data - q.seg_logits.data).abs().max().item()
                   for p, q in zip(cdcl.test_step(batch), plain.test_step(batch)))
    a_label, b_label = 'CDCL routed to cityscapes', 'exported plain PSPNet'
    return [
        row('c', f'inference, batch {args.batch}', a_label, a, b_label, b, 's',
            note=f'largest logit difference {diff:.1e}'),
        row('c', f'FLOPs at 3x{crop[0]}x{crop[1]}', a_label, [stats[0]['flops']],
            b_label, [stats[1]['flops']], 'FLOPs', target=False,
            note='equal' if stats[0]['flops'] == stats[1]['flops'] else 'NOT EQUAL'),
        row('c', 'params (whole model)', a_label, [stats[0]['params']],
            b_label, [stats[1]['params']], 'params', target=False,
            note="CDCL holds every dataset's BN and classifier"),
    ]


# --- d. data loading ---------------------------------------------------------------------------
def bench_loading(args, data_root):
    crop, (h, w) = tuple(args.crop), _image_size(args)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(w, h), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]
    splits = dict(
        cityscapes=dict(type='CityscapesDataset', data_root=osp.join(data_root, 'cityscapes'),
                        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                        pipeline=pipeline),
        bdd100k=dict(type='BDD100KDataset', data_root=osp.join(data_root, 'bdd100k'),
                     data_prefix=dict(img_path='images/10k/train',
                                      seg_map_path='labels/sem_seg/masks/train'),
                     pipeline=pipeline))
    multi = DATASETS.build(dict(type='MultiDataset', datasets=splits))
    concat = ConcatDataset([DATASETS.build(s) for s in splits.values()])
    loader_kwargs = dict(num_workers=args.num_workers, collate_fn=pseudo_collate)
    images = LOAD_BATCHES * 2 * args.batch

    def cdcl_loader():
        return DataLoader(multi, batch_sampler=MultiDatasetSampler(
            InfiniteSampler(multi, seed=0), batch_sizes=[args.batch] * 2), **loader_kwargs)

    def stock_loader():
        return DataLoader(concat, sampler=InfiniteSampler(concat, seed=0),
                          batch_size=2 * args.batch, **loader_kwargs)

    def throughput(make_loader):
        def run():
            start = time.perf_counter()
            # A fresh loader (an InfiniteSampler iterates once) and workers, inside the timing.
            batches = iter(make_loader())
            for _ in range(LOAD_BATCHES):
                next(batches)
            del batches
            return images / (time.perf_counter() - start)
        return run

    a, b = alternate(throughput(cdcl_loader), throughput(stock_loader), args)
    return [row('d', f'data loading, {args.num_workers} workers',
                f'MultiDataset + MultiDatasetSampler 2 x {args.batch}', a,
                f'ConcatDataset + InfiniteSampler {2 * args.batch}', b, 'images/s',
                note=f'{images} images of {h}x{w} per repetition, crops {crop[0]}x{crop[1]}')]


def _image_size(args):
    return args.crop[0], 2 * args.crop[1]  # street scenes twice as wide as high


# --- e. resume ---------------------------------------------------------------------------------
def bench_resume(args, data_root, work_dir):
    """Train the demo config 10 iterations at 32x32, copy its checkpoint as one of iteration
    1000, and time a resume from each to its first new iteration (a child process per run)."""
    config = osp.join(work_dir, 'resume_config.py')
    cfg = Config.fromfile(DEMO_CONFIG)
    _shrink(cfg._cfg_dict, data_root)
    cfg.model.data_preprocessor.size = (32, 32)
    # Two per dataset: PSPHead's 1x1 pooling has a BatchNorm over the batch alone.
    cfg.train_dataloader.batch_sampler.batch_sizes = dict(cityscapes=2, bdd100k=2)
    cfg.merge_from_dict(dict(val_dataloader=None, val_cfg=None, val_evaluator=None,
                             test_dataloader=None, test_cfg=None, test_evaluator=None))
    cfg.train_cfg.update(max_iters=RESUME_ITERS[1], val_interval=RESUME_ITERS[1])
    cfg.param_scheduler[0].end = max(RESUME_ITERS) + 1
    cfg.default_hooks.checkpoint.interval = RESUME_ITERS[1]
    cfg.default_hooks.pop('visualization')
    cfg.dump(config)
    child(args, dict(kind='resume', config=config, work_dir=osp.join(work_dir, 'train')))
    checkpoints = {}
    source = torch.load(osp.join(work_dir, 'train', f'iter_{RESUME_ITERS[1]}.pth'))
    for iters in RESUME_ITERS:
        ckpt = dict(source, meta=dict(source['meta'], iter=iters))
        hub = ckpt['message_hub'] = dict(source['message_hub'])
        hub['runtime_info'] = dict(hub['runtime_info'], iter=iters - 1)
        ckpt['param_schedulers'] = [dict(s, last_step=iters, _global_step=iters)
                                    for s in source['param_schedulers']]
        checkpoints[iters] = osp.join(work_dir, f'iter_{iters}.pth')
        torch.save(ckpt, checkpoints[iters])

    def resume(iters):
        spec = dict(kind='resume', config=config, checkpoint=checkpoints[iters], iters=iters,
                    work_dir=osp.join(work_dir, f'resume_{iters}'))
        return lambda: child(args, spec)['first_iter']

    a, b = alternate(resume(RESUME_ITERS[0]), resume(RESUME_ITERS[1]), args)
    return [row('e', 'resume to first new iteration', f'checkpoint at iter {RESUME_ITERS[0]}',
                a, f'checkpoint at iter {RESUME_ITERS[1]}', b, 's',
                note='Runner.from_cfg to the end of the first new iteration, DATTrainLoop')]


def _shrink(node, data_root):
    """Crops of 32x32 and absolute data roots in a config tree."""
    if isinstance(node, dict):
        if node.get('type') == 'RandomResize':
            node['scale'] = (64, 32)
        if node.get('type') == 'RandomCrop':
            node['crop_size'] = (32, 32)
        if str(node.get('data_root', '')).startswith('data/demo/'):
            node['data_root'] = osp.join(data_root, osp.basename(node['data_root']))
        for value in node.values():
            _shrink(value, data_root)
    elif isinstance(node, list):
        for value in node:
            _shrink(value, data_root)


class _FirstIteration(Hook):
    """Reports when training starts and when its first (new) iteration ends."""

    def __init__(self, start):
        self.start, self.times = start, {}

    def before_train(self, runner):
        self.times['before_train'] = time.perf_counter() - self.start

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.times.setdefault('first_iter', time.perf_counter() - self.start)


def resume_run(spec):
    """In a child process: train (no checkpoint) or resume and run one new iteration."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(spec['config'])
    cfg.work_dir = spec['work_dir']
    if spec.get('checkpoint'):
        cfg.merge_from_dict(dict(load_from=spec['checkpoint'], resume=True))
        cfg.train_cfg.max_iters = spec['iters'] + 1  # one new iteration
    start = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    hook = _FirstIteration(start)
    runner.register_hook(hook)
    runner.train()
    return hook.times


# --- child processes, machine, output ----------------------------------------------------------
def child(args, spec):
    """Run ``spec`` in a fresh process (so peaks and start-up costs do not mix); its result."""
    env = dict(os.environ, **({'CUDA_VISIBLE_DEVICES': ''} if args.device == 'cpu' else {}))
    cmd = [sys.executable, osp.abspath(__file__), '--device', args.device, '--crop',
           *map(str, args.crop), '--batch', str(args.batch), '--threads', str(args.threads),
           '--child', json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        raise RuntimeError(f'benchmark child {spec} failed:\n{proc.stdout[-3000:]}'
                           f'{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len(RESULT):])


def machine(device):
    with open('/proc/cpuinfo') as f:
        cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
                   platform.processor())
    return dict(cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                device=str(device) + (f' ({torch.cuda.get_device_name()})'
                                      if device.type == 'cuda' else ''),
                torch=torch.__version__, mmcv=mmcv.__version__, mmengine=mmengine.__version__,
                mmseg=mmseg.__version__, python=platform.python_version())


def _fmt(value, unit):
    if unit == 's':
        return f'{value * 1e3:.3g} ms' if value < 1 else f'{value:.3g} s'
    return f'{value:,.0f}' if unit in ('FLOPs', 'params') else f'{value:,.1f} {unit}'


def markdown(result):
    m = result['machine']
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
             f"device {m['device']}; torch {m['torch']}, mmcv {m['mmcv']}, "
             f"mmengine {m['mmengine']}, mmseg {m['mmseg']}.  ",
             f"Settings: {result['settings']}", '',
             '| | measurement | A | B | A median (min–max) | B median (min–max) | '
             'A/B median (min–max) | target | met | note |', '|' + '---|' * 10]
    for r in (r for s in result['sections'].values() for r in s):
        a, b, ratio, u = r['a'], r['b'], r['ratio'], r['unit']
        cells = [r['section'], r['name'], a['label'], b['label']]
        cells += [f"{_fmt(v['median'], u)} ({_fmt(v['min'], u)}–{_fmt(v['max'], u)})"
                  if len(v['values']) > 1 else _fmt(v['median'], u) for v in (a, b)]
        cells += [f"{ratio['median']:.3f} ({ratio['min']:.3f}–{ratio['max']:.3f})",
                  r['target'] or '—', {True: 'met', False: '**missed**', None: '—'}[r['met']],
                  r['note']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default: cpu)")
    parser.add_argument('--only', default='a,b,c,d,e', help='sections, e.g. a,b')
    parser.add_argument('--crop', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2, help='B: images per dataset')
    parser.add_argument('--pairs', type=int, default=5, help='timed A/B pairs (>= 5 to report)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed A/B pairs first')
    parser.add_argument('--memory-pairs', type=int, default=1, help='child processes per '
                        'variant measuring peak memory (b)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads on CPU, 0: '
                        "torch's default; with more than 1 on a shared machine every parallel "
                        "op waits for the other jobs' time slices (default: 1)")
    parser.add_argument('--num-workers', type=int, default=0, help='data loader workers (d)')
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'benchmark'))
    parser.add_argument('--child', help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args(argv)
    unknown = set(args.only.split(',')) - set('abcde')
    if unknown or min(args.pairs, args.batch, args.memory_pairs) < 1 or args.warmup < 0:
        parser.error(f'--only takes sections among a,b,c,d,e (got {sorted(unknown)}); '
                     '--pairs, --batch and --memory-pairs must be >= 1, --warmup >= 0')
    if 'b' in args.only and args.batch < 2:
        parser.error("section b trains PSPNet, whose PSPHead's 1x1 pooling has a BatchNorm "
                     'over the samples of a dataset alone: --batch must be >= 2')
    return args


def main(argv=None):
    args = parse_args(argv)
    init_default_scope('mmseg')
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        spec = json.loads(args.child)
        out = peak_memory(args, spec) if spec['kind'] == 'peak' else resume_run(spec)
        print(RESULT + json.dumps(out), flush=True)
        return
    device = torch.device(args.device)
    sections = args.only.split(',')
    result = dict(machine=machine(device), sections={}, settings=dict(
        crop=list(args.crop), batch=args.batch, pairs=args.pairs, warmup=args.warmup,
        threads=torch.get_num_threads(), num_workers=args.num_workers))
    with tempfile.TemporaryDirectory() as tmp:
        data_root = osp.join(tmp, 'data', 'demo')
        if {'d', 'e'} & set(sections):
            sys.path.insert(0, osp.join(REPO, 'tools'))
            from make_demo_data import make_demo_data
            make_demo_data(data_root, datasets=('cityscapes', 'bdd100k'),
                           num_images=dict(train=16, val=1), image_size=_image_size(args))
        runs = dict(a=lambda: bench_dsbn(args, device), b=lambda: bench_train_step(args, device),
                    c=lambda: bench_inference(args, device), d=lambda: bench_loading(args, data_root),
                    e=lambda: bench_resume(args, data_root, tmp))
        for section in sorted(sections):
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
