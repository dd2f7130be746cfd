"""``sertiny bench``: latency, memory, size and arena of a bundle's variants, beside its UAR."""

import click

from ..bench.peers import PEERS
from ..runtime.tflite import RUNTIMES
from .runtime import bundle_option, pick_bundle


class _BenchGroup(click.Group):
    """``sertiny bench BUNDLE`` runs a benchmark; ``sertiny bench compare ...`` merges runs."""

    def parse_args(self, ctx, args):
        # A first argument that is not a subcommand is a bundle or an option of "run";
        # no argument at all benchmarks the bundle shipped with sertiny.
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        # `sertiny bench BUNDLE` is how the benchmark is run, so its help shows run's
        # usage and options, then the subcommands.
        run = self.commands["run"]
        run_ctx = click.Context(run, info_name=ctx.info_name, parent=ctx.parent)
        run.format_usage(run_ctx, formatter)
        formatter.write_text(f"       {ctx.command_path} compare RESULTS... --out DIR")
        self.format_help_text(ctx, formatter)
        run.format_options(run_ctx, formatter)
        self.format_commands(ctx, formatter)


@click.group("bench", cls=_BenchGroup)
def bench_group():
    """Benchmark a bundle (sertiny bench BUNDLE) or merge runs (sertiny bench compare A.json B.json).

    \b
    On a Raspberry Pi (light install, see firmware_bench/pi/README.md):
      sertiny bench bundles/x --clips clips/ --no-peers --out results/bench/pi
    then on a host:
      sertiny bench compare results/bench/host/bench.json results/bench/pi/bench.json --out results/bench/compare
    """


@bench_group.command("run")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False), required=False)
@bundle_option
@click.option("--clips", multiple=True, type=click.Path(exists=True),
              help="Audio files or folders timed end to end (repeatable) [default: one synthetic clip].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write bench.json, bench.md, bench_config.json and pareto.png here.")
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True, help="Timed invokes per setting.")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True, help="Untimed invokes first.")
@click.option("--max-clips", type=click.IntRange(min=1), default=20, show_default=True,
              help="Clips timed end to end, spread over the given ones.")
@click.option("--variant", "variants", multiple=True, help="Variant to measure (repeatable) [default: all].")
@click.option("--threads", "threads", multiple=True, type=click.IntRange(min=0),
              help="Interpreter threads to time (repeatable; 0 = all cores) [default: 1 and all cores].")
@click.option("--peer", "peers", multiple=True, type=click.Choice(PEERS),
              help="Float-model peers to time when installed (repeatable) [default: all].")
@click.option("--no-peers", is_flag=True, help="Time no peers (e.g. on a Pi).")
@click.option("--no-cold-start", is_flag=True, help="Skip the fresh-process cold start and peak RSS probe.")
@click.option("--no-tflm", is_flag=True,
              help="Do not measure the TensorFlow Lite Micro arena of variants whose bundle records none.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None, help="Force a TFLite runtime.")
def bench_run(bundle, bundle_option, clips, out_dir, runs, warmup, max_clips, variants, threads, peers, no_peers,
              no_cold_start, no_tflm, runtime):
    """Measure every variant of BUNDLE on this machine and print the Markdown report
    (also what 'sertiny bench BUNDLE' runs).

    BUNDLE (or --bundle) defaults to the bundle shipped with sertiny.
    """
    import shlex
    import sys

    from ..bench import BenchConfig, format_markdown, run_bench, save_results

    config = BenchConfig(runs=runs, warmup=warmup, max_clips=max_clips, variants=variants,
                         threads=threads or (1, 0), peers=() if no_peers else (peers or PEERS),
                         cold_start=not no_cold_start, tflm=not no_tflm, runtime=runtime)
    command = "sertiny " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = run_bench(pick_bundle(bundle, bundle_option), clips, config, progress=True, command=command)
    for skipped in result["clips"]["skipped"]:
        click.secho(f"Skipped (not timed): {skipped['file']}: {skipped['reason']}", err=True, fg="yellow")
    if out_dir:
        for path in save_results(result, out_dir):
            click.echo(f"wrote {path}", err=True)
    click.echo(format_markdown(result))


@bench_group.command("compare")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Write compare.md, compare.json and compare.png here.")
def bench_compare(results, out_dir):
    """Merge bench.json files from different devices (host, Pi, emulated Pi) into one table and plot."""
    from ..bench import compare

    written = compare(results, out_dir)
    for path in written:
        click.echo(f"wrote {path}", err=True)
    click.echo(written[1].read_text())


COMMANDS = [bench_group]
