namespace JobCore.Block.Graph;

/// <summary>
/// Admission of one user's requests with QEMU's drained sections in mind: counts the requests in flight; a drain
/// holds new requests back and completes once those in flight have finished; requests resume when the last drain
/// ends. Drains nest (a drain begun inside another finds nothing in flight). Used by <see cref="BlockBackend"/> (the
/// graph drains backends around rewiring) and by mirror's dirty-tracking filter.
/// </summary>
internal sealed class RequestGate
{
    private readonly Lock _lock = new();
    private int _inFlight;
    private int _drainers;
    private TaskCompletionSource? _idle;
    private TaskCompletionSource? _resume;

    /// <summary>Requests admitted and not exited yet.</summary>
    public int InFlight
    {
        get { lock (_lock) { return _inFlight; } }
    }

    /// <summary>Whether a drain is holding new requests back.</summary>
    public bool Draining
    {
        get { lock (_lock) { return _drainers > 0; } }
    }

    /// <summary>Admits a request, waiting while drained; every successful enter must be paired with <see cref="Exit"/>.</summary>
    /// <param name="cancellationToken">Cancels the wait (the request is then not admitted).</param>
    public ValueTask EnterAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_drainers == 0)
            {
                _inFlight++;
                return ValueTask.CompletedTask;
            }
        }

        return EnterWhenResumedAsync(cancellationToken);
    }

    /// <summary>Ends a request admitted by <see cref="EnterAsync"/>.</summary>
    public void Exit()
    {
        TaskCompletionSource? idle = null;
        lock (_lock)
        {
            if (--_inFlight == 0 && _drainers > 0)
            {
                idle = _idle;
            }
        }

        idle?.TrySetResult();
    }

    /// <summary>
    /// Starts holding new requests back; the returned task completes when none is in flight. Pair with
    /// <see cref="EndDrain"/>, also when the wait is abandoned.
    /// </summary>
    public Task BeginDrain()
    {
        lock (_lock)
        {
            if (_drainers++ == 0)
            {
                _resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            if (_inFlight == 0)
            {
                _idle!.TrySetResult();
            }

            return _idle!.Task;
        }
    }

    /// <summary>Ends one drain; the held requests go on when it was the last.</summary>
    public void EndDrain()
    {
        TaskCompletionSource? resume = null;
        lock (_lock)
        {
            if (_drainers == 0)
            {
                throw new InvalidOperationException("EndDrain without BeginDrain");
            }

            if (--_drainers == 0)
            {
                resume = _resume;
                _resume = null;
                _idle = null;
            }
        }

        resume?.TrySetResult();
    }

    /// <summary>Drains and returns a scope that ends the drain when disposed (once, however often it is disposed).</summary>
    /// <param name="cancellationToken">Cancels the wait (the drain is then ended).</param>
    public async ValueTask<IAsyncDisposable> DrainAsync(CancellationToken cancellationToken)
    {
        var scope = new DrainScope([this]);
        await scope.WaitIdleAsync(cancellationToken).ConfigureAwait(false);
        return scope;
    }

    private async ValueTask EnterWhenResumedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task resume;
            lock (_lock)
            {
                if (_drainers == 0)
                {
                    _inFlight++;
                    return;
                }

                resume = _resume!.Task;
            }

            await resume.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A drain of several gates at once (the backends a graph change affects); disposing ends all of them.</summary>
    internal sealed class DrainScope : IAsyncDisposable
    {
        private readonly RequestGate[] _gates;
        private readonly Task _idle;
        private int _ended;

        public DrainScope(RequestGate[] gates)
        {
            _gates = gates;
            _idle = gates.Length switch
            {
                0 => Task.CompletedTask,
                1 => gates[0].BeginDrain(),
                _ => Task.WhenAll(gates.Select(g => g.BeginDrain())),
            };
        }

        /// <summary>Waits until no gate has a request in flight; on failure (cancel) the drain is ended.</summary>
        public async ValueTask WaitIdleAsync(CancellationToken cancellationToken)
        {
            try
            {
                await _idle.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                End();
                throw;
            }
        }

        public ValueTask DisposeAsync()
        {
            End();
            return ValueTask.CompletedTask;
        }

        private void End()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                foreach (RequestGate gate in _gates)
                {
                    gate.EndDrain();
                }
            }
        }
    }
}
