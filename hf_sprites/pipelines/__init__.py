from .sprite_pipeline import SpritePipeline, SpritePipelineOutput

__all__ = ["SpritePipeline", "SpritePipelineOutput"]
