using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>
/// The job commands of QEMU's monitor over a <see cref="JobEngine"/>: <c>query-jobs</c>, <c>job-*</c>,
/// <c>query-block-jobs</c> and <c>block-job-*</c>, with the lookup errors, extra checks and texts of spec §2, and
/// the event bridge that turns engine events into <c>JOB_STATUS_CHANGE</c> and <c>BLOCK_JOB_*</c>.
/// Plugins extend it: <see cref="AddBlockJobType"/> marks their types as block jobs, <see cref="AddChangeVariant"/>
/// adds the members <c>block-job-change</c> accepts for their type.
/// </summary>
public sealed class QmpJobCommands
{
    /// <summary>QEMU's <c>JobType</c> values; accepted by <c>block-job-change</c> even before a plugin registers them.</summary>
    public static readonly IReadOnlyList<string> QemuJobTypes =
        ["commit", "stream", "mirror", "backup", "create", "amend", "snapshot-load", "snapshot-save", "snapshot-delete"];

    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, bool> _blockJobTypes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ChangeVariant> _changeVariants = new(StringComparer.Ordinal);

    /// <summary>Creates the command set for <paramref name="engine"/>; stream, commit, mirror and backup are block job types.</summary>
    public QmpJobCommands(JobEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        Engine = engine;
        foreach (var type in new[] { "stream", "commit", "mirror", "backup" })
        {
            AddBlockJobType(type);
        }
    }

    /// <summary>The engine the commands act on.</summary>
    public JobEngine Engine { get; }

    /// <summary>Marks <paramref name="jobType"/> as a block job: listed by <c>query-block-jobs</c>, reachable by <c>block-job-*</c>, emits <c>BLOCK_JOB_*</c>.</summary>
    public void AddBlockJobType(string jobType)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobType);
        _blockJobTypes[jobType] = true;
    }

    /// <summary>Whether <paramref name="jobType"/> is a block job type.</summary>
    public bool IsBlockJobType(string jobType) => _blockJobTypes.ContainsKey(jobType);

    /// <summary>
    /// Lets <c>block-job-change</c> accept <paramref name="members"/> when <c>type</c> is <paramref name="jobType"/>;
    /// the checked arguments are turned into the options object the driver's <c>Change</c> receives.
    /// </summary>
    public void AddChangeVariant(string jobType, IReadOnlyList<QmpArgument> members, Func<JsonObject, object> createOptions)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobType);
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(createOptions);
        _changeVariants[jobType] = new ChangeVariant(members, createOptions);
    }

    /// <summary>Adds the job commands to <paramref name="table"/>.</summary>
    public QmpCommandTable Register(QmpCommandTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        QmpArgument[] id = [QmpArgument.Required("id", QmpType.Str)];
        QmpArgument[] device = [QmpArgument.Required("device", QmpType.Str)];

        table.Add("query-jobs", [], async (_, _, ct) =>
        {
            await Engine.SettleStartingJobsAsync(null, JobEngine.StartSettleTimeout, ct).ConfigureAwait(false);
            return new JsonArray([.. Engine.QueryJobs().Select(j => (JsonNode)QmpJobJson.JobInfo(j))]);
        });
        table.Add("job-pause", id, (_, a, ct) => Settle(FindJob(a, "id"), static j => j.Pause(), ct));
        table.Add("job-resume", id, (_, a, ct) => Settle(FindJob(a, "id"), static j => j.Resume(), ct));
        table.Add("job-cancel", id, async (_, a, ct) =>
        {
            await FindJob(a, "id").CancelAndSettleAsync(force: true, SettleTimeout, ct).ConfigureAwait(false);
            return null;
        });
        // No settling for complete: QEMU's mirror drains and flushes (I/O) before it can finish, so it replies first.
        table.Add("job-complete", id, (_, a, _) => Run(FindJob(a, "id"), static j => j.Complete()));
        table.Add("job-finalize", id, async (_, a, ct) =>
        {
            await FindJob(a, "id").FinalizeAsync(ct).ConfigureAwait(false);
            return null;
        });
        table.Add("job-dismiss", id, (_, a, _) => Run(FindJob(a, "id"), static j => j.Dismiss()));

        table.Add("query-block-jobs", [], async (_, _, ct) =>
        {
            await Engine.SettleStartingJobsAsync(null, JobEngine.StartSettleTimeout, ct).ConfigureAwait(false);
            return new JsonArray(
                [.. Engine.QueryJobs().Where(j => IsBlockJobType(j.Type)).Select(j => (JsonNode)QmpJobJson.BlockJobInfo(j))]);
        });
        table.Add("block-job-pause", device, (_, a, ct) => Settle(FindBlockJob(a, "device"), static j => j.Pause(), ct));
        table.Add("block-job-resume", device, (_, a, ct) => Settle(FindBlockJob(a, "device"), static j => j.Resume(), ct));
        table.Add("block-job-complete", device, (_, a, _) => Run(FindBlockJob(a, "device"), static j => j.Complete()));
        table.Add("block-job-cancel", [.. device, QmpArgument.Opt("force", QmpType.Bool)], async (_, a, ct) =>
        {
            var job = FindBlockJob(a, "device");
            var force = a["force"]?.GetValue<bool>() ?? false;
            if (!force && job.IsUserPaused)
            {
                throw new QmpException($"The block job for device '{job.Id}' is currently paused");
            }

            await job.CancelAndSettleAsync(force, SettleTimeout, ct).ConfigureAwait(false);
            return null;
        });
        table.Add("block-job-set-speed", [.. device, QmpArgument.Required("speed", QmpType.WholeNumber)], (_, a, _) =>
        {
            var speed = a["speed"]!.GetValue<long>();
            return Run(FindBlockJob(a, "device"), j => j.SetSpeed(speed));
        });
        table.Add("block-job-finalize", id, async (_, a, ct) =>
        {
            await FindBlockJob(a, "id").FinalizeAsync(ct).ConfigureAwait(false);
            return null;
        });
        table.Add("block-job-dismiss", id, (_, a, _) => Run(FindBlockJob(a, "id"), static j => j.Dismiss()));
        table.Add(new QmpCommand(
            "block-job-change",
            [.. id, QmpArgument.Required("type", QmpType.Enum(IsKnownJobType))],
            (_, a, _) => Change(a))
        {
            Variants = new QmpUnionVariants("type", t => _changeVariants.TryGetValue(t, out var v) ? v.Members : null),
        });
        return table;
    }

    /// <summary>
    /// Connects the engine's events to <paramref name="server"/>: every job event becomes its QMP events, sent before
    /// the reply of the command that caused it; job errors become QMP errors. Dispose to disconnect.
    /// </summary>
    public IDisposable Attach(QmpServer server)
    {
        ArgumentNullException.ThrowIfNull(server);
        server.AddExceptionMapper(static ex => ex is JobException je ? new QmpException(je.ErrorClass, je.Message) : null);
        server.AddCommandScope(Engine.HoldCompletionsAsync);
        return new QmpJobEventBridge(this, server);
    }

    private bool IsKnownJobType(string type) =>
        QemuJobTypes.Contains(type) || Engine.Types.Types.Any(t => t.TypeName == type);

    private ValueTask<JsonNode?> Change(JsonObject arguments)
    {
        var job = FindBlockJob(arguments, "id");
        var type = arguments["type"]!.GetValue<string>();
        if (type != job.Type)
        {
            throw new QmpException($"Job '{job.Id}' is '{job.Type}' job, not '{type}'");
        }

        // Without a QMP variant the driver still answers (its own "does not support change" refusal).
        object options = _changeVariants.TryGetValue(type, out var variant) ? variant.CreateOptions(arguments) : arguments;
        job.Change(options);
        return Return(null);
    }

    private Job FindJob(JsonObject arguments, string member)
    {
        var id = arguments[member]!.GetValue<string>();
        return Engine.TryGetJob(id, out var job) ? job : throw new QmpException("Job not found");
    }

    private Job FindBlockJob(JsonObject arguments, string member)
    {
        var id = arguments[member]!.GetValue<string>();
        return Engine.TryGetJob(id, out var job) && IsBlockJobType(job.Type)
            ? job
            : throw new QmpException(QmpErrorClass.DeviceNotActive, $"Block job '{id}' not found");
    }

    private static ValueTask<JsonNode?> Run(Job job, Action<Job> verb)
    {
        verb(job);
        return Return(null);
    }

    // QEMU runs a job the verb woke up to its next yield before replying, so what it does then precedes the reply.
    private static async ValueTask<JsonNode?> Settle(Job job, Action<Job> verb, CancellationToken cancellationToken)
    {
        await job.ApplyAndSettleAsync(j =>
        {
            verb(j);
            return Task.CompletedTask;
        }, SettleTimeout, cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static ValueTask<JsonNode?> Return(JsonNode? value) => ValueTask.FromResult(value);

    private sealed record ChangeVariant(IReadOnlyList<QmpArgument> Members, Func<JsonObject, object> CreateOptions);
}
