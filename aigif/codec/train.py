"""Train and export the NVTC-lite codec.

    python -m aigif.codec.train train --out runs/nvtc --steps 20000 [--device cuda] [--threads 1]
    python -m aigif.codec.train export --ckpt runs/nvtc/last.pt --out aigif/assets/nvtc

Data: random crops of ``/work/shared/data/images/train/*.png`` (never Kodak).
Schedule (fractions of ``--steps``), after NVTC's staged training:

1. coarse stages first: only the 1/16 stage is active (finer stages fed zeros),
   then 1/16 + 1/8, then all three; plain VQ (nearest codeword) with
   dead-codeword reactivation from the current batch's residuals;
2. ECVQ: assignment ``argmin ||r - c||^2 + gamma * bits(k | ctx)`` with the
   conditional prior, gamma drawn per batch from ``config["gammas"]`` (one set
   of transforms, one entropy model per rate point);
3. the learning rate decays (cosine) to 1 % at the end.

Checkpoints (``last.pt``) are written every ``--ckpt-every`` steps; rerunning
the same command resumes from them.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

import numpy as np

TRAIN_GLOB = "/work/shared/data/images/train/*.png"


def load_images(pattern: str):
    import torch
    from PIL import Image

    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no training images match {pattern}")
    if any("kodak" in f.lower() for f in files):
        raise SystemExit("refusing to train on Kodak (benchmark-only)")
    return [torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).contiguous() for f in files]


def random_batch(images, batch: int, crop: int, gen):
    import torch

    out = []
    for _ in range(batch):
        im = images[int(torch.randint(len(images), (1,), generator=gen))]
        _, h, w = im.shape
        y = int(torch.randint(h - crop + 1, (1,), generator=gen))
        x = int(torch.randint(w - crop + 1, (1,), generator=gen))
        c = im[:, y : y + crop, x : x + crop]
        if torch.rand((), generator=gen) < 0.5:
            c = c.flip(2)
        out.append(c)
    return torch.stack(out).float() / 255.0 - 0.5


def phase(step: int, total: int) -> tuple[int, bool, bool]:
    """(active stages, ECVQ on, reactivation on) at ``step``."""
    f = step / max(total, 1)
    if f < 0.06:
        return 1, False, True
    if f < 0.12:
        return 2, False, True
    if f < 0.30:
        return 3, False, True
    return 3, True, False


def reactivate(model, usage: dict, residuals: dict, gen) -> int:
    """Replace codewords unused since the last call by random batch residuals."""
    import torch

    n_dead = 0
    with torch.no_grad():
        for (s, l), count in usage.items():
            dead = (count == 0).nonzero().flatten()
            if len(dead) == 0:
                continue
            r = residuals[(s, l)]
            pick = torch.randint(len(r), (len(dead),), generator=gen)
            cb = model.codebooks[s]
            cb[l][dead.to(cb.device)] = (r[pick] + 0.01 * torch.randn(len(dead), r.shape[1], generator=gen)).to(cb.device)
            n_dead += len(dead)
    return n_dead


def make_optimizer(model, lr: float, entropy_mult: float):
    """Adam; the entropy-model logits learn ``entropy_mult`` times faster (ECVQ needs tables that keep up)."""
    import torch

    ent = [p for n, p in model.named_parameters() if n.startswith("logits.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("logits.")]
    return torch.optim.Adam([{"params": rest, "lr_mult": 1.0}, {"params": ent, "lr_mult": entropy_mult}], lr=lr)


def train(args) -> None:
    import torch
    import torch.nn.functional as F

    from .model import DEFAULT_CONFIG, NVTC

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "last.pt")
    device = torch.device(args.device)
    cfg = dict(DEFAULT_CONFIG)
    if args.config:
        cfg.update(json.loads(args.config))
    step = 0
    ck = None
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        cfg = dict(ck["config"])
        if args.config:  # only the ECVQ penalties may change on resume
            cfg["gammas"] = json.loads(args.config).get("gammas", cfg["gammas"])
    model = NVTC(cfg).to(device)
    opt = make_optimizer(model, args.lr, args.entropy_lr_mult)
    if ck is not None:
        model.load_state_dict(ck["model"])
        try:
            opt.load_state_dict(ck["opt"])
        except (ValueError, KeyError):
            print("optimizer state not compatible; fresh Adam moments", flush=True)
        step = ck["step"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    images = load_images(args.data)
    gen = torch.Generator().manual_seed(args.seed + step)
    usage = {}
    residual_pool = {}
    t0 = time.time()
    log = {"psnr": 0.0, "bpp": 0.0, "n": 0, "per_q": {}}
    model.train()
    while step < args.steps:
        active, ecvq, react = phase(step, args.steps)
        lr = args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        x = random_batch(images, args.batch, args.crop, gen).to(device)
        q = int(torch.randint(len(cfg["gammas"]), (1,), generator=gen))
        out = model(x, quality=q, active=active, ecvq=ecvq)
        mse = F.mse_loss(out["x_hat"], x)
        npix = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = out["bits"] / npix
        loss = args.mse_weight * mse + out["vq_loss"] + 0.01 * bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if react:
            for key, i in out["idx"].items():
                k = cfg["codebook"]
                usage[key] = usage.get(key, torch.zeros(k, dtype=torch.long)) + torch.bincount(i.flatten().cpu(), minlength=k)
            if step % args.react_every == 0:
                with torch.no_grad():
                    model.eval()
                    res = _residuals(model, x)
                    model.train()
                n_dead = reactivate(model, usage, {k: v.cpu() for k, v in res.items()}, gen)
                usage = {}
                print(f"step {step}: reactivated {n_dead} codewords", flush=True)
        log["psnr"] += float(-10 * torch.log10(mse.detach().clamp_min(1e-10)))
        log["bpp"] += float(bpp.detach())
        log["n"] += 1
        pq = log["per_q"].setdefault(q, [0.0, 0.0, 0])
        pq[0] += float(bpp.detach())
        pq[1] += float(-10 * torch.log10(mse.detach().clamp_min(1e-10)))
        pq[2] += 1
        if step % args.log_every == 0:
            n = log["n"]
            print(
                f"step {step} active {active} ecvq {int(ecvq)} q {q} lr {lr:.2e} psnr {log['psnr']/n:.2f} "
                f"bpp(est) {log['bpp']/n:.3f} {(time.time()-t0)/n:.3f}s/step | "
                + " ".join(f"q{k}:{v[0]/v[2]:.3f}bpp/{v[1]/v[2]:.2f}dB" for k, v in sorted(log["per_q"].items())),
                flush=True,
            )
            log = {"psnr": 0.0, "bpp": 0.0, "n": 0, "per_q": {}}
            t0 = time.time()
        if step % args.ckpt_every == 0 or step == args.steps:
            tmp = ckpt_path + ".tmp"
            torch.save({"config": cfg, "model": model.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
            os.replace(tmp, ckpt_path)


def _residuals(model, x) -> dict:
    """Per (stage, layer) residual vectors of a batch (plain VQ), rows of (M, d)."""

    feats = model.analysis(x)
    p = None
    out = {}
    for s in range(3):
        z = model.latent(s, feats[s], p)
        r = z
        qz = 0
        for l in range(model.config["layers"][s]):
            out[(s, l)] = r.permute(0, 2, 3, 1).reshape(-1, r.shape[1])
            i = model.assign(s, l, r, None, 0.0)
            cw = model.codewords(s, l, i)
            r = r - cw
            qz = qz + cw
        p = model.synthesis_stage(s, qz, p)
    return out


def _center_crop(im, size: int):
    _, h, w = im.shape
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return im[:, y : y + size, x : x + size]


def refine_tables(model, probs: dict, gamma: float, n_images: int, rounds: int) -> dict:
    """ECVQ table design (Chou, Lookabaugh & Gray 1989) on full training images.

    Alternates: encode with the current tables (eval mode, as the real encoder
    does), count (context, symbol) pairs, and re-estimate each row as
    ``(counts + a * old_row) / (n + a)`` (the learned row is the prior).
    """
    import torch

    from .entropy import IntegerTables, quantize_probs
    from .model import contexts_for, pad_multiple

    images = load_images(TRAIN_GLOB)
    step = max(1, len(images) // n_images)
    images = [_center_crop(im, 256) for im in images[::step][:n_images]]
    model.eval()
    m = pad_multiple(model.config)
    k = model.config["codebook"]
    for _ in range(rounds):
        model.tables = IntegerTables({key: quantize_probs(p) for key, p in probs.items()})
        model.gamma = gamma
        counts = {key: np.zeros_like(p) for key, p in probs.items()}
        for im in images:
            _, h, w = im.shape
            im = im[:, : h - h % m, : w - w % m]
            x = im[None].float() / 255.0 - 0.5
            with torch.no_grad():
                idx = model.encode_indices(x)
            for (s, l), i in idx.items():
                ctx = contexts_for(s, l, idx, i.shape).numpy().reshape(-1)
                np.add.at(counts[(s, l)], (ctx, i.numpy().reshape(-1)), 1.0)
        alpha = 0.5 * k
        probs = {key: (counts[key] + alpha * probs[key]) / (counts[key].sum(-1, keepdims=True) + alpha) for key in probs}
    return probs


def export(args) -> None:
    """Write one safetensors file per rate point: transforms + integer tables + config metadata."""
    import torch
    from safetensors.numpy import save_file

    from .entropy import quantize_probs
    from .model import NVTC, context_plan

    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    model = NVTC(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    gammas = cfg["gammas"]
    targets = sorted((float(v) for v in args.gammas.split(",")), reverse=True) if args.gammas else sorted(gammas, reverse=True)
    for quality, gamma in enumerate(targets, start=1):  # quality 1 = lowest rate
        qi = min(range(len(gammas)), key=lambda i: abs(math.log(gammas[i] / gamma)))  # nearest trained table
        tensors = {}
        for name, t in model.state_dict().items():
            if name.startswith("logits."):
                continue
            tensors["net." + name] = t.detach().cpu().numpy().astype(np.float32)
        probs = {}
        for s, l, _rows in context_plan(cfg):
            logits = model.logits[f"q{qi}_s{s}_l{l}"].detach().double()
            probs[(s, l)] = torch.softmax(logits, -1).numpy()
        if args.refine:
            probs = refine_tables(model, probs, gamma, args.refine, args.refine_rounds)
        for (s, l), pr in probs.items():
            tensors[f"table.s{s}_l{l}"] = quantize_probs(pr)
        meta_cfg = dict(cfg)
        meta_cfg["gamma"] = gamma
        meta = {"config": json.dumps(meta_cfg, sort_keys=True), "quality": str(quality), "format": "aigif-nvtc-1",
                "train_step": str(ck["step"])}
        path = os.path.join(args.out, f"nvtc_q{quality}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"wrote {path} (gamma {gamma}, tables from trained gamma {gammas[qi]})", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m aigif.codec.train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", default="runs/nvtc")
    t.add_argument("--data", default=TRAIN_GLOB)
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--mse-weight", type=float, default=500.0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--device", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--ckpt-every", type=int, default=250)
    t.add_argument("--react-every", type=int, default=100)
    t.add_argument("--config", default="", help="JSON overrides of the model config (on resume: gammas only)")
    t.add_argument("--entropy-lr-mult", type=float, default=10.0)
    e = sub.add_parser("export")
    e.add_argument("--ckpt", default="runs/nvtc/last.pt")
    e.add_argument("--out", default="aigif/assets/nvtc")
    e.add_argument("--gammas", default="", help="comma list of ECVQ penalties to ship (default: the trained ones)")
    e.add_argument("--refine", type=int, default=0, help="re-estimate tables on this many training images")
    e.add_argument("--refine-rounds", type=int, default=2)
    args = ap.parse_args(argv)
    {"train": train, "export": export}[args.cmd](args)


if __name__ == "__main__":
    main()
