from registry import case


def leaf(torch, *shape, lo=-1.0, hi=1.0, grad=True):
    t = lo + (hi - lo) * torch.rand(*shape, dtype=torch.float64)
    return t.requires_grad_() if grad else t


# Training mode: the running statistics do not affect the output; the case passes
# copies so the inputs recorded here are the values before the update.
@case("batch_norm_train_4d")
def _(torch):
    x = leaf(torch, 4, 3, 5, 6, lo=-2, hi=3)
    w, b = leaf(torch, 3, lo=0.5, hi=1.5), leaf(torch, 3)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    return [x, w, b], torch.nn.functional.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)


@case("batch_norm_train_2d")
def _(torch):
    x = leaf(torch, 8, 5, lo=-1, hi=4)
    w, b = leaf(torch, 5, lo=0.5, hi=1.5), leaf(torch, 5)
    return [x, w, b], torch.nn.functional.batch_norm(x, None, None, w, b, training=True, eps=1e-3)


@case("batch_norm_train_3d_no_affine")
def _(torch):
    x = leaf(torch, 3, 4, 7)
    return [x], torch.nn.functional.batch_norm(x, None, None, None, None, training=True)


@case("batch_norm_eval_4d")
def _(torch):
    x = leaf(torch, 2, 3, 4, 5, lo=-2, hi=2)
    rm, rv = leaf(torch, 3, grad=False), leaf(torch, 3, lo=0.5, hi=2.0, grad=False)
    w, b = leaf(torch, 3, lo=0.5, hi=1.5), leaf(torch, 3)
    return [x, rm, rv, w, b], torch.nn.functional.batch_norm(x, rm, rv, w, b, training=False, eps=1e-4)


# The running statistics after one training step (momentum 0.3): [running_mean; running_var].
@case("batch_norm_running_stats")
def _(torch):
    x = leaf(torch, 4, 3, 2, 3, lo=-2, hi=3, grad=False)
    rm, rv = leaf(torch, 3, grad=False), leaf(torch, 3, lo=0.5, hi=2.0, grad=False)
    rm2, rv2 = rm.clone(), rv.clone()
    torch.nn.functional.batch_norm(x, rm2, rv2, None, None, training=True, momentum=0.3)
    return [x, rm, rv], torch.stack([rm2, rv2])
