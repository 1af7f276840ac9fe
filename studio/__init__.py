"""The studio: build image classifiers from a few hundred labeled images by transfer learning."""

__version__ = "0.1.0"
