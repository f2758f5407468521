// A complete job type as a plugin author writes it: options, driver, plugin entry point.
namespace JobCore.Tests.Example;

/// <summary>Options of the countdown job: how many steps, and how long each takes.</summary>
public sealed record CountdownOptions : JobOptions
{
    public int Steps { get; init; } = 10;

    public TimeSpan StepTime { get; init; } = TimeSpan.FromMilliseconds(10);

    public override void Validate()
    {
        base.Validate();
        if (Steps <= 0)
        {
            throw new JobException("Parameter 'steps' expects a positive value");
        }
    }
}

/// <summary>Counts down, one unit of progress per step, honouring pause, cancel and speed.</summary>
public sealed class CountdownJob : JobDriver<CountdownOptions>
{
    public int StepsDone { get; private set; }

    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        context.ProgressSetRemaining(Options.Steps);
        for (var i = 0; i < Options.Steps; i++)
        {
            await context.RateLimitSleepAsync();     // pause point + speed limit
            if (context.IsCancelled)
            {
                return;                              // the engine turns this into "cancelled"
            }

            await Task.Delay(Options.StepTime, context.Time, cancellationToken);
            StepsDone++;
            context.ProgressWorkDone(1);
            context.RateLimitProcessed(1);
        }
    }
}

/// <summary>The plugin entry point found by <see cref="JobCoreBuilder.AddPluginsFromDirectory"/>.</summary>
public sealed class CountdownPlugin : JobCorePlugin
{
    public override void Configure(JobCoreBuilder builder) =>
        builder.AddJobType<CountdownJob, CountdownOptions>("countdown");
}
