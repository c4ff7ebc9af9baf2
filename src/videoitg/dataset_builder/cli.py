"""Commands of the data room: `annotate` (and `annotate merge`), `push-dataset`, `convert-dataset`,
`eval-annotations`. `add_cli(subparsers)` registers them on the `videoitg` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _annotate_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("input and output")
    io.add_argument("--qa", type=Path, help="QA file: LLaVA-Video-178K style JSON, or JSON/JSONL with video, "
                                            "question, answer[, options]")  # fmt: skip
    io.add_argument("--video-root", type=Path, help="folder that the QA file's video paths are relative to")
    io.add_argument("--out", type=Path, help="output dataset folder (also holds the journal: rerun to resume)")
    io.add_argument("--cache", type=Path, default=None,
                    help="response cache file (default OUT/.videoitg/cache.sqlite); runs on one machine can share it")
    io.add_argument("--retry-failed", action="store_true", help="try the questions that failed in earlier runs again")
    io.add_argument("--dry-run", action="store_true", help="print calls and tokens per stage; call nothing")
    io.add_argument("--no-progress", action="store_true", help="no progress bar")

    models = parser.add_argument_group("models")
    for role, what in (("llm", "text stages (typing, key phrases, retrieval)"),
                       ("mllm", "image stages (captions, frame localization)")):  # fmt: skip
        models.add_argument(f"--{role}-backend", choices=("openai", "transformers"), default="openai",
                            help=f"model backend for the {what}")  # fmt: skip
        models.add_argument(f"--{role}-base-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
        models.add_argument(f"--{role}-model", help="served model name, or a local model path with transformers")
        models.add_argument(f"--{role}-api-key-env", default="OPENAI_API_KEY",
                            help="environment variable holding the API key (the key is never written)")  # fmt: skip
    models.add_argument("--concurrency", type=int, default=8, help="requests in flight per server")
    models.add_argument("--timeout", type=float, default=120.0, help="seconds before a request is abandoned")
    models.add_argument("--max-retries", type=int, default=5, help="retries of a request on 429, 5xx and timeouts")
    models.add_argument("--retry-base-delay", type=float, default=1.0, help="first backoff delay in seconds")
    models.add_argument("--retry-max-delay", type=float, default=60.0, help="longest backoff delay in seconds")
    models.add_argument("--device", default=None, help="device of local transformers models")

    pipeline = parser.add_argument_group("pipeline")
    pipeline.add_argument("--num-shards", type=int, default=1, help="split the QA file by video into this many shards")
    pipeline.add_argument("--shard-index", type=int, default=0, help="the shard this process annotates")
    pipeline.add_argument("--clip-seconds", type=int, default=5, help="clip length for captioning and retrieval")
    pipeline.add_argument("--caption-scope", choices=("question", "video"), default="question",
                          help="caption the clips once per question (the paper) or once per video (cheaper)")
    pipeline.add_argument("--frames-per-clip", type=int, default=None,
                          help="frames shown per caption request (default: every 1-fps frame of the clip)")
    pipeline.add_argument("--image-size", type=int, default=448, help="longer side of the frames sent, in pixels")
    pipeline.add_argument("--jpeg-quality", type=int, default=90)
    pipeline.add_argument("--diverse-frames", type=int, default=4,
                          help="frames labelled for non-clue and 'no'-existence questions")
    pipeline.add_argument("--keyframe-encoder", default=None,
                          help="transformers image encoder for Algorithm 1 features (default: raw pixels)")
    pipeline.add_argument("--max-video-seconds", type=int, default=1800, help="longer videos fail instead")
    pipeline.add_argument("--video-backend", default=None, help="torchcodec, decord or pyav (default: first available)")
    pipeline.add_argument("--videos-in-flight", type=int, default=None,
                          help="videos decoded and annotated at once (default: --concurrency, at least 2)")
    pipeline.add_argument("--prompts", type=Path, default=None,
                          help="folder of prompt templates that replace the shipped ones")


def _config(args):
    from ..video import InvalidInputError
    from .backends import RetryPolicy
    from .pipeline import AnnotateConfig, BackendSpec

    missing = [flag for flag, value in (("--qa", args.qa), ("--video-root", args.video_root), ("--out", args.out),
                                         ("--llm-model", args.llm_model), ("--mllm-model", args.mllm_model))
               if value is None]  # fmt: skip
    if missing:
        raise InvalidInputError(f"annotate needs {', '.join(missing)}")
    return AnnotateConfig(
        qa_file=args.qa, video_root=args.video_root, out=args.out,
        llm=BackendSpec(args.llm_backend, args.llm_model, args.llm_base_url, args.llm_api_key_env),
        mllm=BackendSpec(args.mllm_backend, args.mllm_model, args.mllm_base_url, args.mllm_api_key_env),
        concurrency=args.concurrency, timeout_s=args.timeout,
        retry=RetryPolicy(max_attempts=args.max_retries + 1, base_delay_s=args.retry_base_delay,
                          max_delay_s=args.retry_max_delay),
        num_shards=args.num_shards, shard_index=args.shard_index, clip_seconds=args.clip_seconds,
        caption_scope=args.caption_scope, frames_per_clip=args.frames_per_clip, image_size=args.image_size,
        jpeg_quality=args.jpeg_quality, diverse_frames=args.diverse_frames, keyframe_encoder=args.keyframe_encoder,
        max_video_seconds=args.max_video_seconds, video_backend=args.video_backend,
        videos_in_flight=args.videos_in_flight, prompts_dir=args.prompts, cache_path=args.cache,
        retry_failed=args.retry_failed, device=args.device, progress=not args.no_progress,
    )  # fmt: skip


def run_annotate(args) -> int:
    from .pipeline import annotate, dry_run

    config = _config(args)
    if args.dry_run:
        print(dry_run(config).table())
        return 0
    result = annotate(config)
    total = result.stats.total()
    print(f"{result.done} questions annotated, {result.failed} failed ({result.elapsed_s:.0f} s; {total.calls} calls, "
          f"{total.cached} from the cache, {total.tokens} tokens) -> {result.out}")  # fmt: skip
    for failure in result.failures[:10]:
        print(f"  failed {failure['id']} at {failure['stage']}: {failure['reason']}")
    if len(result.failures) > 10:
        print(f"  ... {len(result.failures) - 10} more in {result.out / 'failures.jsonl'}")
    return 1 if result.failed else 0


def run_merge(args) -> int:
    from .shards import merge_shards

    merged = merge_shards(args.shards, args.out)
    print(f"merged {merged['num_shards']} shards: {merged['counts']['done']} questions, "
          f"{merged['counts']['failed']} failed -> {args.out}")  # fmt: skip
    return 0


def run_push(args) -> int:
    from .publish import push_dataset

    url = push_dataset(args.folder, args.repo_id, embed=args.embed_videos, private=args.private,
                       revision=args.revision)  # fmt: skip
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def run_convert(args) -> int:
    from .convert import convert_videoitg_40k

    report = convert_videoitg_40k(args.annotations, args.out, args.clip_descriptions, args.video_root,
                                  args.clip_seconds, args.clip_base, progress=not args.no_progress)  # fmt: skip
    print(report.summary())
    print(f"-> {args.out}")
    return 0


def run_eval(args) -> int:
    from .quality import evaluate_annotations, quality_table

    result = evaluate_annotations(args.pred, args.ref)
    print(quality_table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def add_cli(subparsers) -> None:
    annotate = subparsers.add_parser(
        "annotate", help="annotate QA pairs with VidThinker (LLM / MLLM served over HTTP or local)",
        description="Annotate QA pairs with VidThinker. Rerun the same command to resume; `annotate merge` "
                    "assembles shard outputs.",
    )  # fmt: skip
    _annotate_arguments(annotate)
    annotate.set_defaults(func=run_annotate)
    modes = annotate.add_subparsers(dest="annotate_mode", metavar="merge")
    merge = modes.add_parser("merge", help="merge the output folders of the shards of one annotate run")
    merge.add_argument("shards", nargs="+", type=Path, help="shard output folders")
    merge.add_argument("--out", type=Path, required=True, help="merged dataset folder")
    merge.set_defaults(func=run_merge)

    push = subparsers.add_parser("push-dataset", help="publish a dataset folder on the Hugging Face Hub")
    push.add_argument("folder", type=Path)
    push.add_argument("repo_id", help="org/name of the dataset repo")
    push.add_argument("--embed-videos", action="store_true", help="store the video bytes in the rows")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", default=None, help="branch to push to")
    push.set_defaults(func=run_push)

    convert = subparsers.add_parser("convert-dataset", help="convert published annotations into a dataset folder")
    convert.add_argument("--from", dest="source", choices=("videoitg-40k",), required=True)
    convert.add_argument("--annotations", type=Path, required=True, help="video_itg_data.json")
    convert.add_argument("--clip-descriptions", type=Path, default=None, help="all_clip_desc.json")
    convert.add_argument("--video-root", type=Path, default=None,
                         help="folder holding LLaVA-Video-178K/...: durations are read from the videos")
    convert.add_argument("--out", type=Path, required=True)
    convert.add_argument("--clip-seconds", type=int, default=5)
    convert.add_argument("--clip-base", default="auto", choices=("auto", "0", "1"),
                         help="numbering base of clip_num (auto: the one that agrees with frame_num)")
    convert.add_argument("--no-progress", action="store_true")
    convert.set_defaults(func=run_convert)

    evaluate = subparsers.add_parser("eval-annotations", help="IoU of annotations against reference annotations")
    evaluate.add_argument("--pred", type=Path, required=True, help="dataset folder to evaluate")
    evaluate.add_argument("--ref", type=Path, required=True, help="reference dataset folder")
    evaluate.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    evaluate.set_defaults(func=run_eval)
