"""neatpipe: evolve code-generation pipelines of small language models with NEAT."""
__version__ = "0.1.0"
