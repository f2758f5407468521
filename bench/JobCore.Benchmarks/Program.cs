using BenchmarkDotNet.Running;
using JobCore.Benchmarks;

if (args.Length > 0 && args[0] == "probe")
{
    await LatencyProbe.RunAsync();
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(LifecycleBenchmarks).Assembly).Run(args);
