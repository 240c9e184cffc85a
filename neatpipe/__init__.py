"""neatpipe: evolve code-generation pipelines of small language models with NEAT.

>>> import neatpipe
>>> run = neatpipe.evolve("experiments/synthetic.yaml", generations=3)   # doctest: +SKIP
>>> run.champion, run.history, run.validation                             # doctest: +SKIP

``neatpipe.evolve`` is both the package of the evolution loop (``neatpipe.evolve.Evaluator``, ...)
and, called, the function :func:`neatpipe.evolve.run.evolve`.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "evolve":  # loaded on first use: it imports neat-python and the runtime
        import importlib

        return importlib.import_module("neatpipe.evolve")
    raise AttributeError(f"module 'neatpipe' has no attribute {name!r}")
