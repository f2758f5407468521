using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;

namespace JobCore.Tests.Support;

/// <summary>An engine on fake time with the scripted job type, one event subscription, and helpers to wait on events.</summary>
internal sealed class EngineHarness : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly ConcurrentDictionary<string, ScriptedJob> _drivers = new();

    public EngineHarness(int subscriberCapacity = 0)
    {
        var registry = new JobTypeRegistry();
        registry.Add<ScriptedJob, ScriptedOptions>("scripted", (_, o) => _drivers[o.Id ?? Guid.NewGuid().ToString()] = new ScriptedJob());
        Engine = new JobEngine(registry, timeProvider: Time);
        Events = Engine.Subscribe(subscriberCapacity);
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public JobEngine Engine { get; }

    public JobEventSubscription Events { get; }

    public ConcurrentQueue<string> HookLog { get; } = new();

    public ScriptedJob Driver(string id) => _drivers[id];

    /// <summary>Creates and starts a scripted job, consuming its created/running events.</summary>
    public async Task<Job> StartAsync(string id, ScriptedOptions? options = null, JobTransaction? txn = null)
    {
        var job = Engine.Create((options ?? new ScriptedOptions()) with { Id = id, HookLog = HookLog }, txn);
        job.Start();
        await ExpectAsync($"{id}:created", $"{id}:running");
        return job;
    }

    /// <summary>Reads the next event, rendered as text: "id:status", "id:READY", "id:COMPLETED[:error]", ...</summary>
    public async Task<string> NextAsync()
    {
        var e = await Events.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        return Render(e);
    }

    public static string Render(JobEvent e) => e switch
    {
        JobStatusChangedEvent s => $"{s.Job.Id}:{s.Status.WireName()}",
        JobReadyEvent r => $"{r.Job.Id}:READY",
        JobPendingEvent p => $"{p.Job.Id}:PENDING",
        JobCompletedEvent c => c.Error is null ? $"{c.Job.Id}:COMPLETED" : $"{c.Job.Id}:COMPLETED:{c.Error}",
        JobCancelledEvent c => $"{c.Job.Id}:CANCELLED",
        JobErrorEvent x => $"{x.Job.Id}:ERROR:{x.Operation.WireName()}:{x.Action.WireName()}",
        _ => throw new InvalidOperationException("unknown event " + e),
    };

    /// <summary>Asserts the next events are exactly <paramref name="expected"/>, in order.</summary>
    public async Task ExpectAsync(params string[] expected)
    {
        var seen = new List<string>();
        foreach (var want in expected)
        {
            string got;
            try
            {
                got = await NextAsync();
            }
            catch (TimeoutException)
            {
                Assert.Fail($"timed out waiting for '{want}'; got so far: [{string.Join(", ", seen)}]");
                throw;
            }

            seen.Add(got);
            Assert.AreEqual(want, got, $"event #{seen.Count}; sequence so far: [{string.Join(", ", seen)}]");
        }
    }

    /// <summary>Asserts that no event is buffered right now.</summary>
    public void ExpectNoPendingEvent()
    {
        if (Events.Reader.TryRead(out var e))
        {
            Assert.Fail("unexpected event " + Render(e));
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds for the job's snapshot (polls the engine, no sleeps in between beyond yields).</summary>
    public static async Task WaitForAsync(Job job, Func<JobInfo, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition(job.Info))
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"condition not reached; job is {job.Info}");
            }

            await Task.Yield();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        Events.Dispose();
    }
}
