"""Add a dataset branch for a new camera to a CDCL model, from the camera's unlabelled images.

    python tools/add_dataset_branch.py CONFIG CHECKPOINT --name NAME --images DIR
                                       [--from BRANCH|auto] --out-dir DIR [--num-images N]
                                       [--prior-images N] [--tent-steps N] [--overwrite]

writes DIR/NAME.py and DIR/NAME.pth: the model with one more dataset, NAME, whose branches
(DSBN, classifiers) start as BRANCH's (auto: the branch the images' DSBN statistics choose) and
whose DSBN statistics are re-estimated on the images (AdaBN). They load by name and predict
with dataset=NAME, auto and ensemble (tools/infer.py), and export to plain MMSeg
(tools/export_single_dataset.py). See docs/new_camera.md.
"""

import argparse

from mmseg_cdcl.apis import add_dataset_branch
from mmseg_cdcl.apis.add_dataset_branch import check_branch_name, image_files


def branch_name(name: str) -> str:
    """``--name``, checked before anything is loaded."""
    try:
        return check_branch_name(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='CDCL config file')
    parser.add_argument('checkpoint', help='CDCL checkpoint')
    parser.add_argument(
        '--name', required=True, type=branch_name, help='the new dataset (a Python identifier)'
    )
    parser.add_argument('--images', required=True, help="folder of the new camera's images")
    parser.add_argument(
        '--from',
        dest='source',
        default='auto',
        help="dataset whose branches the new one starts from, or 'auto' "
        '(default): the nearest by DSBN statistics',
    )
    parser.add_argument('--out-dir', required=True, help='folder for NAME.py and NAME.pth')
    parser.add_argument('--num-images', type=int, help='use the first N images (sorted)')
    parser.add_argument(
        '--prior-images',
        type=float,
        default=0.0,
        help="UBNA's mixing: the source's statistics count as N images",
    )
    parser.add_argument(
        '--tent-steps',
        type=int,
        default=0,
        help="TENT passes tuning the branch's BN γ/β (default 0)",
    )
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    args = parser.parse_args()
    try:
        images = args.images
        if args.num_images:
            images = image_files(images)[: args.num_images]
        config, checkpoint, info = add_dataset_branch(
            args.config,
            args.checkpoint,
            args.name,
            images,
            args.out_dir,
            source=args.source,
            prior_images=args.prior_images,
            tent_steps=args.tent_steps,
            device=args.device,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        parser.error(str(e))
    chosen = (
        ' (chosen: distances ' + ', '.join(f'{k} {v}' for k, v in info['distances'].items()) + ')'
        if 'distances' in info
        else ''
    )
    print(
        f'{args.name!r} starts from {info["source"]!r}{chosen}; BN statistics re-estimated on '
        f'{info["num_images"]} images in {info["seconds"]:.1f} s\nwrote {config}\n'
        f'wrote {checkpoint}'
    )


if __name__ == '__main__':
    main()
