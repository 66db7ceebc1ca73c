"""Language-model speed on this CPU; prints JSON.

    python benchmarks/lm.py [--steps 10] [--threads 2] [--model default] [--seconds 20]

1. Training tokens/s of ``transformer-small`` against a Llama of the same size from Hugging Face
   ``transformers`` (the ``bench`` extra): same width, depth, heads, SwiGLU width, vocabulary, tied embeddings,
   batch 8 x 512 tokens, AdamW, fp32 and bf16 autocast.
2. Generation at batch 1 with each shipped model: tokens/s and real-time factor (seconds of music per wall
   second), with the KV cache (the transformer) / recurrent state (the RNN) and without (re-running the whole
   context for every token).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py is named like the standard library's `tokenize`: keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
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


def generation_speed(pretrained, seconds: float, cache: bool, seed: int = 0) -> dict:
    from espressivo.generate import SamplingConfig, generate_ids

    tok, model = pretrained.tokenizer, pretrained.model
    start = time.perf_counter()
    if cache:
        ids = generate_ids(model, tok, SamplingConfig(seed=seed, top_p=0.95), seconds=seconds)[0]
    else:  # no cache: the whole (window of) context again for every token
        from espressivo.generate.sampling import filter_logits

        limit = getattr(model.config, "max_seq_len", 1024)
        history = list(tok.start_ids()) or [tok.vocab["BOS"].start]
        generator = torch.Generator().manual_seed(seed)
        elapsed, ids = 0.0, []
        with torch.no_grad():
            while elapsed < seconds:
                logits, _ = model(torch.tensor([history[-limit:]]))
                logp = filter_logits(logits[:, -1], SamplingConfig(top_p=0.95))
                token = int(torch.multinomial(logp.exp(), 1, generator=generator))
                history.append(token)
                ids.append(token)
                elapsed += float(tok.time_advance(np.array([token]))[0])
        ids = np.array(ids)
    wall = time.perf_counter() - start
    music = float(tok.time_advance(ids).sum())
    return {"tokens": len(ids), "seconds_of_music": round(music, 2), "wall_seconds": round(wall, 2),
            "tokens_per_sec": round(len(ids) / wall, 1), "realtime_factor": round(music / wall, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
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
    for name in shipped_models():
        pretrained = load_pretrained(name)
        if pretrained.model_type not in ("transformer", "perfrnn"):  # renderers, CVRNN, embedders: not LMs
            continue
        result["generation"][name] = {
            "kv_cache" if pretrained.model_type == "transformer" else "state": generation_speed(
                pretrained, args.seconds, True
            ),
            "no_cache": generation_speed(pretrained, min(args.seconds, 5.0), False),
        }
        print(json.dumps({"generation": {name: result["generation"][name]}}), flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
