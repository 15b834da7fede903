"""Train and export the NVTC codec.

    python tools/train_nvtc.py train --data 'photos/*.png' --out runs/nvtc --budget-minutes 60 [--device cuda --amp]
    python tools/train_nvtc.py compact --ckpt runs/nvtc/last.pt --out runs/nvtc/compact
    python tools/train_nvtc.py export --data 'photos/*.png' --ckpt runs/nvtc/last.pt --out aigif/assets/nvtc/nvtc_id5.safetensors --refine 77

Data: random crops of the training photos ``--data`` names (a glob; never a benchmark set such as Kodak).
Schedule (fractions of the total steps), after NVTC's staged training:

1. coarse stages first: only the 1/16 stage adds codewords, then 1/16 + 1/8,
   then all three; plain VQ (nearest codeword) with dead-codeword
   reactivation from the current batch's residuals;
2. from 25 %: ECVQ, ``argmin ||r - c||^2 + bits(k | ctx) / lambda`` with the
   conditional tables, one rate point per batch (one set of transforms, one
   entropy model per rate point);
3. linear warm-up, then cosine decay of the learning rate to 2 %.

``--copy-aware`` makes the training ECVQ price the coder's copy flags (a
symbol equal to its left neighbour costs a learned flag only), column by
column, as the encoder does: without it training sees far fewer copies than
the coder writes (measured on id 4: 64 % vs 86-96 % at the finest stage).

Checkpoints (``last.pt``) are written every ``--ckpt-every`` steps; rerunning
the same command resumes from them. ``--budget-minutes`` sizes the schedule
from a measured step time; ``--minutes`` stops a run early for a later resume.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

import numpy as np



def load_images(pattern: str):
    import torch
    from PIL import Image

    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no training images match {pattern}")
    if any("kodak" in f.lower() for f in files):
        raise SystemExit("refusing to train on Kodak (benchmark-only)")
    return [torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).contiguous() for f in files]


def random_batch(images, batch: int, crop: int, gen, device, min_scale: float = 1.0):
    """``batch`` random crops (random flips and transpositions) in [-0.5, 0.5]; ``images`` already on ``device``.

    ``min_scale`` < 1: each crop is first taken ``crop / s`` pixels wide for a random scale ``s`` in
    [min_scale, 1] (as far as the image allows) and shrunk to ``crop`` with an antialiased filter:
    more distinct content from few photos, and their sensor noise and JPEG traces shrink with them.
    """
    import torch
    import torch.nn.functional as F

    out = []
    for _ in range(batch):
        im = images[int(torch.randint(len(images), (1,), generator=gen))]
        _, h, w = im.shape
        size = crop
        if min_scale < 1.0:
            s = min_scale + (1.0 - min_scale) * float(torch.rand((), generator=gen))
            size = min(int(round(crop / s)), h, w)
        y = int(torch.randint(h - size + 1, (1,), generator=gen))
        x = int(torch.randint(w - size + 1, (1,), generator=gen))
        c = im[:, y : y + size, x : x + size]
        if size != crop:
            c = F.interpolate(c[None].float(), size=(crop, crop), mode="bilinear", antialias=True,
                              align_corners=False)[0].round().clamp(0, 255)
        if torch.rand((), generator=gen) < 0.5:
            c = c.flip(2)
        if torch.rand((), generator=gen) < 0.5:
            c = c.transpose(1, 2)
        out.append(c.float())
    return torch.stack(out) / 255.0 - 0.5


def phase(step: int, total: int, finetune: bool = False) -> tuple[int, bool, bool]:
    """(active stages, ECVQ on, reactivation on) at ``step``; fine-tuning a trained model is ECVQ throughout."""
    if finetune:
        return 3, True, False
    f = step / max(total, 1)
    if f < 0.04:
        return 1, False, True
    if f < 0.08:
        return 2, False, True
    if f < 0.25:
        return 3, False, True
    return 3, True, False


def reactivate(model, usage: dict, residuals: dict, gen) -> int:
    """Replace codewords unused since the last call by random batch residuals (plus a little noise)."""
    import torch

    n_dead = 0
    with torch.no_grad():
        for (s, l), count in usage.items():
            dead = (count == 0).nonzero().flatten()
            if len(dead) == 0 or (s, l) not in residuals:
                continue
            r = residuals[(s, l)]
            pick = torch.randint(len(r), (len(dead),), generator=gen).to(r.device)
            noise = 0.01 * r.std() * torch.randn(len(dead), r.shape[1], generator=gen).to(r.device)
            model.codebooks[s].data[l][dead] = (r[pick] + noise).to(model.codebooks[s].dtype)
            n_dead += len(dead)
    return n_dead


def make_optimizer(model, lr: float, entropy_mult: float):
    """Adam; the entropy-model logits learn ``entropy_mult`` times faster (ECVQ needs tables that keep up)."""
    import torch

    ent = [p for n, p in model.named_parameters() if n.startswith("logits.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("logits.")]
    return torch.optim.Adam([{"params": rest, "lr_mult": 1.0}, {"params": ent, "lr_mult": entropy_mult}], lr=lr)


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up (500 steps at most), then cosine decay to 2 % of ``peak``."""
    warmup = min(500, max(total // 20, 1))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1))))


def save_checkpoint(path: str, cfg: dict, model, opt, step: int, total: int, finetune: bool = False) -> None:
    import torch

    tmp = path + ".tmp"
    torch.save({"config": cfg, "model": model.state_dict(), "opt": opt.state_dict(), "step": step, "total": total,
                "finetune": finetune}, tmp)
    os.replace(tmp, path)


def train_step(model, opt, x, quality: int, active: int, ecvq: bool, amp: bool, copy_aware: bool = False) -> tuple:
    """One optimisation step on batch ``x``: returns (model output, mse, bits per pixel)."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x, quality=quality, active=active, ecvq=ecvq, copy_aware=copy_aware)
    mse = F.mse_loss(out["x_hat"].float(), x)
    bpp = out["bits"] / (x.shape[0] * x.shape[2] * x.shape[3])
    # transforms and codebooks see mse + vq (lambda steers ECVQ); only the logits see the rate (bits per dim)
    loss = mse + out["vq_loss"] + bpp / 3.0
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], 1.0)
    opt.step()
    return out, mse, bpp


#: a budgeted first run re-times its own steps between these two and fits the schedule to the budget
RECALIBRATE_AT = (20, 120)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def calibrate_steps(cfg: dict, images, args, device) -> int:
    """Schedule length that fits ``--budget-minutes``: time 20 full steps of a throwaway model."""
    import torch

    from aigif.codec.model import NVTC

    model = NVTC(cfg).to(device)
    if args.copy_aware:
        model.add_copy_logits()
    opt = make_optimizer(model, args.lr, args.entropy_lr_mult)
    gen = torch.Generator().manual_seed(12345)
    amp = args.amp
    t0 = 0.0
    for i in range(30):
        if i == 10:
            sync(device)
            t0 = time.time()
        train_step(model, opt, random_batch(images, args.batch, args.crop, gen, device), 0, 3, True, amp,
                   args.copy_aware)
    sync(device)
    per_step = (time.time() - t0) / 20
    total = max(100, int(args.budget_minutes * 60 / per_step))
    print(f"calibration: {per_step:.4f} s/step -> {total} steps in {args.budget_minutes} min", flush=True)
    return total


def rescheduled_total(step: int, seconds: float, steps: int, seconds_left: float) -> int:
    """Schedule length from the real step time (the calibration's throwaway model skips data loading and logging)."""
    per_step = seconds / max(steps, 1)
    total = max(step + 1, step + int(seconds_left / per_step))
    print(f"recalibrated: {per_step:.4f} s/step -> {total} steps in the budget", flush=True)
    return total


def train(args) -> None:
    import torch

    from aigif.codec.model import DEFAULT_CONFIG, NVTC

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "last.pt")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = dict(DEFAULT_CONFIG)
    if args.config:
        cfg.update(json.loads(args.config))
    step, total = 0, args.steps
    ck = None
    finetune = bool(args.init)
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        cfg = dict(ck["config"])
        step, total = ck["step"], ck.get("total", args.steps)
        finetune = ck.get("finetune", False)
        if args.extend_to:
            total = max(total, args.extend_to)
    init = None
    if ck is None and args.init:
        init = load_shipped(args.init)
        cfg = dict(init["config"])
    model = NVTC(cfg).to(device)
    if init is not None:
        model.load_state_dict(init["model"])
        print(f"initialised from {args.init} (fine-tuning: ECVQ from the first step)", flush=True)
    if args.copy_aware:
        model.add_copy_logits()
    opt = make_optimizer(model, args.lr, args.entropy_lr_mult)
    images = [im.to(device) for im in load_images(args.data) if min(im.shape[1:]) >= args.crop]
    recalibrate = ck is None and bool(args.budget_minutes)
    if recalibrate:
        total = calibrate_steps(cfg, images, args, device)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        print(f"resumed from {ckpt_path} at step {step} of {total}", flush=True)
    gen = torch.Generator().manual_seed(args.seed + step)
    usage: dict = {}
    t_mark = t_start = time.time()
    t0 = time.time()
    log = {"n": 0, "per_q": {}}
    amp = args.amp
    model.train()
    while step < total:
        if args.minutes and time.time() - t_start > 60 * args.minutes:
            print(f"time budget of {args.minutes} min reached at step {step}", flush=True)
            break
        active, ecvq, react = phase(step, total, finetune)
        lr = lr_at(step, total, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        x = random_batch(images, args.batch, args.crop, gen, device, args.min_scale)
        q = int(torch.randint(len(cfg["lambdas"]), (1,), generator=gen))
        out, mse, bpp = train_step(model, opt, x, q, active, ecvq, amp, args.copy_aware)
        step += 1
        if react:
            k_of = cfg["codebooks"]
            for key, i in out["idx"].items():
                k = k_of[key[0]]
                flat = i.flatten()
                usage[key] = usage.get(key, torch.zeros(k, dtype=torch.long, device=device)).index_add_(
                    0, flat, torch.ones_like(flat))
            if step == 1 or step % args.react_every == 0:
                n_dead = reactivate(model, usage, out["residuals"], gen)
                usage = {}
                print(f"step {step}: reactivated {n_dead} codewords", flush=True)
        # statistics stay on the device until a log line: a float() per step would stall the GPU queue
        pq = log["per_q"].setdefault(q, [0.0, 0.0, 0])
        pq[0] = pq[0] + bpp.detach()
        pq[1] = pq[1] + -10 * torch.log10(mse.detach().clamp_min(1e-10))
        pq[2] += 1
        log["n"] += 1
        if recalibrate and step == RECALIBRATE_AT[1]:
            sync(device)
            total = rescheduled_total(step, time.time() - t_mark, RECALIBRATE_AT[1] - RECALIBRATE_AT[0],
                                      60 * args.budget_minutes - (time.time() - t_start))
        if recalibrate and step == RECALIBRATE_AT[0]:
            sync(device)
            t_mark = time.time()
        if step % args.log_every == 0:
            n = log["n"]
            print(
                f"step {step}/{total} active {active} ecvq {int(ecvq)} lr {lr:.2e} {(time.time()-t0)/n:.3f}s/step | "
                + " ".join(f"q{k}:{float(v[0])/v[2]:.3f}bpp/{float(v[1])/v[2]:.2f}dB"
                           for k, v in sorted(log["per_q"].items())),
                flush=True,
            )
            log = {"n": 0, "per_q": {}}
            t0 = time.time()
        if step % args.ckpt_every == 0:
            save_checkpoint(ckpt_path, cfg, model, opt, step, total, finetune)
    save_checkpoint(ckpt_path, cfg, model, opt, step, total, finetune)
    print(f"saved {ckpt_path} at step {step} of {total}", flush=True)


def _center_crop(im, size: int):
    _, h, w = im.shape
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return im[:, y : y + size, x : x + size]


def refine_tables(model, probs: dict, flag_probs: dict, lmbda: float, n_images: int, rounds: int, data: str) -> tuple:
    """ECVQ table design (Chou, Lookabaugh & Gray 1989) on training images, copy flags included.

    Alternates: encode with the current integer tables (eval mode, as the real
    encoder does), count (context, symbol) pairs of the symbols coded with the
    table (column 0 and those whose copy flag is 0) and (flag context, flag)
    pairs, and re-estimate each symbol row as ``(counts + a * old_row) / (n + a)``
    (the learned row is the prior) and each flag row with add-one smoothing.
    """
    import torch

    from aigif.codec.entropy import IntegerTables, flag_counts, quantize_probs, walk_grid
    from aigif.codec.model import contexts_for, pad_multiple

    images = load_images(data)
    step = max(1, len(images) // n_images)
    images = [_center_crop(im, 512) for im in images[::step][:n_images]]
    model.eval()
    m = pad_multiple(model.config)
    for _ in range(rounds):
        tables = IntegerTables({key: quantize_probs(p) for key, p in probs.items()},
                               {key: quantize_probs(p) for key, p in flag_probs.items()})
        model.tables = tables
        model.lmbda = lmbda
        counts = {key: np.zeros_like(p) for key, p in probs.items()}
        fcounts = {key: np.zeros_like(p) for key, p in flag_probs.items()}
        for im in images:
            _, h, w = im.shape
            im = im[:, : h - h % m, : w - w % m]
            x = im[None].float() / 255.0 - 0.5
            with torch.no_grad():
                idx, directions = model.encode_indices(x, directions=True)
            for (s, l), i in idx.items():
                # counted on the grid the coder walks
                ctx3 = walk_grid(contexts_for(s, l, idx, i.shape).numpy(), directions[(s, l)])
                i = walk_grid(i.numpy(), directions[(s, l)])
                flags_seen, coded = flag_counts(i, ctx3, tables.tables[(s, l)])
                fcounts[(s, l)] += flags_seen
                sym, ctx = i.reshape(coded.shape), ctx3.reshape(coded.shape)
                np.add.at(counts[(s, l)], (ctx[coded], sym[coded]), 1.0)
        probs = {key: (counts[key] + 0.5 * p.shape[1] * p) / (counts[key].sum(-1, keepdims=True) + 0.5 * p.shape[1])
                 for key, p in probs.items()}
        flag_probs = {key: (c + 1.0) / (c.sum(-1, keepdims=True) + 2.0) for key, c in fcounts.items()}
    return probs, flag_probs


def compact(args) -> None:
    """Split a training checkpoint into files of at most ~16 MB (no optimizer state): ``net`` + one per quality."""
    import torch
    from safetensors.torch import save_file

    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    os.makedirs(args.out, exist_ok=True)
    meta = {"config": json.dumps(ck["config"], sort_keys=True), "step": str(ck["step"]), "total": str(ck.get("total", 0))}
    state = ck["model"]
    save_file({k: v.contiguous() for k, v in state.items() if not k.startswith("logits.")},
              os.path.join(args.out, "net.safetensors"), metadata=meta)
    for q in range(len(ck["config"]["lambdas"])):
        part = {k: v.contiguous() for k, v in state.items() if k.startswith(f"logits.q{q}_")}
        save_file(part, os.path.join(args.out, f"logits_q{q}.safetensors"), metadata=meta)
    print(f"compacted step {ck['step']} into {args.out}", flush=True)


def load_shipped(path: str) -> dict:
    """A shipped weights file (``export``'s output) as a training state: {config, model, flags, step}.

    The training-time logits are the logs of the shipped integer tables, so a
    later run can go on training the released model without its checkpoint;
    ``flags`` (copy-flag probabilities per ``q{q}_s{s}_l{l}``) let ``export``
    redesign the tables starting from the shipped ones.
    """
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from aigif.codec.model import context_plan
    from aigif.codec.zoo import net_state

    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta["config"])
    arrays = load_file(path)
    state = net_state(arrays)
    for q in range(len(cfg["lambdas"])):
        for s, l, _rows, _k in context_plan(cfg):
            t = arrays[f"table.q{q + 1}.s{s}_l{l}"].astype(np.float64) - 0.5  # about undoes quantize_probs (1 + floor)
            state[f"logits.q{q}_s{s}_l{l}"] = torch.from_numpy(np.log(t / t.sum(-1, keepdims=True))).float()
    flags = {f"q{q}_s{s}_l{l}": arrays[f"flag.q{q + 1}.s{s}_l{l}"].astype(np.float64) / 65536.0
             for q in range(len(cfg["lambdas"])) for s, l, _rows, _k in context_plan(cfg)}
    return {"config": cfg, "model": state, "flags": flags, "step": int(meta.get("train_step", 0))}


def load_checkpoint(path: str) -> dict:
    """A ``.pt`` training checkpoint, a folder written by :func:`compact`, or a shipped
    ``.safetensors`` file (:func:`load_shipped`): {config, model, step}."""
    import torch

    if path.endswith(".safetensors"):
        return load_shipped(path)
    if not os.path.isdir(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(os.path.join(path, "net.safetensors"), framework="pt") as f:
        meta = f.metadata()
    state = load_file(os.path.join(path, "net.safetensors"))
    for name in sorted(glob.glob(os.path.join(path, "logits_q*.safetensors"))):
        state.update(load_file(name))
    return {"config": json.loads(meta["config"]), "model": state, "step": int(meta["step"])}


def quality_tables(ckpt: str, q: int, refine: int, rounds: int, threads: int, data: str = "") -> dict:
    """Integer symbol and copy-flag tables of rate point ``q`` (0-based) as ``{name: uint16 array}``."""
    import torch

    from aigif.codec.entropy import FLAG_CONTEXTS, quantize_probs
    from aigif.codec.model import NVTC, context_plan

    torch.set_num_threads(threads)
    ck = load_checkpoint(ckpt)
    cfg = ck["config"]
    model = NVTC(cfg)
    if any(k.endswith("_copy") for k in ck["model"]):
        model.add_copy_logits()  # a --copy-aware run's flag logits: not exported (refine_tables designs the flags)
    model.load_state_dict(ck["model"])
    model.eval()
    lmbda = float(cfg["lambdas"][q])
    probs = {(s, l): torch.softmax(model.logits[f"q{q}_s{s}_l{l}"].detach().double(), -1).numpy()
             for s, l, _rows, _k in context_plan(cfg)}
    shipped = ck.get("flags", {})  # a shipped file's copy-flag tables, else designed from scratch by refine_tables
    flag_probs = {(s, l): shipped.get(f"q{q}_s{s}_l{l}", np.full((FLAG_CONTEXTS, 2), 0.5)) for s, l in probs}
    if refine:
        probs, flag_probs = refine_tables(model, probs, flag_probs, lmbda, refine, rounds, data)
    out = {}
    for (s, l), pr in probs.items():
        out[f"table.q{q + 1}.s{s}_l{l}"] = quantize_probs(pr)
        out[f"flag.q{q + 1}.s{s}_l{l}"] = quantize_probs(flag_probs[(s, l)])
    print(f"quality {q + 1}: lambda {lmbda}", flush=True)
    return out


def export(args) -> None:
    """Write one safetensors file: shared transforms + one set of integer tables per rate point.

    Table sets are designed by ``--jobs`` processes in parallel (one rate point each).
    """
    from concurrent.futures import ProcessPoolExecutor

    from safetensors.numpy import save_file

    ck = load_checkpoint(args.ckpt)
    cfg = ck["config"]
    tensors = {"net." + name: t.detach().cpu().numpy().astype(np.float32)
               for name, t in ck["model"].items() if not name.startswith("logits.")}
    # table set q = quality q + 1; lambdas ascend, so quality 1 = lowest rate
    if args.refine and not args.data:
        raise SystemExit("export --refine needs --data (a glob of training photos)")
    jobs = [(args.ckpt, q, args.refine, args.refine_rounds, max(1, args.threads // max(1, args.jobs)), args.data)
            for q in range(len(cfg["lambdas"]))]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            parts = list(pool.map(quality_tables, *zip(*jobs)))
    else:
        parts = [quality_tables(*j) for j in jobs]
    for part in parts:
        tensors.update(part)
    meta = {"config": json.dumps(cfg, sort_keys=True), "format": "aigif-nvtc-2", "train_step": str(ck["step"])}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="tools/train_nvtc.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", default="runs/nvtc")
    t.add_argument("--data", required=True, help="glob of the training photos (never a benchmark set)")
    t.add_argument("--steps", type=int, default=20000, help="total steps of the schedule (fixed by the first run)")
    t.add_argument("--minutes", type=float, default=0.0, help="stop this run after so many minutes (resume later)")
    t.add_argument("--init", default="", help="first run only: start from a shipped weights file (fine-tuning)")
    t.add_argument("--extend-to", type=int, default=0, help="on resume: lengthen the schedule to this many steps")
    t.add_argument("--budget-minutes", type=float, default=0.0,
                   help="first run only: size the schedule (--steps) to this much training time, measured")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--crop", type=int, default=256)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--device", default="cpu")
    t.add_argument("--amp", action="store_true", help="bf16 autocast for the transforms (CUDA, or a CPU with bf16 "
                   "instructions: 2.4x faster on this project's AVX-512 BF16 machine)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=100)
    t.add_argument("--ckpt-every", type=int, default=1000)
    t.add_argument("--react-every", type=int, default=250)
    t.add_argument("--config", default="", help="JSON overrides of the model config (first run only)")
    t.add_argument("--min-scale", type=float, default=1.0,
                   help="scale augmentation: crops shrunk by a random factor in [min-scale, 1] (e.g. 0.5)")
    t.add_argument("--copy-aware", action="store_true",
                   help="ECVQ and rate count the coder's copy flags (pass it again on resume)")
    t.add_argument("--entropy-lr-mult", type=float, default=30.0)
    c = sub.add_parser("compact")
    c.add_argument("--ckpt", default="runs/nvtc/last.pt")
    c.add_argument("--out", required=True)
    e = sub.add_parser("export")
    e.add_argument("--ckpt", default="runs/nvtc/last.pt",
                   help="a .pt checkpoint, a folder written by compact, or a shipped .safetensors file (tables redesigned)")
    e.add_argument("--out", default="aigif/assets/nvtc/nvtc_id5.safetensors")
    e.add_argument("--refine", type=int, default=77,
                   help="design the tables (and the copy flags' tables) on this many training images; 0: none")
    e.add_argument("--refine-rounds", type=int, default=3)
    e.add_argument("--data", default="", help="glob of the training photos the tables are designed on (with --refine)")
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--jobs", type=int, default=2, help="rate points designed in parallel processes")
    args = ap.parse_args(argv)
    {"train": train, "compact": compact, "export": export}[args.cmd](args)


if __name__ == "__main__":
    main()
