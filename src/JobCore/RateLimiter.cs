namespace JobCore;

/// <summary>
/// QEMU's slice-based rate limiter (<c>include/qemu/ratelimit.h</c>): 100 ms slices, quota = speed × slice, at least
/// one unit; work already done is accounted after the fact, so the first chunk always goes at full speed, and the
/// delay grows with the overshoot. Thread-safe.
/// </summary>
internal sealed class RateLimiter
{
    /// <summary>QEMU's <c>BLOCK_JOB_SLICE_TIME</c>: 100 ms.</summary>
    public static readonly TimeSpan SliceTime = TimeSpan.FromMilliseconds(100);

    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly long _sliceTicks;
    private long _sliceQuota;
    private long _sliceStart;
    private long _sliceEnd;
    private long _dispatched;

    public RateLimiter(TimeProvider time)
    {
        _time = time;
        _sliceTicks = (long)(SliceTime.TotalSeconds * time.TimestampFrequency);
    }

    /// <summary>Sets the limit in units per second; 0 disables limiting.</summary>
    public void SetSpeed(long speed)
    {
        lock (_lock)
        {
            _sliceQuota = speed == 0 ? 0 : Math.Max((long)(speed * SliceTime.TotalSeconds), 1);
        }
    }

    /// <summary>Accounts <paramref name="units"/> of work and returns how long to wait before more work.</summary>
    public TimeSpan CalculateDelay(long units)
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (_sliceQuota == 0)
            {
                return TimeSpan.Zero;
            }

            if (_sliceEnd < now)
            {
                // The previous (possibly extended) slice is over: start accounting afresh.
                _sliceStart = now;
                _sliceEnd = now + _sliceTicks;
                _dispatched = 0;
            }

            _dispatched += units;
            if (_dispatched < _sliceQuota)
            {
                return TimeSpan.Zero;
            }

            // Over quota: push the slice end out in proportion to the overshoot and wait until then.
            var slices = (double)_dispatched / _sliceQuota;
            _sliceEnd = _sliceStart + (long)(slices * _sliceTicks);
            return TimeSpan.FromSeconds((double)(_sliceEnd - now) / _time.TimestampFrequency);
        }
    }
}
