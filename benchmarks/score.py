"""Scoring time and peak memory: vision pass and LLM pass separately, per preset and frame count.

    python benchmarks/score.py                       # tiny + small, T = 32, 128, 512, 1024 (CPU)
    python benchmarks/score.py --presets 7b --frames 512 --dtype bfloat16 --device cuda   # on a GPU

Each configuration runs in its own process so that peak memory is its own (CPU: peak RSS growth over the
loaded model; GPU: torch.cuda.max_memory_allocated). Reference: the paper reports 0.61 s for the VideoITG
module on 512 frames on an A100 (Appendix B).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def measure(preset: str, num_frames: int, dtype_name: str, device: str, repeats: int) -> dict:
    import torch

    from videoitg.hub import build_model

    dtype = getattr(torch, dtype_name)
    model, processor = build_model(preset, "pooling")
    model = model.to(device=device, dtype=dtype).eval()
    size = processor.video_processor.size["height"]
    pixels = torch.randn(1, num_frames, 3, size, size, device=device, dtype=dtype)
    text = processor.tokenizer(["What colour is the star that appears after the red circle?\n"], return_tensors="pt")
    text = {key: value.to(device) for key, value in text.items()}

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    vision_times, llm_times = [], []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first round warms up
            sync()
            start = time.perf_counter()
            features = torch.cat(
                [model.encode_frames(pixels[0, i : i + model.config.vision_chunk_size])
                 for i in range(0, num_frames, model.config.vision_chunk_size)]
            )[None]  # fmt: skip
            sync()
            middle = time.perf_counter()
            scores = model(vision_features=features, **text).scores
            sync()
            end = time.perf_counter()
            vision_times.append(middle - start)
            llm_times.append(end - middle)
    assert scores.shape == (1, num_frames)
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024
    vision_s = min(vision_times[1:])
    llm_s = min(llm_times[1:])
    side = model.config.tokens_per_frame_side(num_frames)
    return {
        "preset": preset,
        "frames": num_frames,
        "tokens_per_frame": side * side,
        "sequence_tokens": num_frames * side * side + text["input_ids"].shape[1],
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "dtype": dtype_name,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "vision_s": round(vision_s, 4),
        "llm_s": round(llm_s, 4),
        "total_s": round(vision_s + llm_s, 4),
        "peak_memory_mib": round(peak_mib, 1),
        "peak_memory_kind": "cuda max allocated" if device == "cuda" else "RSS growth during scoring",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--frames", default="32,128,512,1024")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "score.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: "preset:frames"
    args = parser.parse_args()
    if args.one:
        preset, frames = args.one.split(":")
        print(json.dumps(measure(preset, int(frames), args.dtype, args.device, args.repeats)))
        return

    rows = []
    for preset in args.presets.split(","):
        for frames in [int(value) for value in args.frames.split(",")]:
            command = [sys.executable, __file__, "--one", f"{preset}:{frames}", "--dtype", args.dtype,
                       "--device", args.device, "--repeats", str(args.repeats)]  # fmt: skip
            completed = subprocess.run(command, capture_output=True, text=True)
            if completed.returncode != 0:
                reason = completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed"
                rows.append({"preset": preset, "frames": frames, "error": reason})
            else:
                rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            print(_format_row(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "reference": "paper: 0.61 s, 512 frames, A100"}, indent=2))
    print(f"\nwrote {args.out}")


def _format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['preset']:>6} T={row['frames']:>5}  ERROR {row['error']}"
    return (
        f"{row['preset']:>6} T={row['frames']:>5} tok/frame={row['tokens_per_frame']:>3} seq={row['sequence_tokens']:>6} "
        f"vision={row['vision_s']:>8.3f}s llm={row['llm_s']:>8.3f}s total={row['total_s']:>8.3f}s "
        f"peak={row['peak_memory_mib']:>9.1f} MiB ({row['device']}, {row['dtype']})"
    )


if __name__ == "__main__":
    main()
