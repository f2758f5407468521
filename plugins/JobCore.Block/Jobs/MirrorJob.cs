using System.Runtime.CompilerServices;
using JobCore.Block.Graph;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore.Block.Jobs;

/// <summary>
/// The <c>mirror</c> job (<c>blockdev-mirror</c>, <c>drive-mirror</c>): see <see cref="MirrorDriver{TOptions}"/>.
/// Created through <see cref="JobEngine.Create"/> with <see cref="MirrorJobOptions"/>; the graph checks (device and
/// target exist, not busy, not the same node, replaces) run then, before the job exists.
/// </summary>
internal sealed class MirrorJob : MirrorDriver<MirrorJobOptions>
{
    /// <summary>The wire type name.</summary>
    public const string TypeName = "mirror";

    public MirrorJob(BlockGraph graph, MirrorJobOptions options)
        : base(graph, MirrorPlan.ForMirror(graph, options))
    {
        MirrorSetUp.Register(options, SetUpDone);
    }
}

/// <summary>
/// Active commit (<c>block-commit</c> whose top is the active layer): the mirror engine with job type <c>commit</c>,
/// the base as target, copying everything allocated above the base; READY, then <c>complete</c> makes the base the
/// active node (the overlays drop out of the graph); a soft cancel after READY leaves the chain as it was.
/// </summary>
internal sealed class ActiveCommitJob : MirrorDriver<ActiveCommitOptions>
{
    /// <summary>The wire type name.</summary>
    public const string TypeName = "commit";

    public ActiveCommitJob(BlockGraph graph, ActiveCommitOptions options)
        : base(graph, MirrorPlan.ForActiveCommit(graph, options))
    {
        MirrorSetUp.Register(options, SetUpDone);
    }
}

/// <summary>
/// Lets the command that created a mirror or active commit wait until the job's dirty-tracking filter is in place
/// (QEMU inserts it before the command returns, so the next command sees the source under the filter).
/// </summary>
internal static class MirrorSetUp
{
    // Keyed by the options instance passed to JobEngine.Create (records: the table compares by reference).
    private static readonly ConditionalWeakTable<JobOptions, Task> Pending = new();

    /// <summary>Completes once the job created from <paramref name="options"/> has its filter (or ended before that).</summary>
    public static Task WhenSetUpAsync(JobOptions options) =>
        Pending.TryGetValue(options, out Task? done) ? done : Task.CompletedTask;

    internal static void Register(JobOptions options, Task done) => Pending.AddOrUpdate(options, done);
}

/// <summary>
/// The options of an active commit, as <c>block-commit</c> passes them once it found that top is the active layer:
/// <see cref="BlockJobOptions.Device"/> = the top (active) node, <see cref="BaseNode"/> = the base node name,
/// <see cref="BlockJobOptions.OnError"/> for both sides, plus speed, filter-node-name, auto-finalize/dismiss.
/// </summary>
public sealed record ActiveCommitOptions : BlockJobOptions
{
    /// <summary>The node name of the base (the node that receives the data and becomes active on completion).</summary>
    public string BaseNode { get; init; } = string.Empty;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrEmpty(BaseNode))
        {
            throw new JobException("Parameter 'base-node' is missing");
        }
    }
}

/// <summary>Registers the mirror engine's job types (<c>mirror</c>, and <c>commit</c> for active commit).</summary>
public static class MirrorJobRegistration
{
    /// <summary>
    /// Registers <c>mirror</c> (<see cref="MirrorJobOptions"/>) and active <c>commit</c> (<see cref="ActiveCommitOptions"/>);
    /// drivers take the host's <see cref="BlockGraph"/> from the services.
    /// </summary>
    /// <param name="builder">The JobCore builder (the block plugin's <c>Configure</c>).</param>
    public static JobCoreBuilder AddMirrorJobs(this JobCoreBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        AddMirrorJobs(builder.Registry, static sp => (sp ?? throw new InvalidOperationException("The mirror jobs need the host's services"))
            .GetRequiredService<BlockGraph>());
        return builder;
    }

    /// <summary>Registers both types on <paramref name="registry"/> with the graph chosen by <paramref name="graph"/> (tests, hosts without DI).</summary>
    /// <param name="registry">The registry.</param>
    /// <param name="graph">Returns the graph for a job from the engine's services (which may be null).</param>
    public static JobTypeRegistry AddMirrorJobs(this JobTypeRegistry registry, Func<IServiceProvider?, BlockGraph> graph)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(graph);
        registry.Add<MirrorJob, MirrorJobOptions>(MirrorJob.TypeName, (sp, o) => new MirrorJob(graph(sp), o));
        registry.Add<ActiveCommitJob, ActiveCommitOptions>(ActiveCommitJob.TypeName, (sp, o) => new ActiveCommitJob(graph(sp), o));
        return registry;
    }
}
