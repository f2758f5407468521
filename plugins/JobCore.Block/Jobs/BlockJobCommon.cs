using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Jobs;

/// <summary>
/// Options every block job shares (QMP's <c>device</c>, <c>on-error</c>, <c>filter-node-name</c> plus the generic
/// <c>job-id</c>, <c>speed</c>, <c>auto-finalize</c>, <c>auto-dismiss</c> of <see cref="JobOptions"/>).
/// </summary>
public abstract record BlockJobOptions : JobOptions
{
    /// <summary>The device (backend) or node name of the job's main node (QMP <c>device</c>).</summary>
    public string Device { get; init; } = string.Empty;

    /// <summary>What to do when a request fails (QMP <c>on-error</c>; default <c>report</c>).</summary>
    public ErrorPolicy OnError { get; init; } = ErrorPolicy.Report;

    /// <summary>The node name of the filter the job inserts (QMP <c>filter-node-name</c>); null for an implicit <c>#blockNNN</c> name.</summary>
    public string? FilterNodeName { get; init; }

    /// <summary>Checks the generic options and that <see cref="Device"/> is set.</summary>
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrEmpty(Device))
        {
            throw new JobException("Parameter 'device' is missing");
        }
    }
}

/// <summary>What a copy loop does with a chunk whose request failed (after the job's error policy was consulted).</summary>
public enum ChunkErrorOutcome
{
    /// <summary>Copy the same chunk again (after the pause point, so a <c>stop</c> pauses first).</summary>
    Retry,

    /// <summary>Count the chunk as done and carry on (stream's <c>ignore</c>: the job fails at the end).</summary>
    Skip,

    /// <summary>Stop the loop and fail the job with the error.</summary>
    Fail,
}

/// <summary>The pieces of QEMU's block-job plumbing (<c>blockjob.c</c>) that stream, commit and mirror share.</summary>
public static class BlockJobCommon
{
    /// <summary>Stream and commit copy in steps of this many bytes (QEMU's <c>STREAM_CHUNK</c>, <c>COMMIT_BUFFER_SIZE</c>).</summary>
    public const int ChunkSize = 512 * 1024;

    /// <summary>
    /// Parses an <c>on-error</c> / <c>on-source-error</c> / <c>on-target-error</c> value; absent means <c>report</c>.
    /// </summary>
    /// <param name="value">The wire value (<c>report</c>, <c>ignore</c>, <c>enospc</c>, <c>stop</c>, <c>auto</c>) or null.</param>
    /// <param name="parameter">The argument name for the error text.</param>
    /// <exception cref="JobException"><c>Parameter 'on-error' does not accept value 'x'</c>.</exception>
    public static ErrorPolicy ParseErrorPolicy(string? value, string parameter = "on-error")
    {
        if (value is null)
        {
            return ErrorPolicy.Report;
        }

        return ErrorPolicies.TryParse(value, out ErrorPolicy policy)
            ? policy
            : throw new JobException($"Parameter '{parameter}' does not accept value '{value}'");
    }

    /// <summary>
    /// The errno of a failed request: a <see cref="BlockIOException"/>'s own, <c>EIO</c> for other I/O or format
    /// errors; null when <paramref name="exception"/> is not a request failure (a bug or a cancellation).
    /// </summary>
    /// <param name="exception">What the request threw.</param>
    public static int? ErrnoOf(Exception exception) => exception switch
    {
        BlockIOException io => io.Errno,
        IOException or BlockFormatException => BlockIOException.EIO,
        _ => null,
    };

    /// <summary>
    /// Consults <paramref name="policy"/> for a failed chunk (QEMU's <c>block_job_error_action</c>: emits
    /// <c>BLOCK_JOB_ERROR</c>; <c>stop</c> pauses the job at its next pause point and sets the I/O status) and says
    /// what the loop does next: <c>report</c> fails, <c>stop</c> retries the chunk after the resume, <c>ignore</c>
    /// skips the chunk when <paramref name="ignoreSkips"/> (stream) or retries it (commit, mirror). The error is
    /// handled between monitor commands (<see cref="JobContext.HandleErrorAsync"/>), so its event follows the reply of
    /// the command that started or resumed the job, as in QEMU.
    /// </summary>
    /// <param name="context">The job's context.</param>
    /// <param name="policy">The job's policy for this side.</param>
    /// <param name="operation">Whether a read (source side) or write (target side) failed.</param>
    /// <param name="errno">The request's errno (see <see cref="ErrnoOf"/>).</param>
    /// <param name="ignoreSkips">Whether <c>ignore</c> means skip the chunk rather than retry it.</param>
    /// <param name="cancellationToken">The job's token.</param>
    public static async ValueTask<ChunkErrorOutcome> OnChunkErrorAsync(
        JobContext context, ErrorPolicy policy, IoOperation operation, int errno, bool ignoreSkips, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ErrorAction action = await context.HandleErrorAsync(policy, operation, errno == BlockIOException.ENOSPC, cancellationToken).ConfigureAwait(false);
        return Outcome(action, ignoreSkips);
    }

    /// <summary>
    /// <see cref="OnChunkErrorAsync"/> at once, also inside a monitor command: for a failure met by a guest's own request
    /// (write-blocking mirror), which must not wait for a command that may itself be draining that guest.
    /// </summary>
    /// <param name="context">The job's context.</param>
    /// <param name="policy">The job's policy for this side.</param>
    /// <param name="operation">Whether a read (source side) or write (target side) failed.</param>
    /// <param name="errno">The request's errno (see <see cref="ErrnoOf"/>).</param>
    public static ChunkErrorOutcome OnGuestRequestError(JobContext context, ErrorPolicy policy, IoOperation operation, int errno)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Outcome(context.HandleError(policy, operation, errno == BlockIOException.ENOSPC), ignoreSkips: false);
    }

    private static ChunkErrorOutcome Outcome(ErrorAction action, bool ignoreSkips) => action switch
    {
        ErrorAction.Report => ChunkErrorOutcome.Fail,
        ErrorAction.Stop => ChunkErrorOutcome.Retry,
        _ => ignoreSkips ? ChunkErrorOutcome.Skip : ChunkErrorOutcome.Retry,
    };

    /// <summary>The failure a job ends with for a request error: the errno's text, as QEMU reports it (<c>Input/output error</c>).</summary>
    /// <param name="errno">The errno.</param>
    /// <param name="cause">The original exception.</param>
    public static JobFailedException Failure(int errno, Exception? cause) => new(BlockIOException.StrError(errno), cause);

    /// <summary>QEMU's <c>bdrv_chain_contains</c>: whether <paramref name="node"/> is <paramref name="top"/> or below it (filters included).</summary>
    /// <param name="top">The top of the chain.</param>
    /// <param name="node">The node looked for.</param>
    public static bool ChainContains(BlockNode top, BlockNode node)
    {
        for (BlockNode? n = top; n is not null; n = BackingChain.Below(n))
        {
            if (ReferenceEquals(n, node))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A clean-up reopen that ignores errors, as QEMU's do: the image stays as it is if it cannot be switched.</summary>
    internal static async ValueTask ReopenQuietlyAsync(BlockGraph graph, BlockNode node, bool readOnly)
    {
        try
        {
            await graph.ReopenAsync(node, readOnly, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BlockGraphException or IOException)
        {
            // Nothing to undo: the reopen left the graph unchanged.
        }
    }
}

/// <summary>
/// The graph changes a block job makes before it is created (QEMU's <c>*_start</c> functions): the lease holding its
/// nodes and the filter it inserted, plus whatever <see cref="RestoreAsync"/> puts back (read-only reopens).
/// <see cref="RollBackAsync"/> undoes all of it once, whether the job never got created or has ended.
/// </summary>
internal abstract class BlockJobPlan
{
    private int _filterDropped;
    private int _rolledBack;

    protected BlockJobPlan(BlockGraph graph, BlockJobLease lease, FilterNode filter)
    {
        Graph = graph;
        Lease = lease;
        FilterNode = filter;
    }

    /// <summary>The graph.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The nodes the job holds.</summary>
    public BlockJobLease Lease { get; }

    /// <summary>The filter the job inserted.</summary>
    public FilterNode FilterNode { get; }

    /// <summary>Creates and starts the job (its <c>created</c> and <c>running</c> events are emitted before this returns);
    /// when the engine refuses it (bad id; a negative speed after <c>created</c> and <c>null</c>, as QEMU) the plan is
    /// rolled back and the refusal rethrown.</summary>
    public async Task<Job> StartJobAsync(JobEngine engine, JobOptions options)
    {
        try
        {
            Job job = await engine.CreateAsync(options).ConfigureAwait(false);
            job.Start();
            return job;
        }
        catch
        {
            await RollBackAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Removes the filter (once): its parents get its child back if they still use it.</summary>
    public async ValueTask DropFilterAsync()
    {
        if (Interlocked.Exchange(ref _filterDropped, 1) == 0)
        {
            await Graph.RemoveFilterAsync(FilterNode, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Drops the filter, restores what the plan changed, and releases the nodes (once).</summary>
    public async ValueTask RollBackAsync()
    {
        if (Interlocked.Exchange(ref _rolledBack, 1) != 0)
        {
            return;
        }

        await DropFilterAsync().ConfigureAwait(false);
        await RestoreAsync().ConfigureAwait(false);
        await Lease.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Puts back node modes the plan changed (errors ignored, as QEMU's clean-up reopens).</summary>
    protected abstract ValueTask RestoreAsync();
}

/// <summary>
/// A block job driver working on a <see cref="BlockJobPlan"/>: abort drops the filter (the chain is left as it was),
/// clean rolls the plan back, also for a job cancelled before it ran.
/// </summary>
/// <typeparam name="TOptions">The options record.</typeparam>
/// <typeparam name="TPlan">The plan type.</typeparam>
internal abstract class PlannedBlockJob<TOptions, TPlan> : JobDriver<TOptions>
    where TOptions : JobOptions
    where TPlan : BlockJobPlan
{
    /// <summary>The plan the job runs on, once <c>RunAsync</c> has it.</summary>
    protected TPlan? Plan { get; set; }

    /// <summary>The plan handed over in the options by the starter, if any.</summary>
    protected abstract TPlan? PlanFromOptions { get; }

    /// <inheritdoc />
    protected override async ValueTask AbortAsync(JobContext context, CancellationToken cancellationToken)
    {
        if (Plan is not null)
        {
            await Plan.DropFilterAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    protected override async ValueTask CleanAsync(JobContext context, CancellationToken cancellationToken)
    {
        if ((Plan ?? PlanFromOptions) is { } plan)
        {
            await plan.RollBackAsync().ConfigureAwait(false);
        }
    }
}
