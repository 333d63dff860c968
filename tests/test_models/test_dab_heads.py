import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn

from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.layers import DSBN
from conftest import seg_samples


def _psp(**kwargs):
    cfg = dict(type='DABPSPHead', in_channels=16, channels=8, pool_scales=(1, 2),
               num_classes=[5, 3], dropout_ratio=0, align_corners=False)
    return MODELS.build({**cfg, **kwargs})


def test_one_classifier_per_dataset_and_dsbn_convs():
    head = _psp(num_classes=[19, 19, 11])
    assert [c.out_channels for c in head.conv_seg] == [19, 19, 11]
    norms = [m for m in head.modules() if isinstance(m, DSBN)]
    assert len(norms) == 3 and all(m.num_datasets == 3 for m in norms)  # 2 pools + bottleneck
    fcn = MODELS.build(dict(type='DABFCNHead', in_channels=16, channels=8, num_convs=1,
                            num_classes=[19, 11]))
    assert [c.out_channels for c in fcn.conv_seg] == [19, 11]
    assert isinstance(fcn.convs[0].bn, DSBN)


def test_routed_forward_shapes():
    head = _psp()
    x = [torch.randn(4, 16, 6, 6)]
    with dataset_context(head, 1):
        assert head(x).shape == (4, 3, 6, 6)
    with dataset_context(head, [0, 0, 1, 1]):
        logits = head(x)
    assert [tuple(t.shape) for t in logits] == [(2, 5, 6, 6), (2, 3, 6, 6)]


def test_loss_uses_each_dataset_ignore_index():
    head = _psp(ignore_index=[255, 0])
    x = [torch.randn(4, 16, 8, 8)]
    samples = seg_samples([0, 0, 1, 1], [5, 3], size=(8, 8))
    for sample in samples[2:]:  # dataset 1 marks ignored pixels with 0
        sample.gt_sem_seg.data[sample.gt_sem_seg.data == 255] = 0
    with dataset_context(head, [0, 0, 1, 1]):
        logits = head(x)
        losses = head.loss_by_feat(logits, samples)
    assert set(losses) == {'0.loss_ce', '0.acc_seg', '1.loss_ce', '1.acc_seg'}
    for d, (rows, ignore) in enumerate([(slice(0, 2), 255), (slice(2, 4), 0)]):
        label = torch.cat([s.gt_sem_seg.data for s in samples[rows]])
        # MMSeg's CrossEntropyLoss averages over all pixels (avg_non_ignore=False).
        expected = F.cross_entropy(logits[d], label, ignore_index=ignore, reduction='none').mean()
        torch.testing.assert_close(losses[f'{d}.loss_ce'], expected)
    assert head.ignore_index == 255  # the base head's attribute is left as it was


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_classes=19), r'DABPSPHead: num_classes must list the classes of each dataset'),
    (dict(num_classes=[19, 11], norm_cfg=dict(type='DSBN', num_datasets=3)),
     r'DABPSPHead with num_classes=\[19, 11\]: norm_cfg has num_datasets=3 but the module is '
     r'built for 2 datasets'),
    (dict(num_classes=[19, 11], ignore_index=[255, 255, 255]),
     r'DABPSPHead: ignore_index has 3 entries but num_classes has 2 \(one per dataset\)'),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _psp(**kwargs)


def test_shared_bn_ablation_keeps_per_dataset_classifiers():
    head = _psp(norm_cfg=dict(type='BN', requires_grad=True))
    assert not any(isinstance(m, DSBN) for m in head.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in head.modules())
    with dataset_context(head, [0, 1]):
        assert [t.shape[1] for t in head([torch.randn(2, 16, 4, 4)])] == [5, 3]
