from .corrupt import CorruptScheduler
from .sprite import SpriteScheduler, course_schedule

__all__ = ["CorruptScheduler", "SpriteScheduler", "course_schedule"]
