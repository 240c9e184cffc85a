"""The offline synthetic coder: a backend kind of its own (``synthetic:<preset>``)."""

from neatpipe.synthetic.coder import *  # noqa: F403
from neatpipe.synthetic.coder import __all__  # noqa: F401
