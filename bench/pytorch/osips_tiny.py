#!/usr/bin/env python3
"""PyTorch reference of one OSIPS training iteration with the `tiny` preset.

Written for a side-by-side speed comparison with the Rust trainer
(`cargo xtask bench train --vs-pytorch`), not for training: it trains on random images.
It mirrors, layer for layer and loss for loss:

* crates/osips-models/src/{config,layers,networks}.rs  (ModelConfig::tiny(1000))
* crates/osips-losses/src/lib.rs                       (the six losses and their reductions)
* crates/trainer/src/{phases,trainer,optim}.rs         (the update table, Adam, EMA)
* data/presets/tiny.toml                               (batch 16, 64x64, lr 2e-4, ...)

One iteration = the reconstruction process (x_a = x_s, L_GR weight 1), then the
transformation process (x_a another image, L_GR weight lambda = 0.1); each runs
synthesize -> D step -> I/C step -> A+G step; then the generator EMA (decay 0.999).

Environment: THREADS (default 2), ITERS (20), WARMUP (3), BATCH (16), SEED (0),
ADAM_FOREACH (0: PyTorch's CPU default per-tensor loop; 1: the multi-tensor path).

The last line printed is machine-readable:
    RESULT median_ms=<float> pairs_per_s=<float>
where pairs per iteration = 2 * batch (both processes) and the median is over the timed
iterations.
"""

import copy
import math
import os
import statistics
import sys
import time
import warnings

# torch warns on import when numpy is absent; numpy is not needed here.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# --------------------------------------------------------------------------------------
# The tiny preset (ModelConfig::tiny(n_identities), data/presets/tiny.toml)
# --------------------------------------------------------------------------------------

TINY = dict(
    image_size=64,
    n_identities=1000,
    trunk=[(16, 1), (32, 1), (64, 2), (128, 2)],  # (channels, convs) per VGG stage
    identity_dim=128,
    feature_dim=256,
    attribute_dim=64,
    gen_base_channels=128,
    gen_stages=[128, 64, 32, 16],
    disc_channels=[32, 64, 128, 256],
)

LR, BETAS, EPS, EMA_DECAY = 2e-4, (0.5, 0.999), 1e-8, 0.999
W_IDENTITY = W_KL = W_RECON = W_GD = W_GC = W_D = 1.0
TRANSFORM_LAMBDA = 0.1

RELU_GAIN = math.sqrt(2.0)
TANH_GAIN = 5.0 / 3.0
LEAKY_GAIN = math.sqrt(2.0 / (1.0 + 0.2 * 0.2))


# --------------------------------------------------------------------------------------
# Layers, initialised like layers.rs / candle_nn::linear (init does not affect speed,
# but keeps the activations in the same range as the Rust run)
# --------------------------------------------------------------------------------------

def conv(c_in, c_out, k, stride, padding, bias, gain):
    m = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=bias)
    fan_in = c_in * k * k
    with torch.no_grad():
        m.weight.normal_(0.0, gain / math.sqrt(fan_in))  # Kaiming normal, fan-in
        if bias:
            b = 1.0 / math.sqrt(fan_in)
            m.bias.uniform_(-b, b)
    return m


def linear(d_in, d_out):
    m = nn.Linear(d_in, d_out)
    with torch.no_grad():
        m.weight.normal_(0.0, RELU_GAIN / math.sqrt(d_in))  # DEFAULT_KAIMING_NORMAL
        b = 1.0 / math.sqrt(d_in)
        m.bias.uniform_(-b, b)
    return m


def bn(c):
    # PyTorch semantics, as layers.rs BatchNorm: momentum 0.1, eps 1e-5, biased batch
    # variance to normalise, unbiased to update the running variance.
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


# --------------------------------------------------------------------------------------
# The four networks (networks.rs)
# --------------------------------------------------------------------------------------

class ConvBnRelu(nn.Module):
    """conv3x3 (with bias) -> BN -> ReLU."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = conv(c_in, c_out, 3, 1, 1, bias=True, gain=RELU_GAIN)
        self.bn = bn(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class VggTrunk(nn.Module):
    """Stages of [conv3x3 -> BN -> ReLU] x convs, each followed by a 2x2 max-pool."""

    def __init__(self, stages):
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = 3
        for channels, convs in stages:
            blocks = nn.ModuleList()
            for _ in range(convs):
                blocks.append(ConvBnRelu(c_in, channels))
                c_in = channels
            self.stages.append(blocks)
        self.out_channels = c_in

    def forward(self, x):
        for blocks in self.stages:
            for block in blocks:
                x = block(x)
            x = F.max_pool2d(x, 2, 2)
        return x


class IdentityNet(nn.Module):
    """I and C, one set of weights: trunk -> flatten -> projection (f_I) -> ReLU(hidden)
    (f_C) -> classifier logits."""

    def __init__(self, cfg):
        super().__init__()
        self.trunk = VggTrunk(cfg["trunk"])
        side = cfg["image_size"] >> len(cfg["trunk"])
        flat = self.trunk.out_channels * side * side
        self.projection = linear(flat, cfg["identity_dim"])
        self.hidden = linear(cfg["identity_dim"], cfg["feature_dim"])
        self.classifier = linear(cfg["feature_dim"], cfg["n_identities"])

    def forward(self, x):
        pooled = torch.flatten(self.trunk(x), 1)
        identity = self.projection(pooled)
        features = F.relu(self.hidden(identity))
        logits = self.classifier(features)
        return identity, features, logits


class AttributeEncoder(nn.Module):
    """A: its own trunk and two FC heads, mean and log-std of z."""

    def __init__(self, cfg):
        super().__init__()
        self.trunk = VggTrunk(cfg["trunk"])
        side = cfg["image_size"] >> len(cfg["trunk"])
        flat = self.trunk.out_channels * side * side
        self.mean = linear(flat, cfg["attribute_dim"])
        self.log_std = linear(flat, cfg["attribute_dim"])

    def forward(self, x):
        pooled = torch.flatten(self.trunk(x), 1)
        return self.mean(pooled), self.log_std(pooled)


class UpStage(nn.Module):
    """2x nearest upsample -> conv3x3 (no bias) -> BN -> ReLU. (The Rust CPU kernel fuses
    the upsample into the convolution; here it is a separate op.)"""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = conv(c_in, c_out, 3, 1, 1, bias=False, gain=RELU_GAIN)
        self.bn = bn(c_out)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.relu(self.bn(self.conv(x)))


class Generator(nn.Module):
    """G: FC [identity; z] -> base x 4 x 4 -> BN -> ReLU, upsampling stages, conv3x3 to RGB,
    tanh."""

    def __init__(self, cfg):
        super().__init__()
        base = cfg["gen_base_channels"]
        self.base = base
        self.input = linear(cfg["identity_dim"] + cfg["attribute_dim"], base * 16)
        self.input_bn = bn(base)
        self.stages = nn.ModuleList()
        c_in = base
        for c_out in cfg["gen_stages"]:
            self.stages.append(UpStage(c_in, c_out))
            c_in = c_out
        self.to_rgb = conv(c_in, 3, 3, 1, 1, bias=True, gain=TANH_GAIN)

    def forward(self, identity, attribute):
        code = torch.cat([identity, attribute], 1)
        x = self.input(code).reshape(code.shape[0], self.base, 4, 4)
        x = F.relu(self.input_bn(x))
        for stage in self.stages:
            x = stage(x)
        return torch.tanh(self.to_rgb(x))


class DownLayer(nn.Module):
    """conv4x4 stride 2 (bias only without BN) -> (BN) -> LeakyReLU(0.2)."""

    def __init__(self, c_in, c_out, with_bn):
        super().__init__()
        self.conv = conv(c_in, c_out, 4, 2, 1, bias=not with_bn, gain=LEAKY_GAIN)
        self.bn = bn(c_out) if with_bn else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.leaky_relu(x, 0.2)


class Discriminator(nn.Module):
    """D (DCGAN): BN after every layer but the first; the last layer's activations are the
    L_GD features; a linear head gives the logit."""

    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList()
        c_in = 3
        for i, c_out in enumerate(cfg["disc_channels"]):
            self.layers.append(DownLayer(c_in, c_out, with_bn=i > 0))
            c_in = c_out
        side = cfg["image_size"] >> len(cfg["disc_channels"])
        self.head = linear(c_in * side * side, 1)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        logit = self.head(torch.flatten(x, 1)).squeeze(1)
        return logit, x


def n_trainable(module):
    # vars.rs is_trainable: everything but BN running statistics, i.e. exactly PyTorch's
    # parameters() (running_mean / running_var / num_batches_tracked are buffers).
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------
# Losses (osips-losses): per-sample sums, batch means
# --------------------------------------------------------------------------------------

def identity_loss(logits, labels):
    """L_I: softmax cross-entropy, mean over the batch."""
    return F.cross_entropy(logits, labels, reduction="mean")


def kl_loss(mean, log_std):
    """L_KL: 0.5 * sum_j (mu^2 + e^{2 eps} - 2 eps - 1), summed over z, mean over batch."""
    n = mean.shape[0]
    return (mean.square() + torch.exp(2.0 * log_std) - 2.0 * log_std - 1.0).sum() * (0.5 / n)


def reconstruction_loss(x_a, fake, sample_weights):
    """L_GR: 0.5 ||x_a - x'||^2 per sample, times its weight, mean over the batch."""
    n = x_a.shape[0]
    per_sample = (x_a - fake).square().flatten(1).sum(1)
    return (per_sample * sample_weights).sum() * (0.5 / n)


def feature_matching_loss(features, target):
    """L_GD / L_GC: 0.5 ||f(x') - f(target)||^2 summed over features, mean over batch;
    the target is detached."""
    n = features.shape[0]
    return (features - target.detach()).square().sum() * (0.5 / n)


def discriminator_loss(real_logits, fake_logits):
    """L_D = softplus(-real).mean() + softplus(fake).mean() (stable, on logits)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


# --------------------------------------------------------------------------------------
# The trainer (phases.rs, trainer.rs)
# --------------------------------------------------------------------------------------

class NonFinite(RuntimeError):
    pass


class Trainer:
    def __init__(self, cfg, foreach):
        self.cfg = cfg
        self.identity = IdentityNet(cfg)
        self.attribute = AttributeEncoder(cfg)
        self.generator = Generator(cfg)
        self.discriminator = Discriminator(cfg)
        self.ema = copy.deepcopy(self.generator)
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.ema_pairs = [
            (e, c)
            for e, c in zip(self.ema.state_dict().values(), self.generator.state_dict().values())
            if c.is_floating_point()  # not BN's num_batches_tracked (no Rust counterpart)
        ]

        def adam(net):
            # optim.rs: plain Adam, no weight decay;
            # update = (m lr / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps), as torch.optim.Adam.
            return torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS, eps=EPS,
                                    weight_decay=0.0, foreach=foreach)

        self.opt_i = adam(self.identity)
        self.opt_a = adam(self.attribute)
        self.opt_g = adam(self.generator)
        self.opt_d = adam(self.discriminator)
        self.g_params = list(self.generator.parameters())
        self.stats = {}

    # Trainer::apply: every stat must be finite and every gradient norm too, before the
    # update. (Mirrors the Rust per-phase checks, including their host syncs.)
    def _check(self, key, value):
        v = float(value.detach()) if torch.is_tensor(value) else float(value)
        if not math.isfinite(v):
            raise NonFinite(f"{key} = {v}")
        self.stats[key] = v

    def _check_grads(self, key, params):
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        self._check(key, norm)

    def process(self, key, x_s, x_a, labels, sample_weights):
        ident, attr, gen, disc = self.identity, self.attribute, self.generator, self.discriminator

        # ---- synthesize: f_I(x_s) from I in eval mode, detached; A and G in train mode.
        ident.eval()
        with torch.no_grad():
            identity_vec = ident(x_s)[0]
        attr.train()
        gen.train()
        mean, log_std = attr(x_a)
        noise = torch.randn_like(mean)
        z = mean + noise * torch.exp(log_std)
        fake = gen(identity_vec, z)

        # ---- D step: L_D on real x_a and detached x' (two separate train-mode batches).
        disc.train()
        real_logit, _ = disc(x_a)
        fake_logit, _ = disc(fake.detach())
        l_d = discriminator_loss(real_logit, fake_logit)
        self.opt_d.zero_grad(set_to_none=True)
        (l_d * W_D).backward()
        self._check(f"loss/{key}/d", l_d)
        self._check(f"score/{key}/d/real", real_logit.mean())
        self._check(f"score/{key}/d/fake", fake_logit.mean())
        self._check_grads(f"grad_norm/{key}/discriminator", disc.parameters())
        self.opt_d.step()

        # ---- I/C step: L_I on the labeled x_s (all of them here), I in train mode.
        ident.train()
        logits = ident(x_s)[2]
        l_i = identity_loss(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        self.opt_i.zero_grad(set_to_none=True)
        (l_i * W_IDENTITY).backward()
        self._check(f"loss/{key}/i", l_i)
        self._check(f"acc/{key}/i", acc)
        self._check_grads(f"grad_norm/{key}/identity", ident.parameters())
        self.opt_i.step()

        # ---- A+G step: L_KL + L_GR train A and G; L_GD + L_GC train G only.
        # G's parameters and A's output z are both fed by dL/dx', so one backward pass
        # cannot give G the sum of all four losses and A only L_KL + L_GR. The Rust trainer
        # feeds G a leaf copy of z and runs three backward passes. Here, with the same
        # total work through G (two backward passes, no second forward of G):
        #   1. torch.autograd.grad(L_GD + L_GC, G's parameters, retain_graph=True):
        #      G's adversarial gradient. Restricting the inputs to G's parameters means
        #      D's and C's weight gradients are never even computed (only the input
        #      gradients that lead back to x'), so nothing can leak into D or C, and
        #      nothing reaches A (z is not among the inputs).
        #   2. (L_GR + L_KL).backward(): G's part 1 and A's full gradient, straight
        #      through z (no leaf copy needed), then add 1.'s gradient into G's .grad.
        # D runs in train mode (as in its own step: fake batch, then real batch); C runs
        # in eval mode on x' and on x_s so synthesized images never enter its running
        # statistics.
        l_gr = reconstruction_loss(x_a, fake, sample_weights)
        _, d_fake_features = disc(fake)
        with torch.no_grad():  # the target side of L_GD is detached anyway
            _, d_real_features = disc(x_a)
        l_gd = feature_matching_loss(d_fake_features, d_real_features)
        ident.eval()
        # In eval mode every image is independent: C on x' and on x_s separately equals one
        # pass over both, and only x''s half needs a backward pass (as in phases.rs).
        c_fake = ident(fake)[1]
        with torch.no_grad():
            c_real = ident(x_s)[1]
        l_gc = feature_matching_loss(c_fake, c_real)
        l_kl = kl_loss(mean, log_std)

        adversarial = l_gd * W_GD + l_gc * W_GC
        g_adv = torch.autograd.grad(adversarial, self.g_params, retain_graph=True)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_a.zero_grad(set_to_none=True)
        (l_gr * W_RECON + l_kl * W_KL).backward()
        torch._foreach_add_([p.grad for p in self.g_params], list(g_adv))
        del g_adv

        self._check(f"loss/{key}/gr", l_gr)
        self._check(f"loss/{key}/gd", l_gd)
        self._check(f"loss/{key}/gc", l_gc)
        self._check(f"loss/{key}/kl", l_kl)
        self._check_grads(f"grad_norm/{key}/generator", self.g_params)
        self._check_grads(f"grad_norm/{key}/attribute", attr.parameters())
        self.opt_g.step()
        self.opt_a.step()

    def train_step(self, batch):
        self.stats = {}
        (rec_src, rec_labels), (tr_src, tr_attr, tr_labels) = batch
        b = rec_src.shape[0]
        ones = torch.ones(b)
        lam = torch.full((b,), TRANSFORM_LAMBDA)
        # Reconstruction: x_a is x_s itself, L_GR weight 1.
        self.process("recon", rec_src, rec_src, rec_labels, ones)
        # Transformation: x_a another image, L_GR weight lambda.
        self.process("trans", tr_src, tr_attr, tr_labels, lam)
        # Generator EMA over every floating-point variable, running statistics included:
        # ema <- d * ema + (1 - d) * current.
        with torch.no_grad():
            ema, cur = zip(*self.ema_pairs)
            torch._foreach_lerp_(list(ema), list(cur), 1.0 - EMA_DECAY)
        return self.stats


def random_batch(b, size, n_identities, gen):
    def images():
        return torch.rand(b, 3, size, size, generator=gen) * 2.0 - 1.0

    def labels():
        return torch.randint(0, n_identities, (b,), generator=gen)

    return (images(), labels()), (images(), images(), labels())


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def main():
    threads = env_int("THREADS", 2)
    iters = env_int("ITERS", 20)
    warmup = env_int("WARMUP", 3)
    batch_size = env_int("BATCH", 16)
    seed = env_int("SEED", 0)
    foreach = bool(env_int("ADAM_FOREACH", 0)) or None  # None: PyTorch's own default
    if iters < 1 or warmup < 0 or batch_size < 2 or threads < 1:
        sys.exit("need ITERS >= 1, WARMUP >= 0, BATCH >= 2, THREADS >= 1")

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = dict(TINY)
    trainer = Trainer(cfg, foreach)

    counts = [
        ("identity", n_trainable(trainer.identity)),
        ("attribute", n_trainable(trainer.attribute)),
        ("generator", n_trainable(trainer.generator)),
        ("discriminator", n_trainable(trainer.discriminator)),
    ]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {batch_size} per process, {cfg['image_size']}x{cfg['image_size']}, "
          f"{cfg['n_identities']} identities")
    for name, count in counts:
        print(f"params {name} {count}")
    print(f"params total {sum(c for _, c in counts)}")

    data_gen = torch.Generator().manual_seed(seed + 1)
    n_batches = 4  # a few distinct batches, made before timing (data loading not measured)
    batches = [random_batch(batch_size, cfg["image_size"], cfg["n_identities"], data_gen)
               for _ in range(n_batches)]

    times = []
    for it in range(warmup + iters):
        batch = batches[it % n_batches]
        t0 = time.perf_counter()
        stats = trainer.train_step(batch)
        dt = time.perf_counter() - t0
        phase = "warmup" if it < warmup else "timed"
        print(f"iter {it} {phase} {dt * 1e3:.1f} ms  "
              f"d {stats['loss/recon/d']:.3f}/{stats['loss/trans/d']:.3f}  "
              f"i {stats['loss/recon/i']:.3f}/{stats['loss/trans/i']:.3f}  "
              f"gr {stats['loss/recon/gr']:.1f}/{stats['loss/trans/gr']:.1f}  "
              f"kl {stats['loss/recon/kl']:.2f}/{stats['loss/trans/kl']:.2f}",
              flush=True)
        if it >= warmup:
            times.append(dt)

    median_ms = statistics.median(times) * 1e3
    pairs_per_s = 2 * batch_size / (median_ms / 1e3)
    print(f"RESULT median_ms={median_ms:.3f} pairs_per_s={pairs_per_s:.3f}", flush=True)


if __name__ == "__main__":
    main()
