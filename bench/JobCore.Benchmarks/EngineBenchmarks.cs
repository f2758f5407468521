using BenchmarkDotNet.Attributes;

namespace JobCore.Benchmarks;

/// <summary>Whole lifecycles of no-op jobs: create, start, run, waiting, pending, commit, concluded, null.</summary>
[MemoryDiagnoser]
public class LifecycleBenchmarks
{
    private const int Jobs = 10_000;
    private JobEngine _engine = null!;
    private int _next;

    [GlobalSetup]
    public void Setup() => _engine = Engines.Create();

    [GlobalCleanup]
    public ValueTask Cleanup() => _engine.DisposeAsync();

    /// <summary>10 000 lifecycles per operation; lifecycles/s = 10 000 / mean.</summary>
    [Benchmark(OperationsPerInvoke = Jobs)]
    public async Task NoopLifecycle()
    {
        var done = new Task[Jobs];
        for (var i = 0; i < Jobs; i++)
        {
            var job = _engine.Create(new NoopOptions { Id = "j" + _next++ });
            job.Start();
            done[i] = job.Concluded;
        }

        await Task.WhenAll(done);
    }
}

/// <summary>query-jobs over 10 000 jobs.</summary>
[MemoryDiagnoser]
public class QueryBenchmarks
{
    private JobEngine _engine = null!;

    [GlobalSetup]
    public void Setup()
    {
        _engine = Engines.Create();
        for (var i = 0; i < 10_000; i++)
        {
            _engine.Create(new IdleOptions { Id = "q" + i }).Start();
        }
    }

    [GlobalCleanup]
    public ValueTask Cleanup() => _engine.DisposeAsync();

    [Benchmark]
    public int QueryJobs10000() => _engine.QueryJobs().Count;
}
