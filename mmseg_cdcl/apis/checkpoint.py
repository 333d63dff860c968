"""Loading a checkpoint into a CDCL model: its dataset branches by name."""

from typing import Dict, Optional

from mmengine.runner import CheckpointLoader
from torch import nn

from ..models.utils.checkpoint_datasets import checked_branch_map, state_datasets_from_meta
from ..utils.mmengine_internals import load_checkpoint_to_model
from ..utils.safe_checkpoint import mmengine_checkpoints_allowed


def load_cdcl_checkpoint(
    model: nn.Module,
    filename: str,
    map_location: str = 'cpu',
    branch_map: Optional[Dict[str, str]] = None,
    strict: bool = False,
) -> dict:
    """mmengine's ``load_checkpoint`` for a CDCL model: each dataset's branches (DSBN,
    classifiers) come from the checkpoint's branches of the same dataset name, also for a
    wrapped model's checkpoint (DDP's, ``module.`` keys) and for one that states its datasets
    only in its ``meta.dataset_meta`` (written before its state dict did); a checkpoint whose
    state dict contradicts its training config (``meta.cfg``) is refused
    (:func:`state_datasets_from_meta`).

    Args:
        model (nn.Module): A ``CDCLEncoderDecoder``.
        filename (str): The checkpoint.
        map_location (str): As ``torch.load``'s. Defaults to 'cpu'.
        branch_map (dict, optional): For this load, the model's ``branch_map``: for each of its
            datasets the checkpoint lacks, the checkpoint dataset whose branches it starts
            from; the checkpoint's other datasets are then left out. Defaults to the model's.
        strict (bool): As mmengine's. Defaults to False.

    Returns:
        dict: The checkpoint (``meta`` included).

    Example:
        >>> # a Cityscapes + CamVid model from a Cityscapes + BDD100K checkpoint
        >>> load_cdcl_checkpoint(model, 'cdcl_cityscapes_bdd.pth',
        ...                      branch_map=dict(camvid='cityscapes'))
    """
    with mmengine_checkpoints_allowed():
        checkpoint = state_datasets_from_meta(
            CheckpointLoader.load_checkpoint(filename, map_location, logger=None), filename
        )
    saved = model.branch_map
    if branch_map is not None:
        model.branch_map = checked_branch_map(branch_map, model.dataset_names)
    try:
        load_checkpoint_to_model(model, checkpoint, strict=strict)
    finally:
        model.branch_map = saved
    return checkpoint
