from registry import case


def distinct(torch, *shape):
    """Values without ties (a scaled random permutation), so max pooling has one argmax."""
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n, dtype=torch.float64) / n * 4 - 2).reshape(*shape).requires_grad_()


def leaf(torch, *shape):
    return (2 * torch.rand(*shape, dtype=torch.float64) - 1).requires_grad_()


def nnf(torch):
    return torch.nn.functional


@case("max_pool2d_k3_s2_p1")
def _(torch):
    x = distinct(torch, 2, 3, 8, 9)
    return [x], nnf(torch).max_pool2d(x, 3, stride=2, padding=1)


@case("max_pool2d_dilation_ceil")
def _(torch):
    x = distinct(torch, 2, 2, 9, 10)
    return [x], nnf(torch).max_pool2d(x, (3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 1), ceil_mode=True)


@case("max_pool2d_unbatched")
def _(torch):
    x = distinct(torch, 3, 7, 7)
    return [x], nnf(torch).max_pool2d(x, 2)


@case("max_pool2d_indices")
def _(torch):
    x = distinct(torch, 2, 3, 9, 8).detach()
    _, indices = nnf(torch).max_pool2d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True, return_indices=True)
    return [x], indices


@case("avg_pool2d_k3_s2_p1")
def _(torch):
    x = leaf(torch, 2, 3, 7, 8)
    return [x], nnf(torch).avg_pool2d(x, 3, stride=2, padding=1)


@case("avg_pool2d_ceil_include_pad")
def _(torch):
    x = leaf(torch, 2, 2, 8, 7)
    return [x], nnf(torch).avg_pool2d(x, (3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True)


@case("avg_pool2d_ceil_exclude_pad")
def _(torch):
    x = leaf(torch, 2, 2, 8, 7)
    return [x], nnf(torch).avg_pool2d(x, (3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True,
                                      count_include_pad=False)


@case("avg_pool2d_divisor_override")
def _(torch):
    x = leaf(torch, 2, 3, 6, 7)
    return [x], nnf(torch).avg_pool2d(x, 3, stride=2, padding=1, divisor_override=5)


@case("avg_pool2d_k2")
def _(torch):
    x = leaf(torch, 2, 4, 8, 8)
    return [x], nnf(torch).avg_pool2d(x, 2)


@case("adaptive_avg_pool2d_7x5_to_3x2")
def _(torch):
    x = leaf(torch, 2, 3, 7, 5)
    return [x], nnf(torch).adaptive_avg_pool2d(x, (3, 2))


@case("adaptive_avg_pool2d_1x1")
def _(torch):
    x = leaf(torch, 2, 4, 6, 5)
    return [x], nnf(torch).adaptive_avg_pool2d(x, 1)


@case("adaptive_avg_pool2d_up_unbatched")
def _(torch):
    x = leaf(torch, 3, 3, 4)
    return [x], nnf(torch).adaptive_avg_pool2d(x, (5, 7))
