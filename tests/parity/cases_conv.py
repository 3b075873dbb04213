"""PyTorch goldens for conv2d and conv_transpose2d (float64)."""
from registry import case


def leaf(torch, *shape):
    return torch.randn(*shape, dtype=torch.float64).requires_grad_()


@case("conv2d_bias")
def _(torch):
    x, w, b = leaf(torch, 2, 3, 7, 6), leaf(torch, 4, 3, 3, 3), leaf(torch, 4)
    return [x, w, b], torch.nn.functional.conv2d(x, w, b)


@case("conv2d_stride2_groups")
def _(torch):
    x, w = leaf(torch, 2, 4, 9, 9), leaf(torch, 6, 2, 3, 3)
    return [x, w], torch.nn.functional.conv2d(x, w, stride=2, groups=2)


@case("conv2d_padding_dilation")
def _(torch):
    x, w, b = leaf(torch, 2, 3, 10, 8), leaf(torch, 5, 3, 3, 2), leaf(torch, 5)
    return [x, w, b], torch.nn.functional.conv2d(x, w, b, stride=(1, 2), padding=(1, 2), dilation=(2, 1))


@case("conv2d_depthwise")
def _(torch):
    x, w, b = leaf(torch, 2, 4, 6, 6), leaf(torch, 4, 1, 3, 3), leaf(torch, 4)
    return [x, w, b], torch.nn.functional.conv2d(x, w, b, padding=1, groups=4)


@case("conv2d_stem_7x7")
def _(torch):
    x, w = leaf(torch, 2, 3, 16, 16), leaf(torch, 8, 3, 7, 7)
    return [x, w], torch.nn.functional.conv2d(x, w, stride=2, padding=3)


@case("conv2d_unbatched")
def _(torch):
    x, w = leaf(torch, 3, 6, 5), leaf(torch, 2, 3, 3, 3)
    return [x, w], torch.nn.functional.conv2d(x, w)


@case("conv_transpose2d_bias")
def _(torch):
    x, w, b = leaf(torch, 2, 4, 5, 5), leaf(torch, 4, 3, 3, 3), leaf(torch, 3)
    return [x, w, b], torch.nn.functional.conv_transpose2d(x, w, b)


@case("conv_transpose2d_stride2_output_padding_groups")
def _(torch):
    x, w, b = leaf(torch, 2, 4, 4, 5), leaf(torch, 4, 3, 3, 3), leaf(torch, 6)
    return [x, w, b], torch.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)


@case("conv_transpose2d_dilation")
def _(torch):
    x, w = leaf(torch, 2, 3, 4, 4), leaf(torch, 3, 2, 3, 2)
    return [x, w], torch.nn.functional.conv_transpose2d(x, w, stride=(1, 2), padding=(1, 0), output_padding=(1, 1),
                                                        dilation=(2, 1))


@case("conv_transpose2d_unbatched")
def _(torch):
    x, w = leaf(torch, 3, 4, 4), leaf(torch, 3, 2, 2, 2)
    return [x, w], torch.nn.functional.conv_transpose2d(x, w, stride=2)
