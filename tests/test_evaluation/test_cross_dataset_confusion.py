"""Every head on every dataset's labelled images, with both BN choices: the confusions."""

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize

from mmseg_cdcl.evaluation.cross_dataset_confusion import confusion, cross_dataset_confusions, miou
from mmseg_cdcl.evaluation.label_space_learning import load_cdcl_model


def test_confusion_and_its_miou():
    labels = torch.tensor([[0, 1, 1], [2, 255, 0]])
    predictions = torch.tensor([[0, 1, 0], [1, 1, 0]])
    counts = confusion(labels, predictions, 3, 2, 255)
    np.testing.assert_array_equal(counts, [[2, 0], [1, 1], [0, 1]])
    # IoU: class 0 2/(3+2-2), class 1 1/(2+2-1), class 2 0/1
    assert miou(np.pad(counts, ((0, 0), (0, 1)))) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3 * 100)
    with pytest.raises(ValueError, match='a label 3 is not one of the 3 classes'):
        confusion(torch.tensor([3]), torch.tensor([0]), 3, 2, 255)


@pytest.fixture
def in_data(data_cwd, monkeypatch):
    monkeypatch.chdir(data_cwd)  # the configs' data/ roots


@pytest.mark.slow
def test_confusions_count_every_head_on_every_image(trained_cdcl, in_data):
    config, checkpoint = str(trained_cdcl / 'config.py'), str(trained_cdcl / 'iter_2.pth')
    model, cfg, classes, _ = load_cdcl_model(config, checkpoint)
    loader = Runner.build_dataloader(cfg.val_dataloader)
    measured = cross_dataset_confusions(model, loader, (0, 1), max_images=1)
    assert measured['images'] == {0: 1, 1: 1}
    # By hand: each image's features on a BN branch, then a classifier, at its original size.
    expected = {
        (bn, a, b): np.zeros((19 if a == 0 else 11, 19 if b == 0 else 11), np.int64)
        for bn in ('image', 'head')
        for a in (0, 1)
        for b in (0, 1)
    }
    seen = set()
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        for i, sample in enumerate(data['data_samples']):
            a = model.dataset_index(sample.dataset_name)
            if a in seen:
                continue
            seen.add(a)
            x, metas = data['inputs'][i : i + 1], [sample.metainfo]
            label = sample.gt_sem_seg.data[0]
            for b in (0, 1):
                for bn, norm in (('image', a), ('head', b)):
                    with torch.no_grad(), model.route(norm):
                        feats = model.decode_head._forward_feature(model.extract_feat(x))
                    with torch.no_grad():
                        logits = resize(
                            model.decode_head.conv_seg[b](feats),
                            size=metas[0]['img_shape'],
                            mode='bilinear',
                            align_corners=model.align_corners,
                        )
                    pred = EncoderDecoder.postprocess_result(model, logits, [sample])[0]
                    pred = pred.pred_sem_seg.data[0]
                    keep = label != 255
                    np.add.at(expected[(bn, a, b)], (label[keep].numpy(), pred[keep].numpy()), 1)
        if seen == {0, 1}:
            break
    for (bn, a, b), counts in expected.items():
        np.testing.assert_array_equal(
            measured['confusions'][bn][a][b], counts, err_msg=f'{bn} {a} {b}'
        )
        assert counts.sum() > 0
    np.testing.assert_array_equal(expected[('image', 0, 0)], expected[('head', 0, 0)])
