from .cross_dataset_loss import dataset_loss_weights, parse_dataset_losses, weighted_dataset_losses

__all__ = ['dataset_loss_weights', 'parse_dataset_losses', 'weighted_dataset_losses']
