using System.Text.Json;
using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// A temp folder, a block graph and a job engine with the mirror engine's types (<c>mirror</c>, active <c>commit</c>)
/// registered, one event subscription, and helpers to build qcow2 images with qemu-img/qemu-io and check them after
/// the job. One per test; disposing closes the graph and deletes the folder.
/// </summary>
internal sealed class MirrorTestBed : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private bool _graphClosed;

    public MirrorTestBed()
    {
        Folder = Path.Combine(Path.GetTempPath(), "jobcore-mirror-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Folder);
        Graph = new BlockGraph();
        var registry = new JobTypeRegistry().AddMirrorJobs(_ => Graph);
        Engine = new JobEngine(registry);
        Events = Engine.Subscribe();
    }

    public string Folder { get; }

    public BlockGraph Graph { get; }

    public JobEngine Engine { get; }

    public JobEventSubscription Events { get; }

    public string File(string name) => Path.Combine(Folder, name);

    /// <summary>Creates a qcow2 image (64 KiB clusters unless given) with an optional backing file.</summary>
    public async Task<string> CreateQcow2Async(string name, long size, string? backing = null, int clusterSize = 65536)
    {
        string path = File(name);
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize}" };
        if (backing is not null)
        {
            args.AddRange(["-b", backing, "-F", "qcow2"]);
        }

        args.AddRange([path, size.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await QemuImg.ImgOkAsync([.. args]);
        return path;
    }

    /// <summary>Writes byte <paramref name="pattern"/> at each (offset, length) with qemu-io (or zeroes when <paramref name="pattern"/> is null).</summary>
    public static Task WriteAsync(string image, byte? pattern, params (long Offset, long Length)[] ranges) =>
        QemuImg.IoCommandsAsync(image, "qcow2", [.. ranges.Select(r => pattern is { } p
            ? $"write -P 0x{p:x2} {r.Offset} {r.Length}"
            : $"write -z {r.Offset} {r.Length}")]);

    /// <summary>Opens a qcow2 node with blockdev-add; <paramref name="extra"/> is appended JSON (e.g. <c>,"backing":"base"</c>).</summary>
    public async Task<BlockNode> OpenAsync(string nodeName, string path, string extra = "")
    {
        string json = $$"""{"driver":"qcow2","node-name":"{{nodeName}}","file":{"driver":"file","filename":{{JsonSerializer.Serialize(path)}}}{{extra}}}""";
        return await Graph.AddAsync(JsonDocument.Parse(json).RootElement);
    }

    /// <summary>Opens a blkdebug node over a qcow2 image with one inject-error rule.</summary>
    public async Task<BlockNode> OpenBlkdebugAsync(string nodeName, string path, string @event, int errno, string extra = "")
    {
        string json = $$$"""
            {"driver":"blkdebug","node-name":"{{{nodeName}}}",
             "inject-error":[{"event":"{{{@event}}}","errno":{{{errno}}},"once":true}],
             "image":{"driver":"qcow2","file":{"driver":"file","filename":{{{JsonSerializer.Serialize(path)}}}}{{{extra}}}}}
            """;
        return await Graph.AddAsync(JsonDocument.Parse(json).RootElement);
    }

    /// <summary>Creates and starts a job, consuming its created/running events.</summary>
    public async Task<Job> StartAsync(JobOptions options)
    {
        Job job = Engine.Create(options);
        job.Start();
        await ExpectAsync($"{job.Id}:created", $"{job.Id}:running");
        return job;
    }

    /// <summary>Reads the next event, rendered as text: "id:status", "id:READY", "id:COMPLETED[:error]", ...</summary>
    public async Task<string> NextAsync() => Render(await NextEventAsync());

    public async Task<JobEvent> NextEventAsync() => await Events.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

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
        foreach (string want in expected)
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
            if (want != got)
            {
                // Show what followed too (e.g. the error of a failed job), waiting briefly for it.
                using var more = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                try
                {
                    while (seen.Count < 20)
                    {
                        seen.Add(Render(await Events.Reader.ReadAsync(more.Token)));
                    }
                }
                catch (OperationCanceledException)
                {
                    // Nothing more arrived.
                }

                Assert.Fail($"event #{expected.ToList().IndexOf(want) + 1}: expected '{want}', got '{got}'; events: [{string.Join(", ", seen)}]");
            }
        }
    }

    /// <summary>The usual tail after complete or a soft cancel: waiting, pending, COMPLETED, concluded, null.</summary>
    public Task ExpectCompletedAsync(string id) =>
        ExpectAsync($"{id}:waiting", $"{id}:pending", $"{id}:COMPLETED", $"{id}:concluded", $"{id}:null");

    /// <summary>Waits until the job's snapshot satisfies <paramref name="condition"/> (polls with yields).</summary>
    public static async Task WaitForAsync(Job job, Func<JobInfo, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition(job.Info))
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"condition not reached; job is {job.Info}");
            }

            await Task.Delay(1);
        }
    }

    /// <summary>Closes every node (images are flushed and closed) so qemu-img can open them.</summary>
    public async Task CloseGraphAsync()
    {
        if (!_graphClosed)
        {
            _graphClosed = true;
            await Graph.DisposeAsync();
        }
    }

    /// <summary>Closes the graph, then asserts qemu-img compare says the two images show the same data, and checks both.</summary>
    public async Task AssertSameContentAsync(string a, string b)
    {
        await CloseGraphAsync();
        ToolResult compare = await QemuImg.ImgAsync("compare", a, b);
        Assert.AreEqual(0, compare.ExitCode, $"qemu-img compare {a} {b}:\n{compare.All}");
        await AssertCheckedAsync([.. new[] { a, b }.Where(f => f.EndsWith(".qcow2", StringComparison.Ordinal))]);
    }

    /// <summary>Closes the graph and runs qemu-img check on each image.</summary>
    public async Task AssertCheckedAsync(params string[] images)
    {
        await CloseGraphAsync();
        foreach (string image in images)
        {
            ToolResult check = await QemuImg.ImgAsync("check", image);
            Assert.AreEqual(0, check.ExitCode, $"qemu-img check {image}:\n{check.All}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        Events.Dispose();
        await CloseGraphAsync();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder must not fail the test.
        }
    }
}
