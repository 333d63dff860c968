"""Procedural street scenes in the on-disk formats of Cityscapes, BDD100K and CamVid.

    python tools/make_demo_data.py [--out-dir data/demo] [--datasets NAME ...]
                                   [--num-images SPLIT=N ...] [--image-size H W] [--seed 0]
                                   [--shift 1.0] [--overwrite] [--universal-labels]

The command line of :func:`mmseg_cdcl.testing.make_demo_data`, which documents the scenes,
their styles and the layouts.
"""

import argparse

from mmseg_cdcl.testing import make_demo_data
from mmseg_cdcl.testing.demo_data import LAYOUTS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='data/demo')
    parser.add_argument('--datasets', nargs='+', default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument(
        '--num-images',
        nargs='+',
        default=[],
        metavar='SPLIT=N',
        help='images per split for every dataset, e.g. train=48 val=16',
    )
    parser.add_argument(
        '--image-size',
        nargs=2,
        type=int,
        metavar=('H', 'W'),
        help='Cityscapes/BDD100K size; CamVid gets (3H/4, H)',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--shift', type=float, default=1.0, help='covariate shift in [0, 1]')
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument(
        '--universal-labels',
        action='store_true',
        help="also write each image's label in Cityscapes' 19 classes to "
        '<dataset>/universal_annotations/<split>/ (read by no training config)',
    )
    args = parser.parse_args(argv)
    num_images = {}
    for item in args.num_images:
        split, _, n = item.partition('=')
        if not n.isdigit():
            parser.error(f'--num-images expects SPLIT=N, got {item!r}')
        num_images[split] = int(n)
    try:
        info = make_demo_data(
            args.out_dir,
            args.datasets,
            num_images,
            args.image_size and tuple(args.image_size),
            args.seed,
            args.shift,
            args.overwrite,
            universal_labels=args.universal_labels,
        )
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    for name, entry in info.items():
        counts = ', '.join(f'{s} {v["num_images"]}' for s, v in entry['splits'].items())
        print(f'{name}: {counts} -> {entry["data_root"]}')


if __name__ == '__main__':
    main()
