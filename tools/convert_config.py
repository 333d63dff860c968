"""Write a CDCL config from a stock single-dataset MMSeg config and MMSeg dataset configs.

    python tools/convert_config.py STOCK_CONFIG --dataset NAME=DATASET_CONFIG [...] -o OUT.py
                                   [--batch-size NAME=N ...]

The written config inherits STOCK_CONFIG (model, schedule, optimizer, runtime) and states what
CDCL changes: the model's datasets and their classes (``CDCLEncoderDecoder``), a
``MultiDataset`` of the datasets with each one's own pipeline for training, validation and
testing, ``MultiDatasetSampler`` batches (per dataset: the stock batch size unless
``--batch-size``), ``DATTrainLoop`` and ``MultiDatasetIoUMetric``. It trains with
``tools/train.py OUT.py`` as it is. The command line of :func:`mmseg_cdcl.apis.convert_config`.
A ``configs/...`` config that is not in the current folder is the shipped one (as with
``mmseg-cdcl convert_config``, also under ``mim run``); OUT's folder is made if missing.
Example::

    python tools/convert_config.py \\
        mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py \\
        --dataset cityscapes=mmseg::_base_/datasets/cityscapes.py \\
        --dataset camvid=configs/_base_/datasets/camvid.py -o configs/my_cdcl.py
"""

import argparse
import os
import os.path as osp
import sys
from typing import Dict, List

from mmseg_cdcl.apis import config_source
from mmseg_cdcl.utils.shipped_files import shipped_args, tool_command


def _pairs(values: List[str], what: str, parser) -> Dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition('=')
        if not sep or not name or not rest:
            parser.error(f'{what} {value!r}: expected NAME=VALUE')
        if name in pairs:
            parser.error(f'{what} names {name!r} twice')
        pairs[name] = rest
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('stock_config', help='a single-dataset MMSeg config (path or mmseg::...)')
    parser.add_argument(
        '--dataset',
        action='append',
        required=True,
        metavar='NAME=CONFIG',
        help='a dataset and its MMSeg dataset config, in dataset order',
    )
    parser.add_argument(
        '--batch-size',
        action='append',
        default=[],
        metavar='NAME=N',
        help='images of dataset NAME per iteration and process (default: the '
        "stock config's batch size)",
    )
    parser.add_argument('-o', '--out', required=True, help='the CDCL config to write')
    # `mim run` passes the arguments as they are: its configs/... are the shipped ones here too.
    args = parser.parse_args(shipped_args(sys.argv[1:] if argv is None else list(argv)))
    if osp.isdir(args.out):
        parser.error(f'-o {args.out}: a folder; expected the path of the config file to write')
    datasets = _pairs(args.dataset, '--dataset', parser)
    if len(datasets) < 2:
        parser.error('CDCL trains on several datasets: give --dataset at least twice')
    sizes = _pairs(args.batch_size, '--batch-size', parser)
    try:
        sizes = {name: int(n) for name, n in sizes.items()}
        if any(n < 1 for n in sizes.values()):
            raise ValueError
    except ValueError:
        parser.error(f'--batch-size {args.batch_size}: expected positive whole numbers')
    try:
        source = config_source(args.stock_config, datasets, sizes)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(source)
    print(
        f'wrote {args.out}: CDCL over {", ".join(datasets)}; train it with '
        f'{tool_command("train")} {args.out}',
        file=sys.stderr,
    )


if __name__ == '__main__':
    main()
