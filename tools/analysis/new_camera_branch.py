"""How much a branch added from a new camera's unlabelled images helps, on its labelled images.

    python tools/analysis/new_camera_branch.py CKPT --images DIR --out-dir DIR
        [--config configs/demo/cdcl_cityscapes_bdd.py]
        [--eval-config configs/demo/cdcl_cityscapes_bdd_unknown_source.py]
        [--name camvid] [--num-images N ...] [--prior-images P ...] [--tent-steps S]

Adds the branch NAME to the model of CONFIG and CKPT (:func:`mmseg_cdcl.apis.add_dataset_branch`)
from the first N images of DIR (each N; auto: all), with AdaBN alone and, where given, UBNA's
mixing with P pseudo-images of the source and TENT; then predicts the labelled images of NAME in
EVAL_CONFIG's test MultiDataset, in its label space, with the new branch, every old branch,
auto and ensemble of the new model, and auto among the old branches (the model before), and
prints each route's mIoU with the paired bootstrap 95% interval of new branch − route
(:mod:`mmseg_cdcl.evaluation.route_comparison`). Writes DIR/new_camera_branch.json and .md.
"""

import argparse
import json
import os.path as osp
import time
import warnings

warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API', category=UserWarning
)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmseg_cdcl.apis import add_dataset_branch  # noqa: E402
from mmseg_cdcl.apis.add_dataset_branch import image_files  # noqa: E402
from mmseg_cdcl.evaluation.route_comparison import (  # noqa: E402
    added_branch_model,
    compare_routes,
    labelled_batches,
    route_comparison_markdown,
    route_counts,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BOOTSTRAP = dict(num_resamples=2000, level=0.95, seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--images', required=True, help="the new camera's unlabelled images")
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--config', default=osp.join(REPO, 'configs/demo/cdcl_cityscapes_bdd.py'))
    parser.add_argument(
        '--eval-config',
        default=osp.join(REPO, 'configs/demo/cdcl_cityscapes_bdd_unknown_source.py'),
    )
    parser.add_argument('--name', default='camvid')
    parser.add_argument('--num-images', type=int, nargs='+', default=[0], help='0: all')
    parser.add_argument('--prior-images', type=float, nargs='+', default=[])
    parser.add_argument('--tent-steps', type=int, default=0)
    parser.add_argument('--max-batches', type=int, help='evaluate on fewer images (a check)')
    args = parser.parse_args()
    init_default_scope('mmseg')
    files = image_files(args.images)
    ecfg = Config.fromfile(args.eval_config)
    batches = labelled_batches(ecfg, args.name)[: args.max_batches]
    num_classes = len(ecfg.model.label_space.classes)
    old = list(Config.fromfile(args.config).model.dataset_names)

    variants = []  # (label, arguments of add_dataset_branch)
    for n in args.num_images:
        n = n or len(files)
        variants.append((f'AdaBN, {n} images', dict(images=files[:n])))
        variants += [
            (f'UBNA, {n} images, prior {p:g}', dict(images=files[:n], prior_images=p))
            for p in args.prior_images
        ]
    if args.tent_steps:
        variants.append(
            (
                f'TENT ({args.tent_steps} pass) + AdaBN, {len(files)} images',
                dict(images=files, tent_steps=args.tent_steps),
            )
        )
    results, text, full = {}, [], None
    for k, (label, kwargs) in enumerate(variants):
        _, ckpt, info = add_dataset_branch(
            args.config,
            args.checkpoint,
            args.name,
            out_dir=osp.join(args.out_dir, f'variant_{k}'),
            overwrite=True,
            **kwargs,
        )
        model = added_branch_model(ecfg, args.name, info['source'], ckpt)
        start = time.time()
        if full is None:  # every route once; the old branches do not change
            counts = full = route_counts(
                model, batches, [args.name, *old, 'auto', 'ensemble'], num_classes, chooser=old
            )
            info['routes_seconds'] = round(time.time() - start, 1)
            start = time.time()
            route_counts(model, batches, [old[0]], num_classes)
            info['routed_seconds_per_image'] = round(
                (time.time() - start) / len(full[old[0]][0]), 4
            )
        else:  # auto and ensemble depend on the new branch: auto measured again
            counts = {k: v for k, v in full.items() if k != 'ensemble'}
            counts.update(route_counts(model, batches, [args.name, 'auto'], num_classes))
        comparison = compare_routes(counts, args.name, **BOOTSTRAP)
        results[label] = dict(info, **comparison)
        table = route_comparison_markdown(
            comparison,
            args.name,
            {
                args.name: f'{args.name} (new branch)',
                f'auto of {"+".join(old)}': 'auto among the old branches (the model before)',
            },
        )
        text.append(
            f'### {label}\n\nstarts from {info["source"]} ({info.get("distances")}), '
            f'added in {info["seconds"]} s (the pass over the images: '
            f'{info["pass_seconds"]} s)\n\n{table}'
        )
        print(text[-1], flush=True)
        with open(osp.join(args.out_dir, 'new_camera_branch.json'), 'w') as f:
            json.dump(results, f, indent=1)
        with open(osp.join(args.out_dir, 'new_camera_branch.md'), 'w') as f:
            f.write('\n'.join(text))


if __name__ == '__main__':
    main()
