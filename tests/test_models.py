"""adamlib.models: shapes, dropout semantics, and the batched VAE against K single VAEs."""
import pytest
import torch

from adamlib import models


def test_logistic_regression_starts_at_zero_and_maps_to_classes():
    m = models.LogisticRegression(64, 10)
    assert m(torch.randn(5, 64)).shape == (5, 10)
    assert all(p.abs().sum().item() == 0 for p in m.parameters())


def test_mlp_and_cnn_shapes():
    torch.manual_seed(0)
    mlp = models.MLP(40, 10, hidden=(32, 16), input_dropout=0.2, dropout=0.5)
    assert mlp(torch.randn(7, 40)).shape == (7, 10)
    cnn1 = models.CNN(1, 40, 10, channels=(4, 4, 8), fc=16, kernel=5, dims=1)
    assert cnn1(torch.randn(7, 40)).shape == (7, 10)
    assert list(cnn1.layers()) == ["conv1", "conv2", "conv3", "fc", "softmax"]
    cnn2 = models.CNN(3, 32, 10, channels=(4, 4, 8), fc=16, kernel=5, dims=2)
    assert cnn2(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # the paper's c64-c64-c128-1000 on 32x32: 32 -> 16 -> 8 -> 4 after the three pools
    paper = models.CNN(3, 32, 10)
    assert paper.classifier[1].in_features == 128 * 4 * 4


@pytest.mark.parametrize("sparse", [False, True])
def test_dropout_is_identity_in_eval_and_unbiased_in_training(sparse):
    torch.manual_seed(0)
    layer = models.Dropout(0.5, sparse=sparse)
    x = (torch.rand(200, 500) < 0.1).float()
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    y = layer(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert (y[x == 0] == 0).all()
    kept = (y[x == 1] > 0).float().mean().item()
    assert 0.45 < kept < 0.55


def test_batched_vae_equals_single_vaes():
    torch.manual_seed(0)
    vae = models.VAE(12, hidden=8, latent=3, init_std=0.3)
    batched = models.BatchedVAE(vae, K=4)
    with torch.no_grad():
        batched.encoder_weight[2] += 0.1  # make one slot differ
    x = (torch.rand(5, 12) < 0.5).float()
    noise = torch.randn(5, 3)
    losses = models.vae_loss(batched(x, noise), x.expand(4, 5, 12))
    assert losses.shape == (4,)
    single = models.vae_loss(vae(x, noise), x)
    assert torch.allclose(losses[0], single, atol=1e-5) and torch.allclose(losses[3], single, atol=1e-5)
    assert not torch.allclose(losses[2], single)


def test_vae_loss_is_positive_nats():
    torch.manual_seed(0)
    vae = models.VAE(64, hidden=20, latent=4)
    x = (torch.rand(10, 64) < 0.5).float()
    loss = models.vae_loss(vae(x), x)
    # an untrained decoder says p = 1/2 for every pixel: about 64 log 2 = 44.4 nats
    assert 40 < loss.item() < 50


@pytest.mark.parametrize("kwargs, name", [({"input_dropout": 1.0}, "input_dropout"),
                                          ({"n_classes": 0}, "n_classes")])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}="):
        models.LogisticRegression(**{"n_features": 3, "n_classes": 2, **kwargs})
    with pytest.raises(ValueError, match="^name="):
        models.build("resnet")
