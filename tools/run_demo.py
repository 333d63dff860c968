"""The embedded demo: CDCL against its baselines on generated street scenes, on a CPU.

    python tools/run_demo.py [--work-dir work_dirs/demo] [--seed 0] [--more] [--verbose]
                             [--iters N] [--crop H W] [--num-images SPLIT=N ...]
                             [--image-size H W]

Generates Cityscapes-, BDD100K- and CamVid-format data (tools/make_demo_data.py) under data/demo
unless it holds the demo's images already, then runs its stages, printing each one's time:

1-4. the paper's result: trains CDCL (configs/demo/cdcl_cityscapes_bdd.py) and its baselines
   (one model per dataset; one joint model with shared BN and one classifier), validates them
   during training on the first validation images of both datasets (the learning curves) and
   tests each final model on all of them; for CDCL against each baseline and dataset, the mIoU
   difference with a paired bootstrap 95% interval over the test images;
5. the universal model's headline: a model of one classifier of Cityscapes' 19 classes trained
   from Cityscapes' and CamVid's labels (configs/demo/cdcl_universal_cityscapes_camvid.py),
   against the CDCL model's routes for the CamVid camera without CamVid's labels (a branch from
   its images, its Cityscapes branch, auto), on CamVid's validation images scored in the 19
   classes (each scene's label as drawn, which no training reads);

and, with --more, the rest: CDCL on images whose source it is not told, the generator's CamVid
added as a domain it never saw (configs/demo/cdcl_cityscapes_bdd_unknown_source.py), the
branch for that camera from its training images without their labels
(tools/add_dataset_branch.py) against the routes before, and the BatchNorm statistics of CDCL
and the single-dataset models (tools/analysis/bn_statistics.py).

The models train the demo configs on --crop crops for --iters iterations (defaults: `make demo`'s,
configs/demo/_base_/demo_sizes.py). The work dir receives results.md (the tables, ready to
paste into README.md), results.json, curves.png (training loss, validation mIoU), panel.png
(image | ground truth | CDCL | joint baseline) and, with --more, bn_statistics.png and .json.

The console shows a progress bar per training, a line per validation, each stage's time and
the tables; mmengine's complete logs (per-class IoU tables included) go to
<work_dir>/<run>/<config>/<timestamp>/<timestamp>.log. --verbose puts them on the console too.
The demo owns its process: it freezes the garbage collector after its imports and filters
MMSeg's notices (unless --verbose).
"""

import argparse
import contextlib
import gc
import glob
import io
import json
import os
import os.path as osp
import time
import warnings

# mmengine reloads setuptools' pkg_resources whenever it resolves an `mmseg::` config path, and
# setuptools (< 81, pinned for it) warns each time that pkg_resources is deprecated.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API', category=UserWarning
)

import cv2  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.runner import Runner, load_checkpoint  # noqa: E402
from mmseg.datasets import CityscapesDataset  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402

from mmseg_cdcl.apis import add_dataset_branch  # noqa: E402
from mmseg_cdcl.engine import PerImageCountsHook, QuietConsoleRunner  # noqa: E402
from mmseg_cdcl.evaluation import bn_statistics  # noqa: E402
from mmseg_cdcl.evaluation.model_comparison import (  # noqa: E402
    comparison_markdown,
    scores_and_intervals,
    unknown_source_markdown,
)
from mmseg_cdcl.evaluation.route_comparison import (  # noqa: E402
    compare_new_branch,
    compare_routes,
    route_comparison_markdown,
)
from mmseg_cdcl.evaluation.universal_comparison import (  # noqa: E402
    load_model,
    per_class_iou,
    universal_classes_counts,
)
from mmseg_cdcl.testing import make_demo_data, set_crop, shrink_schedule, unformatted  # noqa: E402
from mmseg_cdcl.testing.demo_data import LAYOUTS, UNIVERSAL_PREFIX  # noqa: E402
from mmseg_cdcl.utils import mmengine_checkpoints_allowed  # noqa: E402
from mmseg_cdcl.utils.mmengine_internals import memoized_package_config_lookup  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_SIZES = osp.join(REPO, 'configs', 'demo', '_base_', 'demo_sizes.py')
DATASET_NAMES = ('cityscapes', 'bdd100k')
DATASET_TITLES = {'cityscapes': 'Cityscapes', 'bdd100k': 'BDD100K'}
MODELS = {  # label: demo config
    'CDCL (DSBN + DAT)': 'cdcl_cityscapes_bdd',
    'single: Cityscapes only': 'pspnet_r18-d8_cityscapes',
    'single: BDD100K only': 'pspnet_r18-d8_bdd100k',
    'joint: shared BN, one classifier': 'pspnet_r18-d8_cityscapes_bdd100k_joint',
}
CDCL = 'CDCL (DSBN + DAT)'
UNKNOWN_SOURCE = 'cdcl_cityscapes_bdd_unknown_source'  # CDCL's test on images of unknown source
UNSEEN = 'camvid'  # the third domain: in no model's training data but the universal model's
UNIVERSAL = 'cdcl_universal_cityscapes_camvid'  # one classifier of Cityscapes' 19 classes
IN_19 = 'cdcl_universal_cityscapes_camvid_19_classes'  # CamVid's images, labels in those 19
UNIVERSAL_ROUTE = 'universal model (Cityscapes + CamVid labels): CamVid branch'
PANEL_MODELS = (CDCL, 'joint: shared BN, one classifier')
PANEL_IMAGES = 2  # per dataset
BOOTSTRAP = dict(num_resamples=2000, level=0.95)
DATA_SEED = 0  # --seed varies training (and the bootstrap) on the same data
# mmseg's notices at every model build, about settings the demo keeps on purpose (MMSeg's loss
# defaults, no drawing during validation); --verbose shows them.
MMSEG_NOTICES = (
    r'``build_loss`` would be deprecated soon',
    r'Default ``avg_non_ignore`` is False',
    r'The draw is False, it means that the hook for visualization',
)


def ensure_data(args):
    """Generate data/demo unless it holds the demo's splits at their image counts and size."""
    num_images = dict(args.num_images)
    root = osp.join('data', 'demo')

    def matches(name, counts, check_size=True):
        splits, img_prefix, _ = LAYOUTS[name]
        for split in splits:
            files = sorted(
                glob.glob(
                    osp.join(root, name, img_prefix.format(split), '**', '*.*'), recursive=True
                )
            )
            if len(files) != counts[split]:
                return False
        first = cv2.imread(files[0]) if files else None
        return not check_size or first is not None and first.shape[:2] == tuple(args.image_size)

    if not all(matches(name, num_images) for name in DATASET_NAMES):
        print(
            f'generating {root}/{{{",".join(DATASET_NAMES)}}}: '
            + ', '.join(f'{n} {split}' for split, n in num_images.items())
            + ' images per dataset, '
            f'{args.image_size[0]}x{args.image_size[1]}',
            flush=True,
        )
        make_demo_data(
            root,
            datasets=DATASET_NAMES,
            num_images=num_images,
            image_size=tuple(args.image_size),
            seed=DATA_SEED,
            overwrite=True,
        )
    # The third camera: validation images (labelled in its 11 classes, for the tests, and in
    # Cityscapes' 19, which no training reads) and as many training images as each dataset has
    # (their labels train only the universal model; the new branch uses the images alone).
    unseen = dict(train=num_images['train'], val=num_images['val'], test=0)
    in_19 = glob.glob(osp.join(root, UNSEEN, UNIVERSAL_PREFIX.format('val'), '*.*'))
    if not matches(UNSEEN, unseen, check_size=False) or len(in_19) != unseen['val']:
        print(
            f'generating {root}/{UNSEEN}: {unseen["train"]} train, {unseen["val"]} validation '
            "images, these also labelled in Cityscapes' 19 classes",
            flush=True,
        )
        make_demo_data(
            root,
            datasets=(UNSEEN,),
            image_size=tuple(args.image_size),
            num_images={UNSEEN: unseen},
            seed=DATA_SEED,
            overwrite=True,
            universal_labels=True,
        )


def demo_runner(name, title, args, **cfg_options):
    """The Runner of a demo config: a folder of its own in the run, the console of the demo,
    the demo's crops and schedule."""
    # Unformatted config text: yapf at each of the Runner's uses took a minute of the demo.
    cfg = unformatted(Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{name}.py')))
    cfg.work_dir = osp.join(args.run_dir, name)
    cfg.experiment_name = name
    cfg.visualizer.name = f'visualizer_{name}'  # mmengine shares instances by name
    cfg.randomness = dict(seed=args.seed)
    if cfg.get('train_cfg') is not None:
        shrink_schedule(cfg, args.max_iters, val_interval=args.val_interval)
        set_crop(cfg, args.crop)
    cfg.merge_from_dict(cfg_options)
    if args.verbose:
        return Runner.from_cfg(cfg)
    # The console hook instead of mmengine's log and the validation progress bar.
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h.type != 'ProgressBarHook']
    cfg.custom_hooks.append(dict(type='ConsoleProgressHook', title=title))
    return QuietConsoleRunner.from_cfg(cfg)


class Stages:
    """The demo's numbered stages on the console, each with its time."""

    def __init__(self, count: int, start: float):
        self.count, self.start, self.k = count, start, 0

    @contextlib.contextmanager
    def stage(self, title: str, header: str = ''):
        """Print ``[k/N] title`` (and ``header``) before the stage and its time after; yields
        the numbered title for the stage's progress bar."""
        self.k += 1
        numbered = f'[{self.k}/{self.count}] {title}'
        began = time.time()
        print(f'\n{numbered}{header}, {(began - self.start) / 60:.1f} min so far', flush=True)
        yield numbered
        print(f'  [{self.k}/{self.count}] done in {(time.time() - began) / 60:.1f} min', flush=True)


def train_and_test(title, name, args):
    """Train one demo model and test it on all validation images; return its validation
    history, test metrics, per-image counts and panel predictions."""
    label = title.split('] ', 1)[1]
    runner = demo_runner(name, title, args)
    per_image = PerImageCountsHook()
    runner.register_hook(per_image)
    runner.train()
    metrics = runner.test()
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        history = [json.loads(line) for line in f]
    predictions = panel_predictions(runner) if label in PANEL_MODELS else None
    return history, metrics, per_image.counts, predictions


def panel_samples(dataset):
    """Indices of the first validation images of each dataset."""
    return [i for d in range(len(DATASET_NAMES)) for i in dataset.dataset_range(d)[:PANEL_IMAGES]]


def panel_predictions(runner):
    model, dataset = runner.model.eval(), runner.test_dataloader.dataset
    return [
        model.test_step(pseudo_collate([dataset[i]]))[0].pred_sem_seg.data[0].numpy()
        for i in panel_samples(dataset)
    ]


def checkpoint(args, name):
    return osp.join(args.run_dir, name, f'iter_{args.max_iters}.pth')


def new_branch(args):
    """CDCL with a branch for the unseen camera from its training images, labels unused
    (``add_dataset_branch``: AdaBN from the branch its images' DSBN statistics choose): the
    config, checkpoint and what was done, made once per run."""
    if getattr(args, 'new_branch', None) is None:
        images = osp.join('data', 'demo', UNSEEN, LAYOUTS[UNSEEN][1].format('train'))
        with contextlib.redirect_stdout(io.StringIO()):  # mmengine prints each checkpoint's path
            args.new_branch = add_dataset_branch(
                osp.join(REPO, 'configs', 'demo', f'{MODELS[CDCL]}.py'),
                checkpoint(args, MODELS[CDCL]),
                UNSEEN,
                images,
                osp.join(args.run_dir, f'{UNSEEN}_branch'),
            )
    return args.new_branch


def universal_headline(title, args):
    """The universal model, trained from Cityscapes' and CamVid's labels, against CDCL's routes
    for CamVid without CamVid's labels, on CamVid's validation images in Cityscapes' 19 classes;
    each difference with its paired bootstrap interval."""
    # No validation: the learning curves are the paper's four models'.
    runner = demo_runner(
        UNIVERSAL, title, args, val_dataloader=None, val_cfg=None, val_evaluator=None
    )
    runner.train()
    cityscapes = CityscapesDataset.METAINFO
    # CDCL's datasets both have Cityscapes' classes (the new branch its source's): one space
    nineteen = dict(classes=cityscapes['classes'], palette=cityscapes['palette'], mapping={})
    cdcl_cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{MODELS[CDCL]}.py'))
    added_config, added_checkpoint, _ = new_branch(args)
    with contextlib.redirect_stdout(io.StringIO()):  # mmengine prints each checkpoint's path
        cdcl = load_model(cdcl_cfg, checkpoint(args, MODELS[CDCL]), nineteen)
        added = load_model(Config.fromfile(added_config), added_checkpoint, nineteen)
        universal = load_model(runner.cfg, checkpoint(args, UNIVERSAL), output_space='label_space')
    routes = {
        UNIVERSAL_ROUTE: (universal, 'camvid'),
        'CDCL: CamVid branch from its training images, labels unused': (added, UNSEEN),
        'CDCL: auto': (cdcl, 'auto'),
        'CDCL: Cityscapes branch': (cdcl, 'cityscapes'),
    }
    eval_cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{IN_19}.py'))
    counts = universal_classes_counts(
        routes, eval_cfg, 'camvid', tuple(cityscapes['classes']), 'cityscapes'
    )
    comparison = compare_routes(counts, UNIVERSAL_ROUTE, seed=args.seed, **BOOTSTRAP)
    comparison['IoU'] = per_class_iou(counts)  # per route, in the 19 classes' order
    comparison['routes'] = list(routes)
    print(
        f'  mIoU in 19 classes on {UNSEEN}: '
        + ' | '.join(f'{route} {miou:.2f}' for route, miou in comparison['mIoU'].items()),
        flush=True,
    )
    return comparison


def test_unknown_source(title, args):
    """CDCL's test on images it is not told the source of: each route's metrics."""
    runner = demo_runner(UNKNOWN_SOURCE, title, args)
    # Loaded here, quietly: the runner's load_from prints its path on the console.
    with mmengine_checkpoints_allowed():
        load_checkpoint(
            runner.model, checkpoint(args, MODELS[CDCL]), map_location='cpu', logger='silent'
        )
    return runner.test()


def new_camera_branch(args):
    """CDCL's branch for the unseen camera from its training images, labels unused
    (:func:`new_branch`), tested on the unknown-source test's images of that camera against the
    routes it had before."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{UNKNOWN_SOURCE}.py'))
    _, ckpt, info = new_branch(args)
    # Quietly: mmengine prints the path of each checkpoint it loads.
    with contextlib.redirect_stdout(io.StringIO()):
        comparison = compare_new_branch(cfg, UNSEEN, info['source'], ckpt, args.seed, **BOOTSTRAP)
    return dict(
        comparison,
        source=info['source'],
        distances=info['distances'],
        num_images=info['num_images'],
        checkpoint=ckpt,
    )


def new_camera_results(new, num_test, seed):
    """results.md's third table: the new branch against the routes of the model before."""
    old = ' and '.join(DATASET_TITLES[d] for d in DATASET_NAMES)
    titles = {UNSEEN: 'CamVid branch (new)', f'auto of {"+".join(DATASET_NAMES)}': 'auto before'}
    titles.update({d: f'{DATASET_TITLES[d]} branch' for d in DATASET_NAMES})
    titles.update({'auto': 'auto after', 'ensemble': 'ensemble after'})
    distances = ', '.join(f'{DATASET_TITLES[d]} {new["distances"][d]:.2f}' for d in DATASET_NAMES)
    return (
        f'A branch for CamVid from its {new["num_images"]} training images, labels unused '
        f'(`tools/add_dataset_branch.py`: a copy of the {DATASET_TITLES[new["source"]]} branch, '
        f"the nearest to the images' DSBN statistics ({distances}), its statistics re-estimated "
        f"on them), tested on the {num_test} CamVid images above in CamVid's 11 classes: "
        f'the new branch against each route of the {old} model before (its branches, auto '
        'before) and of the model with the new branch (auto and ensemble after), with the '
        f'paired bootstrap {BOOTSTRAP["level"]:.0%} interval over the images '
        f'({BOOTSTRAP["num_resamples"]} resamples, seed {seed}; **bold**: excludes 0). '
        'Method and measurements: [docs/new_camera.md](docs/new_camera.md).\n\n'
        + route_comparison_markdown(new, UNSEEN, titles, BOOTSTRAP['level'])
    )


def results_markdown(scores, intervals, num_test, args, seconds):
    """results.md's first table: each model's mIoU and CDCL's differences with their bootstrap
    intervals, and what they establish."""
    return (
        f'Result of `make demo` (`tools/run_demo.py`, seed {args.seed}): '
        f'{args.max_iters} iterations per model on {args.crop[0]}x{args.crop[1]} crops, tested '
        f'on {num_test} validation images per dataset; {seconds / 60:.1f} min on '
        f'{os.cpu_count()} CPU cores{" (with --more)" if args.more else ""}.\n\n'
        + comparison_markdown(
            scores,
            intervals,
            CDCL,
            DATASET_TITLES,
            args.seed,
            BOOTSTRAP['num_resamples'],
            BOOTSTRAP['level'],
        )
    )


def unknown_source_results(metrics, num_test):
    """results.md's second table: mIoU per route and source dataset, the branches chosen."""
    return (
        f'CDCL on images of unknown source ({num_test} validation images per dataset), mIoU '
        "in CamVid's 11 classes (`configs/_base_/label_spaces/cityscapes_to_camvid.py`): "
        "the branch of the image's dataset, the branch its DSBN statistics choose (auto), "
        'all branches weighted by those scores (ensemble), and each branch for every '
        'image.\n\n'
        + unknown_source_markdown(metrics, DATASET_TITLES, UNSEEN, 'CamVid (never trained on)')
    )


def universal_results(universal, seed):
    """results.md's universal table: the universal model against CDCL's routes for CamVid
    without CamVid's labels, in Cityscapes' 19 classes."""
    num_images = next(iter(universal['intervals'].values()))['num_images']
    return (
        f"The universal model on CamVid's {num_images} validation images, scored in "
        "Cityscapes' 19 classes (each scene's label as drawn, which no training reads; "
        "CamVid's own 11 classes merge several of them): one classifier of the 19 classes "
        "trained from Cityscapes' labels and CamVid's coarser ones "
        '(`configs/demo/cdcl_universal_cityscapes_camvid.py`), against the routes of the CDCL '
        "model above for CamVid without its labels: a branch from CamVid's training images "
        '(`tools/add_dataset_branch.py`), auto and its Cityscapes branch. Each difference with '
        f'the paired bootstrap {BOOTSTRAP["level"]:.0%} interval over the images '
        f'({BOOTSTRAP["num_resamples"]} resamples, seed {seed}; **bold**: excludes 0). What '
        "CamVid's labels are worth in the 19 classes through one classifier; the universal "
        'head against per-dataset heads trained on the same data: '
        '[docs/universal_label_space.md](docs/universal_label_space.md).\n\n'
        + route_comparison_markdown(universal, UNIVERSAL_ROUTE, {}, BOOTSTRAP['level'])
    )


def write_results(scores, intervals, universal, unknown, new, num_test, args, seconds):
    text = results_markdown(scores, intervals, num_test, args, seconds)
    text += '\n' + universal_results(universal, args.seed)
    if unknown is not None:
        text += '\n' + unknown_source_results(unknown, num_test)
        text += '\n' + new_camera_results(new, num_test, args.seed)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(
            dict(
                seed=args.seed,
                seconds=round(seconds, 1),
                iters=args.max_iters,
                test_images_per_dataset=num_test,
                mIoU=scores,
                cdcl_minus_baseline=intervals,
                universal=universal,
                unknown_source=unknown,
                new_camera=new,
            ),
            f,
            indent=2,
        )
    return text


def plot_curves(histories, curve_images, path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for label, history in histories.items():
        train = [h for h in history if 'loss' in h and 'mIoU' not in h]
        axes[0].plot([h['step'] for h in train], [h['loss'] for h in train], label=label)
        val = [h for h in history if 'mIoU' in h]
        for ax, name in zip(axes[1:], DATASET_NAMES):
            ax.plot([h['step'] for h in val], [h[f'{name}/mIoU'] for h in val], 'o-', label=label)
    axes[0].set(title='training loss (sum over datasets for CDCL)', xlabel='iteration')
    for ax, name in zip(axes[1:], DATASET_NAMES):
        ax.set(title=f'{name} val mIoU (%), first {curve_images} images', xlabel='iteration')
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_panel(predictions, path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{MODELS[PANEL_MODELS[0]]}.py'))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    palette = np.array(dataset.metainfo['palette'] + [[0, 0, 0]] * (256 - 19), np.uint8)
    indices = panel_samples(dataset)
    fig, axes = plt.subplots(len(indices), 4, figsize=(13, 1.9 * len(indices)))
    for row, i in enumerate(indices):
        sample = dataset[i]
        image = sample['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]
        gt = sample['data_samples'].gt_sem_seg.data[0].numpy()
        columns = [('image', image), ('ground truth', palette[gt])]
        columns += [(label, palette[predictions[label][row]]) for label in PANEL_MODELS]
        for ax, (title, picture) in zip(axes[row], columns):
            ax.imshow(picture)
            ax.set_axis_off()
            ax.set_title(f'{sample["data_samples"].dataset_name}: {title}', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args():
    sizes = Config.fromfile(DEMO_SIZES)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help=f"seed of training and of the bootstrap (the data is always seed {DATA_SEED}'s)",
    )
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="mmengine's complete log and every warning on the console too",
    )
    parser.add_argument(
        '--more',
        action='store_true',
        help='also images of unknown source, a branch for a new camera, BN statistics '
        '(make demo-more)',
    )
    parser.add_argument(
        '--iters',
        type=int,
        default=sizes.make_demo_iters,
        help='iterations per model (default: %(default)s)',
    )
    parser.add_argument(
        '--crop',
        nargs=2,
        type=int,
        metavar=('H', 'W'),
        default=list(sizes.make_demo_crop),
        help='training crops (default: %(default)s)',
    )
    parser.add_argument(
        '--num-images',
        nargs='+',
        metavar='SPLIT=N',
        default=[],
        help='images per split and dataset to generate, default: '
        + ' '.join(f'{k}={v}' for k, v in sizes.demo_num_images.items()),
    )
    parser.add_argument(
        '--image-size',
        nargs=2,
        type=int,
        metavar=('H', 'W'),
        default=list(sizes.demo_image_size),
        help='size of generated images',
    )
    args = parser.parse_args()
    num_images = dict(sizes.demo_num_images)
    for item in args.num_images:
        split, _, n = item.partition('=')
        if split not in num_images or not n.isdigit():
            parser.error(
                f'--num-images expects SPLIT=N with SPLIT in {list(num_images)}, got {item!r}'
            )
        num_images[split] = int(n)
    args.num_images = num_images
    args.max_iters = args.iters
    # validation points of the learning curves: make demo's, or four of a shorter schedule
    args.val_interval = (
        sizes.make_demo_val_interval
        if args.iters == sizes.make_demo_iters
        else max(1, args.iters // 4)
    )
    args.curve_images = sizes.demo_curve_images
    return args


def main():
    args = parse_args()
    # The imports' objects are never garbage: mmengine's gc.collect() at each dataset it builds
    # (28 in a demo, 0.4 s each with torch imported) scans only the demo's own.
    gc.freeze()
    if not args.verbose:
        for message in MMSEG_NOTICES:
            warnings.filterwarnings('ignore', message=message, category=UserWarning)
    start = time.time()
    ensure_data(args)
    # Each run trains in a folder of its own: earlier runs' checkpoints and logs stay.
    args.run_dir = osp.join(args.work_dir, time.strftime('%Y%m%d_%H%M%S'))
    os.makedirs(args.run_dir, exist_ok=True)
    print(
        f'CDCL and three baselines, and a universal model, {args.max_iters} iterations each '
        f'on {args.crop[0]}x{args.crop[1]} crops; validation on the first '
        f'{min(args.curve_images, args.num_images["val"])} validation images of each dataset '
        f'(learning curves), test on all {args.num_images["val"]} (the tables).\n'
        f'Complete logs (per-class IoU tables included): '
        f'{args.run_dir}/<config>/<timestamp>/<timestamp>.log',
        flush=True,
    )
    stages = Stages(len(MODELS) + 1 + 2 * args.more, start)
    histories, metrics, counts, predictions = {}, {}, {}, {}
    for label, name in MODELS.items():
        with stages.stage(label, f': configs/demo/{name}.py') as title:
            histories[label], metrics[label], counts[label], predictions[label] = train_and_test(
                title, name, args
            )
    with stages.stage(
        "a universal model, one classifier of Cityscapes' 19 classes from Cityscapes' and "
        f"{UNSEEN}'s labels",
        f': configs/demo/{UNIVERSAL}.py',
    ) as title:
        universal = universal_headline(title, args)
    unknown = new = None
    if args.more:
        with stages.stage(
            f'{CDCL} on images of unknown source, {UNSEEN} added',
            f': configs/demo/{UNKNOWN_SOURCE}.py',
        ) as title:
            unknown = test_unknown_source(title, args)
        with stages.stage(
            f'{CDCL} grows a branch for {UNSEEN} from its {args.num_images["train"]} training '
            'images, labels unused',
            ': tools/add_dataset_branch.py; BN statistics: tools/analysis/bn_statistics.py',
        ):
            new = new_camera_branch(args)
            # The paper's Fig. 1: BN statistics per dataset, in CDCL's branches and the single
            # models.
            singles = [label for label in MODELS if label.startswith('single')]
            bn_statistics(
                osp.join(REPO, 'configs', 'demo', f'{MODELS[CDCL]}.py'),
                [checkpoint(args, MODELS[label]) for label in (CDCL, *singles)],
                out_dir=args.work_dir,
                labels=['CDCL', *singles],
            )
    scores, intervals = scores_and_intervals(
        metrics, counts, CDCL, DATASET_NAMES, args.seed, **BOOTSTRAP
    )
    num_test = len(counts[CDCL][DATASET_NAMES[0]])
    text = write_results(
        scores, intervals, universal, unknown, new, num_test, args, time.time() - start
    )
    plot_curves(
        histories,
        min(args.curve_images, args.num_images['val']),
        osp.join(args.work_dir, 'curves.png'),
    )
    plot_panel(predictions, osp.join(args.work_dir, 'panel.png'))
    print(
        f'\n{text}\nResults, curves and panel in {args.work_dir}/ (results.md, results.json, '
        'curves.png, panel.png'
        + (', bn_statistics.png' if args.more else '')
        + f'); checkpoints and complete logs in {args.run_dir}/'
        + (
            ''
            if args.more
            else '\nThe rest (images of unknown source, a branch for a new camera from its '
            'unlabelled images, BN statistics): make demo-more'
        )
    )


if __name__ == '__main__':
    # The demo's own process: mmengine reads mmseg's model index once per mmseg:: base, not at
    # each of the ~27 config loads (0.2-0.6 s each).
    with memoized_package_config_lookup():
        main()
