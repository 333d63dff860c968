from .dab_resnet import DABResNet, DABResNetV1c

__all__ = ['DABResNet', 'DABResNetV1c']
