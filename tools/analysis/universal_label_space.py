"""A universal model against per-dataset heads on generated Cityscapes + CamVid: three comparisons
with paired bootstrap intervals (docs/universal_label_space.md).

    python tools/analysis/universal_label_space.py [--work-dir work_dirs/universal]
        [--learned] [--with-bdd100k] [--seed 0] [--iters 240] [--max-batches N]

Run from the folder whose data/demo holds (or will hold) the generated data: it generates
Cityscapes and CamVid (24 training, 100 validation images each, 128x256, seed 0; CamVid's scenes
also in Cityscapes' 19 classes, --universal-labels) where data/demo lacks them, then trains what
WORK_DIR lacks, with the seed: the CDCL model of per-dataset heads
(configs/demo/cdcl_cityscapes_camvid.py, WORK_DIR/cdcl) and the universal model
(configs/demo/cdcl_universal_cityscapes_camvid.py, WORK_DIR/universal), and adds to the first a
branch from CamVid's training images without their labels (tools/add_dataset_branch.py
--from cityscapes, WORK_DIR/added). With --learned, it also learns the label space from the
per-dataset model (tools/analysis/learn_label_space.py, WORK_DIR/learned) and trains the
universal model of its universal form (WORK_DIR/learned_universal). With --with-bdd100k, the
models (the learned one too) have a third dataset, BDD100K (Cityscapes' classes; generated too):
configs/demo/cdcl_cityscapes_bdd_camvid.py and cdcl_universal_cityscapes_bdd_camvid.py. Then it
prints and writes (WORK_DIR/universal_label_space.md and .json):

1. each dataset's mIoU in its own classes: the universal model(s) against per-dataset heads;
2. the mIoU in the 19 universal classes on CamVid's validation images: the universal model's
   CamVid branch against every route of the per-dataset model (its Cityscapes branch, its CamVid
   branch, auto and ensemble in the 19 classes, the branch added from unlabelled images) and
   the universal model's other routes (with --with-bdd100k, the BDD100K branches too);
3. with --learned, the same with the learned universal model as the reference.
"""

import argparse
import contextlib
import glob
import io
import json
import os.path as osp
import time
import warnings

warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API', category=UserWarning
)
for notice in (r'``build_loss`` would be deprecated soon', r'Default ``avg_non_ignore`` is False'):
    warnings.filterwarnings('ignore', message=notice, category=UserWarning)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmseg_cdcl.apis import add_dataset_branch  # noqa: E402
from mmseg_cdcl.engine import QuietConsoleRunner  # noqa: E402
from mmseg_cdcl.evaluation import learn_label_space  # noqa: E402
from mmseg_cdcl.evaluation.route_comparison import (  # noqa: E402
    compare_routes,
    route_comparison_markdown,
)
from mmseg_cdcl.evaluation.universal_comparison import (  # noqa: E402
    into_classes,
    load_model,
    own_classes_counts,
    per_class_iou,
    per_class_markdown,
    universal_classes_counts,
)
from mmseg_cdcl.testing import make_demo_data, shrink_schedule, unformatted  # noqa: E402
from mmseg_cdcl.testing.demo_data import LAYOUTS, UNIVERSAL_PREFIX  # noqa: E402
from mmseg_cdcl.utils import dump_config  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'demo')
PER_DATASET = osp.join(DEMO, 'cdcl_cityscapes_camvid.py')
UNIVERSAL = osp.join(DEMO, 'cdcl_universal_cityscapes_camvid.py')
IN_19 = osp.join(DEMO, 'cdcl_universal_cityscapes_camvid_19_classes.py')
HAND_WRITTEN = osp.join(REPO, 'configs', '_base_', 'label_spaces', 'cityscapes_to_camvid.py')
SPACES = osp.join(REPO, 'configs', '_base_', 'label_spaces', 'universal_cityscapes_camvid.py')
PER_DATASET_BDD = osp.join(DEMO, 'cdcl_cityscapes_bdd_camvid.py')
UNIVERSAL_BDD = osp.join(DEMO, 'cdcl_universal_cityscapes_bdd_camvid.py')
NAMES = ('cityscapes', 'camvid')
NUM_IMAGES = dict(train=24, val=100)
IMAGE_SIZE = (128, 256)
ADDED = 'camvid_unlabelled'  # the branch added from CamVid's images
BOOTSTRAP = dict(num_resamples=2000, level=0.95)


def ensure_data(names, root='data/demo'):
    """Generate each dataset of ``names`` whose splits (and, for CamVid, universal labels of
    the validation images) do not hold their number of images."""

    def count(*parts):
        return len(glob.glob(osp.join(root, *parts, '**', '*.*'), recursive=True))

    wanted = {
        name: [((LAYOUTS[name][1].format(s),), n) for s, n in NUM_IMAGES.items()] for name in names
    }
    wanted['camvid'].append(((UNIVERSAL_PREFIX.format('val'),), NUM_IMAGES['val']))
    for name, folders in wanted.items():
        if any(count(name, *parts) != n for parts, n in folders):
            print(f'generating {root}/{name}', flush=True)
            make_demo_data(
                root,
                datasets=(name,),
                num_images={name: dict(NUM_IMAGES, test=0) if name == 'camvid' else NUM_IMAGES},
                image_size=IMAGE_SIZE,
                seed=0,
                overwrite=True,
                universal_labels=name == 'camvid',
            )


def train(config, work_dir, args, title, **cfg_options):
    """Train a demo config unless ``work_dir`` holds its last checkpoint; return that."""
    checkpoint = osp.join(work_dir, f'iter_{args.iters}.pth')
    if osp.isfile(checkpoint):
        print(f'{title}: {checkpoint} (trained before)', flush=True)
        return checkpoint
    cfg = unformatted(config if isinstance(config, Config) else Config.fromfile(config))
    cfg.work_dir = work_dir
    cfg.experiment_name = cfg.visualizer.name = f'{osp.basename(work_dir)}_{time.time_ns()}'
    cfg.randomness = dict(seed=args.seed)
    if args.iters != cfg.train_cfg.max_iters:
        shrink_schedule(cfg, args.iters, val_interval=args.iters)
    cfg.merge_from_dict(cfg_options)
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h.type != 'ProgressBarHook']
    cfg.custom_hooks.append(dict(type='ConsoleProgressHook', title=title))
    QuietConsoleRunner.from_cfg(cfg).train()
    return checkpoint


def learned_universal(args, per_dataset, per_dataset_ckpt, universal):
    """The label space learned from the ``per_dataset`` model (learn_label_space) in its
    universal form, and the ``universal`` demo config with it, written to WORK_DIR/learned/."""
    out = osp.join(args.work_dir, 'learned', 'cityscapes_camvid.py')
    if not osp.isfile(out):
        print('learning the label space from the per-dataset heads', flush=True)
        with contextlib.redirect_stdout(io.StringIO()):  # mmengine prints the checkpoint's path
            learn_label_space(
                per_dataset, per_dataset_ckpt, out, 'test', max_images=50, compare=HAND_WRITTEN
            )
    space = Config.fromfile(out).universal_label_space.to_dict()
    cfg = Config.fromfile(universal)
    cfg.model.label_space = space
    config = osp.join(args.work_dir, 'learned', 'universal.py')
    dump_config(
        cfg,
        config,
        [f'{universal} with the universal label space learned in {out}'],
    )
    return config, space


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/universal')
    parser.add_argument('--learned', action='store_true', help='also the learned label space')
    parser.add_argument(
        '--with-bdd100k', action='store_true', help='both models with BDD100K as a third dataset'
    )
    parser.add_argument('--seed', type=int, default=0, help='of training and the bootstrap')
    parser.add_argument('--iters', type=int, default=240)
    parser.add_argument('--max-batches', type=int, help='evaluate on fewer images (a check)')
    args = parser.parse_args()
    init_default_scope('mmseg')
    start = time.time()
    names, per_dataset_config, universal_config = NAMES, PER_DATASET, UNIVERSAL
    if args.with_bdd100k:
        names, per_dataset_config, universal_config = (
            (*NAMES, 'bdd100k'),
            PER_DATASET_BDD,
            UNIVERSAL_BDD,
        )
    ensure_data(names)
    work = args.work_dir
    cdcl_ckpt = train(per_dataset_config, osp.join(work, 'cdcl'), args, 'per-dataset heads')
    universal_ckpt = train(universal_config, osp.join(work, 'universal'), args, 'universal head')
    added = osp.join(work, 'added', f'{ADDED}.pth')
    if not osp.isfile(added):
        with contextlib.redirect_stdout(io.StringIO()):
            add_dataset_branch(
                per_dataset_config,
                cdcl_ckpt,
                ADDED,
                'data/demo/camvid/images/train',
                osp.join(work, 'added'),
                source='cityscapes',
            )
    learned = None
    if args.learned:
        config, space = learned_universal(args, per_dataset_config, cdcl_ckpt, universal_config)
        learned = (config, train(config, osp.join(work, 'learned_universal'), args, 'learned'))

    spaces = Config.fromfile(SPACES)
    representative = spaces.representative_label_space.to_dict()
    cfg = Config.fromfile(per_dataset_config)
    per_dataset = load_model(cfg, cdcl_ckpt)
    in_dataset = dict(output_space='dataset')
    universal_cfg = Config.fromfile(universal_config)
    own = {'universal': load_model(universal_cfg, universal_ckpt, **in_dataset)}
    if learned:
        own['learned universal'] = load_model(Config.fromfile(learned[0]), learned[1], **in_dataset)
    own['per-dataset heads'] = per_dataset
    bootstrap = dict(BOOTSTRAP, seed=args.seed)
    if args.max_batches:
        for loader in (cfg.test_dataloader, universal_cfg.test_dataloader):
            for dataset in loader.dataset.datasets.values():
                dataset['indices'] = args.max_batches * 4
    own_counts = own_classes_counts(own, cfg, names)
    results = dict(
        own_classes={
            name: compare_routes(c, 'universal', **bootstrap) for name, c in own_counts.items()
        }
    )
    if learned:
        results['learned_own_classes'] = {
            name: compare_routes(c, 'learned universal', **bootstrap)
            for name, c in own_counts.items()
        }

    learned_in_19 = learned is not None
    universal = load_model(universal_cfg, universal_ckpt, output_space='label_space')
    in_19 = load_model(cfg, cdcl_ckpt, representative)
    added_cfg = Config.fromfile(osp.join(work, 'added', f'{ADDED}.py'))
    added_model = load_model(added_cfg, added, representative)
    routes = {
        'universal: CamVid branch': (universal, 'camvid'),
        'universal: Cityscapes branch': (universal, 'cityscapes'),
        'universal: auto': (universal, 'auto'),
        'universal: ensemble': (universal, 'ensemble'),
        'per-dataset: Cityscapes branch': (in_19, 'cityscapes'),
        'per-dataset: CamVid branch, each class its most frequent': (in_19, 'camvid'),
        'per-dataset: auto': (in_19, 'auto'),
        'per-dataset: ensemble': (in_19, 'ensemble'),
        'per-dataset: branch added from CamVid images': (added_model, ADDED),
    }
    if args.with_bdd100k:
        routes['universal: BDD100K branch'] = (universal, 'bdd100k')
        routes['per-dataset: BDD100K branch'] = (in_19, 'bdd100k')
    classes = tuple(spaces.label_space.classes)
    if learned:
        model = load_model(Config.fromfile(learned[0]), learned[1], output_space='label_space')
        try:
            into_classes(model, classes, 'cityscapes')
            routes['learned universal: CamVid branch'] = (model, 'camvid')
        except ValueError as e:  # no 19-class truth can score it: comparison 3 is impossible
            print(f'the learned universal model is not scored in the 19 classes: {e}')
            learned_in_19 = False
    eval_cfg = Config.fromfile(IN_19)
    if args.max_batches:
        eval_cfg.test_dataloader.dataset.datasets.camvid['indices'] = args.max_batches * 4
    counts = universal_classes_counts(routes, eval_cfg, 'camvid', classes, 'cityscapes')
    results['universal_classes'] = compare_routes(counts, 'universal: CamVid branch', **bootstrap)
    results['universal_classes']['IoU'] = ious = per_class_iou(counts)
    if learned_in_19:
        results['learned_universal_classes'] = compare_routes(
            counts, 'learned universal: CamVid branch', **bootstrap
        )

    text = [
        '## 1. Each dataset in its own classes (universal − model)\n',
        *(
            f'{name}:\n\n' + route_comparison_markdown(c, 'universal', {}, BOOTSTRAP['level'])
            for name, c in results['own_classes'].items()
        ),
        "## 2. CamVid's images in the 19 universal classes\n",
        route_comparison_markdown(
            results['universal_classes'], 'universal: CamVid branch', {}, BOOTSTRAP['level']
        ),
    ]
    columns = {
        'universal: CamVid branch': 'universal: CamVid branch',
        'per-dataset: CamVid branch, each class its most frequent': 'per-dataset: CamVid branch',
        'per-dataset: branch added from CamVid images': 'per-dataset: added branch',
        'per-dataset: Cityscapes branch': 'per-dataset: Cityscapes branch',
    }
    if learned_in_19:
        columns['learned universal: CamVid branch'] = 'learned universal: CamVid branch'
    text += ['IoU (%) per class:\n', per_class_markdown(ious, columns, classes)]
    if learned:
        text += [
            '## 3. The same, the learned universal space\n',
            *(
                f'{name}, in its own classes:\n\n'
                + route_comparison_markdown(c, 'learned universal', {}, BOOTSTRAP['level'])
                for name, c in results['learned_own_classes'].items()
            ),
        ]
    if learned_in_19:
        text += [
            "CamVid's images in the 19 universal classes:\n",
            route_comparison_markdown(
                results['learned_universal_classes'],
                'learned universal: CamVid branch',
                {},
                BOOTSTRAP['level'],
            ),
        ]
    text.append(
        f'Paired bootstrap over the images ({BOOTSTRAP["num_resamples"]} resamples, seed '
        f'{args.seed}); **bold**: the interval excludes 0. {time.time() - start:.0f} s.\n'
    )
    print('\n'.join(text), flush=True)
    with open(osp.join(work, 'universal_label_space.md'), 'w') as f:
        f.write('\n'.join(text))
    with open(osp.join(work, 'universal_label_space.json'), 'w') as f:
        json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
