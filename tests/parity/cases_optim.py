"""Optimizer trajectories: a parameter after three steps with fixed gradients."""
from registry import case

STEPS = 3


def trajectory(torch, make_optimizer):
    param = torch.randn(5, dtype=torch.float64)
    grads = torch.randn(STEPS, 5, dtype=torch.float64)
    p = param.clone().requires_grad_()
    opt = make_optimizer([p])
    for k in range(STEPS):
        p.grad = grads[k].clone()
        opt.step()
    return [param, grads], p.detach()


@case("optim_sgd_momentum_nesterov")
def _(torch):
    return trajectory(torch, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True))


@case("optim_sgd_dampening")
def _(torch):
    return trajectory(torch, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3))


@case("optim_adam")
def _(torch):
    return trajectory(torch, lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1))


@case("optim_adamw")
def _(torch):
    return trajectory(torch, lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2))
