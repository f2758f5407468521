using System.Diagnostics.CodeAnalysis;

namespace JobCore;

/// <summary>
/// The job types an engine can create: a type name, its options record type and a factory for its driver.
/// Filled through <c>AddJobCore(b =&gt; b.AddJobType&lt;...&gt;())</c> or directly; read by the engine.
/// </summary>
public sealed class JobTypeRegistry
{
    private readonly Dictionary<Type, JobTypeRegistration> _byOptions = [];
    private readonly Lock _lock = new();

    /// <summary>The registered types.</summary>
    public IReadOnlyCollection<JobTypeRegistration> Types
    {
        get
        {
            lock (_lock)
            {
                return [.. _byOptions.Values];
            }
        }
    }

    /// <summary>
    /// Registers a job type. Registering the same driver and options again is a no-op; a different driver for the
    /// same options type is an error.
    /// </summary>
    /// <typeparam name="TDriver">The driver type.</typeparam>
    /// <typeparam name="TOptions">The options record that selects this type in <see cref="JobEngine.Create"/>.</typeparam>
    /// <param name="typeName">The wire type name (<c>stream</c>, <c>mirror</c>, ...).</param>
    /// <param name="factory">Creates a driver per job; receives the host's service provider (may be null) and the options.</param>
    public JobTypeRegistry Add<TDriver, TOptions>(string typeName, Func<IServiceProvider?, TOptions, TDriver> factory)
        where TDriver : JobDriver<TOptions>
        where TOptions : JobOptions
    {
        ArgumentException.ThrowIfNullOrEmpty(typeName);
        ArgumentNullException.ThrowIfNull(factory);
        var registration = new JobTypeRegistration(typeName, typeof(TOptions), typeof(TDriver), (sp, o) =>
        {
            var typed = (TOptions)o;
            var driver = factory(sp, typed);
            driver.Options = typed;
            return driver;
        });

        lock (_lock)
        {
            if (_byOptions.TryGetValue(typeof(TOptions), out var existing))
            {
                if (existing.DriverType == typeof(TDriver) && existing.TypeName == typeName)
                {
                    return this;
                }

                throw new InvalidOperationException(
                    $"Options type {typeof(TOptions).Name} is already registered for job type '{existing.TypeName}' ({existing.DriverType.Name})");
            }

            _byOptions[typeof(TOptions)] = registration;
        }

        return this;
    }

    internal bool TryGet(Type optionsType, [NotNullWhen(true)] out JobTypeRegistration? registration)
    {
        lock (_lock)
        {
            return _byOptions.TryGetValue(optionsType, out registration);
        }
    }
}

/// <summary>One registered job type.</summary>
/// <param name="TypeName">The wire type name.</param>
/// <param name="OptionsType">The options record type.</param>
/// <param name="DriverType">The driver type.</param>
/// <param name="Factory">Creates a driver for one job.</param>
public sealed record JobTypeRegistration(
    string TypeName,
    Type OptionsType,
    Type DriverType,
    Func<IServiceProvider?, JobOptions, JobDriver> Factory);
