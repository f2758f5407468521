using System.Buffers;
using JobCore.Block.Bitmaps;
using JobCore.Block.Graph;

namespace JobCore.Block.Jobs;

internal abstract partial class MirrorDriver<TOptions>
{
    // QEMU's mirror_iteration: take dirty runs (clearing their bits) and start a copy for each while requests and
    // buffer are free. A rate-limited job issues one iteration as 7.2 does — the contiguous dirty area from the cursor,
    // up to the buffer size, in requests of at most the op size — accounts all of it, and then sleeps off the quota.
    private void LaunchCopies(JobContext context, DirtyBitmap bitmap, CancellationToken cancellationToken)
    {
        bool limited = context.Speed != 0;
        long issued = 0;
        long next = -1;
        while (true)
        {
            (int ops, long bytes) = InFlight();
            long room = _plan.BufferSize - bytes;
            if (ops >= MaxInFlight || room < _plan.Granularity || (limited && issued >= _plan.BufferSize))
            {
                return;
            }

            long max = Math.Min(_maxOpBytes, room);
            DirtyRun run;
            lock (_sync)
            {
                DirtyRun? taken;
                if (limited && next >= 0)
                {
                    // The iteration goes on only while the dirty area continues right after its last request.
                    taken = bitmap.NextDirty(next, max) is { } following && following.Offset == next ? bitmap.TakeNextDirty(next, max) : null;
                }
                else
                {
                    taken = bitmap.TakeNextDirty(_cursor, max);
                    if (taken is null && _cursor != 0)
                    {
                        taken = bitmap.TakeNextDirty(0, max);
                    }
                }

                if (taken is null)
                {
                    return;
                }

                run = taken.Value;
                _opsInFlight++;
                _bytesInFlight += run.Length;
            }

            _cursor = run.End >= bitmap.Size ? 0 : run.End;
            next = run.End;
            issued += run.Length;
            _ = CopyRunAsync(run, cancellationToken);
            context.RateLimitProcessed(run.Length);
        }
    }

    // One copy: under an exclusive range lock (write-blocking writes to the same range wait), read the source and
    // write the target; a run the source's chain reads as zeroes (block status), or all-zero data, becomes write-zeroes. A failure consults the policy; the run is dirty again.
    // The copies read in parallel but take turns writing (see _targetTurn).
    private async Task CopyRunAsync(DirtyRun run, CancellationToken cancellationToken)
    {
        int length = (int)run.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        bool copied = false;
        try
        {
            using IDisposable range = await _ranges.AcquireAsync(run.Offset, run.Length, exclusive: true, cancellationToken).ConfigureAwait(false);
            Memory<byte> data = buffer.AsMemory(0, length);
            IoOperation operation = IoOperation.Read;
            try
            {
                // QEMU's mirror_iteration asks the source's block status first: a run that reads as zeroes is not read.
                AllocationExtent status = await BackingChain.StatusAboveAsync(_plan.Source, null, run.Offset, run.Length, cancellationToken).ConfigureAwait(false);
                bool zero = status.Length >= run.Length && (!status.Allocated || status.Zero);
                if (!zero)
                {
                    await _plan.Source.ReadAsync(run.Offset, data, cancellationToken).ConfigureAwait(false);
                    zero = !data.Span.ContainsAnyExcept((byte)0);
                }

                operation = IoOperation.Write;
                await _targetTurn.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    if (!zero)
                    {
                        await _target.WriteAsync(run.Offset, data, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await _target.WriteZeroesAsync(run.Offset, run.Length, _plan.Unmap, cancellationToken).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _targetTurn.Release();
                }

                copied = true;
            }
            catch (Exception e) when (BlockJobCommon.ErrnoOf(e) is { } errno && !cancellationToken.IsCancellationRequested)
            {
                await OnRequestFailedAsync(operation, errno, e, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Force-cancelled: the run stays to do (nobody copies it any more).
        }
#pragma warning disable CA1031 // Anything else is a bug in a node; it fails the job instead of vanishing with this task.
        catch (Exception e)
#pragma warning restore CA1031
        {
            StoreError(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            FinishOp(run, copied);
        }
    }

    // A finished copy leaves the in-flight count; a failed one makes its run dirty again in the same step.
    private void FinishOp(DirtyRun run, bool copied)
    {
        TaskCompletionSource finished;
        lock (_sync)
        {
            if (copied)
            {
                _context!.ProgressWorkDone(run.Length);
                _writeback?.Written(run.Length);
            }
            else
            {
                _bitmap!.SetDirty(run.Offset, run.Length);
            }

            _opsInFlight--;
            _bytesInFlight -= run.Length;
            finished = _opFinished;
            _opFinished = NewSignal();
        }

        finished.SetResult();
    }

    private async ValueTask WaitForOpAsync(CancellationToken cancellationToken)
    {
        Task finished;
        lock (_sync)
        {
            if (_opsInFlight == 0)
            {
                return;
            }

            finished = _opFinished.Task;
        }

        await finished.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask WaitForAllOpsAsync()
    {
        while (true)
        {
            Task finished;
            lock (_sync)
            {
                if (_opsInFlight == 0)
                {
                    return;
                }

                finished = _opFinished.Task;
            }

            await finished.ConfigureAwait(false);
        }
    }

    // Write-blocking mode (QEMU's active mirror, bdrv_mirror_top_do_write): the write takes its range exclusively
    // before it reaches the source and keeps it until the same (bounced) data is on the target, so overlapping guest
    // writes reach source and target in the same order, and a background copy of the range runs wholly before or
    // after. Then the granularity-aligned part is cleared from the bitmap; unaligned edges stay dirty for the loop.
    // Discards only mark (the loop copies what the source reads afterwards) but are ordered the same way. A target
    // error is handled by the job's policy, not by the writer.
    private async ValueTask WriteThroughAsync(GuestWrite write, Func<ValueTask> writeToChild, CancellationToken cancellationToken)
    {
        bool ordered, copy;
        lock (_sync)
        {
            ordered = CopyMode == MirrorCopyMode.WriteBlocking && !_forceCancel.IsCancellationRequested;
            copy = ordered && _error is null && write.Kind != GuestWriteKind.Discard && write.Length > 0;
            if (copy)
            {
                _activeWriteBytes += write.Length;
            }
        }

        if (!ordered)
        {
            await writeToChild().ConfigureAwait(false);
            return;
        }

        if (copy)
        {
            _context!.ProgressIncreaseRemaining(write.Length);
        }

        try
        {
            using IDisposable range = await _ranges.AcquireAsync(write.Offset, write.Length, exclusive: true, cancellationToken).ConfigureAwait(false);
            await writeToChild().ConfigureAwait(false);
            if (copy)
            {
                await CopyGuestWriteAsync(write, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            if (copy)
            {
                lock (_sync)
                {
                    _activeWriteBytes -= write.Length;
                }
            }
        }
    }

    private async ValueTask CopyGuestWriteAsync(GuestWrite write, CancellationToken cancellationToken)
    {
        try
        {
            if (write.Kind == GuestWriteKind.Write)
            {
                await _target.WriteAsync(write.Offset, write.Data, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await _target.WriteZeroesAsync(write.Offset, write.Length, write.MayUnmap && _plan.Unmap, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (BlockJobCommon.ErrnoOf(e) is { } errno)
        {
            _bitmap!.SetDirty(write.Offset, write.Length);
            OnGuestWriteFailed(errno, e);
            return;
        }

        if (write.Ordered)
        {
            // Reset rounds inwards: only chunks the write covered entirely become clean.
            _bitmap!.Reset(write.Offset, write.Length);
        }

        _context!.ProgressWorkDone(write.Length);
    }
}
