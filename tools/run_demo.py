"""The embedded demo: CDCL against its baselines on generated street scenes, on a CPU.

    python tools/run_demo.py [--work-dir work_dirs/demo] [--seed 0] [--iters N]

Generates Cityscapes- and BDD100K-format data (tools/make_demo_data.py) under data/demo unless
it is there, trains CDCL (configs/demo/cdcl_cityscapes_bdd.py) and its baselines (one model per
dataset; one joint model with shared BN and one classifier), evaluates each on both datasets'
validation splits, and writes to the work dir: results.md and results.json (per-dataset mIoU),
curves.png (training loss and validation mIoU) and panel.png (image | ground truth | CDCL |
joint baseline on validation images).
"""
import argparse
import glob
import json
import os
import os.path as osp
import time

import matplotlib
import numpy as np
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner
from mmseg.registry import DATASETS

import mmseg_cdcl  # noqa: F401
from make_demo_data import make_demo_data

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATASET_NAMES = ('cityscapes', 'bdd100k')
MODELS = {  # label: demo config
    'CDCL (DSBN + DAT)': 'cdcl_cityscapes_bdd',
    'single: Cityscapes only': 'pspnet_r18-d8_cityscapes',
    'single: BDD100K only': 'pspnet_r18-d8_bdd100k',
    'joint: shared BN, one classifier': 'pspnet_r18-d8_cityscapes_bdd100k_joint',
}
PANEL_MODELS = ('CDCL (DSBN + DAT)', 'joint: shared BN, one classifier')
PANEL_IMAGES = 2  # per dataset


def train(label, name, args):
    """Train one demo model; return its validation history and panel predictions."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{name}.py'))
    cfg.work_dir = osp.join(args.run_dir, name)
    cfg.experiment_name = name
    cfg.visualizer.name = f'visualizer_{name}'  # mmengine shares instances by name
    cfg.randomness = dict(seed=args.seed)
    if args.iters:
        cfg.train_cfg.update(max_iters=args.iters, val_interval=max(1, args.iters // 4))
        cfg.param_scheduler[0].end = args.iters
        cfg.default_hooks.checkpoint.interval = args.iters
    runner = Runner.from_cfg(cfg)
    runner.train()
    # This run's log folder is the newest <work_dir>/<timestamp>.
    with open(sorted(glob.glob(osp.join(cfg.work_dir, '*', 'vis_data', 'scalars.json')))[-1]) as f:
        history = [json.loads(line) for line in f]
    predictions = panel_predictions(runner) if label in PANEL_MODELS else None
    return history, predictions


def panel_samples(dataset):
    """Indices of the first validation images of each dataset."""
    return [i for d in range(len(DATASET_NAMES)) for i in dataset.dataset_range(d)[:PANEL_IMAGES]]


def panel_predictions(runner):
    model, dataset = runner.model.eval(), runner.val_dataloader.dataset
    return [model.test_step(pseudo_collate([dataset[i]]))[0].pred_sem_seg.data[0].numpy()
            for i in panel_samples(dataset)]


def final_scores(history):
    val = [h for h in history if 'mIoU' in h]
    return {key: val[-1][f'{key}/mIoU'] for key in DATASET_NAMES}


def write_results(results, args, seconds):
    rows = [f'| {label} | ' + ' | '.join(f'{s[d]:.2f}' for d in DATASET_NAMES) +
            f' | {np.mean([s[d] for d in DATASET_NAMES]):.2f} |' for label, s in results.items()]
    table = '\n'.join(['| model | Cityscapes mIoU | BDD100K mIoU | mean |', '|---|---|---|---|']
                      + rows)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(f'Validation mIoU (%) on the generated demo data, seed {args.seed}, '
                f'{seconds / 60:.1f} min of training and evaluation.\n\n{table}\n')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(seed=args.seed, seconds=round(seconds, 1), mIoU=results), f, indent=2)
    return table


def plot_curves(histories, path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for label, history in histories.items():
        train = [h for h in history if 'loss' in h and 'mIoU' not in h]
        axes[0].plot([h['step'] for h in train], [h['loss'] for h in train], label=label)
        val = [h for h in history if 'mIoU' in h]
        for ax, name in zip(axes[1:], DATASET_NAMES):
            ax.plot([h['step'] for h in val], [h[f'{name}/mIoU'] for h in val], 'o-', label=label)
    axes[0].set(title='training loss (sum over datasets for CDCL)', xlabel='iteration')
    for ax, name in zip(axes[1:], DATASET_NAMES):
        ax.set(title=f'{name} val mIoU (%)', xlabel='iteration')
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_panel(predictions, path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', f'{MODELS[PANEL_MODELS[0]]}.py'))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
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
            ax.set_title(f"{sample['data_samples'].dataset_name}: {title}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--iters', type=int, help='override the demo schedule (e.g. for tests)')
    args = parser.parse_args()
    start = time.time()
    if not osp.isdir(osp.join('data', 'demo', 'bdd100k')):
        print('generating data/demo ...', flush=True)
        make_demo_data(osp.join('data', 'demo'), datasets=DATASET_NAMES, seed=args.seed)
    # Each run trains in a folder of its own: earlier runs' checkpoints and logs stay.
    args.run_dir = osp.join(args.work_dir, time.strftime('%Y%m%d_%H%M%S'))
    os.makedirs(args.run_dir, exist_ok=True)
    histories, predictions, results = {}, {}, {}
    for k, (label, name) in enumerate(MODELS.items(), 1):
        print(f'\n[{k}/{len(MODELS)}] training {label} (configs/demo/{name}.py), '
              f'{(time.time() - start) / 60:.1f} min so far', flush=True)
        histories[label], predictions[label] = train(label, name, args)
        results[label] = final_scores(histories[label])
    table = write_results(results, args, time.time() - start)
    plot_curves(histories, osp.join(args.work_dir, 'curves.png'))
    plot_panel(predictions, osp.join(args.work_dir, 'panel.png'))
    print(f'\n{table}\n\nseed {args.seed}; {(time.time() - start) / 60:.1f} min; results, '
          f'curves and panel in {args.work_dir}/ (results.md, results.json, curves.png, '
          f'panel.png); checkpoints and logs in {args.run_dir}/')


if __name__ == '__main__':
    main()
