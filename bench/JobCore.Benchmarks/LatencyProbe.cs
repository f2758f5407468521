using System.Diagnostics;

namespace JobCore.Benchmarks;

/// <summary>
/// Measurements BenchmarkDotNet cannot express directly: pause request → paused event latency (median and p99 over
/// many round trips) and memory per idle job. Run with <c>dotnet run -c Release -- probe</c>.
/// </summary>
internal static class LatencyProbe
{
    public static async Task RunAsync()
    {
        await PauseLatencyAsync();
        await IdleMemoryAsync();
    }

    private static async Task PauseLatencyAsync()
    {
        await using var engine = Engines.Create();
        using var events = engine.Subscribe();
        var job = engine.Create(new IdleOptions { Id = "lat" });
        job.Start();
        await NextStatusAsync(events, JobStatus.Running);
        var samples = new double[20_000];
        for (var i = -2_000; i < samples.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            job.Pause();
            await NextStatusAsync(events, JobStatus.Paused);
            var elapsed = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            if (i >= 0)
            {
                samples[i] = elapsed;
            }

            job.Resume();
            await NextStatusAsync(events, JobStatus.Running);
        }

        Array.Sort(samples);
        Console.WriteLine($"pause -> paused event: median {samples[samples.Length / 2]:F1} us, p99 {samples[samples.Length * 99 / 100]:F1} us ({samples.Length} samples)");
    }

    private static async Task NextStatusAsync(JobEventSubscription events, JobStatus status)
    {
        while (true)
        {
            var e = await events.Reader.ReadAsync();
            if (e is JobStatusChangedEvent s && s.Status == status)
            {
                return;
            }
        }
    }

    private static async Task IdleMemoryAsync()
    {
        const int n = 20_000;
        await using var engine = Engines.Create();
        var warm = engine.Create(new IdleOptions { Id = "warm" });
        warm.Start();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var jobs = new Job[n];
        for (var i = 0; i < n; i++)
        {
            jobs[i] = engine.Create(new IdleOptions { Id = "idle" + i });
            jobs[i].Start();
        }

        while (jobs.Any(j => j.Info.Busy))
        {
            await Task.Yield();
        }

        var after = GC.GetTotalMemory(forceFullCollection: true);
        Console.WriteLine($"memory per idle job: {(after - before) / (double)n:F0} bytes ({n} jobs)");
        GC.KeepAlive(jobs);
    }
}
