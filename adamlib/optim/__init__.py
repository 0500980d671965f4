"""adamlib's optimizers: each a torch.optim.Optimizer, checked against torch.optim and the paper."""
from .adagrad import Adagrad
from .adam import AMSGrad, Adam, AdamW
from .adamax import AdaMax
from .rmsprop import RMSProp
from .sgd import SGD, Momentum

__all__ = ["SGD", "Momentum", "Adagrad", "RMSProp", "Adam", "AdamW", "AMSGrad", "AdaMax"]
