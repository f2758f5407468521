using System.Text.Json.Nodes;
using JobCore.Qmp;

namespace JobCore.Qmp.Tests.Jobs;

/// <summary>
/// A plugin living in the test assembly, loaded by the real daemon through <c>--plugins</c>: a job type
/// <c>x-test</c> (a block job for QMP purposes) and its creating command <c>x-test-job-start</c>.
/// </summary>
public sealed class TestJobPlugin : JobCorePlugin
{
    /// <inheritdoc />
    public override void Configure(JobCoreBuilder builder) =>
        builder.AddJobType<TestJobDriver, TestJobOptions>(TestJobDriver.TypeName).AddQmpCommands<TestJobCommands>();
}

/// <summary>Options of an <c>x-test</c> job.</summary>
public sealed record TestJobOptions : JobOptions
{
    /// <summary>Units of work.</summary>
    public int Steps { get; init; } = 20;

    /// <summary>Time per unit.</summary>
    public TimeSpan StepDelay { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Become ready at the end and wait for complete (mirror-like).</summary>
    public bool ReachReady { get; init; }

    /// <summary>Fail with an I/O error when reaching this step (-1: never).</summary>
    public int FailAtStep { get; init; } = -1;
}

/// <summary>The <c>x-test</c> driver: counts steps with pause points; can fail, or converge and wait for complete.</summary>
public sealed class TestJobDriver : JobDriver<TestJobOptions>
{
    /// <summary>The wire type name.</summary>
    public const string TypeName = "x-test";

    private volatile bool _completeRequested;

    /// <summary>The last change applied through block-job-change.</summary>
    public string? CopyMode { get; private set; }

    /// <inheritdoc />
    protected override bool SupportsComplete => true;

    /// <inheritdoc />
    protected override bool SupportsChange => true;

    /// <inheritdoc />
    protected override bool HasQueryFields => true;

    /// <inheritdoc />
    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        context.ProgressSetRemaining(Options.Steps);
        for (var i = 0; i < Options.Steps; i++)
        {
            if (i == Options.FailAtStep)
            {
                throw new JobFailedException("Input/output error");
            }

            await context.SleepAsync(Options.StepDelay).ConfigureAwait(false);
            if (context.IsCancelled)
            {
                return;
            }

            context.ProgressWorkDone(1);
        }

        if (!Options.ReachReady)
        {
            return;
        }

        context.TransitionToReady();
        while (!_completeRequested && !context.IsCancelled && !context.IsCancelRequested)
        {
            await context.SleepAsync(TimeSpan.FromMilliseconds(5)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    protected override void Complete(JobContext context)
    {
        if (!Options.ReachReady)
        {
            throw new JobException($"The active block job '{context.JobId}' cannot be completed");
        }

        _completeRequested = true;
        context.Wake();
    }

    /// <inheritdoc />
    protected override bool Cancel(JobContext context, bool force) => force || context.Job.Status is not (JobStatus.Ready or JobStatus.Standby);

    /// <inheritdoc />
    protected override void Change(JobContext context, object changeOptions) =>
        CopyMode = changeOptions is TestChange change ? change.CopyMode : throw new JobException("Job type does not support change");

    /// <inheritdoc />
    protected override void AddQueryFields(IDictionary<string, object?> fields) => fields["x-copy-mode"] = CopyMode ?? "background";
}

/// <summary>What <c>block-job-change</c> hands the driver.</summary>
/// <param name="CopyMode">The requested copy mode.</param>
public sealed record TestChange(string CopyMode);

/// <summary>QMP side of the plugin.</summary>
public sealed class TestJobCommands : QmpCommandModule
{
    /// <inheritdoc />
    public override void Register(QmpModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var engine = context.Jobs.Engine;
        context.Jobs.AddBlockJobType(TestJobDriver.TypeName);
        context.Jobs.AddChangeVariant(
            TestJobDriver.TypeName,
            [QmpArgument.Required("copy-mode", QmpType.Enum("background", "write-blocking"))],
            a => new TestChange(a["copy-mode"]!.GetValue<string>()));
        context.Commands.Add("x-test-sleep", [QmpArgument.Required("ms", QmpType.WholeNumber)], async (_, a, ct) =>
        {
            // A command that is still running when its client goes away.
            await Task.Delay(TimeSpan.FromMilliseconds(a["ms"]!.GetValue<long>()), ct).ConfigureAwait(false);
            return new JsonObject { ["slept"] = a["ms"]!.DeepClone() };
        });
        context.Commands.Add(
            "x-test-job-start",
            [
                QmpArgument.Required("job-id", QmpType.Str),
                QmpArgument.Opt("steps", QmpType.WholeNumber),
                QmpArgument.Opt("step-ms", QmpType.WholeNumber),
                QmpArgument.Opt("ready", QmpType.Bool),
                QmpArgument.Opt("fail-at", QmpType.WholeNumber),
                QmpArgument.Opt("speed", QmpType.WholeNumber),
                QmpArgument.Opt("auto-finalize", QmpType.Bool),
                QmpArgument.Opt("auto-dismiss", QmpType.Bool),
            ],
            (_, a, _) =>
            {
                var job = engine.Create(new TestJobOptions
                {
                    Id = a["job-id"]!.GetValue<string>(),
                    Steps = (int)(a["steps"]?.GetValue<long>() ?? 20),
                    StepDelay = TimeSpan.FromMilliseconds(a["step-ms"]?.GetValue<long>() ?? 10),
                    ReachReady = a["ready"]?.GetValue<bool>() ?? false,
                    FailAtStep = (int)(a["fail-at"]?.GetValue<long>() ?? -1),
                    Speed = a["speed"]?.GetValue<long>() ?? 0,
                    AutoFinalize = a["auto-finalize"]?.GetValue<bool>() ?? true,
                    AutoDismiss = a["auto-dismiss"]?.GetValue<bool>() ?? true,
                });
                job.Start();
                return ValueTask.FromResult<JsonNode?>(null);
            });
    }
}
