"""The deployment matrix: every route through every entry point agrees with one reference
prediction, in the class names and colours of its space, or is refused with a clear error.

Routes: a named dataset, auto, ensemble, a label space (and a label space evaluated in each
dataset's classes, ``test_cfg.output_space='dataset'``), a branch added from unlabelled
images. Entry points: ``tools/test.py`` (plain, ``--out``, ``--show-dir``, ``--tta``),
validation as training runs it, MMSeg's ``init_model`` + ``inference_model`` +
``show_result_pyplot``, ``MMSegInferencer``, ``tools/infer.py``, and the export in stock MMSeg
(``init_model``, ``MMSegInferencer``, ``tools/test.py``). docs/usage.md's table "What each entry
point does with each route" summarises this file; a new route or entry point adds its row here.

One model serves every row: tests/conftest.py's 2-iteration Cityscapes + CamVid run (19 and 11
classes, so that ids of two spaces differ). The reference is the model's own branch logits on
each test image (``encode_decode`` of its dataset's test pipeline), mapped into a label space
here, independently of the package's mapping.
"""

import glob
import json
import os
import os.path as osp
import runpy
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.apis import MMSegInferencer, inference_model, init_model, show_result_pyplot
from mmseg.datasets import CityscapesDataset
from mmseg.models.utils import resize
from mmseg.registry import DATASETS, MODELS

from conftest import ONE_VIEW, REPO
from mmseg_cdcl.apis import add_dataset_branch, export_single_dataset, load_cdcl_checkpoint
from mmseg_cdcl.datasets import CamVidDataset
from mmseg_cdcl.structures import LABEL_SPACE
from mmseg_cdcl.testing import shrink_datasets, unformatted
from mmseg_cdcl.utils import mmengine_checkpoints_allowed, run_mmseg_tool

pytestmark = pytest.mark.slow

NAMES = ('cityscapes', 'camvid')
OWN = dict(cityscapes=CityscapesDataset.METAINFO, camvid=CamVidDataset.METAINFO)
SPACE_BASE = osp.join(REPO, 'configs', '_base_', 'label_spaces', 'cityscapes_to_camvid.py')
LABEL = Config.fromfile(SPACE_BASE).label_space
# Cityscapes' classes into CamVid's 11; CamVid's are the label space's own.
LABEL_SPACE_CFG = dict(
    classes=list(LABEL.classes),
    palette=LABEL.palette,
    mapping=dict(cityscapes=LABEL.mapping.cityscapes),
)


class Prediction(np.ndarray):
    """A reference prediction (class ids) and where its top two scores are within float noise
    of each other (``ties``): there another order of the same sums may choose the other."""

    @staticmethod
    def of(scores: torch.Tensor) -> 'Prediction':
        top = scores.topk(2, dim=0).values
        pred = scores.argmax(0).numpy().view(Prediction)
        pred.ties = (top[0] - top[1]).numpy() < 1e-4
        return pred


def _agrees(actual, expected: Prediction):
    """Equal class ids wherever the reference is not a tie."""
    actual, sure = np.asarray(actual), ~expected.ties
    np.testing.assert_array_equal(actual[sure], np.asarray(expected)[sure])
    # a 2-iteration model: near-uniform probabilities, so sums of three classes can tie
    assert expected.ties.mean() < 0.05  # few, or the reference would say little


class Reference:
    """Each test image's branch logits, straight from the model, and what each route must
    predict from them: mapped into a label space at the network's resolution, then resized to
    the image as MMSeg resizes logits."""

    def __init__(self, cfg: Config, checkpoint: str):
        model = MODELS.build(cfg.model)
        load_cdcl_checkpoint(model, checkpoint)
        model.eval()
        self.names = list(model.dataset_names)
        self.align_corners = model.align_corners
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        self.images = {}
        with torch.no_grad():
            for i in range(len(dataset)):
                item = dataset[i]
                data = model.data_preprocessor(
                    dict(inputs=[item['inputs']], data_samples=[item['data_samples']])
                )
                meta = data['data_samples'][0].metainfo
                logits = {}
                for d, name in enumerate(self.names):
                    with model.dataset(d):
                        logits[name] = model.encode_decode(data['inputs'], [meta])
                self.images[meta['img_path']] = dict(
                    dataset=meta['dataset_name'],
                    label=data['data_samples'][0].gt_sem_seg.data[0].numpy(),
                    logits=logits,
                    size=meta['ori_shape'],
                )

    def paths(self, dataset=None):
        return sorted(p for p, v in self.images.items() if dataset in (None, v['dataset']))

    def one_each(self):
        """An image of each dataset: what the single-image entry points are tried on."""
        return [self.paths(name)[0] for name in NAMES]

    def _resized(self, path, scores):
        size = self.images[path]['size']
        return Prediction.of(
            resize(scores, size, mode='bilinear', align_corners=self.align_corners)[0]
        )

    def branch(self, path, name):
        """The prediction of ``name``'s branch, in its dataset's classes."""
        return self._resized(path, self.images[path]['logits'][name])

    def own(self, path):
        return self.branch(path, self.images[path]['dataset'])

    def label_space_probabilities(self, path, name):
        """``name``'s branch's probabilities summed into the label space's classes."""
        probs = self.images[path]['logits'][name].softmax(1)
        targets = torch.zeros(1, len(LABEL.classes), *probs.shape[2:])
        for c, target in enumerate(_table(name)):
            if target != 255:
                targets[:, target] += probs[:, c]
        return targets

    def in_label_space(self, path, name=None):
        """The prediction of ``name``'s branch (the image's dataset's) in the label space."""
        probs = self.label_space_probabilities(path, name or self.images[path]['dataset'])
        return self._resized(path, probs.clamp_min(1e-12).log())

    def ensemble(self, path, scores):
        combined = sum(scores[n] * self.label_space_probabilities(path, n) for n in self.names)
        return self._resized(path, combined.clamp_min(1e-12).log())

    def label(self, path, in_label_space=False):
        label = self.images[path]['label']
        if not in_label_space:
            return label
        lut = np.full(256, 255, np.int64)
        lut[: len(_table(self.images[path]['dataset']))] = _table(self.images[path]['dataset'])
        return lut[label]

    def miou(self, dataset, predict, in_label_space=False):
        """mIoU (%) of ``predict(path)`` over ``dataset``'s images, as IoUMetric scores it."""
        classes = len(LABEL.classes) if in_label_space else len(OWN[dataset]['classes'])
        paths = self.paths(dataset)
        return _miou(((self.label(p, in_label_space), predict(p)) for p in paths), classes)


def _miou(pairs, classes):
    """mIoU (%) over ``(label, prediction)`` pairs of ``classes`` classes, as IoUMetric scores
    it (255: unlabelled)."""
    inter, union = np.zeros(classes), np.zeros(classes)
    for label, pred in pairs:
        valid = label != 255
        for c in range(classes):
            inter[c] += np.sum((pred == c) & (label == c) & valid)
            union[c] += np.sum(((pred == c) | (label == c)) & valid)
    with np.errstate(invalid='ignore'):
        return float(np.round(np.nanmean(inter / union) * 100, 2))


def _table(name):
    """The label space's id of each of ``name``'s class ids (255: none)."""
    if name == 'camvid':
        return list(range(len(LABEL.classes)))
    return [255 if t is None else list(LABEL.classes).index(t) for t in LABEL.mapping.cityscapes]


def _drawn_config(run, data_cwd):
    """A trained run's config with absolute data roots, drawing each image in its palette's
    colours, one view per dataset under --tta."""
    base = Config.fromfile(str(run / 'config.py'))
    shrink_datasets(base, (64, 64), str(data_cwd / 'data'))
    base.default_hooks.visualization = dict(type='SegVisualizationHook', interval=1)
    base.visualizer.update(alpha=1.0, with_labels=False)  # drawn colours are the palette's
    base.tta_pipeline = {name: ONE_VIEW for name in NAMES}
    return base


@pytest.fixture(scope='module')
def deployment(trained_cdcl, data_cwd, tmp_path_factory):
    """The trained model's config in each form a route needs, written as files, with absolute
    data roots; the reference; a branch added from CamVid's training images; an export."""
    folder = tmp_path_factory.mktemp('deployment')
    checkpoint = str(trained_cdcl / 'iter_2.pth')
    base = _drawn_config(trained_cdcl, data_cwd)
    configs = {}

    def write(key, **model):
        cfg = Config(base.to_dict())
        cfg.model.update(model)
        configs[key] = str(folder / f'{key}.py')
        unformatted(cfg).dump(configs[key])

    write('plain')
    for name in (*NAMES, 'auto'):
        write(name, default_dataset=name)
    write('label', label_space=LABEL_SPACE_CFG)
    write(
        'label_dataset',
        label_space=LABEL_SPACE_CFG,
        test_cfg=dict(mode='whole', output_space='dataset'),
    )
    write('ensemble', label_space=LABEL_SPACE_CFG, default_dataset='ensemble')
    write('label_auto', label_space=LABEL_SPACE_CFG, default_dataset='auto')
    write('label_cityscapes', label_space=LABEL_SPACE_CFG, default_dataset='cityscapes')
    added_config, added_checkpoint, _ = add_dataset_branch(
        configs['plain'],
        checkpoint,
        'camvid_new',
        str(data_cwd / 'data' / 'camvid' / 'images' / 'train'),
        str(folder / 'added'),
        source='camvid',
    )
    cfg = Config.fromfile(added_config)
    cfg.model.default_dataset = 'camvid_new'
    configs['added'] = str(folder / 'added_new.py')
    unformatted(cfg).dump(configs['added'])
    return dict(
        folder=folder,
        configs=configs,
        checkpoint=checkpoint,
        reference=Reference(base, checkpoint),
        added=(
            added_config,
            added_checkpoint,
            Reference(Config.fromfile(added_config), added_checkpoint),
        ),
    )


def _test_tool(config, checkpoint, work_dir, *args, options=()):
    """MMSeg's tools/test.py as ``python tools/test.py`` runs it (in this process); the
    metrics it logged."""
    run = f'matrix_{time.time_ns()}'  # mmengine shares loggers and visualizers by name
    argv = ['tools/test.py', config, checkpoint, '--work-dir', str(work_dir), *args]
    argv += ['--cfg-options', f'experiment_name={run}', f'visualizer.name={run}', *options]
    saved = sys.argv
    sys.argv = argv
    try:
        run_mmseg_tool('test.py')
    finally:
        sys.argv = saved
    [log] = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    with open(log) as f:
        return json.loads(f.readlines()[-1])


def _png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _drawn(path):
    return cv2.imread(str(path))[..., ::-1]


def _colours(pred, palette):
    return np.array(palette, np.uint8)[np.asarray(pred)]


def _scored(metrics, ref, out, predict, in_label_space, names=NAMES):
    """The tool's ``--out`` predictions agree with the reference's (``predict``), and the
    metrics it logged are the mIoU of those predictions, counted here independently."""
    written = {p: _png(out / ref.images[p]['dataset'] / f'{_name(p)}.png') for p in ref.paths()}
    for name in names:
        for path in ref.paths(name):
            _agrees(written[path], predict(path))
        assert metrics[f'{name}/mIoU'] == pytest.approx(
            ref.miou(name, written.get, in_label_space), abs=0.006
        ), name


def _drawn_agrees(drawn, expected: Prediction, palette):
    """A drawing in ``palette``'s colours of the reference, wherever it is not a tie."""
    sure = ~expected.ties
    np.testing.assert_array_equal(drawn[sure], _colours(expected, palette)[sure])


def _name(path):
    return osp.splitext(osp.basename(path))[0]


# ---------------------------------------------------------------- tools/test.py and validation


@pytest.mark.parametrize(
    'config,in_label_space',
    [('plain', False), ('label', True), ('label_dataset', False)],
    # the label space evaluated in each dataset's classes equals the model without it
    ids=['datasets', 'label_space', 'label_space_output_dataset'],
)
def test_test_tool_scores_out_and_draws_each_dataset_in_the_space_of_its_predictions(
    deployment, tmp_path, config, in_label_space
):
    ref = deployment['reference']
    out, show = tmp_path / 'out', tmp_path / 'show'
    metrics = _test_tool(
        deployment['configs'][config],
        deployment['checkpoint'],
        tmp_path / 'work',
        '--out',
        str(out),
        '--show-dir',
        str(show),
    )
    predict = ref.in_label_space if in_label_space else ref.own
    _scored(metrics, ref, out, predict, in_label_space)
    for name in NAMES:
        meta = LABEL if in_label_space else OWN[name]
        for path in ref.paths(name):
            # --show-dir: ground truth | prediction, both in that space's colours
            [drawn] = glob.glob(str(show / '**' / f'*{_name(path)}*'), recursive=True)
            gt_half, pred_half = np.split(_drawn(drawn), 2, axis=1)
            _drawn_agrees(pred_half, predict(path), meta['palette'])
            label = ref.label(path, in_label_space)
            np.testing.assert_array_equal(
                gt_half[label != 255], _colours(label[label != 255], meta['palette'])
            )


@pytest.mark.parametrize('config,in_label_space', [('plain', False), ('label', True)])
def test_tta_merges_views_in_the_space_of_the_prediction(
    deployment, tmp_path, config, in_label_space
):
    ref = deployment['reference']
    out = tmp_path / 'out'
    metrics = _test_tool(
        deployment['configs'][config],
        deployment['checkpoint'],
        tmp_path / 'w',
        '--tta',
        '--out',
        str(out),
    )
    _scored(metrics, ref, out, ref.in_label_space if in_label_space else ref.own, in_label_space)


@pytest.mark.parametrize('config', ['plain', 'label'])
def test_validation_scores_as_the_test_tool(deployment, tmp_path, config):
    """Validation during training runs the same metric on the val loader (the same images
    here): Runner.val() scores as tools/test.py does, in the same space."""
    cfg = unformatted(Config.fromfile(deployment['configs'][config]))
    cfg.update(work_dir=str(tmp_path / 'val'), load_from=deployment['checkpoint'])
    cfg.default_hooks.pop('checkpoint')  # save_best needs a training run's file backend
    cfg.experiment_name = cfg.visualizer.name = f'val_{config}_{time.time_ns()}'
    metrics = Runner.from_cfg(cfg).val()
    tested = _test_tool(deployment['configs'][config], deployment['checkpoint'], tmp_path / 't')
    for name in NAMES:
        assert metrics[f'{name}/mIoU'] == pytest.approx(tested[f'{name}/mIoU'], abs=1e-4)


def test_unknown_source_evaluation_needs_a_label_space_and_writes_autos_prediction(
    deployment, tmp_path
):
    """tools/test.py on images of unknown source: every route scored in the label space; --out
    writes auto's prediction; without a label space the model's datasets of other classes are
    refused at build."""
    ref = deployment['reference']
    cfg = Config.fromfile(deployment['configs']['label'])
    cfg.test_evaluator = dict(
        type='UnknownSourceMetric', label_space=cfg.model.label_space.to_dict()
    )
    cfg.model.test_cfg.unknown_source = True
    unknown = str(tmp_path / 'unknown.py')
    unformatted(cfg).dump(unknown)
    out = tmp_path / 'out'
    metrics = _test_tool(unknown, deployment['checkpoint'], tmp_path / 'w', '--out', str(out))
    routed = _test_tool(deployment['configs']['label'], deployment['checkpoint'], tmp_path / 'r')
    for name in NAMES:
        # the oracle route is the image's dataset's branch in the label space
        assert metrics[f'{name}/oracle/mIoU'] == pytest.approx(routed[f'{name}/mIoU'], abs=1e-4)
        for path in ref.paths(name):
            written = _png(out / name / f'{_name(path)}.png')
            assert written is not None, sorted(glob.glob(str(out / '**'), recursive=True))
            chosen = []  # auto's: one of the branches' predictions in the label space
            for n in NAMES:
                expected = ref.in_label_space(path, n)
                sure = ~expected.ties
                chosen += [np.array_equal(written[sure], np.asarray(expected)[sure])]
            assert any(chosen)
    cfg = Config.fromfile(deployment['configs']['plain'])
    cfg.model.test_cfg.unknown_source = True
    with pytest.raises(ValueError, match='test_cfg.unknown_source=True .its ensemble route. adds'):
        MODELS.build(cfg.model)


def _reversed(config, path):
    """The config with its datasets in the other order (each head's classes follow)."""
    cfg = Config.fromfile(config)
    cfg.model.dataset_names = cfg.model.dataset_names[::-1]
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.num_classes = head.num_classes[::-1]
    unformatted(cfg).dump(path)
    return path


def _wrapped(checkpoint, path, statement=True):
    """The checkpoint as DistributedDataParallel's ``state_dict()`` writes it (keys and metadata
    under ``module``), or, without ``statement``, as written before state dicts stated their
    datasets (its ``meta`` still names them)."""
    with mmengine_checkpoints_allowed():
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state, metadata = ckpt['state_dict'], ckpt['state_dict']._metadata
    if statement:
        ckpt['state_dict'] = type(state)((f'module.{k}', v) for k, v in state.items())
        ckpt['state_dict']._metadata = type(metadata)(
            [('', dict(version=1))]
            + [(f'module.{k}' if k else 'module', v) for k, v in metadata.items()]
        )
    else:
        for key in ('dataset_names', 'datasets'):
            metadata[''].pop(key)
    torch.save(ckpt, path)
    return str(path)


@pytest.mark.parametrize('form', ['ddp', 'pre_statement'])
def test_checkpoint_forms_through_the_test_tool_in_another_dataset_order(
    deployment, tmp_path, form
):
    """Each dataset's branches by name whatever the order of the model's datasets: a DDP
    checkpoint (its statement under ``module``), an old one (its meta's names). The loaders'
    side of every form: tests/test_apis/test_checkpoint.py."""
    ref = deployment['reference']
    config = _reversed(deployment['configs']['plain'], str(tmp_path / 'reversed.py'))
    checkpoint = _wrapped(deployment['checkpoint'], tmp_path / f'{form}.pth', form == 'ddp')
    metrics = _test_tool(config, checkpoint, tmp_path / 'w', '--out', str(tmp_path / 'out'))
    _scored(metrics, ref, tmp_path / 'out', ref.own, False)


# ---------------------------------------------------- MMSeg's inference APIs, tools/infer.py


def _expected(deployment, route, path, result):
    """What ``route`` must predict for ``path``: the prediction and its space's palette."""
    ref = deployment['reference']
    if route in NAMES:
        return ref.branch(path, route), OWN[route]
    if route == 'auto':
        chosen = result.metainfo['dataset_name']
        return ref.branch(path, chosen), OWN[chosen]
    if route in ('label_auto', 'label_cityscapes'):
        chosen = result.metainfo.get('dataset_name', 'cityscapes')
        return ref.in_label_space(path, chosen), LABEL
    if route == 'ensemble':
        return ref.ensemble(path, result.metainfo['dataset_scores']), LABEL
    raise KeyError(route)


ROUTES = ['cityscapes', 'camvid', 'auto', 'label_cityscapes', 'label_auto', 'ensemble']


@pytest.mark.parametrize('route', ROUTES)
def test_init_model_inference_model_and_show_result_pyplot(deployment, tmp_path, route):
    # a Runner's checkpoint: stock init_model reads it under the plugin's allow-list
    # (docs/reliability.md), as stock MMSeg needs for any mmengine checkpoint under torch 2.6+
    with mmengine_checkpoints_allowed():
        model = init_model(deployment['configs'][route], deployment['checkpoint'], device='cpu')
    for path in deployment['reference'].one_each():
        result = inference_model(model, path)
        pred, meta = _expected(deployment, route, path, result)
        _agrees(result.pred_sem_seg.data[0].numpy(), pred)
        assert result.metainfo['prediction_space']['name'] == (
            LABEL_SPACE if meta is LABEL else result.metainfo.get('dataset_name', route)
        )
        if route == 'auto':  # the datasets have other classes: no one list draws them all
            with pytest.raises(ValueError, match="default_dataset='auto' predicts each image in"):
                show_result_pyplot(
                    model, path, result, show=False, out_file=str(tmp_path / 'x.png')
                )
            continue
        assert tuple(model.dataset_meta['classes']) == tuple(meta['classes'])
        out = tmp_path / f'{_name(path)}.png'
        show_result_pyplot(
            model,
            path,
            result,
            opacity=1.0,
            draw_gt=False,
            with_labels=False,
            show=False,
            out_file=str(out),
        )
        _drawn_agrees(_drawn(out), pred, meta['palette'])


@pytest.mark.parametrize('route', ROUTES)
def test_mmseg_inferencer(deployment, tmp_path, route):
    with mmengine_checkpoints_allowed():  # a Runner's checkpoint, as for init_model
        inferencer = MMSegInferencer(
            deployment['configs'][route], deployment['checkpoint'], device='cpu'
        )
    for path in deployment['reference'].one_each():
        result = inferencer(path, return_datasamples=True)
        pred, meta = _expected(deployment, route, path, result)
        _agrees(result.pred_sem_seg.data[0].numpy(), pred)
        inferencer(path, out_dir=str(tmp_path), opacity=1.0, with_labels=False)
        drawn = _drawn(tmp_path / 'vis' / osp.basename(path))
        _drawn_agrees(drawn, pred, meta['palette'])


@pytest.mark.parametrize('route', ROUTES)
def test_infer_tool(deployment, tmp_path, route, monkeypatch):
    ref = deployment['reference']
    dataset = dict(label_auto='auto', label_cityscapes='cityscapes').get(route, route)
    labelled = route in ('label_auto', 'label_cityscapes', 'ensemble')
    config = deployment['configs']['label' if labelled else 'plain']
    with mmengine_checkpoints_allowed():
        model = init_model(deployment['configs'][route], deployment['checkpoint'], device='cpu')
    for path in ref.one_each():
        argv = ['infer.py', config, deployment['checkpoint'], path, '--out-dir', str(tmp_path)]
        monkeypatch.setattr(sys, 'argv', argv + ['--dataset', dataset])
        runpy.run_path(osp.join(REPO, 'tools', 'infer.py'), run_name='__main__')
        pred, meta = _expected(deployment, route, path, inference_model(model, path))
        _drawn_agrees(_drawn(tmp_path / f'{_name(path)}.png'), pred, meta['palette'])


# ---------------------------------------------------------------- a branch added from images


def test_added_branch_through_every_entry_point(deployment, tmp_path):
    """The new camera's branch: its own route in MMSeg's APIs and the export; tools/test.py on
    the new config scores the old datasets exactly as before (their branches unchanged)."""
    config, checkpoint, ref = deployment['added']
    added = deployment['configs']['added']
    model = init_model(added, checkpoint, device='cpu')
    inferencer = MMSegInferencer(added, checkpoint, device='cpu')
    exported = export_single_dataset(config, checkpoint, 'camvid_new', str(tmp_path / 'export'))
    plain = init_model(*exported, device='cpu')
    for path in deployment['reference'].one_each():
        expected = ref.branch(path, 'camvid_new')
        for result in (
            inference_model(model, path),
            inferencer(path, return_datasamples=True),
            inference_model(plain, path),
        ):
            _agrees(result.pred_sem_seg.data[0].numpy(), expected)
        assert tuple(model.dataset_meta['classes']) == tuple(OWN['camvid']['classes'])
    assert tuple(plain.dataset_meta['classes']) == tuple(OWN['camvid']['classes'])
    before = _test_tool(deployment['configs']['plain'], deployment['checkpoint'], tmp_path / 'a')
    after = _test_tool(config, checkpoint, tmp_path / 'b')
    for name in NAMES:
        assert after[f'{name}/mIoU'] == before[f'{name}/mIoU']


# ---------------------------------------------------------------- the export in stock MMSeg


@pytest.mark.parametrize('config,dataset', [('plain', 'cityscapes'), ('label', 'camvid')])
def test_export_in_stock_mmseg(deployment, tmp_path, config, dataset):
    """The export predicts in its dataset's classes (a label space is carried, not applied):
    stock init_model, MMSegInferencer and tools/test.py agree with the branch."""
    ref = deployment['reference']
    config_path, checkpoint = export_single_dataset(
        deployment['configs'][config], deployment['checkpoint'], dataset, str(tmp_path)
    )
    model = init_model(config_path, checkpoint, device='cpu')
    inferencer = MMSegInferencer(config_path, checkpoint, device='cpu')
    assert tuple(model.dataset_meta['classes']) == tuple(OWN[dataset]['classes'])
    for path in ref.paths(dataset):
        for result in (inference_model(model, path), inferencer(path, return_datasamples=True)):
            _agrees(result.pred_sem_seg.data[0].numpy(), ref.branch(path, dataset))
    if dataset == 'cityscapes':  # a dataset MMSeg knows: its own tools/test.py
        out = tmp_path / 'out'
        metrics = _test_tool(config_path, checkpoint, tmp_path / 'w', '--out', str(out / dataset))
        _scored({f'{dataset}/mIoU': metrics['mIoU']}, ref, out, ref.own, False, [dataset])
    assert os.path.isfile(checkpoint)


# --------------------------------------------------- a universal model (universal_head=True)

UNIVERSAL = Config.fromfile(
    osp.join(REPO, 'configs', '_base_', 'label_spaces', 'universal_cityscapes_camvid.py')
).label_space
UNIVERSAL_META = dict(classes=tuple(UNIVERSAL.classes), palette=UNIVERSAL.palette)


class UniversalReference(Reference):
    """Each test image's universal logits of each branch (:class:`Reference`'s) and what each
    route predicts from them: their argmax (the universal classes), or the probabilities summed
    over each class's universal classes (the image's dataset's), computed here from the label
    space file's mapping. Its labels are the test set's as they are."""

    def universal(self, path, branch=None):
        logits = self.images[path]['logits'][branch or self.images[path]['dataset']]
        return self._resized(path, logits.log_softmax(1))

    def own(self, path):
        image = self.images[path]
        p = image['logits'][image['dataset']].softmax(1)
        unions = [[t] if isinstance(t, str) else t for t in UNIVERSAL.mapping[image['dataset']]]
        summed = torch.stack(
            [sum(p[:, UNIVERSAL.classes.index(u)] for u in us) for us in unions], 1
        )
        return self._resized(path, summed.clamp_min(1e-12).log())

    def label(self, path, in_label_space=False):
        return self.images[path]['label']

    def miou(self, dataset, predict, in_label_space=False):
        classes = len(UNIVERSAL.classes) if in_label_space else len(OWN[dataset]['classes'])
        paths = self.paths(dataset)
        return _miou(((self.label(p), np.asarray(predict(p))) for p in paths), classes)


@pytest.fixture(scope='module')
def universal(trained_universal, data_cwd, tmp_path_factory):
    """The 2-iteration universal model's config in the forms its routes need: as trained (each
    dataset scored in its own classes), in the label space with CamVid's labels in the universal
    classes (the demo data's side folder), routed to CamVid; its reference."""
    folder = tmp_path_factory.mktemp('universal')
    checkpoint = str(trained_universal / 'iter_2.pth')
    base = _drawn_config(trained_universal, data_cwd)
    configs = {}

    def write(key, cfg):
        configs[key] = str(folder / f'{key}.py')
        unformatted(cfg).dump(configs[key])

    write('dataset', base)
    in_19 = Config(base.to_dict())
    in_19.model.test_cfg.output_space = 'label_space'
    camvid = in_19.test_dataloader.dataset.datasets.camvid
    in_19.test_dataloader.dataset.datasets.camvid = dict(
        type='BaseSegDataset',
        metainfo=UNIVERSAL_META,
        data_root=camvid.data_root,
        data_prefix=dict(img_path='images/val', seg_map_path='universal_annotations/val'),
        img_suffix='.png',
        seg_map_suffix='.png',
        pipeline=camvid.pipeline,
    )
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
        in_19[key] = None  # as the shipped 19-class test config: trains nothing
    write('label_space', in_19)
    routed = Config(in_19.to_dict())
    routed.model.default_dataset = 'camvid'
    write('camvid', routed)
    return dict(
        folder=folder,
        configs=configs,
        checkpoint=checkpoint,
        own=UniversalReference(base, checkpoint),
        in_19=UniversalReference(in_19, checkpoint),
    )


@pytest.mark.parametrize(
    'config,tta', [('dataset', False), ('label_space', False), ('label_space', True)]
)
def test_universal_model_through_the_test_tool(universal, tmp_path, config, tta):
    """Each dataset in its own classes (the universal probabilities summed over each class's
    universal classes), or every image in the 19 universal classes where labels in them exist
    (CamVid's, in the demo data's side folder): scored, written (--out) and drawn (--show-dir)
    there; --tta merges the views there."""
    in_19 = config == 'label_space'
    ref = universal['in_19' if in_19 else 'own']
    out, show = tmp_path / 'out', tmp_path / 'show'
    args = ['--tta'] if tta else ['--show-dir', str(show)]
    metrics = _test_tool(
        universal['configs'][config],
        universal['checkpoint'],
        tmp_path / 'w',
        '--out',
        str(out),
        *args,
    )
    predict = ref.universal if in_19 else ref.own
    _scored(metrics, ref, out, predict, in_19)
    for name in NAMES if not tta else ():
        palette = UNIVERSAL_META['palette'] if in_19 else OWN[name]['palette']
        for path in ref.paths(name):
            [drawn] = glob.glob(str(show / '**' / f'*{_name(path)}*'), recursive=True)
            gt_half, pred_half = np.split(_drawn(drawn), 2, axis=1)
            _drawn_agrees(pred_half, predict(path), palette)
            label = ref.label(path)
            np.testing.assert_array_equal(
                gt_half[label != 255], _colours(label[label != 255], palette)
            )


def test_universal_model_in_mmsegs_apis_infer_tool_and_export(universal, tmp_path, monkeypatch):
    """Routed to CamVid: init_model + inference_model + show_result_pyplot, MMSegInferencer,
    tools/infer.py and the export in stock init_model all predict the CamVid branch's universal
    classes, drawn in their names and colours."""
    ref, config = universal['in_19'], universal['configs']['camvid']
    checkpoint = universal['checkpoint']
    with mmengine_checkpoints_allowed():  # a Runner's checkpoint, for stock loaders
        model = init_model(config, checkpoint, device='cpu')
        inferencer = MMSegInferencer(config, checkpoint, device='cpu')
    assert tuple(model.dataset_meta['classes']) == UNIVERSAL_META['classes']
    exported = export_single_dataset(config, checkpoint, 'camvid', str(tmp_path / 'export'))
    plain = init_model(*exported, device='cpu')
    assert tuple(plain.dataset_meta['classes']) == UNIVERSAL_META['classes']
    for path in ref.one_each():
        expected = ref.universal(path, 'camvid')
        results = [
            inference_model(model, path),
            inferencer(path, return_datasamples=True),
            inference_model(plain, path),
        ]
        for result in results:
            _agrees(result.pred_sem_seg.data[0].numpy(), expected)
        space = results[0].metainfo['prediction_space']
        assert (space['name'], list(space['label_maps'])) == (LABEL_SPACE, ['cityscapes'])
        out = tmp_path / f'{_name(path)}.png'
        show_result_pyplot(
            model,
            path,
            results[0],
            opacity=1.0,
            draw_gt=False,
            with_labels=False,
            show=False,
            out_file=str(out),
        )
        palette = UNIVERSAL_META['palette']
        _drawn_agrees(_drawn(out), expected, palette)
        inferencer(path, out_dir=str(tmp_path / 'inferencer'), opacity=1.0, with_labels=False)
        _drawn_agrees(
            _drawn(tmp_path / 'inferencer' / 'vis' / osp.basename(path)), expected, palette
        )
        argv = ['infer.py', config, checkpoint, path, '--out-dir', str(tmp_path / 'infer')]
        monkeypatch.setattr(sys, 'argv', argv + ['--dataset', 'camvid'])
        runpy.run_path(osp.join(REPO, 'tools', 'infer.py'), run_name='__main__')
        _drawn_agrees(_drawn(tmp_path / 'infer' / f'{_name(path)}.png'), expected, palette)


def test_a_branch_added_to_a_universal_model_predicts_universal_classes(
    universal, data_cwd, tmp_path
):
    config, checkpoint, _ = add_dataset_branch(
        universal['configs']['label_space'],
        universal['checkpoint'],
        'camvid_new',
        str(data_cwd / 'data' / 'camvid' / 'images' / 'train'),
        str(tmp_path / 'added'),
        source='camvid',
    )
    cfg = Config.fromfile(config)
    assert cfg.model.universal_head and cfg.model.label_space.mapping.camvid_new[5] == [
        'vegetation',
        'terrain',
    ]
    for dataset in cfg.test_dataloader.dataset.datasets.values():
        dataset.indices = 1  # the reference of an image of each dataset
    ref = UniversalReference(cfg, checkpoint)
    cfg.model.default_dataset = 'camvid_new'
    model = init_model(cfg, checkpoint, device='cpu')
    for path in ref.one_each():
        result = inference_model(model, path)
        _agrees(result.pred_sem_seg.data[0].numpy(), ref.universal(path, 'camvid_new'))
        assert result.metainfo['prediction_space']['classes'] == UNIVERSAL_META['classes']


def test_universal_model_on_images_of_unknown_source(universal, tmp_path):
    """UnknownSourceMetric on a universal model: every route in the universal classes where the
    labels are in them (CamVid's side folder), the oracle the image's dataset's branch as
    tools/test.py routes it, auto's prediction (--out) one of the branches'; CamVid's own labels
    (unions of universal classes) are refused by name: no truth in the universal classes."""
    ref = universal['in_19']
    cfg = Config.fromfile(universal['configs']['label_space'])
    cfg.test_evaluator = dict(type='UnknownSourceMetric', label_space=UNIVERSAL.to_dict())
    cfg.model.test_cfg.unknown_source = True
    unknown = str(tmp_path / 'unknown.py')
    unformatted(cfg).dump(unknown)
    out = tmp_path / 'out'
    metrics = _test_tool(unknown, universal['checkpoint'], tmp_path / 'w', '--out', str(out))
    routed = _test_tool(
        universal['configs']['label_space'], universal['checkpoint'], tmp_path / 'r'
    )
    for name in NAMES:
        assert metrics[f'{name}/oracle/mIoU'] == pytest.approx(routed[f'{name}/mIoU'], abs=1e-4)
        for path in ref.paths(name):
            written = _png(out / name / f'{_name(path)}.png')
            chosen = []
            for branch in NAMES:
                expected = ref.universal(path, branch)
                sure = ~expected.ties
                chosen.append(np.array_equal(written[sure], np.asarray(expected)[sure]))
            assert any(chosen), path
    own = Config.fromfile(universal['configs']['dataset'])
    own.test_evaluator = cfg.test_evaluator
    own.model.test_cfg.unknown_source = True
    own_path = str(tmp_path / 'own.py')
    unformatted(own).dump(own_path)
    with pytest.raises(ValueError, match=r"mapping.camvid: class 'building' is the union of the"):
        _test_tool(own_path, universal['checkpoint'], tmp_path / 'o')
