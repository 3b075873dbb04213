"""Golden cases for the losses (engine/ops/loss). Where torch has the loss it is called directly;
NT-Xent, StableRep's MultiPosConLoss, SupCon, the three-branch embedding losses, the softmax focal
loss and soft Dice are written here as the reference implementations compose them from torch ops."""
from registry import case


def F(torch):
    return torch.nn.functional


def leaf(torch, *shape, lo=-1.0, hi=1.0):
    return (lo + (hi - lo) * torch.rand(*shape, dtype=torch.float64)).requires_grad_()


def randn_leaf(torch, *shape, scale=1.0):
    return (scale * torch.randn(*shape, dtype=torch.float64)).requires_grad_()


def extreme_logits(torch, *shape):
    """|x| in [50, 100], random signs: exp(x) overflows float32 unless the loss is stable."""
    mag = 50.0 + 50.0 * torch.rand(*shape, dtype=torch.float64)
    sign = torch.where(torch.rand(*shape) < 0.5, -1.0, 1.0).double()
    return (mag * sign).requires_grad_()


def binary_targets(torch, *shape):
    return (torch.rand(*shape) < 0.5).double()


# ---- sigmoid focal (torchvision.ops.sigmoid_focal_loss)

def _focal(torch, x, t, alpha, gamma, reduction):
    import torchvision
    return torchvision.ops.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction)


@case("loss_sigmoid_focal_none")
def _(torch):
    x, t = randn_leaf(torch, 4, 5, scale=3.0), binary_targets(torch, 4, 5)
    return [x, t], _focal(torch, x, t, 0.25, 2.0, "none")


@case("loss_sigmoid_focal_mean_soft_targets")
def _(torch):
    x, t = randn_leaf(torch, 3, 7, scale=2.0), leaf(torch, 3, 7, lo=0.0, hi=1.0)
    return [x, t], _focal(torch, x, t, 0.6, 1.5, "mean")


@case("loss_sigmoid_focal_sum_no_alpha")
def _(torch):
    x, t = randn_leaf(torch, 10, scale=2.0), binary_targets(torch, 10)
    return [x, t], _focal(torch, x, t, -1.0, 3.0, "sum")


@case("loss_sigmoid_focal_extreme")
def _(torch):
    x, t = extreme_logits(torch, 4, 6), binary_targets(torch, 4, 6)
    return [x, t], _focal(torch, x, t, 0.25, 2.0, "mean")


# ---- BCE with logits

@case("loss_bce_mean")
def _(torch):
    x, t = randn_leaf(torch, 6, 3, scale=2.0), binary_targets(torch, 6, 3)
    return [x, t], F(torch).binary_cross_entropy_with_logits(x, t)


@case("loss_bce_weight_pos_weight_sum")
def _(torch):
    x, t = randn_leaf(torch, 6, 3, scale=2.0), leaf(torch, 6, 3, lo=0.0, hi=1.0)
    w = torch.rand(6, 1, dtype=torch.float64) + 0.5
    pw = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    return [x, t, w, pw], F(torch).binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction="sum")


@case("loss_bce_none_extreme")
def _(torch):
    x, t = extreme_logits(torch, 5, 4), binary_targets(torch, 5, 4)
    pw = torch.tensor([3.0, 0.25, 1.0, 2.0], dtype=torch.float64)
    return [x, t, pw], F(torch).binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")


# ---- cross-entropy

@case("loss_ce_mean")
def _(torch):
    x = randn_leaf(torch, 8, 5, scale=2.0)
    y = torch.randint(0, 5, (8,))
    return [x, y], F(torch).cross_entropy(x, y)


@case("loss_ce_weight_ignore_smoothing")
def _(torch):
    x = randn_leaf(torch, 9, 4, scale=2.0)
    y = torch.tensor([0, 1, -100, 3, 2, 2, -100, 1, 0])
    w = torch.rand(4, dtype=torch.float64) + 0.2
    return [x, y, w], F(torch).cross_entropy(x, y, weight=w, label_smoothing=0.1)


@case("loss_ce_smoothing_ignore_mean")
def _(torch):
    x = randn_leaf(torch, 7, 4, scale=2.0)
    y = torch.tensor([0, 1, 5, 3, 2, 5, 1])
    return [x, y], F(torch).cross_entropy(x, y, ignore_index=5, label_smoothing=0.25)


@case("loss_ce_none_smoothing_ignore")
def _(torch):
    x = randn_leaf(torch, 6, 3, scale=2.0)
    y = torch.tensor([0, 1, -1, 2, -1, 1])
    w = torch.rand(3, dtype=torch.float64) + 0.2
    return [x, y, w], F(torch).cross_entropy(x, y, weight=w, ignore_index=-1, label_smoothing=0.3, reduction="none")


@case("loss_ce_sum_weight")
def _(torch):
    x = randn_leaf(torch, 6, 3, scale=2.0)
    y = torch.randint(0, 3, (6,))
    w = torch.rand(3, dtype=torch.float64) + 0.2
    return [x, y, w], F(torch).cross_entropy(x, y, weight=w, reduction="sum")


@case("loss_ce_4d_weighted")
def _(torch):
    x = randn_leaf(torch, 2, 3, 4, 5)
    y = torch.randint(0, 3, (2, 4, 5))
    w = torch.rand(3, dtype=torch.float64) + 0.2
    return [x, y, w], F(torch).cross_entropy(x, y, weight=w, label_smoothing=0.05)


@case("loss_ce_unbatched")
def _(torch):
    x = randn_leaf(torch, 5)
    y = torch.tensor(3)
    return [x, y], F(torch).cross_entropy(x, y)


@case("loss_ce_prob_targets")
def _(torch):
    x = randn_leaf(torch, 5, 4, scale=2.0)
    t = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1).requires_grad_()
    w = torch.rand(4, dtype=torch.float64) + 0.2
    return [x, t, w], F(torch).cross_entropy(x, t, weight=w, label_smoothing=0.2)


@case("loss_ce_extreme")
def _(torch):
    x = extreme_logits(torch, 6, 4)
    y = torch.randint(0, 4, (6,))
    return [x, y], F(torch).cross_entropy(x, y, label_smoothing=0.1)


@case("loss_ce_all_one_class")
def _(torch):
    x = randn_leaf(torch, 6, 3, scale=2.0)
    y = torch.full((6,), 2)
    counts = torch.bincount(torch.tensor([0, 1, 1, 2, 2, 2, 2, 2]), minlength=3).double()
    w = counts.sum() / (3 * counts)  # inverse frequency ("balanced")
    return [x, y, w], F(torch).cross_entropy(x, y, weight=w)


# ---- softmax focal (multi-class, per-class alpha): -alpha[y] (1 - p_y)^gamma log p_y

def softmax_focal_ref(torch, x, y, alpha, gamma, reduction):
    logp = F(torch).log_softmax(x, 1)
    logp_t = logp.gather(1, y.unsqueeze(1)).squeeze(1)
    a = alpha[y] if alpha is not None else torch.ones_like(logp_t)
    loss = -a * (1 - logp_t.exp()) ** gamma * logp_t
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@case("loss_softmax_focal_alpha_mean")
def _(torch):
    x, y = randn_leaf(torch, 8, 4, scale=2.0), torch.randint(0, 4, (8,))
    alpha = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    return [x, y, alpha], softmax_focal_ref(torch, x, y, alpha, 2.0, "mean")


@case("loss_softmax_focal_none_gamma")
def _(torch):
    x, y = randn_leaf(torch, 5, 3, scale=2.0), torch.randint(0, 3, (5,))
    return [x, y], softmax_focal_ref(torch, x, y, None, 1.5, "none")


@case("loss_softmax_focal_extreme_sum")
def _(torch):
    x, y = extreme_logits(torch, 6, 3), torch.randint(0, 3, (6,))
    alpha = torch.tensor([0.3, 0.7, 1.0], dtype=torch.float64)
    return [x, y, alpha], softmax_focal_ref(torch, x, y, alpha, 2.0, "sum")


# ---- NT-Xent (SimCLR): the usual composition, cross-entropy over masked cosine logits

def nt_xent_ref(torch, z, tau):
    n2 = z.shape[0]
    zn = F(torch).normalize(z, dim=1)
    sim = zn @ zn.T / tau
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    targets = (torch.arange(n2) + n2 // 2) % n2
    return F(torch).cross_entropy(sim, targets)


def _nt_xent_case(name, n2, d, tau):
    @case(name)
    def _(torch):
        z = randn_leaf(torch, n2, d)
        return [z], nt_xent_ref(torch, z, tau)


_nt_xent_case("loss_nt_xent_tau0.1", 8, 16, 0.1)
_nt_xent_case("loss_nt_xent_tau0.05", 12, 8, 0.05)
_nt_xent_case("loss_nt_xent_tau0.5", 6, 5, 0.5)
_nt_xent_case("loss_nt_xent_tau1", 10, 4, 1.0)
_nt_xent_case("loss_nt_xent_one_pair", 2, 3, 0.1)


# ---- StableRep MultiPosConLoss, as written (single process: all_gather is the identity)

def multipos_ref(torch, feats, labels, temperature):
    feats = F(torch).normalize(feats, dim=-1, p=2)
    n = feats.shape[0]
    mask = torch.eq(labels.view(-1, 1), labels.view(1, -1)).double()
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(n).view(-1, 1), 0)
    mask = mask * logits_mask
    logits = torch.matmul(feats, feats.T) / temperature
    logits = logits - (1 - logits_mask) * 1e9
    logits_max, _ = torch.max(logits, dim=-1, keepdim=True)
    logits = logits - logits_max.detach()
    p = mask / mask.sum(1, keepdim=True).clamp(min=1.0)
    q = F(torch).log_softmax(logits, dim=-1)
    return -torch.sum(p * q, dim=-1).mean()


def _multipos_case(name, labels, d, tau):
    @case(name)
    def _(torch):
        y = torch.tensor(labels)
        z = randn_leaf(torch, len(labels), d)
        return [z, y], multipos_ref(torch, z, y, tau)


_multipos_case("loss_multipos_random", [0, 2, 1, 1, 0, 2, 2, 0, 1, 1, 0, 2], 16, 0.1)
_multipos_case("loss_multipos_all_one_class", [3, 3, 3, 3, 3, 3], 8, 0.05)
_multipos_case("loss_multipos_singletons", [0, 1, 1, 2, 3, 3, 3, 4], 6, 1.0)
_multipos_case("loss_multipos_no_positives", [0, 1, 2, 3, 4], 6, 0.1)
_multipos_case("loss_multipos_binary_tau0.5", [0, 1, 0, 1, 1, 1, 0, 0, 1, 0], 12, 0.5)


# ---- SupCon (Khosla et al.), contrast_mode "all", averaged over anchors with positives

def supcon_ref(torch, features, labels, temperature, base_temperature):
    if features.dim() == 2:
        features = features.unsqueeze(1)
    bsz, views = features.shape[0], features.shape[1]
    features = features.reshape(bsz, views, -1)
    mask = torch.eye(bsz, dtype=torch.float64) if labels is None else \
        torch.eq(labels.view(-1, 1), labels.view(1, -1)).double()
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    adc = torch.matmul(contrast, contrast.T) / temperature
    logits_max, _ = torch.max(adc, dim=1, keepdim=True)
    logits = adc - logits_max.detach()
    mask = mask.repeat(views, views)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(bsz * views).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    positives = mask.sum(1)
    has = positives > 0
    mean_log_prob_pos = (mask * log_prob).sum(1)[has] / positives[has]
    return (-(temperature / base_temperature) * mean_log_prob_pos).mean()


def unit_leaf(torch, *shape):
    z = torch.randn(*shape, dtype=torch.float64)
    return (z / z.norm(dim=-1, keepdim=True)).requires_grad_()


@case("loss_supcon_labels")
def _(torch):
    f, y = unit_leaf(torch, 6, 2, 8), torch.tensor([0, 1, 2, 1, 0, 0])
    return [f, y], supcon_ref(torch, f, y, 0.07, 0.07)


@case("loss_supcon_unsupervised")
def _(torch):
    f = unit_leaf(torch, 5, 2, 8)
    return [f], supcon_ref(torch, f, None, 0.1, 0.07)


@case("loss_supcon_2d_singletons")
def _(torch):
    f, y = unit_leaf(torch, 8, 6), torch.tensor([0, 1, 1, 2, 3, 3, 3, 4])
    return [f, y], supcon_ref(torch, f, y, 0.5, 0.07)


@case("loss_supcon_all_one_class_tau1")
def _(torch):
    f, y = unit_leaf(torch, 4, 3, 5), torch.tensor([7, 7, 7, 7])
    return [f, y], supcon_ref(torch, f, y, 1.0, 1.0)


# ---- cosine embedding (torch)

@case("loss_cosine_embedding_mean_margin")
def _(torch):
    a, b = randn_leaf(torch, 6, 5), randn_leaf(torch, 6, 5)
    t = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    return [a, b, t], F(torch).cosine_embedding_loss(a, b, t, margin=-0.2)


@case("loss_cosine_embedding_none")
def _(torch):
    a, b = randn_leaf(torch, 5, 3), randn_leaf(torch, 5, 3)
    t = torch.tensor([1, -1, 1, -1, -1])
    return [a, b, t], F(torch).cosine_embedding_loss(a, b, t, margin=0.1, reduction="none")


@case("loss_cosine_embedding_sum")
def _(torch):
    a, b = randn_leaf(torch, 4, 7), randn_leaf(torch, 4, 7)
    t = torch.tensor([-1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    return [a, b, t], F(torch).cosine_embedding_loss(a, b, t, reduction="sum")


@case("loss_cosine_embedding_1d")
def _(torch):
    a, b = randn_leaf(torch, 6), randn_leaf(torch, 6)
    return [a, b, torch.tensor(-1.0, dtype=torch.float64)], F(torch).cosine_embedding_loss(a, b, torch.tensor(-1.0, dtype=torch.float64), margin=-0.5)


# ---- three-branch embedding losses (Eq. 12-13 as specified in issue 5)

def class_means_ref(torch, z, y, num_classes):
    zn = F(torch).normalize(z, dim=1)
    return {c: zn[y == c].mean(0) for c in range(num_classes) if bool((y == c).any())}


def cos_ref(torch, a, b):
    return (F(torch).normalize(a, dim=0, eps=1e-8) * F(torch).normalize(b, dim=0, eps=1e-8)).sum()


def similarity_ref(torch, zc, yc, za, ya, zp, yp, num_classes):
    wc, wa, wp = (class_means_ref(torch, z, y, num_classes) for z, y in ((zc, yc), (za, ya), (zp, yp)))
    loss = zc.sum() * 0
    for c in wc:
        if c in wa:
            loss = loss + 1 - cos_ref(torch, wc[c], wa[c])
        if c in wp:
            loss = loss + 1 - cos_ref(torch, wc[c], wp[c])
    return loss


def dissimilarity_ref(torch, zc, yc, num_classes, hinge, reduction):
    wc = class_means_ref(torch, zc, yc, num_classes)
    terms = [cos_ref(torch, wc[i], wc[j]) for i in wc for j in wc if i != j]
    if hinge:
        terms = [torch.clamp(t, min=0) for t in terms]
    if not terms:
        return zc.sum() * 0
    total = torch.stack(terms).sum()
    return total / len(terms) if reduction == "mean" else total


@case("loss_embedding_similarity_binary")
def _(torch):
    zc, za, zp = randn_leaf(torch, 8, 6), randn_leaf(torch, 4, 6), randn_leaf(torch, 4, 6)
    yc, ya, yp = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]), torch.tensor([0, 1, 1, 0]), torch.tensor([1, 0, 0, 0])
    return [zc, yc, za, ya, zp, yp], similarity_ref(torch, zc, yc, za, ya, zp, yp, 2)


@case("loss_embedding_similarity_absent_classes")
def _(torch):
    zc, za, zp = randn_leaf(torch, 6, 5), randn_leaf(torch, 3, 5), randn_leaf(torch, 4, 5)
    yc, ya, yp = torch.tensor([0, 1, 2, 2, 1, 0]), torch.tensor([0, 0, 1]), torch.tensor([2, 2, 2, 1])
    return [zc, yc, za, ya, zp, yp], similarity_ref(torch, zc, yc, za, ya, zp, yp, 4)


@case("loss_embedding_dissimilarity_hinge_mean")
def _(torch):
    zc, yc = randn_leaf(torch, 9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    return [zc, yc], dissimilarity_ref(torch, zc, yc, 3, True, "mean")


@case("loss_embedding_dissimilarity_plain_sum")
def _(torch):
    zc, yc = randn_leaf(torch, 7, 5), torch.tensor([0, 1, 3, 0, 1, 3, 3])
    return [zc, yc], dissimilarity_ref(torch, zc, yc, 4, False, "sum")


@case("loss_embedding_dissimilarity_one_class")
def _(torch):
    zc, yc = randn_leaf(torch, 4, 3), torch.tensor([1, 1, 1, 1])
    return [zc, yc], dissimilarity_ref(torch, zc, yc, 2, True, "mean")


# ---- soft Dice (+ BCE) on logits

def dice_ref(torch, x, t, smooth, reduction):
    p = torch.sigmoid(x)
    dims = tuple(range(1, x.dim()))
    loss = 1 - (2 * (p * t).sum(dims) + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@case("loss_dice_mean")
def _(torch):
    x, t = randn_leaf(torch, 2, 1, 6, 6, scale=2.0), binary_targets(torch, 2, 1, 6, 6)
    return [x, t], dice_ref(torch, x, t, 1.0, "mean")


@case("loss_dice_none_soft")
def _(torch):
    x, t = randn_leaf(torch, 3, 2, 5, scale=2.0), leaf(torch, 3, 2, 5, lo=0.0, hi=1.0)
    return [x, t], dice_ref(torch, x, t, 0.5, "none")


@case("loss_dice_bce")
def _(torch):
    x, t = randn_leaf(torch, 2, 1, 4, 5, scale=2.0), binary_targets(torch, 2, 1, 4, 5)
    loss = 0.5 * F(torch).binary_cross_entropy_with_logits(x, t) + 2.0 * dice_ref(torch, x, t, 1.0, "mean")
    return [x, t], loss
