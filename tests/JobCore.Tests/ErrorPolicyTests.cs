using JobCore.Tests.Support;

namespace JobCore.Tests;

[TestClass]
public sealed class ErrorPolicyTests
{
    [TestMethod]
    [DataRow(ErrorPolicy.Report, false, ErrorAction.Report)]
    [DataRow(ErrorPolicy.Report, true, ErrorAction.Report)]
    [DataRow(ErrorPolicy.Ignore, false, ErrorAction.Ignore)]
    [DataRow(ErrorPolicy.Ignore, true, ErrorAction.Ignore)]
    [DataRow(ErrorPolicy.Stop, false, ErrorAction.Stop)]
    [DataRow(ErrorPolicy.Stop, true, ErrorAction.Stop)]
    [DataRow(ErrorPolicy.Enospc, false, ErrorAction.Report)]
    [DataRow(ErrorPolicy.Enospc, true, ErrorAction.Stop)]
    [DataRow(ErrorPolicy.Auto, false, ErrorAction.Report)]
    [DataRow(ErrorPolicy.Auto, true, ErrorAction.Stop)]
    public async Task Policy_maps_eio_and_enospc_to_the_action_and_emits_it(ErrorPolicy policy, bool noSpace, ErrorAction expected)
    {
        Assert.AreEqual(expected, ErrorPolicies.Decide(policy, noSpace));

        await using var h = new EngineHarness();
        var job = await h.StartAsync("e");
        h.Driver("e").Send(new Step.IoError(policy, IoOperation.Read, noSpace));
        await h.ExpectAsync($"e:ERROR:read:{expected.WireName()}");
        switch (expected)
        {
            case ErrorAction.Ignore:
                h.Driver("e").Send(new Step.Finish());
                await h.ExpectAsync("e:waiting");
                Assert.AreEqual(IoStatus.Ok, job.Info.IoStatus, "ignore leaves the I/O status alone");
                break;
            case ErrorAction.Report:
                await h.ExpectAsync("e:aborting");
                Assert.AreEqual(IoStatus.Ok, job.Info.IoStatus, "report leaves the I/O status alone");
                break;
            case ErrorAction.Stop:
                await h.ExpectAsync("e:paused");
                Assert.AreEqual(noSpace ? IoStatus.NoSpace : IoStatus.Failed, job.Info.IoStatus);
                break;
        }
    }

    [TestMethod]
    public async Task First_error_wins_the_io_status()
    {
        await using var h = new EngineHarness();
        var job = await h.StartAsync("e");
        Assert.AreEqual(ErrorAction.Stop, job.Context.HandleError(ErrorPolicy.Stop, IoOperation.Write, noSpace: true));
        Assert.AreEqual(ErrorAction.Stop, job.Context.HandleError(ErrorPolicy.Stop, IoOperation.Write, noSpace: false));
        Assert.AreEqual(IoStatus.NoSpace, job.Info.IoStatus);
        Assert.IsTrue(job.IsUserPaused);
        await h.ExpectAsync("e:ERROR:write:stop", "e:ERROR:write:stop");
    }

    [TestMethod]
    public void Wire_names()
    {
        CollectionAssert.AreEqual(new[] { "report", "ignore", "enospc", "stop", "auto" },
            Enum.GetValues<ErrorPolicy>().Select(p => p.WireName()).ToArray());
        Assert.IsTrue(ErrorPolicies.TryParse("enospc", out var p));
        Assert.AreEqual(ErrorPolicy.Enospc, p);
        Assert.IsFalse(ErrorPolicies.TryParse("retry", out _));
        Assert.AreEqual("nospace", IoStatus.NoSpace.WireName());
    }
}
