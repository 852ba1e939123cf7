"""hf_sprites: the small diffusion models of the DeepLearning.AI and Hugging Face courses, diffusers-native.

`import hf_sprites` before `DDPMPipeline.from_pretrained(folder)`: diffusers resolves the package's components
(`["hf_sprites.models.context_unet", "ContextUnet"]` in `model_index.json`) only from modules already imported.
"""

# diffusers' loader looks the base classes up by name on a component's library module: expose them here too.
from diffusers import DiffusionPipeline, ModelMixin, SchedulerMixin

from . import viz
from .models import BasicUNet, ContextUnet
from .pipelines import SpritePipeline, SpritePipelineOutput
from .schedulers import CorruptScheduler, SpriteScheduler

__version__ = "0.1.0"

__all__ = [
    "BasicUNet",
    "ContextUnet",
    "CorruptScheduler",
    "DiffusionPipeline",
    "ModelMixin",
    "SchedulerMixin",
    "SpritePipeline",
    "SpritePipelineOutput",
    "SpriteScheduler",
]
