namespace JobCore;

/// <summary>
/// Options common to every job; each job type derives its own record with its typed options and overrides
/// <see cref="Validate"/>. The engine calls <see cref="Validate"/> in <see cref="JobEngine.Create"/>.
/// </summary>
public record JobOptions
{
    /// <summary>The job id (letters, digits, <c>-</c>, <c>.</c>, <c>_</c>; first a letter). Required unless <see cref="Internal"/>.</summary>
    public string? Id { get; init; }

    /// <summary>An internal job has no id, emits no events and is invisible to queries.</summary>
    public bool Internal { get; init; }

    /// <summary>Finalize automatically once the transaction succeeded (default); otherwise wait in <c>pending</c>.</summary>
    public bool AutoFinalize { get; init; } = true;

    /// <summary>Dismiss automatically once concluded (default); otherwise wait in <c>concluded</c>.</summary>
    public bool AutoDismiss { get; init; } = true;

    /// <summary>Rate limit in units per second (bytes for block jobs); 0 = unlimited.</summary>
    public long Speed { get; init; }

    /// <summary>Checks the options; throws <see cref="JobException"/> naming the offending option.</summary>
    public virtual void Validate()
    {
        if (Speed < 0)
        {
            throw new JobException("Parameter 'speed' expects a non-negative value");
        }
    }
}
