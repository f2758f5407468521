using JobCore;

namespace JobCore.Benchmarks;

/// <summary>Options of the no-op job.</summary>
public sealed record NoopOptions : JobOptions;

/// <summary>A job that does nothing: measures the engine's own lifecycle cost.</summary>
public sealed class NoopJob : JobDriver<NoopOptions>
{
    protected override Task RunAsync(JobContext context, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A job that idles until cancelled (yields like a job waiting for I/O).</summary>
public sealed record IdleOptions : JobOptions;

/// <summary>Idles at a yield point; pause/resume/cancel act on it like on a real job.</summary>
public sealed class IdleJob : JobDriver<IdleOptions>
{
    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        while (!context.IsCancelled)
        {
            await context.YieldAsync();
        }
    }
}

internal static class Engines
{
    public static JobEngine Create()
    {
        var types = new JobTypeRegistry()
            .Add<NoopJob, NoopOptions>("noop", static (_, _) => new NoopJob())
            .Add<IdleJob, IdleOptions>("idle", static (_, _) => new IdleJob());
        return new JobEngine(types);
    }
}
