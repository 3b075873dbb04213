from registry import case


def leaf(torch, *shape, lo=-1.0, hi=1.0):
    return (lo + (hi - lo) * torch.rand(*shape, dtype=torch.float64)).requires_grad_()


@case("add_broadcast")
def _(torch):
    a, b = leaf(torch, 2, 1, 3), leaf(torch, 4, 1)
    return [a, b], a + b


@case("sub_broadcast")
def _(torch):
    a, b = leaf(torch, 3, 4), leaf(torch, 4)
    return [a, b], a - b


@case("mul_broadcast")
def _(torch):
    a, b = leaf(torch, 2, 3, 1), leaf(torch, 1, 4)
    return [a, b], a * b


@case("div_broadcast")
def _(torch):
    a, b = leaf(torch, 3, 4), leaf(torch, 3, 1, lo=0.5, hi=2.0)
    return [a, b], a / b


@case("pow_tensor")
def _(torch):
    a, b = leaf(torch, 2, 3, lo=0.5, hi=2.0), leaf(torch, 3)
    return [a, b], torch.pow(a, b)


@case("unary_chain")
def _(torch):
    x = leaf(torch, 4, 5, lo=-3, hi=3)
    F = torch.nn.functional
    y = (torch.exp(x) + torch.log(x.abs() + 0.5) + torch.sqrt(x.abs() + 0.1) + F.relu(x)
         + F.leaky_relu(x, 0.2) + torch.sigmoid(x) + torch.tanh(x) + F.softplus(x, beta=2, threshold=3)
         + torch.clamp(x, -0.5, 0.7) + torch.pow(x, 3) - x * 2.5 + 1.25)
    return [x], y


@case("sum_mean_dims")
def _(torch):
    x = leaf(torch, 3, 4, 5)
    return [x], x.sum(dim=(0, 2), keepdim=True) * 2 + x.mean(dim=1, keepdim=True).sum(dim=2, keepdim=True)


@case("pow_zero_exponent_and_base")
def _(torch):
    a = torch.tensor([0.0, 0.0, 2.0, 1.5], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.0, 2.0, 0.0, -1.0], dtype=torch.float64, requires_grad=True)
    return [a, b], torch.pow(a, b)
