import math

import pytest
import torch

from colddiff import nets


def test_cnn_is_the_report_network() -> None:
    net = nets.CNN()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]
    linears = [m for m in net.time_mlp if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 32, 16, 1]
    assert [c.kernel_size for c in convs] == [(7, 7)] * 5 + [(3, 3)]
    assert [c.padding for c in convs] == [(3, 3)] * 5 + [(1, 1)]
    assert [n.normalized_shape for n in norms] == [(c, 28, 28) for c in (16, 32, 64, 32, 16)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (32, 128), (128, 128), (128, 128), (128, 16)]
    expected = [0.0] + [2 * math.pi * 1.5**i for i in range(15)]
    torch.testing.assert_close(net.frequencies, torch.tensor(expected))
    # The coursework starter's smaller network is one argument away.
    starter = nets.CNN(channels=(16, 32, 32, 16))
    assert [c.out_channels for c in starter.modules() if isinstance(c, torch.nn.Conv2d)] == [
        16, 32, 32, 16, 1]


def test_time_encoding_is_sin_and_cos_minus_one() -> None:
    net = nets.CNN()
    t = torch.tensor([0.0, 0.3])
    phases = t[:, None] * net.frequencies[None]
    encoding = torch.cat([phases.sin(), phases.cos() - 1], 1)
    torch.testing.assert_close(net.time_embedding(t)[:, :, 0, 0], net.time_mlp(encoding))
    assert encoding[0].abs().max() == 0


@pytest.mark.parametrize(("channels", "size"), [(1, (28, 28)), (3, (32, 32)), (2, (9, 13))])
def test_cnn_keeps_the_shape_of_any_image(channels: int, size: tuple[int, int]) -> None:
    net = nets.CNN(in_channels=channels, image_size=size, channels=(4, 8))
    x = torch.randn(2, channels, *size)
    out = net(x, torch.tensor([0.1, 0.9]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.sum().backward()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"in_channels": 0}, "in_channels"), ({"kernel_size": 4}, "kernel_size"),
     ({"channels": ()}, "channels"), ({"channels": (4, -1)}, "channels"),
     ({"image_size": (28,)}, "image_size")],
)
def test_bad_cnn_arguments_raise(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        nets.CNN(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("channels", "size", "levels"), [
    (1, (28, 28), 3), (3, (32, 32), 3), (1, (30, 27), 3), (3, (64, 64), 4), (3, (48, 40), 4)])
def test_unet_keeps_the_shape_of_any_image_and_starts_at_zero(channels: int, size: tuple[int, int],
                                                              levels: int) -> None:
    net = nets.UNet(in_channels=channels, channels=8, blocks=1, image_size=size)
    assert len(net.down) == levels, "one more resolution per doubling above 32 pixels"
    assert net.multiple == 2 ** (levels - 1)
    x = torch.randn(2, channels, *size)
    out = net(x, torch.tensor([0.1, 0.9]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0, "zero-initialised output layer"
    out.sum().backward()
    assert isinstance(nets.create("unet", channels=8, attention=False), nets.UNet)
    assert len(nets.UNet(multipliers=(1, 2), channels=8).down) == 2
    with pytest.raises(ValueError, match=r"^multipliers must be positive ints, one per resolution, "
                       r"got \(\)$"):
        nets.UNet(multipliers=())
    with pytest.raises(ValueError, match=r"^image_size must be a positive int or \(H, W\), got 0$"):
        nets.UNet(image_size=0)
    with pytest.raises(ValueError, match=r"unknown net .transformer.; available: .*cnn.*unet"):
        nets.create("transformer")
