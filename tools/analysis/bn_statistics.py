"""The paper's motivation (Fig. 1) measured on checkpoints: conv weights against BN statistics.

    python tools/analysis/bn_statistics.py CONFIG CKPT [CKPT ...] --out-dir DIR
                                           [--labels LABEL ...] [--layers NAME ...]

CONFIG and the first CKPT are a CDCL model, further CKPTs single-dataset models of the same
network. Writes DIR/bn_statistics.json (per layer, the statistics of each series and the
divergences of every two) and DIR/bn_statistics.png, and prints the median divergences. The
command line of :func:`mmseg_cdcl.evaluation.bn_statistics`, which says what is measured.
"""

import argparse
import os.path as osp
import warnings

# mmengine resolves `mmseg::` config paths with setuptools' pkg_resources, which warns each time.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API', category=UserWarning
)

import numpy as np  # noqa: E402

from mmseg_cdcl.evaluation import bn_statistics  # noqa: E402
from mmseg_cdcl.evaluation.bn_statistics import pair_label  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help="the CDCL model's config")
    parser.add_argument(
        'checkpoints',
        nargs='+',
        metavar='CKPT',
        help='the CDCL checkpoint, then any single-dataset checkpoints',
    )
    parser.add_argument('--out-dir', required=True, help='folder for the JSON and the PNG')
    parser.add_argument('--labels', nargs='+', help='one name per checkpoint')
    parser.add_argument(
        '--layers',
        nargs='+',
        metavar='NAME',
        help='norm layers whose histograms to draw (default: three)',
    )
    args = parser.parse_args()
    try:
        summary = bn_statistics(
            args.config, args.checkpoints, args.out_dir, args.labels, args.layers
        )
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    cdcl = summary['checkpoints'][0]
    print(
        f'{cdcl["label"]}: {len(summary["layers"])} DSBN layers, branches '
        + ', '.join(cdcl['datasets'])
    )
    for source in summary['checkpoints'][1:]:
        shared = sum(source['label'] in layer['running_mean'] for layer in summary['layers'])
        print(f'{source["label"]}: BatchNorm statistics at {shared} of them')
    print('W2 between BN statistics, median over layers (channels paired / unpaired):')
    pairs = {}
    for layer in summary['layers']:
        for w in layer['wasserstein']:
            pairs.setdefault(pair_label(*w['between'], cdcl), []).append(w)
    width = max(map(len, pairs), default=0)
    for name, values in pairs.items():
        print(
            f'  {name:<{width}}  {np.median([w["paired"] for w in values]):.3g} / '
            f'{np.median([w["unpaired"] for w in values]):.3g}'
        )
    print(
        f'wrote {osp.join(args.out_dir, "bn_statistics.json")}\n'
        f'wrote {osp.join(args.out_dir, "bn_statistics.png")}'
    )


if __name__ == '__main__':
    main()
