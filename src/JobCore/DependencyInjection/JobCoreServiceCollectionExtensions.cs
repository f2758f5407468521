using JobCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers JobCore in a service collection.</summary>
public static class JobCoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds the job engine (singleton), its type registry and a system <see cref="TimeProvider"/> (unless one is
    /// registered). Idempotent: calling it again adds job types to the same registry and nothing else. Engine options
    /// are validated when the engine is first resolved.
    /// </summary>
    public static IServiceCollection AddJobCore(
        this IServiceCollection services,
        Action<JobCoreBuilder>? configure = null,
        Action<JobEngineOptions>? configureEngine = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var state = services.FirstOrDefault(d => d.ServiceType == typeof(JobCoreRegistrationState))?.ImplementationInstance
            as JobCoreRegistrationState;
        if (state is null)
        {
            state = new JobCoreRegistrationState();
            services.AddSingleton(state);
            services.AddSingleton(state.Registry);
            services.TryAddSingleton(TimeProvider.System);
            services.TryAddSingleton(sp => new JobEngine(
                state.Registry,
                state.BuildOptions(),
                sp.GetService<TimeProvider>(),
                sp.GetService<ILoggerFactory>(),
                sp));
        }

        if (configureEngine is not null)
        {
            state.EngineConfigurations.Add(configureEngine);
        }

        configure?.Invoke(new JobCoreBuilder(services, state.Registry, state.LoadedPlugins));
        return services;
    }

    private sealed class JobCoreRegistrationState
    {
        public JobTypeRegistry Registry { get; } = new();

        public HashSet<string> LoadedPlugins { get; } = new(StringComparer.Ordinal);

        public List<Action<JobEngineOptions>> EngineConfigurations { get; } = [];

        public JobEngineOptions BuildOptions()
        {
            var options = new JobEngineOptions();
            foreach (var configure in EngineConfigurations)
            {
                configure(options);
            }

            return options;
        }
    }
}
