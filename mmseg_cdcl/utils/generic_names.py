"""The plugin's classes under MMSeg's generic names too, as a fallback a user's class overrides."""

import warnings

from mmengine.registry import Registry


def register_generic_name(registry: Registry, name: str, cls: type) -> None:
    """Register ``cls`` (registered in ``registry`` under a name of its own) under ``name`` too,
    in ``registry``'s parent (for MMSeg's registries, mmengine's root registry), which
    ``registry`` searches after its own entries: a class a user registers under ``name`` in
    ``registry``, before or after ``mmseg_cdcl`` is imported, is the one ``name`` builds, and
    neither registration fails. Where ``name`` is taken already, warns, naming both classes,
    and registers nothing.

    Args:
        registry (Registry): Where ``cls`` is registered under its own name (e.g. MMSeg's
            ``DATASETS``), with a parent.
        name (str): The generic name, as configs written before the plugin's own name did.
        cls (type): The plugin's class.
    """
    for holder in (registry, registry.parent):
        taken = holder.module_dict.get(name)
        if taken is not None and taken is not cls:
            own = next(key for key, value in registry.module_dict.items() if value is cls)
            warnings.warn(
                f'{name!r} in the {holder.scope} {holder.name} registry is '
                f"{taken.__module__}.{taken.__qualname__}; mmseg_cdcl's "
                f'{cls.__module__}.{cls.__qualname__} is {own!r}'
            )
            return
    if name not in registry.parent.module_dict:
        registry.parent.register_module(name=name, module=cls)
