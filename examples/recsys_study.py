"""Train small sequential recommenders on the synthetic set of :mod:`attnzoo.data.recsys` and compare HR@10 /
NDCG@10 (full ranking, leave-one-out): SASRec (MQSA with alpha=1), MQSA (L=3, alpha=0.5), MQSA-TED (+ TED,
lambda 0.1, tau 0.1), TWIN-style target attention with shared embeddings, DARE with decoupled embeddings, and a
bigram (last-item transition counts) baseline. One thread, a fixed time budget per model.

    python examples/recsys_study.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from attnzoo.data.recsys import generate_recsys, hit_and_ndcg, leave_one_out, left_padded
from attnzoo.models.recsys import DARERecommender, MQSARecommender, sampled_bce, ted_loss, transition_counts

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "recsys"


def train_inputs(inputs: list, max_len: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``get_train_data``: inputs ``s[:-1]`` and next items ``s[1:]``, left padded."""
    return left_padded([s[:-1] for s in inputs], max_len, pad), left_padded([s[1:] for s in inputs], max_len, pad)


def run_mqsa(name: str, args, data, inputs, targets, counts, alpha: float, kd: float) -> dict:  # noqa: ANN001
    torch.manual_seed(args.seed)
    pad = data.num_items
    model = MQSARecommender(data.num_items, dim=args.dim, max_len=args.max_len, window=3, alpha=alpha,
                            dropout=args.dropout)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=args.l2)
    x, y = train_inputs(inputs, args.max_len, pad)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for batch in torch.randperm(len(x)).split(args.batch):
            logits = model(x[batch])
            valid = y[batch] != pad
            loss = F_cross_entropy(logits[valid], y[batch][valid])
            if kd:
                loss = loss + kd * ted_loss(model, x[batch], counts, tau=0.1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
            if time.perf_counter() - start >= args.seconds:
                break
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(b)[:, -1] for b in left_padded(inputs, args.max_len, pad).split(512)])
    return result(name, scores, targets, steps, time.perf_counter() - start)


def F_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # noqa: N802
    return torch.nn.functional.cross_entropy(logits, labels)


def run_dare(name: str, args, data, inputs, targets, decoupled: bool) -> dict:  # noqa: ANN001
    torch.manual_seed(args.seed)
    pad = data.num_items
    model = DARERecommender(data.num_items, torch.as_tensor(data.item_cluster), attention_dim=args.attention_dim
                            if decoupled else None, decoupled=decoupled, top_k=args.top_k)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    # every prefix of each input predicts its next item (history = the prefix, last max_len items)
    histories, positives = [], []
    for s in inputs:
        for t in range(1, len(s)):
            histories.append(s[max(0, t - args.max_len):t])
            positives.append(s[t])
    h, p = left_padded(histories, args.max_len, pad), torch.as_tensor(positives)
    generator = torch.Generator().manual_seed(args.seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for batch in torch.randperm(len(h)).split(args.batch):
            loss = sampled_bce(model, h[batch], p[batch], generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
            if time.perf_counter() - start >= args.seconds:
                break
    model.eval()
    candidates = torch.arange(data.num_items)
    with torch.no_grad():
        scores = torch.cat([model(b, candidates.expand(len(b), -1))
                            for b in left_padded(inputs, args.max_len, pad).split(64)])
    return result(name, scores, targets, steps, time.perf_counter() - start)


def result(name: str, scores: torch.Tensor, targets, steps: int, seconds: float) -> dict:  # noqa: ANN001
    hr, ndcg = hit_and_ndcg(scores, torch.as_tensor(targets), 10)
    print(f"{name:10s} HR@10 {hr:.4f} NDCG@10 {ndcg:.4f} ({steps} steps, {seconds:.0f} s)", flush=True)
    return {"model": name, "HR@10": round(hr, 4), "NDCG@10": round(ndcg, 4), "steps": steps,
            "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training time per model")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--attention-dim", type=int, default=24)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = generate_recsys(num_users=args.users, num_items=args.items, seed=args.seed)
    inputs, targets = leave_one_out(data)
    counts = transition_counts(inputs, data.num_items)
    rows = [result("bigram", counts[torch.as_tensor([s[-1] for s in inputs])], targets, 0, 0.0)]
    rows.append(run_mqsa("sasrec", args, data, inputs, targets, counts, alpha=1.0, kd=0.0))
    rows.append(run_mqsa("mqsa", args, data, inputs, targets, counts, alpha=0.5, kd=0.0))
    rows.append(run_mqsa("mqsa_ted", args, data, inputs, targets, counts, alpha=0.5, kd=0.1))
    rows.append(run_dare("twin", args, data, inputs, targets, decoupled=False))
    rows.append(run_dare("dare", args, data, inputs, targets, decoupled=True))
    command = "python " + " ".join(["examples/recsys_study.py", *sys.argv[1:]])
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"command": command, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": 1, "data": {"users": args.users, "items": args.items, "clusters": data.num_clusters,
                                   "seed": args.seed, "split": "leave-one-out (last item)",
                                   "candidates": "full ranking over all items, history not excluded"},
            "results": rows}
    (OUT / "result.json").write_text(json.dumps(meta, indent=1) + "\n")
    lines = ["# Sequential recommendation on the synthetic cluster/transition set", "", f"`{command}`", "",
             "| model | HR@10 | NDCG@10 | steps | train s |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['HR@10']:.4f} | {r['NDCG@10']:.4f} | {r['steps']} | {r['train_seconds']} |"
              for r in rows]
    (OUT / "result.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
