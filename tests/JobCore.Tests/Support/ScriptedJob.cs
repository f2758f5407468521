using System.Collections.Concurrent;

namespace JobCore.Tests.Support;

/// <summary>Options of the scripted test job: which optional behaviours it has.</summary>
internal sealed record ScriptedOptions : JobOptions
{
    /// <summary>Total progress announced at start.</summary>
    public long Total { get; init; } = 100;

    /// <summary>Mirror-like: accepts complete when ready, soft cancel after ready finishes without "pivot".</summary>
    public bool Completable { get; init; }

    /// <summary>Prepare throws this message when set.</summary>
    public string? PrepareFailure { get; init; }

    /// <summary>When set, the abort hook waits for this task (to hold a job in aborting).</summary>
    public Task? AbortGate { get; init; }

    /// <summary>Shared log of hook calls ("prepare:a", "commit:a", ...).</summary>
    public ConcurrentQueue<string>? HookLog { get; init; }

    public bool SupportsChange { get; init; }
}

/// <summary>One step the test asks the job to take.</summary>
internal abstract record Step
{
    public sealed record Work(long Units) : Step;
    public sealed record Ready(bool BetweenCommands = false) : Step;
    public sealed record Finish : Step;
    public sealed record Fail(string Message) : Step;
    public sealed record IoError(ErrorPolicy Policy, IoOperation Operation, bool NoSpace, bool BetweenCommands = false) : Step;
}

/// <summary>
/// A job driven step by step by the test: it yields (idle, like a QEMU job waiting for I/O) until a step arrives, so
/// pause and cancel requests take effect exactly as they would in a real job.
/// </summary>
internal sealed class ScriptedJob : JobDriver<ScriptedOptions>
{
    private readonly ConcurrentQueue<Step> _steps = new();
    private volatile JobContext? _context;
    private volatile bool _completeRequested;

    public List<ErrorAction> Actions { get; } = [];

    public int Retries { get; private set; }

    public object? LastChange { get; private set; }

    public bool Pivoted { get; private set; }

    public void Send(Step step)
    {
        _steps.Enqueue(step);
        _context?.Wake();
    }

    protected override async Task RunAsync(JobContext context, CancellationToken cancellationToken)
    {
        _context = context;
        context.ProgressSetRemaining(Options.Total);
        var ready = false;
        while (true)
        {
            if (context.IsCancelled)
            {
                return;
            }

            if (ready && (_completeRequested || context.IsCancelRequested))
            {
                Pivoted = _completeRequested;
                return;
            }

            if (!_steps.TryDequeue(out var step))
            {
                await context.YieldAsync();
                continue;
            }

            switch (step)
            {
                case Step.Work w:
                    context.ProgressWorkDone(w.Units);
                    context.RateLimitProcessed(w.Units);
                    await context.RateLimitSleepAsync();
                    break;
                case Step.Ready r:
                    if (r.BetweenCommands)
                    {
                        await context.TransitionToReadyAsync(cancellationToken);
                    }
                    else
                    {
                        context.TransitionToReady();
                    }

                    ready = true;
                    break;
                case Step.Finish:
                    return;
                case Step.Fail f:
                    throw new JobFailedException(f.Message);
                case Step.IoError e:
                    var action = e.BetweenCommands
                        ? await context.HandleErrorAsync(e.Policy, e.Operation, e.NoSpace, cancellationToken)
                        : context.HandleError(e.Policy, e.Operation, e.NoSpace);
                    lock (Actions)
                    {
                        Actions.Add(action);
                    }

                    if (action == ErrorAction.Report)
                    {
                        throw new JobFailedException(e.NoSpace ? "No space left on device" : "Input/output error");
                    }

                    if (action == ErrorAction.Stop)
                    {
                        Retries++;
                        await context.PausePointAsync();
                    }

                    break;
            }
        }
    }

    protected override bool SupportsComplete => Options.Completable;

    protected override void Complete(JobContext context)
    {
        _completeRequested = true;
        context.Wake();
    }

    protected override bool Cancel(JobContext context, bool force) =>
        !Options.Completable || force || !context.Job.Info.Ready;

    protected override bool SupportsChange => Options.SupportsChange;

    protected override void Change(JobContext context, object changeOptions) => LastChange = changeOptions;

    protected override ValueTask PrepareAsync(JobContext context, CancellationToken cancellationToken)
    {
        Log("prepare");
        return Options.PrepareFailure is { } failure ? throw new JobFailedException(failure) : default;
    }

    protected override ValueTask CommitAsync(JobContext context, CancellationToken cancellationToken)
    {
        Log("commit");
        return default;
    }

    protected override async ValueTask AbortAsync(JobContext context, CancellationToken cancellationToken)
    {
        Log("abort");
        if (Options.AbortGate is { } gate)
        {
            await gate;
        }
    }

    protected override ValueTask CleanAsync(JobContext context, CancellationToken cancellationToken)
    {
        Log("clean");
        return default;
    }

    private void Log(string hook) => Options.HookLog?.Enqueue($"{hook}:{Options.Id}");
}
