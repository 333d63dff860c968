"""A dataset branch adapted to a new domain from its unlabelled images.

The branch's DSBN statistics are re-estimated on the images (AdaBN: Li, Wang, Shi, Liu, Hou,
"Revisiting Batch Normalization For Practical Domain Adaptation", arXiv 1603.04779), optionally
mixed with the statistics it started from when the images are few (as UBNA's decaying momentum
does: Klingner, Termöhlen, Ritterbach, Fingscheidt, "Unsupervised BatchNorm Adaptation",
arXiv 2011.08502), and its γ/β optionally tuned by minimising the entropy of its predictions
(TENT: Wang, Shelhamer, Liu, Olshausen, Darrell, arXiv 2006.10726).
"""

from typing import Dict, Iterable, List

import torch
from torch import Tensor, nn

from ..layers import DSBN


def branch_norms(model: nn.Module, d: int) -> List[nn.BatchNorm2d]:
    """Dataset ``d``'s BatchNorm of every DSBN of the model, in module order."""
    return [m.bns[d] for m in model.modules() if isinstance(m, DSBN)]


def reestimate_statistics(model: nn.Module, d: int, batches: Iterable[Tensor]) -> int:
    """AdaBN: dataset ``d``'s running mean and variance in every DSBN become the mean and
    (unbiased) variance of that layer's inputs over all pixels of all images, in one pass
    through branch ``d``, where each layer normalises with its batch's statistics (as in
    training) so that the layers after it see the new domain's features. The other branches
    and every weight stay as they are.

    Args:
        model (nn.Module): A ``CDCLEncoderDecoder``.
        d (int): The branch.
        batches (Iterable[Tensor]): Preprocessed images (N, C, H, W), N >= 2 (BatchNorm's
            batch statistics of PSP's 1x1 pooled features need two values per channel).

    Returns:
        int: The number of images.
    """
    norms = branch_norms(model, d)
    if not norms:
        raise ValueError(
            're-estimating BatchNorm statistics needs DSBN layers, and the model has none'
        )
    # Per layer: values per channel, their mean and sum of squared deviations, merged over
    # batches (Chan et al.'s parallel variance), in double precision.
    moments: Dict[int, List] = {id(bn): [0, 0.0, 0.0] for bn in norms}

    def record(module, args):
        x = args[0].detach()
        dims = [0] + list(range(2, x.dim()))
        var, mean = torch.var_mean(x, dims, correction=0)
        n = x.numel() // x.shape[1]
        acc = moments[id(module)]
        total = acc[0] + n
        delta = mean.double() - acc[1]
        acc[2] = acc[2] + var.double() * n + delta.square() * (acc[0] * n / total)
        acc[1] = acc[1] + delta * (n / total)
        acc[0] = total

    handles = [bn.register_forward_pre_hook(record) for bn in norms]
    training = model.training
    model.eval()
    for bn in norms:
        bn.train()
    num_images = 0
    try:
        with torch.no_grad():
            for inputs in batches:
                branch_logits(model, d, inputs, auxiliary=True)
                num_images += len(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    with torch.no_grad():
        for bn in norms:
            n, mean, m2 = moments[id(bn)]
            if n < 2:
                raise ValueError(
                    f're-estimating BatchNorm statistics: a layer of branch {d} saw '
                    f'{n} values per channel, expected at least 2'
                )
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(m2 / (n - 1))
            bn.num_batches_tracked.fill_(0)
    return num_images


def branch_logits(model: nn.Module, d: int, inputs: Tensor, auxiliary: bool = False) -> Tensor:
    """Branch ``d``'s decode logits at the features' resolution (a cascade's last stage's);
    with ``auxiliary``, the auxiliary heads run too (their DSBNs see the images)."""
    with model.dataset(d):
        feats = model.extract_feat(inputs)
        heads = model.decode_head
        if isinstance(heads, nn.ModuleList):  # CascadeEncoderDecoder
            out = heads[0].forward(feats)
            for head in heads[1:]:
                out = head.forward(feats, out)
        else:
            out = heads.forward(feats)
        if auxiliary and getattr(model, 'auxiliary_head', None) is not None:
            aux = model.auxiliary_head
            for head in aux if isinstance(aux, nn.ModuleList) else [aux]:
                head.forward(feats)
    return out


def mix_statistics(
    model: nn.Module, d: int, prior: Dict[str, Tensor], num_images: int, prior_images: float
) -> float:
    """UBNA's mixing: dataset ``d``'s statistics become the images' weighted against those it
    started from (``prior``) as ``num_images`` against ``prior_images`` pseudo-images: the
    mixture's mean and variance, w = prior_images / (prior_images + num_images).

    Args:
        prior (dict): ``{bn name: (running_mean, running_var)}`` of :func:`branch_statistics`.

    Returns:
        float: w, the source's weight.
    """
    w = prior_images / (prior_images + num_images)
    with torch.no_grad():
        for name, bn in _named_branch_norms(model, d):
            mean0, var0 = prior[name]
            mean = w * mean0 + (1 - w) * bn.running_mean
            second = w * (var0 + mean0.square()) + (1 - w) * (
                bn.running_var + bn.running_mean.square()
            )
            bn.running_mean.copy_(mean)
            bn.running_var.copy_((second - mean.square()).clamp_min(0))
    return w


def branch_statistics(model: nn.Module, d: int) -> Dict[str, tuple]:
    """``{name: (running_mean, running_var)}`` of branch ``d``'s BatchNorms (copies)."""
    return {
        name: (bn.running_mean.clone(), bn.running_var.clone())
        for name, bn in _named_branch_norms(model, d)
    }


def _named_branch_norms(model: nn.Module, d: int):
    return [(name, m.bns[d]) for name, m in model.named_modules() if isinstance(m, DSBN)]


def entropy_tuning(
    model: nn.Module, d: int, batches: List[Tensor], steps: int = 1, lr: float = 1e-3
) -> List[float]:
    """TENT: dataset ``d``'s BatchNorm γ and β minimise the mean entropy of the branch's pixel
    predictions on the images (Adam, ``steps`` passes over the batches), normalising with
    each batch's statistics; nothing else changes but the running statistics, which are
    re-estimated afterwards (:func:`reestimate_statistics`).

    Returns:
        list[float]: The mean entropy of each step (nats per pixel).
    """
    norms = branch_norms(model, d)
    params = [p for bn in norms for p in (bn.weight, bn.bias) if p is not None]
    flags = {id(p): p.requires_grad for p in model.parameters()}
    training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    model.eval()
    for bn in norms:
        bn.train()
    history = []
    try:
        for _ in range(steps):
            total, count = 0.0, 0
            for inputs in batches:
                logits = branch_logits(model, d, inputs)
                entropy = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
                optimizer.zero_grad()
                entropy.backward()
                optimizer.step()
                total, count = total + entropy.item() * len(inputs), count + len(inputs)
            history.append(total / count)
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])
        model.train(training)
    return history
