"""The ``reviewpulse`` command line: worker, replay, score, kafka, demo, export, bench."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from streams.settings import Settings

log = logging.getLogger("reviewpulse")


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise click.UsageError("settings not loaded")
    return settings


@click.group()
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """ReviewPulse: real-time review sentiment over Kafka, ONNX models and ClickHouse.

    Settings come from REVIEWPULSE_* environment variables (see README).
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = Settings()


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Consume reviews and questions, score them, emit enriched events, fill the store."""
    from streams.service.worker import run_worker

    run_worker(_settings(ctx), loglevel=logging.getLevelName(logging.getLogger().level))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="Kafka topic to send to")
@click.option(
    "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
)
@click.option("--limit", type=int, default=None, help="send at most this many events")
@click.pass_context
def replay(
    ctx: click.Context, file: Path, topic: str, rate: float | None, limit: int | None
) -> None:
    """Send a JSONL or CSV FILE to a topic."""
    from streams.tools.replay import replay as run_replay

    k = _settings(ctx).kafka
    sent = run_replay(file, topic, k.bootstrap, rate=rate, limit=limit, security=k.security)
    click.echo(f"sent {sent} events to {topic}", err=True)


@main.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.option(
    "--kind", type=click.Choice(["review", "question"]), default="review", show_default=True
)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="sentiment package directory (default: the model.package setting)",
)
@click.pass_context
def score(ctx: click.Context, file: Any, kind: str, model: Path | None) -> None:
    """Score a JSONL FILE (or stdin) offline: one enriched JSON line per input line."""
    from streams.service.app import load_knowledge_base, load_questions, load_scorer
    from streams.service.pipeline import BatchProcessor
    from streams.tools.score import score_lines

    settings = _settings(ctx)
    if model is not None:
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"package": model})}
        )
    scorer = load_scorer(settings)
    questions = load_questions(settings, scorer) if kind == "question" else None
    knowledge = load_knowledge_base(settings, questions, scorer)
    processor = BatchProcessor(
        kind,  # type: ignore[arg-type]
        scorer,
        limits=settings.input.limits(),
        questions=knowledge.package if knowledge is not None else questions,
    )
    out = sys.stdout.buffer
    for line in score_lines(file, processor, batch_size=settings.batch.max_size):
        out.write(line + b"\n")
    out.flush()


@main.command()
@click.argument("rated", type=click.File("r", encoding="utf-8"), required=False)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="new package dir")
@click.option("--from-store", is_flag=True, help="read the rated reviews from the store")
@click.option("--category", default=None, help="with --from-store: only this category")
@click.option("--limit", type=int, default=2000, show_default=True, help="with --from-store")
@click.option(
    "--package",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="the current package (default: the model.package setting)",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="PyTorch checkpoint the package was exported from (default: unpack the package)",
)
@click.option("--budget-minutes", type=float, default=15.0, show_default=True)
@click.option("--min-gain", type=float, default=0.0, show_default=True, help="macro-F1 margin")
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 0.999),
    default=0.95,
    show_default=True,
    help="one-sided confidence that the gain exceeds --min-gain (paired bootstrap)",
)
@click.option("--held-out", type=float, default=0.2, show_default=True, help="share kept out")
@click.option(
    "--replay",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="general rated reviews (JSONL) trained on beside the shop's, so other domains are "
    "not forgotten (`reviewpulse export replay` writes one from the training data)",
)
@click.option(
    "--replay-ratio",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="with --replay: general reviews per shop review",
)
@click.option(
    "--fp32",
    is_flag=True,
    help="write a float32 package (about half the int8 speed) when int8 changes too many labels",
)
@click.option(
    "--fp32-fallback",
    is_flag=True,
    help="int8, but package the same candidate in float32 if int8 misses its parity floor",
)
@click.pass_context
def adapt(
    ctx: click.Context,
    rated: Any,
    out: Path,
    from_store: bool,
    category: str | None,
    limit: int,
    package: Path | None,
    checkpoint: Path | None,
    budget_minutes: float,
    min_gain: float,
    confidence: float,
    held_out: float,
    replay: Any,
    replay_ratio: float,
    fp32: bool,
    fp32_fallback: bool,
) -> None:
    """Fine-tune the sentiment model on a shop's star-rated reviews (RATED JSONL or the store).

    Writes a complete int8 package to OUT only when it beats the current one on a
    held-out slice of the same reviews; otherwise prints the comparison and exits 3.
    Needs the 'export' extra.
    """
    try:
        from export.adapt import AdaptConfig, read_rated
        from export.adapt import adapt as run_adapt
        from export.errors import ExportError, NotBetterError
    except ImportError as exc:
        raise click.ClickException(
            f"adapt needs the 'export' extra ({exc.name} is missing): pip install -e '.[export]'"
        ) from None
    settings = _settings(ctx)
    if (rated is None) == (not from_store):
        raise click.UsageError("give either a RATED.jsonl file or --from-store")
    try:
        if from_store:
            from streams.store import open_store

            store = open_store(settings.store)
            try:
                lines = [json.dumps(r) for r in store.rated_reviews(limit, category)]
            finally:
                store.close()
            rows = read_rated(lines, "store")
        else:
            rows = read_rated(rated, getattr(rated, "name", "input"))
        general = read_rated(replay, getattr(replay, "name", "replay")) if replay else []
        if not general:
            click.echo(
                "warning: no --replay; the adapted package may lose accuracy outside this "
                "shop's reviews (see 'Adapting the model to a shop' in the README)",
                err=True,
            )
        config = AdaptConfig(
            budget_s=budget_minutes * 60,
            min_gain=min_gain,
            confidence=confidence,
            held_out_share=held_out,
            replay_ratio=replay_ratio,
            int8=not fp32,
            fp32_fallback=fp32_fallback,
        )
        result = run_adapt(
            package or settings.model.package, checkpoint, rows, out, config, replay=general
        )
    except NotBetterError as exc:
        click.echo(json.dumps(exc.comparison, indent=2))
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(3)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, indent=2))
    click.echo(f"adapted package written to {out}", err=True)


@main.group()
def kafka() -> None:
    """A local single-node Kafka broker (KRaft) for the demo and the tests."""


def _local_kafka(settings: Settings) -> Any:
    from streams.tools.localkafka import LocalKafka

    port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    return LocalKafka(settings.data_dir / "kafka", port=port)


@kafka.command("start")
@click.pass_context
def kafka_start(ctx: click.Context) -> None:
    """Fetch the jars (cached), format storage (once) and start the broker."""
    broker = _local_kafka(_settings(ctx.find_root()))
    broker.start()
    click.echo(f"kafka running on {broker.bootstrap_servers}")


@kafka.command("stop")
@click.pass_context
def kafka_stop(ctx: click.Context) -> None:
    """Stop the local broker."""
    _local_kafka(_settings(ctx.find_root())).stop()
    click.echo("kafka stopped")


@kafka.command("status")
@click.pass_context
def kafka_status(ctx: click.Context) -> None:
    """Is the local broker running?"""
    status = _local_kafka(_settings(ctx.find_root())).status()
    click.echo(status)
    ctx.exit(0 if status.running else 1)


@main.command()
@click.option("--reviews", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--questions", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--once", is_flag=True, help="send the sample once, print the table and stop")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.5),
    default=20.0,
    show_default=True,
    help="live events per second (reviews and questions)",
)
@click.option("--seed", type=int, default=0, show_default=True, help="event times and spikes")
@click.pass_context
def demo(
    ctx: click.Context,
    reviews: Path | None,
    questions: Path | None,
    once: bool,
    rate: float,
    seed: int,
) -> None:
    """Broker + worker + embedded store + real sample data, live until Ctrl-C.

    Prints the page's URL, sends the sample as a day of history, prints product
    health, then streams it at RATE with a negative-review spike on one product
    every two minutes and prints the alerts the worker raises.
    """
    from streams.tools.demo import run_demo

    run_demo(_settings(ctx), reviews=reviews, questions=questions, once=once, rate=rate, seed=seed)


@main.group()
def bench() -> None:
    """Benchmarks (commands, not tests): they print measured numbers as JSON."""


@bench.command("pipeline")
@click.option("--events", type=int, default=3000, show_default=True)
@click.option(
    "--api-rps", type=float, default=20.0, show_default=True, help="API reads during run 2"
)
@click.option(
    "--latency-s",
    type=float,
    default=20.0,
    show_default=True,
    help="seconds of steady load per latency point (50 %, 90 % of max); 0 = skip",
)
@click.pass_context
def bench_pipeline(ctx: click.Context, events: int, api_rps: float, latency_s: float) -> None:
    """Model-only vs end-to-end (Kafka + store) throughput on the same texts, one run,
    and scoring latency at 50 % and 90 % of the maximum."""
    from streams.tools.bench_pipeline import run_bench

    settings = _settings(ctx.find_root())
    click.echo(json.dumps(run_bench(settings, events, api_rps, latency_s), indent=2))


@bench.command("scale")
@click.option("--events", type=int, default=2000, show_default=True)
@click.option(
    "--rounds", type=click.IntRange(min=1), default=2, show_default=True, help="1-then-2 pairs"
)
@click.option(
    "--partitions",
    type=click.IntRange(min=2),
    default=4,
    show_default=True,
    help="of the input topic; a multiple of 2 splits it evenly between two workers",
)
@click.pass_context
def bench_scale(ctx: click.Context, events: int, rounds: int, partitions: int) -> None:
    """Two workers in one consumer group (a core each) against one, on the ClickHouse
    server backend: reviews/s of each run and the ratio per pair."""
    from streams.tools.bench_scale import run_scale_bench

    settings = _settings(ctx.find_root())
    click.echo(json.dumps(run_scale_bench(settings, events, rounds, partitions), indent=2))


@bench.command("gpu")
@click.option("--package", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build/gpu"),
    show_default=True,
    help="where the fp16 model is written",
)
@click.option("--tokens", type=int, default=36, show_default=True, help="model-only length")
@click.option("--rows", type=int, default=2048, show_default=True, help="texts per model run")
@click.option("--runs", type=int, default=50, show_default=True, help="model-only runs")
@click.option("--batch", type=int, default=4096, show_default=True, help="texts per call")
@click.option("--events", type=int, default=40_000, show_default=True)
@click.pass_context
def bench_gpu(
    ctx: click.Context,
    package: Path | None,
    work_dir: Path,
    tokens: int,
    rows: int,
    runs: int,
    batch: int,
    events: int,
) -> None:
    """fp16 on the CUDA provider with IO binding: model-only and end-to-end reviews/s
    (falls back to the CPU, saying so, where there is no CUDA provider)."""
    from streams.tools.bench_gpu import run_gpu_bench

    package = package or _settings(ctx.find_root()).model.package
    report = run_gpu_bench(
        package, work_dir, tokens=tokens, rows=rows, runs=runs, batch=batch, events=events
    )
    click.echo(json.dumps(report, indent=2))


@bench.command("store")
@click.option("--rows", type=int, default=1_000_000, show_default=True)
@click.option("--batch", type=int, default=50_000, show_default=True)
@click.option(
    "--path",
    type=click.Path(path_type=Path),
    default=None,
    help="chdb directory (default: a fresh one under the data dir)",
)
@click.pass_context
def bench_store(ctx: click.Context, rows: int, batch: int, path: Path | None) -> None:
    """Columnar insert throughput into chdb (roll-ups included) and top-N query latency."""
    import time

    from streams.tools.bench_store import run_store_bench

    settings = _settings(ctx.find_root())
    path = path or settings.data_dir / "bench" / f"store-{time.strftime('%Y%m%d-%H%M%S')}"
    click.echo(json.dumps(run_store_bench(path, rows=rows, batch=batch), indent=2))


def _export_cli() -> click.Group:
    try:
        from export.cli import export
    except ImportError as exc:  # the heavy deps live behind the 'export' extra
        missing = exc.name or str(exc)

        @click.group(help="Export/fine-tune models (needs: pip install 'reviewpulse[export]').")
        def export() -> None:
            raise click.ClickException(
                f"the export tools need the 'export' extra ({missing} is missing): "
                "pip install -e '.[export]'"
            )

    return export


main.add_command(_export_cli(), "export")


@main.command()
@click.option("--products", type=int, default=500, show_default=True)
@click.option("--days", type=int, default=28, show_default=True)
@click.option("--warmup-days", type=int, default=7, show_default=True, help="days before spikes")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--spiked", type=float, default=0.5, show_default=True, help="products with a spike")
@click.option("--sizes", default="3,5,10,20,40", show_default=True, help="injected negatives")
@click.option("--spike-hours", type=float, default=6.0, show_default=True)
@click.option("--new-products", type=float, default=0.2, show_default=True, help="launched later")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data"),
    show_default=True,
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="alert setting to change, e.g. --set pending_for=1h (JSON values; repeatable)",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def simulate(
    products: int,
    days: int,
    warmup_days: int,
    seed: int,
    spiked: float,
    sizes: str,
    spike_hours: float,
    new_products: float,
    data: Path,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Spike alerts on real reviews as simulated streams, against simpler rules (benchmark)."""
    from streams.tools.simulate.corpus import load_corpus
    from streams.tools.simulate.report import format_report
    from streams.tools.simulate.run import parse_settings, run_simulation
    from streams.tools.simulate.streams import SimConfig

    config = SimConfig(
        products=products,
        days=days,
        warmup_days=warmup_days,
        seed=seed,
        spiked=spiked,
        sizes=tuple(int(s) for s in sizes.split(",")),
        spike_hours=spike_hours,
        new_products=new_products,
    )
    report = run_simulation(load_corpus(data), config, parse_settings(overrides))
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else format_report(report))
