namespace JobCore;

/// <summary>
/// The job lifecycle as data: which status transitions are legal and which verbs each status accepts.
/// This is the single source of both tables (QEMU's <c>JobSTT</c> and <c>JobVerbTable</c>);
/// <c>docs/lifecycle.md</c> is generated from it by <see cref="ToMermaid"/>.
/// </summary>
public static class Lifecycle
{
    // Declared first: the tables below are parsed from these in the static initializer.
    private static readonly string[] StatusNames =
        ["undefined", "created", "running", "paused", "ready", "standby", "waiting", "pending", "aborting", "concluded", "null"];

    private static readonly string[] VerbNames =
        ["cancel", "pause", "resume", "set-speed", "complete", "finalize", "dismiss", "change"];

    private const string Letters = "UCRPYSWDXEN";

    // Row = from, column = to; order U C R P Y S W D X E N.
    private static readonly bool[,] Transitions = Parse(
        "U: C",
        "C: R X N",
        "R: P Y W X",
        "P: R",
        "Y: S W X",
        "S: Y",
        "W: D X",
        "D: X E",
        "X: X E",
        "E: N",
        "N:");

    // Row = verb, column = status.
    private static readonly bool[,] Verbs = ParseVerbs(
        "cancel: C R P Y S W D",
        "pause: C R P Y S",
        "resume: C R P Y S",
        "set-speed: C R P Y S",
        "complete: Y S",
        "finalize: D",
        "dismiss: E",
        "change: C R P Y S");

    /// <summary>All statuses in wire order.</summary>
    public static IReadOnlyList<JobStatus> Statuses { get; } = Enum.GetValues<JobStatus>();

    /// <summary>All verbs in wire order.</summary>
    public static IReadOnlyList<JobVerb> AllVerbs { get; } = Enum.GetValues<JobVerb>();

    /// <summary>Whether the lifecycle allows moving from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static bool CanTransition(JobStatus from, JobStatus to) => Transitions[(int)from, (int)to];

    /// <summary>Whether a job in <paramref name="status"/> accepts <paramref name="verb"/>.</summary>
    public static bool Accepts(JobStatus status, JobVerb verb) => Verbs[(int)verb, (int)status];

    /// <summary>Whether <paramref name="status"/> counts as completed (waiting, pending, aborting, concluded, null).</summary>
    public static bool IsCompleted(JobStatus status) =>
        status is JobStatus.Waiting or JobStatus.Pending or JobStatus.Aborting or JobStatus.Concluded or JobStatus.Null;

    /// <summary>Whether <paramref name="status"/> counts as ready (ready or standby).</summary>
    public static bool IsReady(JobStatus status) => status is JobStatus.Ready or JobStatus.Standby;

    /// <summary>The wire name of a status (<c>created</c>, <c>running</c>, ...).</summary>
    public static string WireName(this JobStatus status) => StatusNames[(int)status];

    /// <summary>The wire name of a verb (<c>cancel</c>, <c>set-speed</c>, ...).</summary>
    public static string WireName(this JobVerb verb) => VerbNames[(int)verb];

    /// <summary>Parses a status wire name; returns false for an unknown name.</summary>
    public static bool TryParseStatus(string name, out JobStatus status)
    {
        var i = Array.IndexOf(StatusNames, name);
        status = i < 0 ? default : (JobStatus)i;
        return i >= 0;
    }

    /// <summary>Renders both tables as the Mermaid state diagram and verb table of <c>docs/lifecycle.md</c>.</summary>
    public static string ToMermaid()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("# Job lifecycle\n\n");
        sb.Append("Generated from `JobCore.Lifecycle` (src/JobCore/Lifecycle.cs); a test fails if this file and the table disagree.\n");
        sb.Append("Regenerate with `dotnet test tests/JobCore.Tests --filter LifecycleDoc` after setting `JOBCORE_WRITE_DOCS=1`.\n\n");
        sb.Append("## Transitions\n\n```mermaid\nstateDiagram-v2\n");
        foreach (var from in Statuses)
        {
            foreach (var to in Statuses)
            {
                if (CanTransition(from, to))
                {
                    sb.Append("    ").Append(from.WireName()).Append(" --> ").Append(to.WireName()).Append('\n');
                }
            }
        }

        sb.Append("```\n\n## Verbs accepted per status\n\n| verb |");
        foreach (var s in Statuses)
        {
            sb.Append(' ').Append(s.WireName()).Append(" |");
        }

        sb.Append("\n|---|");
        foreach (var unused in Statuses)
        {
            sb.Append("---|");
        }

        sb.Append('\n');
        foreach (var v in AllVerbs)
        {
            sb.Append("| `").Append(v.WireName()).Append("` |");
            foreach (var s in Statuses)
            {
                sb.Append(Accepts(s, v) ? " ✓ |" : "  |");
            }

            sb.Append('\n');
        }

        sb.Append("\nA refused verb fails with `Job '<id>' in state '<status>' cannot accept command verb '<verb>'`.\n");
        return sb.ToString();
    }

    private static bool[,] Parse(params string[] rows)
    {
        var table = new bool[Letters.Length, Letters.Length];
        foreach (var row in rows)
        {
            var parts = row.Split(':');
            var from = Letters.IndexOf(parts[0][0], StringComparison.Ordinal);
            foreach (var to in parts[1].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                table[from, Letters.IndexOf(to[0], StringComparison.Ordinal)] = true;
            }
        }

        return table;
    }

    private static bool[,] ParseVerbs(params string[] rows)
    {
        var table = new bool[VerbNames.Length, Letters.Length];
        foreach (var row in rows)
        {
            var parts = row.Split(':');
            var verb = Array.IndexOf(VerbNames, parts[0]);
            foreach (var s in parts[1].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                table[verb, Letters.IndexOf(s[0], StringComparison.Ordinal)] = true;
            }
        }

        return table;
    }
}

/// <summary>The commands a job can be asked to carry out (QEMU's <c>JobVerb</c>), in wire order.</summary>
public enum JobVerb
{
    /// <summary>Cancel the job (soft or force).</summary>
    Cancel,
    /// <summary>Pause the job at its next pause point.</summary>
    Pause,
    /// <summary>Undo a user pause.</summary>
    Resume,
    /// <summary>Change the rate limit.</summary>
    SetSpeed,
    /// <summary>Ask a ready job to finish (e.g. mirror pivot).</summary>
    Complete,
    /// <summary>Finalize a pending transaction.</summary>
    Finalize,
    /// <summary>Remove a concluded job.</summary>
    Dismiss,
    /// <summary>Change job-type-specific options while it runs.</summary>
    Change,
}
