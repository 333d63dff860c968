"""A model against others on the same test images: mIoU per dataset and the paired bootstrap
interval of each difference, as a table that says what is and is not established.

``tools/run_demo.py`` compares CDCL with its baselines this way (results.md).
"""

from typing import Dict, Mapping, Sequence

import numpy as np

from .functional import miou_from_counts, paired_bootstrap_miou


def scores_and_intervals(
    metrics: Mapping[str, dict],
    counts: Mapping[str, dict],
    reference: str,
    datasets: Sequence[str],
    seed: int,
    **bootstrap,
) -> tuple:
    """Each model's mIoU per dataset from its per-image counts (checked against its metric's)
    and, for ``reference`` against each other model and dataset, the paired bootstrap of the
    difference in mIoU.

    Args:
        metrics (dict): ``{model: {'<dataset>/mIoU': value}}``, the metric's results.
        counts (dict): ``{model: {dataset: {image: (intersection, union)}}}``, per class, as
            :class:`~mmseg_cdcl.engine.hooks.PerImageCountsHook` records them.
        reference (str): The model compared with every other (CDCL).
        datasets (Sequence[str]): The datasets, in the table's order.
        seed (int): Seed of the bootstrap.
        **bootstrap: ``num_resamples`` and ``level`` of
            :func:`~mmseg_cdcl.evaluation.functional.paired_bootstrap_miou`.

    Returns:
        tuple: ``({model: {dataset: mIoU}}, {model: {dataset: interval}})``, mIoU rounded to
        2 decimals, intervals for every model but ``reference``.
    """
    scores, arrays = {}, {}
    for label in metrics:
        scores[label], arrays[label] = {}, {}
        for name in datasets:
            images = sorted(counts[label][name])
            if images != sorted(counts[reference][name]):
                raise RuntimeError(f'{label} was tested on other {name} images than {reference}')
            arrays[label][name] = [
                np.stack([counts[label][name][i][k] for i in images]) for k in (0, 1)
            ]
            miou = float(miou_from_counts(*arrays[label][name]))
            if abs(miou - metrics[label][f'{name}/mIoU']) > 0.01:
                raise RuntimeError(
                    f'{label}: {name} mIoU from per-image counts {miou:.3f} != '
                    f"the metric's {metrics[label][f'{name}/mIoU']}"
                )
            scores[label][name] = round(miou, 2)
    intervals = {
        label: {
            name: paired_bootstrap_miou(
                *arrays[reference][name], *arrays[label][name], seed=seed, **bootstrap
            )
            for name in datasets
        }
        for label in metrics
        if label != reference
    }
    return scores, intervals


def _signed(x):
    return f'{x:+.2f}'.replace('-', '−')


def comparison_markdown(
    scores: Dict[str, dict],
    intervals: Dict[str, dict],
    reference: str,
    titles: Mapping[str, str],
    seed: int,
    num_resamples: int,
    level: float,
    short_name: str = 'CDCL',
) -> str:
    """The table of :func:`scores_and_intervals`' results and what the intervals establish.

    Args:
        scores, intervals: What :func:`scores_and_intervals` returns.
        reference (str): The model compared with every other.
        titles (dict): ``{dataset: title}``, in the table's order.
        seed (int): The bootstrap's seed; every model was trained once with it.
        num_resamples (int), level (float): The bootstrap's.
        short_name (str): The reference's name in the text.
    """
    datasets = list(titles)
    level = f'{level:.0%}'
    header = (
        ['model']
        + [f'{titles[d]} mIoU | {short_name} − model ({level} interval)' for d in datasets]
        + ['mean mIoU']
    )
    rows = ['| ' + ' | '.join(header) + ' |', '|---' * (2 * len(datasets) + 2) + '|']
    for label, score in scores.items():
        cells = [label]
        for d in datasets:
            cells.append(f'{score[d]:.2f}')
            if label == reference:
                cells.append('')
                continue
            r = intervals[label][d]
            difference = _signed(r['difference'])
            cells.append(
                f'{f"**{difference}**" if r["excludes_zero"] else difference} '
                f'({_signed(r["low"])} to {_signed(r["high"])})'
            )
        cells.append(f'{np.mean([score[d] for d in datasets]):.2f}')
        rows.append('| ' + ' | '.join(cells) + ' |')
    verdicts = {'above': {}, 'below': {}, 'open': {}}  # {verdict: {baseline: [dataset, ...]}}
    for label, per_dataset in intervals.items():
        for d, r in per_dataset.items():
            verdict = 'above' if r['low'] > 0 else 'below' if r['high'] < 0 else 'open'
            verdicts[verdict].setdefault(label, []).append(titles[d])

    def listed(verdict):
        return '; '.join(
            f'*{label}* on {" and ".join(names)}' for label, names in verdicts[verdict].items()
        )

    lines = [
        *rows,
        '',
        f'{short_name} − model: the difference in mIoU (points) with its {level} paired '
        f'bootstrap interval over the test images ({num_resamples} resamples, seed {seed}); '
        '**bold** where the interval excludes 0.',
        '',
        '- Established on these images (interval excludes 0): '
        + (f'{short_name} is better than {listed("above")}.' if verdicts['above'] else 'none.')
        + (f' {short_name} is worse than {listed("below")}.' if verdicts['below'] else ''),
        '- Not established (interval includes 0): '
        + (
            f'{short_name} against {listed("open")}.'
            if verdicts['open']
            else f'none of the {sum(len(r) for r in intervals.values())} comparisons.'
        ),
        f'- Not covered: every model was trained once (seed {seed}). The intervals say how '
        'much the differences depend on which images were tested, not how much another '
        'training seed would move them.',
    ]
    return '\n'.join(lines) + '\n'


def unknown_source_markdown(
    metrics: Mapping[str, float], titles: Mapping[str, str], unseen: str, unseen_title: str
) -> str:
    """The table of ``UnknownSourceMetric``'s results: mIoU per route and source dataset, and
    the branches chosen by 'auto'.

    Args:
        metrics (dict): ``UnknownSourceMetric``'s results (``<source>/<route>/mIoU``,
            ``choice/<source>/<branch>``).
        titles (dict): ``{dataset: title}`` of the model's datasets (its branches).
        unseen (str): A source dataset no branch was trained on.
        unseen_title (str): Its title.
    """
    datasets = list(titles)
    source_titles = dict(titles, **{unseen: unseen_title})
    routes = [('oracle', "its dataset's branch"), ('auto', 'auto'), ('ensemble', 'ensemble')]
    routes += [(f'branch_{d}', f'{titles[d]} branch') for d in datasets]
    rows = [
        '| images | '
        + ' | '.join(title for _, title in routes)
        + ' | auto chose '
        + ' / '.join(titles[d] for d in datasets)
        + ' |',
        '|---' * (len(routes) + 2) + '|',
    ]
    for source in (*datasets, unseen):
        cells = [source_titles[source]]
        cells += [
            f'{metrics[f"{source}/{route}/mIoU"]:.2f}'
            if f'{source}/{route}/mIoU' in metrics
            else '—'
            for route, _ in routes
        ]
        cells.append(' / '.join(str(metrics[f'choice/{source}/{d}']) for d in datasets))
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows) + '\n'
