"""Quality measurement for hf_sprites models: FID/KID with pluggable features, class-conditional accuracy.

`evaluate(...)` samples a pipeline and scores it against a reference split; `main(argv)` is the
`hf-sprites evaluate` command. Offline by default: the "domain" features come from a small
classifier trained (and cached) on the reference split's labels.
"""

from .accuracy import balanced_class_labels, class_conditional_accuracy, reference_class_labels
from .classifier_cache import default_cache_dir, load_or_train_domain_classifier
from .command import main
from .domain_classifier import ClassifierRecipe, DomainClassifier, train_domain_classifier
from .evaluate import compare_images, evaluate, load_reference
from .features import DomainFeatures, FeatureExtractor, InceptionFeatures
from .fid import feature_statistics, frechet_distance, frechet_distance_from_statistics, kernel_distance
from .sampling import as_sprite_pipeline, generate_samples, swap_sampler

__all__ = [
    "as_sprite_pipeline",
    "ClassifierRecipe",
    "DomainClassifier",
    "DomainFeatures",
    "FeatureExtractor",
    "InceptionFeatures",
    "balanced_class_labels",
    "class_conditional_accuracy",
    "compare_images",
    "default_cache_dir",
    "evaluate",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "generate_samples",
    "kernel_distance",
    "load_or_train_domain_classifier",
    "load_reference",
    "main",
    "reference_class_labels",
    "swap_sampler",
    "train_domain_classifier",
]
