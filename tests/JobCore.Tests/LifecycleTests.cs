namespace JobCore.Tests;

[TestClass]
public sealed class LifecycleTests
{
    // Transcribed independently from spec §1.2 / §1.3 (row = from or verb; letters = allowed targets or statuses).
    private static readonly Dictionary<char, string> ExpectedTransitions = new()
    {
        ['U'] = "C", ['C'] = "RXN", ['R'] = "PYWX", ['P'] = "R", ['Y'] = "SWX", ['S'] = "Y",
        ['W'] = "DX", ['D'] = "XE", ['X'] = "XE", ['E'] = "N", ['N'] = "",
    };

    private static readonly Dictionary<JobVerb, string> ExpectedVerbs = new()
    {
        [JobVerb.Cancel] = "CRPYSWD", [JobVerb.Pause] = "CRPYS", [JobVerb.Resume] = "CRPYS",
        [JobVerb.SetSpeed] = "CRPYS", [JobVerb.Complete] = "YS", [JobVerb.Finalize] = "D",
        [JobVerb.Dismiss] = "E", [JobVerb.Change] = "CRPYS",
    };

    private const string Letters = "UCRPYSWDXEN";

    public static IEnumerable<object[]> AllTransitionPairs() =>
        from f in Enum.GetValues<JobStatus>() from t in Enum.GetValues<JobStatus>() select new object[] { f, t };

    public static IEnumerable<object[]> AllVerbPairs() =>
        from s in Enum.GetValues<JobStatus>() from v in Enum.GetValues<JobVerb>() select new object[] { s, v };

    [TestMethod]
    [DynamicData(nameof(AllTransitionPairs))]
    public void Transition_table_matches_the_spec(JobStatus from, JobStatus to)
    {
        var expected = ExpectedTransitions[Letters[(int)from]].Contains(Letters[(int)to], StringComparison.Ordinal);
        Assert.AreEqual(expected, Lifecycle.CanTransition(from, to), $"{from} -> {to}");
    }

    [TestMethod]
    [DynamicData(nameof(AllVerbPairs))]
    public void Verb_table_matches_the_spec(JobStatus status, JobVerb verb)
    {
        var expected = ExpectedVerbs[verb].Contains(Letters[(int)status], StringComparison.Ordinal);
        Assert.AreEqual(expected, Lifecycle.Accepts(status, verb), $"{verb} in {status}");
    }

    [TestMethod]
    public void Wire_names_follow_qapi()
    {
        CollectionAssert.AreEqual(
            new[] { "undefined", "created", "running", "paused", "ready", "standby", "waiting", "pending", "aborting", "concluded", "null" },
            Lifecycle.Statuses.Select(s => s.WireName()).ToArray());
        CollectionAssert.AreEqual(
            new[] { "cancel", "pause", "resume", "set-speed", "complete", "finalize", "dismiss", "change" },
            Lifecycle.AllVerbs.Select(v => v.WireName()).ToArray());
        Assert.IsTrue(Lifecycle.TryParseStatus("standby", out var s));
        Assert.AreEqual(JobStatus.Standby, s);
        Assert.IsFalse(Lifecycle.TryParseStatus("Standby", out _));
    }

    [TestMethod]
    public void Completed_and_ready_predicates()
    {
        var completed = Enum.GetValues<JobStatus>().Where(Lifecycle.IsCompleted).ToArray();
        CollectionAssert.AreEqual(new[] { JobStatus.Waiting, JobStatus.Pending, JobStatus.Aborting, JobStatus.Concluded, JobStatus.Null }, completed);
        var ready = Enum.GetValues<JobStatus>().Where(Lifecycle.IsReady).ToArray();
        CollectionAssert.AreEqual(new[] { JobStatus.Ready, JobStatus.Standby }, ready);
    }
}
