"""Golden cases for matmul/linear, softmax, max/min, the index ops, dropout and normalize."""
from registry import case


def leaf(torch, *shape, lo=-1.0, hi=1.0):
    return (lo + (hi - lo) * torch.rand(*shape, dtype=torch.float64)).requires_grad_()


# ---- matmul / linear

def _matmul_case(name, shape_a, shape_b):
    @case(name)
    def _(torch):
        a, b = leaf(torch, *shape_a), leaf(torch, *shape_b)
        return [a, b], torch.matmul(a, b)


_matmul_case("matmul_1d_1d", (5,), (5,))
_matmul_case("matmul_2d_2d", (3, 4), (4, 5))
_matmul_case("matmul_1d_2d", (4,), (4, 3))
_matmul_case("matmul_2d_1d", (3, 4), (4,))
_matmul_case("matmul_3d_2d", (2, 3, 4), (4, 5))
_matmul_case("matmul_2d_3d", (3, 4), (2, 4, 5))
_matmul_case("matmul_1d_3d", (4,), (2, 4, 3))
_matmul_case("matmul_3d_1d", (2, 3, 4), (4,))
_matmul_case("matmul_batched_broadcast", (2, 1, 3, 4), (5, 4, 2))


@case("linear_bias_3d")
def _(torch):
    x, w, b = leaf(torch, 2, 3, 4), leaf(torch, 5, 4), leaf(torch, 5)
    return [x, w, b], torch.nn.functional.linear(x, w, b)


@case("linear_no_bias_1d")
def _(torch):
    x, w = leaf(torch, 4), leaf(torch, 3, 4)
    return [x, w], torch.nn.functional.linear(x, w)


# ---- softmax

@case("softmax_dim1")
def _(torch):
    x = leaf(torch, 3, 4, 5, lo=-3, hi=3)
    return [x], torch.softmax(x, 1)


@case("softmax_dim0_large_logits")
def _(torch):
    x = (leaf(torch, 4, 3, lo=-3, hi=3).detach() + 1000.0).requires_grad_()
    return [x], torch.softmax(x, 0)


@case("log_softmax_dim_last")
def _(torch):
    x = leaf(torch, 3, 4, 5, lo=-3, hi=3)
    return [x], torch.log_softmax(x, -1)


@case("log_softmax_dim0")
def _(torch):
    x = leaf(torch, 4, 6, lo=-3, hi=3)
    return [x], torch.log_softmax(x, 0)


# ---- max / min (ties built in on purpose)

def tied(torch, *shape):
    return torch.randint(0, 4, shape).double().requires_grad_()


@case("max_full_ties")
def _(torch):
    x = tied(torch, 3, 4)
    return [x], x.max()


@case("min_full")
def _(torch):
    x = leaf(torch, 3, 4)
    return [x], x.min()


@case("max_dim_values_ties")
def _(torch):
    x = tied(torch, 3, 5, 2)
    return [x], x.max(1, keepdim=True).values


@case("max_dim_indices_ties")
def _(torch):
    x = tied(torch, 3, 5, 2).detach()
    return [x], x.max(1).indices


@case("min_dim_values_ties")
def _(torch):
    x = tied(torch, 4, 6)
    return [x], x.min(-1).values


@case("min_dim_indices_ties")
def _(torch):
    x = tied(torch, 4, 6).detach()
    return [x], x.min(0).indices


@case("amax_dims_ties")
def _(torch):
    x = tied(torch, 3, 4, 5)
    return [x], torch.amax(x, dim=(0, 2))


@case("amin_dims_keepdim_ties")
def _(torch):
    x = tied(torch, 3, 4, 5)
    return [x], torch.amin(x, dim=(1,), keepdim=True)


# ---- index ops

@case("cat_dim1")
def _(torch):
    a, b, c = leaf(torch, 2, 3, 2), leaf(torch, 2, 1, 2), leaf(torch, 2, 4, 2)
    return [a, b, c], torch.cat([a, b, c], 1)


@case("cat_dim_last")
def _(torch):
    a, b, c = leaf(torch, 2, 3), leaf(torch, 2, 1), leaf(torch, 2, 2)
    return [a, b, c], torch.cat([a, b, c], -1)


@case("stack_dim1")
def _(torch):
    a, b, c = leaf(torch, 2, 3), leaf(torch, 2, 3), leaf(torch, 2, 3)
    return [a, b, c], torch.stack([a, b, c], 1)


@case("index_select_repeated")
def _(torch):
    x = leaf(torch, 3, 5, 2)
    index = torch.tensor([4, 0, 4, 2, 4])
    return [x, index], torch.index_select(x, 1, index)


@case("gather_dim1")
def _(torch):
    x = leaf(torch, 3, 5)
    index = torch.randint(0, 5, (2, 7))
    return [x, index], torch.gather(x, 1, index)


@case("scatter_add_dim0")
def _(torch):
    x, src = leaf(torch, 4, 3), leaf(torch, 5, 3)
    index = torch.randint(0, 4, (5, 3))
    return [x, index, src], torch.scatter_add(x, 0, index, src)


@case("where_broadcast")
def _(torch):
    cond = torch.rand(2, 1, 4) > 0.5
    a, b = leaf(torch, 3, 1), leaf(torch, 2, 3, 4)
    return [cond, a, b], torch.where(cond, a, b)


@case("masked_fill_broadcast")
def _(torch):
    x = leaf(torch, 3, 4)
    mask = torch.rand(2, 3, 1) > 0.5
    return [x, mask], torch.masked_fill(x, mask, -2.5)


@case("pow_zero_base")
def _(torch):
    a = torch.tensor([0.0, 0.5, 2.0, 0.0, 1.5], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0, 1.5, 0.5, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    return [a, b], torch.pow(a, b)


# ---- dropout: only PyTorch's deterministic parts can be compared

@case("dropout_eval")
def _(torch):
    x = leaf(torch, 3, 4)
    return [x], torch.nn.functional.dropout(x, 0.5, training=False)


@case("dropout_p1")
def _(torch):
    x = leaf(torch, 3, 4)
    return [x], torch.nn.functional.dropout(x, 1.0)


@case("dropout_kept_scale")
def _(torch):
    x = torch.ones(4096, dtype=torch.float64)
    return [x], torch.nn.functional.dropout(x, 0.25).max()


@case("dropout_drop_fraction")
def _(torch):
    x = torch.ones(200000, dtype=torch.float64)
    return [x], (torch.nn.functional.dropout(x, 0.3) == 0).double().mean()


# ---- normalize

@case("normalize_default")
def _(torch):
    x = leaf(torch, 4, 5, 3)
    return [x], torch.nn.functional.normalize(x)


@case("normalize_p1_dim0")
def _(torch):
    x = leaf(torch, 4, 5)
    return [x], torch.nn.functional.normalize(x, p=1.0, dim=0)


@case("normalize_p3_dim_last")
def _(torch):
    x = leaf(torch, 3, 6)
    return [x], torch.nn.functional.normalize(x, p=3.0, dim=-1)


@case("normalize_zero_and_small_rows")
def _(torch):
    x = leaf(torch, 4, 3).detach()
    x[1] = 0.0
    x[2] *= 1e-3
    x.requires_grad_()
    return [x], torch.nn.functional.normalize(x, p=2.0, dim=1, eps=0.01)


@case("normalize_zero_row_default_eps")
def _(torch):
    x = leaf(torch, 3, 4).detach()
    x[0] = 0.0
    x.requires_grad_()
    return [x], torch.nn.functional.normalize(x)
