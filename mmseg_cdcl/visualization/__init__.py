from .cdcl_local_visualizer import CDCLSegLocalVisualizer

__all__ = ['CDCLSegLocalVisualizer']
