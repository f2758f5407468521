using JobCore.Qmp;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace JobCore;

/// <summary>Registers plugin QMP command modules.</summary>
public static class QmpJobCoreBuilderExtensions
{
    /// <summary>Adds <typeparamref name="TModule"/> (constructed by dependency injection) to the daemon's QMP commands.</summary>
    public static JobCoreBuilder AddQmpCommands<TModule>(this JobCoreBuilder builder)
        where TModule : QmpCommandModule
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<QmpCommandModule, TModule>());
        return builder;
    }

    /// <summary>
    /// Builds the complete command table for <paramref name="services"/>: the built-in commands, the job commands
    /// over its <see cref="JobEngine"/>, and every registered <see cref="QmpCommandModule"/>.
    /// </summary>
    public static (QmpCommandTable Commands, QmpJobCommands Jobs) BuildQmpCommands(this IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var commands = new QmpCommandTable().AddBuiltinCommands();
        var jobs = new QmpJobCommands(services.GetRequiredService<JobEngine>());
        jobs.Register(commands);
        foreach (var module in services.GetServices<QmpCommandModule>())
        {
            module.Register(new QmpModuleContext(commands, jobs, services));
        }

        return (commands, jobs);
    }
}
