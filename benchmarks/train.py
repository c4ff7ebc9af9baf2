"""Training throughput: samples/s, frames/s and peak memory per training step.

    python benchmarks/train.py                                   # tiny preset, T = 64, 256, 512, CPU
    python benchmarks/train.py --presets small --dtype bfloat16 --device cuda   # on a GPU

For each frame count: with and without gradient (activation) checkpointing, from frames (vision tower
trained) and from precomputed vision features (frozen tower: what `videoitg features` enables). A step is
forward + backward + AdamW update of one batch (`--videos` videos x `--questions` questions each). Each
configuration runs in its own process so that its peak memory is its own.
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


def measure(preset, num_frames, checkpointing, source, videos, questions, dtype_name, device, steps) -> dict:
    import torch

    from videoitg.hub import build_model

    dtype = getattr(torch, dtype_name)
    model, processor = build_model(preset, "pooling")
    model = model.to(device=device, dtype=dtype).train()
    if checkpointing:
        model.activation_checkpointing_enable()
    size = processor.video_processor.size["height"]
    pixels = torch.randn(videos, num_frames, 3, size, size, device=device, dtype=dtype)
    text = processor.encode_instructions(["What colour is the star that appears after the red circle?"] * (videos * questions))
    batch = {key: value.to(device) for key, value in text.items()}
    batch["video_index"] = torch.arange(videos, device=device).repeat_interleave(questions)
    labels = torch.zeros(videos * questions, num_frames, device=device)
    labels[:, num_frames // 3 : num_frames // 3 + 4] = 1
    batch["labels"] = labels
    if source == "features":
        model.vision_tower.requires_grad_(False)
        with torch.no_grad():
            batch["vision_features"] = torch.stack([
                torch.cat([model.encode_frames(video[i : i + 32]) for i in range(0, num_frames, 32)]) for video in pixels
            ])  # fmt: skip
    else:
        batch["pixel_values_videos"] = pixels
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        sync()
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - start)
    step_s = sorted(times[1:])[len(times[1:]) // 2]
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024
    return {
        "preset": preset, "frames": num_frames, "checkpointing": checkpointing, "source": source,
        "videos": videos, "questions": questions, "step_s": round(step_s, 4),
        "samples_per_s": round(videos * questions / step_s, 3), "frames_per_s": round(videos * num_frames / step_s, 1),
        "peak_memory_mib": round(peak_mib, 1), "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "dtype": dtype_name,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny")
    parser.add_argument("--frames", default="64,256,512")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(RESULTS / "train.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        preset, frames, checkpointing, source = args.one.split(":")
        row = measure(preset, int(frames), checkpointing == "1", source, args.videos, args.questions, args.dtype,
                      args.device, args.steps)  # fmt: skip
        print(json.dumps(row))
        return
    rows = []
    print(f"{'preset':>6} {'T':>5} {'ckpt':>5} {'source':>9} {'step s':>8} {'samples/s':>10} {'frames/s':>9} {'peak MiB':>9}")
    for preset in args.presets.split(","):
        for frames in args.frames.split(","):
            for source in ("frames", "features"):
                for checkpointing in ("0", "1"):
                    command = [sys.executable, __file__, "--one", f"{preset}:{frames}:{checkpointing}:{source}",
                               "--videos", str(args.videos), "--questions", str(args.questions), "--steps",
                               str(args.steps), "--dtype", args.dtype, "--device", args.device]  # fmt: skip
                    completed = subprocess.run(command, capture_output=True, text=True)
                    if completed.returncode != 0:
                        error = (completed.stderr.strip().splitlines() or ["failed"])[-1]
                        rows.append({"preset": preset, "frames": int(frames), "checkpointing": checkpointing == "1",
                                     "source": source, "error": error})  # fmt: skip
                        print(f"{preset:>6} {frames:>5} {checkpointing:>5} {source:>9} ERROR {error}")
                        continue
                    row = json.loads(completed.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(f"{preset:>6} {frames:>5} {'yes' if row['checkpointing'] else 'no':>5} {source:>9} "
                          f"{row['step_s']:>8.3f} {row['samples_per_s']:>10.2f} {row['frames_per_s']:>9.1f} "
                          f"{row['peak_memory_mib']:>9.1f}", flush=True)  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "batch": f"{args.videos} videos x {args.questions} questions"}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
