using JobCore.Block.Jobs;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// The mirror error matrix through blkdebug: report / ignore / stop / enospc × EIO / ENOSPC × source read / target
/// write (spec §4.8: ignore re-dirties and carries on, stop pauses with an I/O status and recopies after resume).
/// </summary>
[TestClass]
public sealed class MirrorErrorPolicyTests
{
    private const long Size = 4L << 20;

    public static IEnumerable<object[]> Matrix()
    {
        foreach (ErrorPolicy policy in new[] { ErrorPolicy.Report, ErrorPolicy.Ignore, ErrorPolicy.Stop, ErrorPolicy.Enospc })
        {
            foreach (int errno in new[] { 5, 28 })
            {
                foreach (bool sourceSide in new[] { true, false })
                {
                    yield return [policy, errno, sourceSide];
                }
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Matrix))]
    public async Task A_failed_request_follows_the_policy_of_its_side(ErrorPolicy policy, int errno, bool sourceSide)
    {
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", Size);
        await MirrorTestBed.WriteAsync(src, 0x5a, (0, Size));
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size);
        if (sourceSide)
        {
            await bed.OpenBlkdebugAsync("src", src, "read_aio", errno);
            await bed.OpenAsync("dst", dst);
        }
        else
        {
            await bed.OpenAsync("src", src);
            await bed.OpenBlkdebugAsync("dst", dst, "write_aio", errno);
        }

        Job job = await bed.StartAsync(new MirrorJobOptions
        {
            Id = "e", Device = "src", Target = "dst", TargetIsZero = true,
            OnSourceError = sourceSide ? policy : ErrorPolicy.Report,
            OnTargetError = sourceSide ? ErrorPolicy.Report : policy,
        });
        string operation = sourceSide ? "read" : "write";
        bool noSpace = errno == 28;
        string message = noSpace ? "No space left on device" : "Input/output error";
        switch (ErrorPolicies.Decide(policy, noSpace))
        {
            case ErrorAction.Report:
                await bed.ExpectAsync($"e:ERROR:{operation}:report", "e:aborting", $"e:COMPLETED:{message}", "e:concluded", "e:null");
                await bed.AssertCheckedAsync(src, dst);
                return;

            case ErrorAction.Ignore:
                await bed.ExpectAsync($"e:ERROR:{operation}:ignore", "e:ready", "e:READY");
                break;

            case ErrorAction.Stop:
                await bed.ExpectAsync($"e:ERROR:{operation}:stop", "e:paused");
                JobInfo stopped = job.Info;
                Assert.AreEqual(noSpace ? IoStatus.NoSpace : IoStatus.Failed, stopped.IoStatus);
                Assert.IsTrue(stopped.Paused);
                Assert.IsTrue(stopped.CurrentProgress < stopped.TotalProgress, $"the failed range is still to do: {stopped}");
                job.Resume();
                await bed.ExpectAsync("e:running", "e:ready", "e:READY");
                Assert.AreEqual(IoStatus.Ok, job.Info.IoStatus);
                break;
        }

        job.Complete();
        await bed.ExpectCompletedAsync("e");
        await bed.AssertSameContentAsync(src, dst);
    }
}
