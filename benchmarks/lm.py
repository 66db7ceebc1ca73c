"""Language-model speed on this CPU; prints JSON.

    python benchmarks/lm.py [--steps 10] [--threads 2] [--models a,b] [--seconds 30] [--burners 0] [--skip-training]

1. Training tokens/s of ``transformer-small`` against a Llama of the same size from Hugging Face
   ``transformers`` (the ``bench`` extra): same width, depth, heads, SwiGLU width, vocabulary, tied embeddings,
   batch 8 x 512 tokens, AdamW, fp32 and bf16 autocast.
2. Generation as ``espressivo generate`` does it (one thread) with each shipped language model (or ``--models``):
   ``--seconds`` (30) and four times as much at batch 1, and 8 samples at once; ids/s and real-time factor
   (seconds of music per wall second); ``--burners N`` runs N CPU-burning processes beside it (a busy machine).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py is named like the standard library's `tokenize`: keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402


def train_speed(model, steps: int, batch: int, seq: int, bf16: bool, vocab: int, hf: bool = False) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, vocab - 3, (batch, seq + 1))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if hf:
                loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
            else:
                loss = model(x[:, :-1], x[:, 1:])[1]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * seq * steps / (time.perf_counter() - start)


def llama_like(config):
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layer, num_attention_heads=config.n_head, num_key_value_heads=config.n_kv_head,
        max_position_embeddings=config.max_seq_len, rope_theta=config.rope_theta, tie_word_embeddings=True,
        attention_bias=False, mlp_bias=False,
    )  # fmt: skip
    hf._attn_implementation = "sdpa"
    return LlamaForCausalLM(hf)


def generation_speed(pretrained, seconds: float, variations: int = 1, seed: int = 0) -> dict:
    """``variations`` samples of ``seconds`` of music at once, as `espressivo generate` makes them (one thread)."""
    from espressivo.generate import SamplingConfig, generate_performances

    start = time.perf_counter()
    perfs = generate_performances(pretrained, SamplingConfig(temperature=0.98, min_p=0.035, seed=seed),
                                  seconds=seconds, variations=variations, num_threads=1)  # fmt: skip
    wall = time.perf_counter() - start
    ids = sum(len(pretrained.tokenizer.encode(p)) for p in perfs)
    return {"variations": variations, "seconds_of_music": seconds * variations, "wall_seconds": round(wall, 2),
            "notes": int(sum(len(p) for p in perfs)), "ids_per_sec": round(ids / wall, 1),
            "realtime_factor": round(seconds * variations / wall, 1)}  # fmt: skip


def _burn() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--models", default="", help="comma-separated models or checkpoint folders (default: shipped)")
    parser.add_argument("--burners", type=int, default=0, help="CPU-burning processes beside the generation")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from espressivo.families import family
    from espressivo.models import build_model
    from espressivo.models.checkpoint import load_pretrained, shipped_models

    result: dict = {"threads": args.threads}
    if not args.skip_training:
        ours = build_model("transformer", "small")
        theirs = llama_like(ours.config)
        result["training"] = {
            "model": "transformer-small vs same-size LlamaForCausalLM (transformers, sdpa)",
            "parameters": {
                "espressivo": sum(p.numel() for p in ours.parameters()),
                "llama": sum(p.numel() for p in theirs.parameters()),
            },
            "batch": 8,
            "seq_len": 512,
        }
        for label, bf16 in (("fp32", False), ("bf16", True)):
            a = train_speed(ours, args.steps, 8, 512, bf16, ours.config.vocab_size)
            b = train_speed(theirs, args.steps, 8, 512, bf16, ours.config.vocab_size, hf=True)
            result["training"][label] = {"espressivo_tokens_per_sec": round(a), "llama_tokens_per_sec": round(b),
                                         "ratio": round(a / b, 2)}  # fmt: skip
        print(json.dumps({"training": result["training"]}), flush=True)  # each part as soon as it is measured
    result["generation"] = {}
    names = args.models.split(",") if args.models else shipped_models()
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burners)]
    for b in burners:
        b.start()
    result["burners"] = args.burners
    try:
        for name in names:
            pretrained = load_pretrained(name)
            if family(pretrained.model_type).kind != "language":  # renderers, CVRNN, embedders: not LMs
                continue
            generation_speed(pretrained, 2.0)  # warm-up
            single = generation_speed(pretrained, args.seconds)
            batch = generation_speed(pretrained, args.seconds, variations=8)
            result["generation"][name] = {
                f"batch_1_{args.seconds:g}s": single,
                f"batch_1_{4 * args.seconds:g}s": generation_speed(pretrained, 4 * args.seconds),
                f"batch_8_{args.seconds:g}s": batch,
                "batch_8_over_batch_1_wall": round(batch["wall_seconds"] / single["wall_seconds"], 2),
            }
            print(json.dumps({"generation": {name: result["generation"][name]}}), flush=True)
    finally:
        for b in burners:
            b.terminate()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
