"""FLOPs and parameters of a CDCL model on one dataset against its plain MMSeg counterpart.

    python tools/model_complexity.py [CONFIG] [--dataset NAME] [--shape H W]

Counts with mmengine.analysis.get_model_complexity_info on the tensor-mode forward (decode head;
the auxiliary head only trains), parameters of the whole model.
"""

import argparse
import logging
import os.path as osp

from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_cdcl.apis import plain_model_cfg

DEFAULT = osp.join(
    osp.dirname(__file__), '..', 'configs', '_base_', 'models', 'cdcl_pspnet_r18-d8.py'
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=DEFAULT)
    parser.add_argument('--dataset', help='dataset name (default: the first)')
    parser.add_argument('--shape', type=int, nargs=2, default=(512, 512))
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # the counter's per-op warnings
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.pretrained = None
    names = list(cfg.model.dataset_names)
    dataset = args.dataset or names[0]
    if dataset not in names:
        parser.error(f"unknown dataset '{dataset}': the model's datasets are {names}")
    cfg.model.default_dataset = dataset
    models = {
        'CDCL (routed to ' + dataset + ')': MODELS.build(cfg.model),
        'plain MMSeg counterpart': MODELS.build(
            plain_model_cfg(cfg.model.to_dict(), names.index(dataset))
        ),
    }
    print(f'input 3x{args.shape[0]}x{args.shape[1]}')
    for name, model in models.items():
        stats = get_model_complexity_info(
            model.eval(), input_shape=(3, *args.shape), show_table=False, show_arch=False
        )
        print(f'{name:34s} FLOPs {stats["flops"]:>15,d}  params {stats["params"]:>11,d}')


if __name__ == '__main__':
    main()
