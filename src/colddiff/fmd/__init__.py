"""The Fréchet MNIST Distance (FMD): FID with an MNIST classifier's 1024-d features.

* :func:`score` scores generated digits with the reference study's protocol or the full one
  (:mod:`~colddiff.fmd.protocols`); :func:`load_samples` reads them from disk.
* :func:`class_scores` scores class-conditional samples: the classifier's accuracy against the
  asked classes and each class's Fréchet distance (:mod:`~colddiff.fmd.classes`).
* :class:`FMD` is the streaming metric (:mod:`~colddiff.fmd.metric`); :class:`FMDHook` logs
  it during training (:mod:`~colddiff.fmd.hook`).
* :func:`frechet_distance` and :func:`frechet_distance_from_features` are the exact, fast
  distance; :class:`MNISTClassifier` and :func:`load_classifier` the feature extractor with its
  shipped, versioned weights.
"""

from colddiff.fmd.classes import ClassScores, class_scores, describe_classes
from colddiff.fmd.classifier import (
    FEATURE_DIM,
    WEIGHTS,
    MNISTClassifier,
    WeightsError,
    evaluate,
    load_classifier,
    save_classifier,
    train_classifier,
)
from colddiff.fmd.frechet import FeatureStatistics, frechet_distance, frechet_distance_from_features
from colddiff.fmd.hook import FMDHook
from colddiff.fmd.metric import FMD, check_images, distance
from colddiff.fmd.protocols import FMDResult, cache_dir, describe, score, test_reference
from colddiff.fmd.samples import load_labelled_samples, load_samples

__all__ = [
    "FEATURE_DIM",
    "FMD",
    "WEIGHTS",
    "ClassScores",
    "FMDHook",
    "FMDResult",
    "FeatureStatistics",
    "MNISTClassifier",
    "WeightsError",
    "cache_dir",
    "check_images",
    "class_scores",
    "describe",
    "describe_classes",
    "distance",
    "evaluate",
    "frechet_distance",
    "frechet_distance_from_features",
    "load_classifier",
    "load_labelled_samples",
    "load_samples",
    "save_classifier",
    "score",
    "test_reference",
    "train_classifier",
]
