"""adamlib.data: the digits loader."""
import pytest
import torch

from adamlib.data import Dataset, load_digits


def test_digits_shapes_types_and_classes():
    data = load_digits()
    assert isinstance(data, Dataset)
    assert data.X.shape == (1797, 64) and data.X.dtype == torch.float32
    assert data.y.shape == (1797,) and data.y.dtype == torch.long
    assert data.n_classes == 10 and data.m == 1797 and data.n_features == 64 and len(data) == 1797
    assert sorted(data.y.unique().tolist()) == list(range(10))
    assert torch.bincount(data.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_standardized_pixels_have_zero_mean_unit_variance():
    X = load_digits(dtype=torch.float64).X
    assert X.mean(dim=0).abs().max().item() < 1e-12
    std = X.std(dim=0)
    varying = std > 0
    assert varying.sum().item() == 61  # three pixels are 0 in every image: they stay 0
    assert torch.allclose(std[varying], torch.ones_like(std[varying]))
    assert X[:, ~varying].abs().max().item() == 0.0


def test_unstandardized_pixels_lie_in_unit_interval():
    X = load_digits(standardize=False).X
    assert X.min().item() == 0.0 and X.max().item() == 1.0


def test_same_call_gives_identical_tensors():
    a, b = load_digits(), load_digits()
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)


def test_dtype_and_to():
    data = load_digits(dtype=torch.float64)
    assert data.X.dtype == torch.float64
    moved = data.to(dtype=torch.float32)
    assert moved.X.dtype == torch.float32 and moved.y.dtype == torch.long and moved.n_classes == 10


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dtype": torch.int64}, "dtype"),
        ({"dtype": "float32"}, "dtype"),
        ({"standardize": "yes"}, "standardize"),
        ({"standardize": 1}, "standardize"),
        ({"device": "no-such-device"}, "device"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}=.*expected"):
        load_digits(**kwargs)
