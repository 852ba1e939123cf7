from .auto import load_unet
from .basic_unet import BasicUNet
from .context_unet import ContextUnet

__all__ = ["BasicUNet", "ContextUnet", "load_unet"]
