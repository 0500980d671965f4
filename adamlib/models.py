"""The paper's models (Kingma & Ba 2015, Section 6), sized by arguments.

* :class:`LogisticRegression` (6.1): a linear layer whose softmax lives in the loss
  (``torch.nn.functional.cross_entropy``); optional dropout noise on the inputs (the IMDB
  bag-of-words runs). Two classes give the binary case as a two-way softmax.
* :class:`MLP` (6.2): fully connected ReLU layers (the paper: 2 x 1000) with dropout on the
  input and on every hidden layer.
* :class:`CNN` (6.3): stages of ``kernel``-wide convolutions with ReLU, each followed by max
  pooling of width 3 and stride 2, then a fully connected ReLU layer and the softmax layer
  (the paper: c64-c64-c128-1000 with 5x5 kernels on CIFAR-10); 2-D images or 1-D signals.
* :class:`VAE` (6.4): one softplus hidden layer in encoder and decoder, a spherical Gaussian
  latent variable and a Bernoulli decoder (Kingma & Welling 2014); :func:`vae_loss` is the
  negative ELBO.
* :class:`BatchedVAE`: ``K`` independent VAEs held as stacked weights and run as one batched
  computation (``torch.baddbmm``), so a hyper-parameter grid trains in one loop.

Every model is deterministic given ``torch.manual_seed`` before construction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "LogisticRegression", "MLP", "CNN", "VAE", "vae_loss", "BatchedVAE", "build", "parameter_count"]


def _check_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name}={value!r} is not accepted: expected a probability in [0, 1)")
    return float(value)


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not accepted: expected an int >= 1")
    return value


class Dropout(nn.Module):
    """Inverted dropout like ``torch.nn.Dropout``, with the mask drawn by ``torch.rand``.

    Same semantics (zero each entry with probability ``p`` in training mode and scale the rest
    by ``1 / (1 - p)``; identity in eval mode), but on the CPU ``torch.rand`` is many times
    faster than the per-element Bernoulli sampler ``torch.nn.Dropout`` uses. With
    ``sparse=True`` random numbers are drawn only for the non-zero entries (dropping a zero
    changes nothing): the same distribution, a hundred times fewer draws for bag-of-words
    inputs with 1 % non-zeros.
    """

    def __init__(self, p: float = 0.5, sparse: bool = False):
        super().__init__()
        self.p = _check_rate("p", p)
        self.sparse = bool(sparse)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.sparse:
            index = x.nonzero(as_tuple=True)
            keep = torch.rand(index[0].shape, device=x.device) >= self.p
            out = torch.zeros_like(x)
            out[index] = x[index] * keep.to(x.dtype) / (1.0 - self.p)
            return out
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LogisticRegression(nn.Module):
    """``logits = W x + c`` (multi-class logistic regression), with optional input dropout.

    ``init="zeros"`` starts every run at theta = 0, the usual start of a convex problem;
    ``sparse_inputs=True`` makes the input dropout draw only for non-zero features.
    """

    def __init__(self, n_features: int, n_classes: int, input_dropout: float = 0.0,
                 init: str = "zeros", sparse_inputs: bool = False):
        super().__init__()
        _check_size("n_features", n_features)
        _check_size("n_classes", n_classes)
        if init not in ("zeros", "default"):
            raise ValueError(f"init={init!r} is not accepted: expected 'zeros' or 'default'")
        self.dropout = Dropout(_check_rate("input_dropout", input_dropout), sparse=sparse_inputs)
        self.linear = nn.Linear(n_features, n_classes)
        if init == "zeros":
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        return self.linear(self.dropout(x))


class MLP(nn.Module):
    """Fully connected ReLU network: dropout(input) -> [Linear -> ReLU -> dropout] x L -> Linear."""

    def __init__(self, n_features: int, n_classes: int, hidden=(1000, 1000),
                 input_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        _check_size("n_features", n_features)
        _check_size("n_classes", n_classes)
        hidden = tuple(hidden)
        for width in hidden:
            _check_size("hidden", width)
        layers: list[nn.Module] = [Dropout(_check_rate("input_dropout", input_dropout))]
        rate = _check_rate("dropout", dropout)
        width_in = n_features
        for width in hidden:
            layers += [nn.Linear(width_in, width), nn.ReLU(), Dropout(rate)]
            width_in = width
        layers.append(nn.Linear(width_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    """c{C1}-c{C2}-...-{fc}: conv(kernel) + ReLU + maxpool(3, stride 2) per stage, then FC ReLU.

    Args:
        in_channels: input channels (3 for CIFAR-10, 1 for MNIST-1D or digits).
        input_size: the side (2-D) or length (1-D) of the input, to size the FC layer.
        n_classes: outputs.
        channels: output channels of the convolution stages (the paper: (64, 64, 128)).
        fc: width of the fully connected ReLU layer (the paper: 1000).
        kernel: convolution width (the paper: 5); padding keeps the size ("same").
        dims: 2 for images ``(m, C, H, W)``, 1 for signals ``(m, C, L)``; a flat ``(m, L)``
            input with ``dims=1`` and ``in_channels=1`` is accepted as is.
        input_dropout, dropout: dropout on the input and on the FC layer (the paper's
            "dropout noise applied to the input layer and fully connected layer").
    """

    def __init__(self, in_channels: int, input_size: int, n_classes: int,
                 channels=(64, 64, 128), fc: int = 1000, kernel: int = 5, dims: int = 2,
                 input_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims={dims!r} is not accepted: expected 1 or 2")
        for name, value in (("in_channels", in_channels), ("input_size", input_size),
                            ("n_classes", n_classes), ("fc", fc), ("kernel", kernel)):
            _check_size(name, value)
        if kernel % 2 == 0:
            raise ValueError(f"kernel={kernel!r} is not accepted: expected an odd int (same padding)")
        self.dims, self.in_channels = dims, in_channels
        Conv, Pool = (nn.Conv1d, nn.MaxPool1d) if dims == 1 else (nn.Conv2d, nn.MaxPool2d)
        layers: list[nn.Module] = [Dropout(_check_rate("input_dropout", input_dropout))]
        c_in, size = in_channels, input_size
        for c_out in channels:
            _check_size("channels", c_out)
            layers += [Conv(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(),
                       Pool(3, stride=2, padding=1)]
            c_in, size = c_out, (size - 1) // 2 + 1
        self.features = nn.Sequential(*layers)
        self.convolutions = [m for m in self.features if isinstance(m, Conv)]
        flat = c_in * size ** dims
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, fc), nn.ReLU(),
                                        Dropout(_check_rate("dropout", dropout)),
                                        nn.Linear(fc, n_classes))

    def forward(self, x):
        if self.dims == 1 and x.ndim == 2:
            x = x.unsqueeze(1)
        return self.classifier(self.features(x))

    def layers(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by layer, in order (``conv1``, ..., ``fc``, ``softmax``): for per-layer statistics."""
        named = {f"conv{i + 1}": list(conv.parameters()) for i, conv in enumerate(self.convolutions)}
        named["fc"] = list(self.classifier[1].parameters())
        named["softmax"] = list(self.classifier[4].parameters())
        return named


class VAE(nn.Module):
    """Variational auto-encoder: x -> softplus(hidden) -> (mu, log sigma^2) -> z -> softplus(hidden) -> Bernoulli logits.

    ``forward(x)`` draws one ``z = mu + sigma * eps`` (from torch's global generator) and
    returns ``(logits, mu, logvar)``; :func:`vae_loss` turns them into the negative ELBO.
    Weights start from N(0, init_std^2), biases at 0 (as in Kingma & Welling's experiments).
    """

    def __init__(self, n_features: int, hidden: int = 500, latent: int = 50, init_std: float = 0.01):
        super().__init__()
        for name, value in (("n_features", n_features), ("hidden", hidden), ("latent", latent)):
            _check_size(name, value)
        self.encoder = nn.Linear(n_features, hidden)
        self.to_latent = nn.Linear(hidden, 2 * latent)
        self.decoder_hidden = nn.Linear(latent, hidden)
        self.decoder_out = nn.Linear(hidden, n_features)
        for layer in (self.encoder, self.to_latent, self.decoder_hidden, self.decoder_out):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)
        self.latent = latent

    def forward(self, x, noise=None):
        h = F.softplus(self.encoder(x))
        mu, logvar = self.to_latent(h).chunk(2, dim=-1)
        if noise is None:
            noise = torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * noise
        logits = self.decoder_out(F.softplus(self.decoder_hidden(z)))
        return logits, mu, logvar


def vae_loss(output, x) -> torch.Tensor:
    """Negative ELBO per example, averaged over the batch (nats): reconstruction + KL(q || N(0, I))."""
    logits, mu, logvar = output
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    return (reconstruction + kl).mean(-1)


class BatchedVAE(nn.Module):
    """``K`` VAEs with stacked weights: every weight has a leading model dimension ``K``.

    ``forward(x, noise)`` runs all ``K`` on the same mini-batch ``x`` (``(B, n)``) with the
    same standard-normal ``noise`` (``(B, latent)``) and returns ``(logits, mu, logvar)`` with
    a leading ``K``; :func:`vae_loss` then gives one loss per model. Model ``k`` computes
    exactly what a :class:`VAE` with the weights ``[k]`` computes (``from_vae`` copies one VAE
    into every slot: the paper's "same parameter initialization").
    """

    NAMES = ("encoder", "to_latent", "decoder_hidden", "decoder_out")

    def __init__(self, vae: VAE, K: int):
        super().__init__()
        _check_size("K", K)
        self.K, self.latent = K, vae.latent
        for name in self.NAMES:
            layer = getattr(vae, name)
            # stored as (K, in, out) so a batch is x @ W: baddbmm(bias, x, W)
            self.register_parameter(f"{name}_weight", nn.Parameter(
                layer.weight.detach().T.unsqueeze(0).repeat(K, 1, 1).clone()))
            self.register_parameter(f"{name}_bias", nn.Parameter(
                layer.bias.detach().unsqueeze(0).repeat(K, 1).clone()))

    def _linear(self, name, x):
        return torch.baddbmm(getattr(self, f"{name}_bias").unsqueeze(1), x, getattr(self, f"{name}_weight"))

    def forward(self, x, noise):
        xk = x.unsqueeze(0).expand(self.K, *x.shape)
        h = F.softplus(self._linear("encoder", xk))
        mu, logvar = self._linear("to_latent", h).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * noise
        logits = self._linear("decoder_out", F.softplus(self._linear("decoder_hidden", z)))
        return logits, mu, logvar


def build(name: str, **kwargs) -> nn.Module:
    """A model by name: ``"logreg"``, ``"mlp"``, ``"cnn"`` or ``"vae"`` with its constructor's arguments."""
    classes = {"logreg": LogisticRegression, "mlp": MLP, "cnn": CNN, "vae": VAE}
    if name not in classes:
        raise ValueError(f"name={name!r} is not accepted: expected one of {sorted(classes)}")
    return classes[name](**kwargs)


def parameter_count(model: nn.Module) -> int:
    """The number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

