from registry import case


def leaf(torch, *shape):
    return (2 * torch.rand(*shape, dtype=torch.float64) - 1).requires_grad_()


def interp(torch, *args, **kwargs):
    return torch.nn.functional.interpolate(*args, **kwargs)


@case("upsample_nearest_size_up")
def _(torch):
    x = leaf(torch, 2, 3, 4, 5)
    return [x], interp(torch, x, size=(7, 11), mode="nearest")


@case("upsample_nearest_size_down")
def _(torch):
    x = leaf(torch, 2, 3, 7, 5)
    return [x], interp(torch, x, size=(3, 2), mode="nearest")


@case("upsample_nearest_scale2")
def _(torch):
    x = leaf(torch, 2, 3, 4, 5)
    return [x], interp(torch, x, scale_factor=2, mode="nearest")


@case("upsample_nearest_scale_fractional")
def _(torch):
    x = leaf(torch, 2, 2, 5, 7)
    return [x], interp(torch, x, scale_factor=(1.7, 0.6), mode="nearest")


@case("upsample_bilinear_size_up")
def _(torch):
    x = leaf(torch, 2, 3, 4, 5)
    return [x], interp(torch, x, size=(7, 9), mode="bilinear", align_corners=False)


@case("upsample_bilinear_size_up_align")
def _(torch):
    x = leaf(torch, 2, 3, 4, 5)
    return [x], interp(torch, x, size=(7, 9), mode="bilinear", align_corners=True)


@case("upsample_bilinear_size_down")
def _(torch):
    x = leaf(torch, 2, 3, 7, 6)
    return [x], interp(torch, x, size=(3, 4), mode="bilinear", align_corners=False)


@case("upsample_bilinear_size_down_align")
def _(torch):
    x = leaf(torch, 2, 3, 7, 6)
    return [x], interp(torch, x, size=(1, 4), mode="bilinear", align_corners=True)


@case("upsample_bilinear_scale2")
def _(torch):
    x = leaf(torch, 1, 3, 4, 5)
    return [x], interp(torch, x, scale_factor=2, mode="bilinear", align_corners=False)


@case("upsample_bilinear_scale_fractional")
def _(torch):
    x = leaf(torch, 2, 2, 5, 7)
    return [x], interp(torch, x, scale_factor=(1.7, 0.6), mode="bilinear", align_corners=False)


@case("upsample_bilinear_scale_fractional_recompute")
def _(torch):
    x = leaf(torch, 2, 2, 5, 7)
    return [x], interp(torch, x, scale_factor=(1.7, 0.6), mode="bilinear", align_corners=False,
                       recompute_scale_factor=True)
