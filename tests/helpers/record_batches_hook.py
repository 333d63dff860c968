"""A test hook: what each rank trained on, and the weights it ended with."""

import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class RecordBatchesHook(Hook):
    def __init__(self, out_dir):
        self.out_dir, self.batches, self.losses = out_dir, [], []

        self.classifiers = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.batches.append([s.img_path for s in data_batch['data_samples']])
        self.losses.append(float(outputs['loss']))
        # Each dataset's classifier (decode_head.conv_seg.<d>.*) after this iteration.
        sums = {}
        for name, p in runner.model.named_parameters():
            if '.conv_seg.' in name:
                d = name.split('.conv_seg.')[1].split('.')[0]
                sums[d] = sums.get(d, 0.0) + float(p.double().sum())
        self.classifiers.append(sums)

    def after_train(self, runner):
        weights = sum(float(p.double().sum()) for p in runner.model.parameters())
        with open(osp.join(self.out_dir, f'rank{get_rank()}.json'), 'w') as f:
            json.dump(
                dict(
                    batches=self.batches,
                    losses=self.losses,
                    weights=weights,
                    classifiers=self.classifiers,
                ),
                f,
            )
