import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn

from conftest import seg_samples
from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.decode_heads import head_dataset
from mmseg_cdcl.models.layers import DSBN


def _psp(**kwargs):
    cfg = dict(
        type='DABPSPHead',
        in_channels=16,
        channels=8,
        pool_scales=(1, 2),
        num_classes=[5, 3],
        dropout_ratio=0,
        align_corners=False,
    )
    return MODELS.build({**cfg, **kwargs})


def test_one_classifier_per_dataset_and_dsbn_convs():
    head = _psp(num_classes=[19, 19, 11])
    assert [c.out_channels for c in head.conv_seg] == [19, 19, 11]
    norms = [m for m in head.modules() if isinstance(m, DSBN)]
    assert len(norms) == 3 and all(m.num_datasets == 3 for m in norms)  # 2 pools + bottleneck
    fcn = MODELS.build(
        dict(type='DABFCNHead', in_channels=16, channels=8, num_convs=1, num_classes=[19, 11])
    )
    assert [c.out_channels for c in fcn.conv_seg] == [19, 11]
    assert isinstance(fcn.convs[0].bn, DSBN)


def test_routed_forward_shapes_and_mixed_batches_refused():
    head = _psp()
    x = [torch.randn(4, 16, 6, 6)]
    for d, classes in enumerate([5, 3]):
        with dataset_context(head, d):
            assert head(x).shape == (4, classes, 6, 6)
    with dataset_context(head, [0, 0, 1, 1]), pytest.raises(
        RuntimeError,
        match=r'DatasetBranches\(num_datasets=2\) got a batch of several '
        r'datasets \[0, 1\]: per-dataset classifiers run on one dataset '
        r'at a time',
    ):
        head(x)


def test_loss_uses_each_dataset_ignore_index():
    head = _psp(ignore_index=[255, 0])
    x = torch.randn(4, 16, 8, 8)
    samples = seg_samples([0, 0, 1, 1], [5, 3], size=(8, 8))
    for sample in samples[2:]:  # dataset 1 marks ignored pixels with 0
        sample.gt_sem_seg.data[sample.gt_sem_seg.data == 255] = 0
    for d, (rows, ignore) in enumerate([(slice(0, 2), 255), (slice(2, 4), 0)]):
        with dataset_context(head, d), head_dataset(head, d):
            assert head.ignore_index == ignore and head.num_classes == [5, 3][d]
            logits = head([x[rows]])
            losses = head.loss_by_feat(logits, samples[rows])
        label = torch.cat([s.gt_sem_seg.data for s in samples[rows]])
        # MMSeg's CrossEntropyLoss averages over all pixels (avg_non_ignore=False).
        expected = F.cross_entropy(logits, label, ignore_index=ignore, reduction='none').mean()
        torch.testing.assert_close(losses['loss_ce'], expected)
    assert head.ignore_index == 255 and head.num_classes == 5  # left as they were


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(num_classes=19), r'DABPSPHead: num_classes must list the classes of each dataset'),
        (
            dict(num_classes=[19, 11], norm_cfg=dict(type='DSBN', num_datasets=3)),
            r'DABPSPHead with num_classes=\[19, 11\]: norm_cfg has num_datasets=3 but the '
            r'module is '
            r'built for 2 datasets',
        ),
        (
            dict(num_classes=[19, 11], ignore_index=[255, 255, 255]),
            r'DABPSPHead: ignore_index has 3 entries but num_classes has 2 \(one per dataset\)',
        ),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _psp(**kwargs)


def test_shared_bn_ablation_keeps_per_dataset_classifiers():
    head = _psp(norm_cfg=dict(type='BN', requires_grad=True))
    assert not any(isinstance(m, DSBN) for m in head.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in head.modules())
    for d, classes in enumerate([5, 3]):
        with dataset_context(head, d):
            assert head([torch.randn(2, 16, 4, 4)]).shape[1] == classes
