"""Train the restoration network (:mod:`.restore`) of a shipped NVTC model on the training photos.

Two steps, both on CPU in minutes::

    python tools/train_nvtc_restore.py decode --out runs/restore/decoded   # the model's decodes, every quality
    python tools/train_nvtc_restore.py train --decoded runs/restore/decoded --out restore.safetensors

``decode`` codes every training photo at every quality with the default
encoder (adaptive rows, layer directions, one orientation) and keeps what the
synthesis outputs before any post filter; ``train`` fits the network to map
those decodes back to the photos (MSE, random crops, flips and transposes,
one schedule for all qualities) and writes the weights file the zoo ships
(config in the safetensors metadata). Never train on the Kodak set: it is the
benchmark.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

import numpy as np



def decoded_path(decoded_dir: str, photo: str, quality: int) -> str:
    """Where ``decode`` keeps the decode of ``photo`` at ``quality``."""
    return os.path.join(decoded_dir, f"{os.path.basename(photo).rsplit('.', 1)[0]}_q{quality}.npz")


def decode_training_set(files: list, out_dir: str, qualities=(1, 2, 3, 4)) -> None:
    """``out_dir/<name>_q<q>.npz`` (``dec``: uint8 decode before post filters, as the encoder's model id
    decodes it, ``nbytes``) for every file."""
    from PIL import Image

    from aigif.codec import api, payload, zoo

    os.makedirs(out_dir, exist_ok=True)
    for q in qualities:
        for f in files:
            out = decoded_path(out_dir, f, q)
            if os.path.exists(out):
                continue
            rgb = np.asarray(Image.open(f).convert("RGB"))
            model, coded = api._compress_symbols(rgb, q, adaptive=True, directions=True)
            dec = api._synthesize(model, coded["indices"], *rgb.shape[:2], api._integer_ops(zoo.DEFAULT_MODEL_ID))
            np.savez(out + ".tmp.npz", dec=dec, nbytes=payload.size(coded["strings"][0]))
            os.replace(out + ".tmp.npz", out)
            print(out, flush=True)


def load_pairs(files: list, decoded_dir: str, qualities: int = 4) -> list:
    """[(quality index, decode, photo)] in file order, qualities innermost."""
    from PIL import Image

    pairs = []
    for f in files:
        target = np.asarray(Image.open(f).convert("RGB"))
        for q in range(1, qualities + 1):
            z = np.load(decoded_path(decoded_dir, f, q))
            pairs.append((q - 1, z["dec"], target))
    return pairs


def train(pairs: list, cfg: dict, steps: int = 6000, batch: int = 16, crop: int = 128, lr: float = 7e-4,
          seed: int = 0, log_every: int = 200):
    """The trained :class:`.restore.RestoreNet`: Adam with a one-cycle schedule, crops drawn with probability
    proportional to each pair's pixels."""
    import torch
    import torch.nn.functional as F

    from aigif.codec.restore import RestoreNet

    torch.manual_seed(seed)
    np.random.seed(seed)
    net = RestoreNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr / 2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    weight = np.array([d.shape[0] * d.shape[1] for _q, d, _t in pairs], float)
    weight /= weight.sum()
    t0, ema = time.time(), 0.0
    for step in range(steps):
        xs, ys, qs = [], [], []
        for i in np.random.choice(len(pairs), batch, p=weight):
            q, d, t = pairs[i]
            y0 = np.random.randint(0, (d.shape[0] - crop) // 2 + 1) * 2
            x0 = np.random.randint(0, (d.shape[1] - crop) // 2 + 1) * 2
            a, b = d[y0 : y0 + crop, x0 : x0 + crop], t[y0 : y0 + crop, x0 : x0 + crop]
            if np.random.rand() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            if np.random.rand() < 0.5:
                a, b = a.transpose(1, 0, 2), b.transpose(1, 0, 2)
            xs.append(a.copy())
            ys.append(b.copy())
            qs.append(q)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255 - 0.5
        y = torch.from_numpy(np.stack(ys)).permute(0, 3, 1, 2).float() / 255 - 0.5
        loss = F.mse_loss(net(x, torch.tensor(qs)), y)
        base = F.mse_loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        ema = 0.98 * ema + 0.02 * 10 * math.log10(base.item() / max(loss.item(), 1e-12))
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step}  gain {ema:.3f} dB (moving average)  {time.time() - t0:.0f} s", flush=True)
    return net.eval()


def export(net, path: str) -> str:
    """Write ``net`` as a safetensors file with its config in the metadata (temp file, then rename);
    returns its sha256 (for ``zoo.SHA256``)."""
    from safetensors.torch import save_file

    from aigif.fileio import sha256_of_file

    tmp = path + ".tmp"
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, tmp,
              metadata={"config": json.dumps(net.config, sort_keys=True)})
    os.chmod(tmp, 0o644)  # a shipped asset, readable by everyone
    os.replace(tmp, path)
    return sha256_of_file(path)


def main(argv=None) -> None:
    from aigif.codec.restore import DEFAULT_CONFIG

    ap = argparse.ArgumentParser(prog="python tools/train_nvtc_restore.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode", help="cache the model's decodes of the training photos")
    d.add_argument("--out", default="runs/restore/decoded")
    d.add_argument("--data", required=True, help="glob of the training photos")
    t = sub.add_parser("train", help="train the network on the cached decodes and write its weights file")
    t.add_argument("--decoded", default="runs/restore/decoded")
    t.add_argument("--data", required=True, help="glob of the training photos")
    t.add_argument("--out", default="runs/restore/restore.safetensors")
    t.add_argument("--steps", type=int, default=6000)
    t.add_argument("--channels", type=int, default=DEFAULT_CONFIG["channels"])
    t.add_argument("--layers", type=int, default=DEFAULT_CONFIG["layers"])
    t.add_argument("--lr", type=float, default=7e-4,
                   help="peak learning rate of the one-cycle schedule (2e-3 and more: dead ReLUs)")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch

    files = sorted(glob.glob(args.data))
    if not files:
        raise SystemExit(f"no training photos match {args.data}")
    if args.cmd == "decode":
        torch.set_num_threads(1)
        decode_training_set(files, args.out)
        return
    torch.set_num_threads(args.threads)
    cfg = dict(DEFAULT_CONFIG, channels=args.channels, layers=args.layers)
    net = train(load_pairs(files, args.decoded), cfg, steps=args.steps, lr=args.lr, seed=args.seed)
    print(args.out, "sha256", export(net, args.out))


if __name__ == "__main__":
    main()
