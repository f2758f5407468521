using JobCore.Block.Graph;

namespace JobCore.Block.Tests.Graph;

[TestClass]
public sealed class RequestGateTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [TestMethod]
    public async Task A_drain_completes_when_the_requests_in_flight_exit_and_holds_new_ones_until_it_ends()
    {
        var gate = new RequestGate();
        await gate.EnterAsync(CancellationToken.None);
        await gate.EnterAsync(CancellationToken.None);
        Assert.AreEqual(2, gate.InFlight);

        Task<IAsyncDisposable> drain = gate.DrainAsync(CancellationToken.None).AsTask();
        Task held = gate.EnterAsync(CancellationToken.None).AsTask();
        gate.Exit();
        Assert.IsFalse(drain.IsCompleted, "one request is still in flight");
        gate.Exit();
        IAsyncDisposable scope = await drain.WaitAsync(Timeout);
        Assert.AreEqual(0, gate.InFlight);
        Assert.IsFalse(held.IsCompleted, "new requests wait while drained");

        await scope.DisposeAsync();
        await scope.DisposeAsync(); // a second dispose ends nothing more
        await held.WaitAsync(Timeout);
        Assert.AreEqual(1, gate.InFlight);
        gate.Exit();
    }

    [TestMethod]
    public async Task Nested_drains_release_the_requests_with_the_last_one()
    {
        var gate = new RequestGate();
        IAsyncDisposable outer = await gate.DrainAsync(CancellationToken.None);
        IAsyncDisposable inner = await gate.DrainAsync(CancellationToken.None).AsTask().WaitAsync(Timeout);
        Task held = gate.EnterAsync(CancellationToken.None).AsTask();
        await inner.DisposeAsync();
        Assert.IsFalse(held.IsCompleted, "the outer drain still holds");
        await outer.DisposeAsync();
        await held.WaitAsync(Timeout);
        gate.Exit();
    }

    [TestMethod]
    public async Task A_cancelled_drain_lets_held_requests_go_and_a_cancelled_enter_is_not_admitted()
    {
        var gate = new RequestGate();
        await gate.EnterAsync(CancellationToken.None);
        using var cancelDrain = new CancellationTokenSource();
        Task<IAsyncDisposable> drain = gate.DrainAsync(cancelDrain.Token).AsTask();
        using var cancelEnter = new CancellationTokenSource();
        Task abandoned = gate.EnterAsync(cancelEnter.Token).AsTask();
        Task held = gate.EnterAsync(CancellationToken.None).AsTask();

        await cancelEnter.CancelAsync();
        await Assert.ThrowsAsync<OperationCanceledException>(() => abandoned.WaitAsync(Timeout));
        await cancelDrain.CancelAsync();
        await Assert.ThrowsAsync<OperationCanceledException>(() => drain.WaitAsync(Timeout));
        await held.WaitAsync(Timeout);
        Assert.AreEqual(2, gate.InFlight, "the first request and the one held; not the abandoned one");
        gate.Exit();
        gate.Exit();
        Assert.ThrowsExactly<InvalidOperationException>(gate.EndDrain);
    }
}
