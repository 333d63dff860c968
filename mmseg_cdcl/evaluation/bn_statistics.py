"""The paper's motivation (Fig. 1) measured on checkpoints: conv weights against BN statistics.

``tools/analysis/bn_statistics.py`` is the command line of :func:`bn_statistics`. The config and
the first checkpoint are a CDCL model: each DSBN layer of the checkpoint
(``<layer>.bns.<d>.running_mean``) gives one series of running statistics per dataset of the
config's ``model.dataset_names``. Further checkpoints are single-dataset models (one BatchNorm per
layer, ``<layer>.running_mean``): each gives one series at the layers it shares with the CDCL
model. A layer's conv is the one whose output it normalises: the last conv weight before the norm
in the checkpoint (the modules' registration order) among the norm's siblings, with as many
output channels (``conv1`` of ``bn1`` in MMSeg's ResNet blocks, ``conv`` of ``bn`` in a
ConvModule, ``0`` of ``1`` in a Sequential); a norm without one (e.g. after a pooling) has none.

With ``out_dir``, writes there ``bn_statistics.json``: per layer its channels and conv, the mean
and std over channels of each series' running mean and running variance and of each
checkpoint's conv weights, and for every two series two divergences (``DIVERGENCE``):
``paired``, the mean over channels of the 2-Wasserstein distance between a channel's Gaussians
N(running_mean, running_var), exact for the branches of a DSBN (their channels are one conv's
outputs), meaningful across checkpoints only when their channels correspond (trained from the
same weights, e.g. ImageNet's); ``unpaired``, the same with each series' means and stds sorted:
the distance of the distributions over channels, which needs no correspondence. And
``bn_statistics.png``: both divergences layer by layer, and for three layers (first, middle and
last of the backbone) or those of ``layers``, histograms of the conv weights and of each series'
running means and variances. A checkpoint's label is its file name, or its folder's for
mmengine's ``iter_N.pth``, unless ``labels`` names each checkpoint.

Example:
    >>> from mmseg_cdcl.evaluation import bn_statistics
    >>> summary = bn_statistics('configs/demo/cdcl_cityscapes_bdd.py',
    ...                         ['work_dirs/cdcl/iter_240.pth'], out_dir='work_dirs/bn')
"""

import itertools
import json
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from mmengine.config import Config
from mmengine.runner import CheckpointLoader
from mmengine.utils import mkdir_or_exist

from ..utils.safe_checkpoint import mmengine_checkpoints_allowed

DIVERGENCE = dict(
    paired='mean over channels of the 2-Wasserstein distance between the Gaussians '
    'N(running_mean, running_var) of one channel in two series, sqrt((mean_a - mean_b)^2 + '
    "(std_a - std_b)^2): exact for the branches of a DSBN (their channels are one conv's "
    'outputs); across checkpoints it assumes that their channels correspond (trained from the '
    'same weights)',
    unpaired="the same with each series' running means and stds sorted: channels unpaired, the "
    'distance between the distributions over channels that the histograms show',
)
_DSBN_KEY = re.compile(r'^(?P<layer>.+)\.bns\.(?P<branch>\d+)\.running_mean$')
_RUN_CHECKPOINT = re.compile(r'^((iter|epoch)_\d+|latest|best_.*)$')  # named by mmengine


def _label(path: str) -> str:
    stem = osp.splitext(osp.basename(path))[0]
    return osp.basename(osp.dirname(osp.abspath(path))) if _RUN_CHECKPOINT.match(stem) else stem


def _state_dict(path: str) -> OrderedDict:
    """A checkpoint's tensors, in its (the modules' registration) order."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such checkpoint file')
    with mmengine_checkpoints_allowed():
        ckpt = CheckpointLoader.load_checkpoint(path, 'cpu', logger='silent')  # weights_only
    state_dict = ckpt.get('state_dict', ckpt)
    return OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())


def _array(tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def _parent(name: str) -> str:
    return name.rpartition('.')[0]


def _conv_of(state_dict: dict, layer: str, first_key: str, channels: int) -> Optional[str]:
    """The conv whose output ``layer`` normalises: the last sibling conv weight before it with
    ``channels`` outputs."""
    keys = list(state_dict)
    for key in reversed(keys[: keys.index(first_key)]):
        value = state_dict[key]
        module = key[: -len('.weight')]
        if (
            key.endswith('.weight')
            and value.ndim >= 3
            and value.shape[0] == channels
            and _parent(module) == _parent(layer)
        ):
            return module
    return None


def _summary(values: np.ndarray) -> dict:
    return dict(mean=float(values.mean()), std=float(values.std()))


def wasserstein2(a: tuple, b: tuple, paired: bool = True) -> float:
    """Mean over channels of W2(N(mean_a, var_a), N(mean_b, var_b)) from two (running_mean,
    running_var) pairs; with ``paired=False`` of the means and of the stds each sorted."""
    (mean_a, var_a), (mean_b, var_b) = a, b
    std_a, std_b = np.sqrt(np.clip(var_a, 0, None)), np.sqrt(np.clip(var_b, 0, None))
    if not paired:
        mean_a, mean_b, std_a, std_b = map(np.sort, (mean_a, mean_b, std_a, std_b))
    return float(np.sqrt((mean_a - mean_b) ** 2 + (std_a - std_b) ** 2).mean())


def read_layers(
    config: Union[str, Config], checkpoints: Sequence[str], labels: Optional[Sequence[str]] = None
) -> tuple:
    """The DSBN layers of ``checkpoints[0]`` with their series, from all checkpoints.

    Returns:
        ``(sources, layers)``: per checkpoint a dict of ``file``, ``label``, ``kind`` and
        ``series`` (names); per layer a dict of ``name``, ``channels``, ``conv`` (module name or
        None), ``conv_weight`` (checkpoint label: array), ``running`` (series: (mean, var)) and
        ``num_batches_tracked`` (series: int).
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    cfg_name = config if isinstance(config, str) else (cfg.filename or 'the config')
    names = list(cfg.get('model', {}).get('dataset_names') or [])
    if not names:
        raise ValueError(
            f'{cfg_name}: model.dataset_names is missing; expected the CDCL '
            "model's config, with one dataset per DSBN branch"
        )
    labels = list(labels) if labels else [_label(path) for path in checkpoints]
    if len(labels) != len(checkpoints):
        raise ValueError(f'--labels gives {len(labels)} labels for {len(checkpoints)} checkpoints')
    if len(set(labels)) != len(labels):
        raise ValueError(f'two checkpoints have the same label in {labels}; give --labels')

    cdcl_path, cdcl = checkpoints[0], _state_dict(checkpoints[0])
    branches = OrderedDict()
    for key in cdcl:
        m = _DSBN_KEY.match(key)
        if m:
            branches.setdefault(m.group('layer'), []).append(int(m.group('branch')))
    if not branches:
        raise ValueError(
            f"{cdcl_path}: no DSBN layer (keys '<layer>.bns.<d>.running_mean'); "
            "expected the CDCL model's checkpoint first, then any single-dataset "
            'ones'
        )
    series = [f'{labels[0]}: {name}' for name in names]
    sources = [dict(file=cdcl_path, label=labels[0], kind='CDCL', datasets=names, series=series)]
    layers = []
    for name, found in branches.items():
        if sorted(found) != list(range(len(names))):
            raise ValueError(
                f"{cdcl_path}: DSBN layer '{name}' has {len(found)} branches but "
                f'{cfg_name} has {len(names)} datasets {names} (model.dataset_names)'
            )
        first_key = f'{name}.bns.0.running_mean'
        channels = cdcl[first_key].shape[0]
        conv = _conv_of(cdcl, name, first_key, channels)
        layers.append(
            dict(
                name=name,
                channels=channels,
                conv=conv,
                conv_weight={} if conv is None else {labels[0]: _array(cdcl[f'{conv}.weight'])},
                running={
                    s: (
                        _array(cdcl[f'{name}.bns.{d}.running_mean']),
                        _array(cdcl[f'{name}.bns.{d}.running_var']),
                    )
                    for d, s in enumerate(series)
                },
                num_batches_tracked={
                    s: int(cdcl[f'{name}.bns.{d}.num_batches_tracked'])
                    for d, s in enumerate(series)
                    if f'{name}.bns.{d}.num_batches_tracked' in cdcl
                },
            )
        )

    for path, label in zip(checkpoints[1:], labels[1:]):
        plain = _state_dict(path)
        dsbn = next((m.group('layer') for m in map(_DSBN_KEY.match, plain) if m), None)
        if dsbn is not None:
            raise ValueError(
                f"{path}: layer '{dsbn}' is a DSBN; checkpoints after the first must "
                'be single-dataset models (one BatchNorm per layer)'
            )
        shared = [layer for layer in layers if f'{layer["name"]}.running_mean' in plain]
        if not shared:
            raise ValueError(
                f"{path}: none of its BatchNorm layers ('<layer>.running_mean') is "
                f'a DSBN layer of {cdcl_path}; expected a model of the same network'
            )
        for layer in shared:
            name, first_key = layer['name'], f'{layer["name"]}.running_mean'
            if plain[first_key].shape[0] != layer['channels']:
                raise ValueError(
                    f"{path}: layer '{name}' has {plain[first_key].shape[0]} "
                    f'channels where {cdcl_path} has {layer["channels"]}'
                )
            layer['running'][label] = (
                _array(plain[first_key]),
                _array(plain[f'{name}.running_var']),
            )
            if f'{name}.num_batches_tracked' in plain:
                layer['num_batches_tracked'][label] = int(plain[f'{name}.num_batches_tracked'])
            conv = _conv_of(plain, name, first_key, layer['channels'])
            if conv is not None:
                layer['conv_weight'][label] = _array(plain[f'{conv}.weight'])
        sources.append(dict(file=path, label=label, kind='single-dataset', series=[label]))
    return sources, layers


def summarise(sources: List[dict], layers: List[dict], config: Optional[str] = None) -> dict:
    """The JSON document of :func:`read_layers`' statistics."""
    out = []
    for index, layer in enumerate(layers):
        running = layer['running']
        out.append(
            dict(
                name=layer['name'],
                index=index,
                channels=layer['channels'],
                conv=layer['conv'],
                conv_weight={
                    k: dict(_summary(w), numel=int(w.size)) for k, w in layer['conv_weight'].items()
                },
                running_mean={s: _summary(mean) for s, (mean, _) in running.items()},
                running_var={s: _summary(var) for s, (_, var) in running.items()},
                num_batches_tracked=layer['num_batches_tracked'],
                wasserstein=[
                    dict(
                        between=[a, b],
                        paired=wasserstein2(running[a], running[b]),
                        unpaired=wasserstein2(running[a], running[b], paired=False),
                    )
                    for a, b in itertools.combinations(running, 2)
                ],
            )
        )
    return dict(config=config, checkpoints=sources, divergence=DIVERGENCE, layers=out)


def pair_label(a: str, b: str, cdcl: dict) -> str:
    """``a ↔ b``, the CDCL model's label once for two of its branches."""
    if a in cdcl['series'] and b in cdcl['series']:
        dataset = dict(zip(cdcl['series'], cdcl['datasets']))
        return f'{cdcl["label"]}: {dataset[a]} ↔ {dataset[b]}'
    return f'{a} ↔ {b}'


def _histograms(ax, arrays: Dict[str, np.ndarray], styles: dict):
    values = np.concatenate([a.ravel() for a in arrays.values()])
    lo, hi = np.quantile(values, [0.001, 0.999])  # the shape, not a few outliers
    per_series = max(a.size for a in arrays.values())  # few bins for few channels
    bins = np.linspace(lo, hi if hi > lo else lo + 1, int(np.clip(2 * per_series**0.5, 10, 40)))
    for name, a in arrays.items():
        ax.hist(
            np.clip(a.ravel(), bins[0], bins[-1]),
            bins=bins,
            density=True,
            histtype='step',
            linewidth=1.6,
            label=name,
            **styles[name],
        )
    ax.set_yticks([])


def choose_layers(names: Sequence[str], chosen: Optional[Sequence[str]], source: str) -> list:
    """The layers whose histograms are drawn: ``chosen``, checked against ``names`` (the DSBN
    layers of the checkpoint ``source``), or the first, middle and last layer of the first
    component (e.g. the backbone)."""
    if chosen:
        for name in chosen:
            if name not in names:
                raise ValueError(
                    f"unknown layer '{name}': the DSBN layers of {source} are " + ', '.join(names)
                )
        return list(chosen)
    component = [n for n in names if n.split('.')[0] == names[0].split('.')[0]]
    pool = component if len(component) >= 3 else names
    return list(OrderedDict.fromkeys(pool[i] for i in (0, len(pool) // 2, len(pool) - 1)))


def _divergence(ax, summary: dict, kind: str, series: list, styles: dict, chosen: list):
    """One divergence of every two series against the layers, as in ``summary``."""
    names = [layer['name'] for layer in summary['layers']]
    for a, b in itertools.combinations(series, 2):
        points = [
            (layer['index'], w[kind])
            for layer in summary['layers']
            for w in layer['wasserstein']
            if w['between'] == [a, b]
        ]
        if points:
            branches = styles[a]['linestyle'] == styles[b]['linestyle'] == '-'  # of one DSBN
            ax.plot(
                *zip(*points),
                marker='.',
                linewidth=2.2 if branches else 1.2,
                linestyle='-' if branches else '--',
                label=pair_label(a, b, summary['checkpoints'][0]),
                color=matplotlib.colormaps['Dark2'](len(ax.lines) % 8),
            )  # not the series'
    for i, name in enumerate(names):
        if i == 0 or name.split('.')[0] != names[i - 1].split('.')[0]:  # a component starts
            ax.axvline(i - 0.5, color='grey', linewidth=0.8)
            ax.text(
                i - 0.4,
                0.02,
                name.split('.')[0],
                transform=ax.get_xaxis_transform(),
                rotation=90,
                va='bottom',
                ha='left',
                fontsize=9,
                color='dimgrey',
            )
    for name in chosen:
        ax.axvline(names.index(name), color='grey', linestyle=':', linewidth=1)
    if any(w[kind] > 0 for layer in summary['layers'] for w in layer['wasserstein']):
        ax.set_yscale('log')
    ax.set_xlim(-1, len(names))
    ax.set_xlabel('BN layer (checkpoint order; dotted: the layers drawn below)')
    ax.set_ylabel('mean over channels of\nW2( N(μa, σa²), N(μb, σb²) )')
    ax.set_title(
        'channel by channel (exact for the branches of a DSBN)'
        if kind == 'paired'
        else "channels unpaired: each series' μ and σ sorted (the histograms' distance)",
        fontsize=10,
    )


def plot(summary: dict, layers: List[dict], out_file: str, chosen: Sequence[str]) -> str:
    """Draw the divergence layer by layer and, for the ``chosen`` layers, the histograms of
    conv weights and running statistics."""
    names = [layer['name'] for layer in layers]
    series = [s for source in summary['checkpoints'] for s in source['series']]
    styles = {
        s: dict(
            color=f'C{i}', linestyle='-' if i < len(summary['checkpoints'][0]['series']) else '--'
        )
        for i, s in enumerate(series)
    }
    # Each checkpoint's conv weights: the CDCL model's black, a single-dataset model's in the
    # colour of its statistics.
    conv_names = {
        source['label']: f'conv: {source["label"]}'
        + (' (shared by its branches)' if k == 0 else '')
        for k, source in enumerate(summary['checkpoints'])
    }
    styles.update(
        {
            conv_names[source['label']]: (
                dict(color='black', linestyle='-') if k == 0 else styles[source['series'][0]]
            )
            for k, source in enumerate(summary['checkpoints'])
        }
    )

    # A Figure of its own, not pyplot's: no backend state, safe in any process.
    fig = Figure(figsize=(15, 5.2 + 2.9 * len(chosen)), layout='constrained')
    top, bottom = fig.subfigures(2, 1, height_ratios=[5.2, 2.9 * len(chosen)])
    for col, kind in enumerate(('paired', 'unpaired')):
        _divergence(top.add_subplot(1, 2, col + 1), summary, kind, series, styles, chosen)
    handles, texts = top.axes[0].get_legend_handles_labels()
    top.legend(handles, texts, loc='outside lower center', ncol=3, fontsize=9, frameon=False)
    top.suptitle("How far apart the series' BN statistics are, layer by layer")

    grid = bottom.add_gridspec(len(chosen), 3)
    for row, name in enumerate(chosen):
        layer = layers[names.index(name)]
        axes = [bottom.add_subplot(grid[row, col]) for col in range(3)]
        if layer['conv_weight']:
            _histograms(
                axes[0], {conv_names[k]: w for k, w in layer['conv_weight'].items()}, styles
            )
        axes[0].set_title(
            f'conv weights: {layer["conv"] or "no conv before this norm"}', fontsize=10
        )
        _histograms(axes[1], {s: m for s, (m, _) in layer['running'].items()}, styles)
        axes[1].set_title(f'running mean: {name} ({layer["channels"]} channels)', fontsize=10)
        # Variances spread over decades: their logarithms show the shape.
        _histograms(
            axes[2],
            {s: np.log10(np.clip(v, 1e-12, None)) for s, (_, v) in layer['running'].items()},
            styles,
        )
        axes[2].set_title('log10 running variance', fontsize=10)
    entries = {}
    for ax in bottom.axes:
        entries.update(zip(*reversed(ax.get_legend_handles_labels())))
    legend = [n for n in [*conv_names.values(), *series] if n in entries]
    bottom.legend(
        [entries[n] for n in legend],
        legend,
        loc='outside lower center',
        ncol=min(4, len(legend)),
        fontsize=9,
        frameon=False,
    )
    bottom.suptitle('Conv weights against running statistics at the dotted layers')
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    fig.savefig(out_file, dpi=90)
    return out_file


def bn_statistics(
    config: Union[str, Config],
    checkpoints: Sequence[str],
    out_dir: Optional[str] = None,
    labels: Optional[Sequence[str]] = None,
    layers: Optional[Sequence[str]] = None,
) -> dict:
    """The per-layer statistics of a CDCL checkpoint (and single-dataset ones) as the JSON
    document; with ``out_dir``, also written there as bn_statistics.json and drawn as
    bn_statistics.png (``layers``: the histograms' layers, by norm name)."""
    sources, read = read_layers(config, checkpoints, labels)
    chosen = choose_layers([layer['name'] for layer in read], layers, checkpoints[0])
    summary = summarise(sources, read, getattr(config, 'filename', config))
    if out_dir is not None:
        plot(summary, read, osp.join(out_dir, 'bn_statistics.png'), chosen)
        with open(osp.join(out_dir, 'bn_statistics.json'), 'w') as f:
            json.dump(summary, f, indent=1)
    return summary
