"""adamlib: Adam (Kingma & Ba, 2015) and its family, executable.

Optimizers (``torch.optim.Optimizer`` subclasses that agree with ``torch.optim`` and with the
paper's algorithm boxes in :mod:`adamlib.reference`)::

    from adamlib import SGD, Momentum, Adagrad, RMSProp, Adam, AdamW, AMSGrad, AdaMax
"""
from .optim import SGD, AdaMax, Adagrad, Adam, AdamW, AMSGrad, Momentum, RMSProp

__version__ = "0.1.0"

__all__ = ["SGD", "Momentum", "Adagrad", "RMSProp", "Adam", "AdamW", "AMSGrad", "AdaMax", "__version__"]
