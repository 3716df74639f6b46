"""embedpipe: media files in, foundation-model embedding datasets out."""

__version__ = "0.1.0"
