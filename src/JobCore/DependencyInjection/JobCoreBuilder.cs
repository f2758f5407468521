using System.Reflection;
using System.Runtime.Loader;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore;

/// <summary>Configures JobCore inside <c>services.AddJobCore(b =&gt; ...)</c>: job types and plugins.</summary>
public sealed class JobCoreBuilder
{
    private readonly HashSet<string> _loadedPlugins;

    internal JobCoreBuilder(IServiceCollection services, JobTypeRegistry registry, HashSet<string> loadedPlugins)
    {
        Services = services;
        Registry = registry;
        _loadedPlugins = loadedPlugins;
    }

    /// <summary>The service collection, for plugins that register their own services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>The job types registered so far.</summary>
    public JobTypeRegistry Registry { get; }

    /// <summary>
    /// Registers a job type whose driver is built by dependency injection (constructor parameters come from the
    /// service provider; the options are set on the driver afterwards).
    /// </summary>
    /// <typeparam name="TDriver">The driver type.</typeparam>
    /// <typeparam name="TOptions">Its options record; passing an instance to <see cref="JobEngine.Create"/> selects this type.</typeparam>
    /// <param name="typeName">The wire type name.</param>
    public JobCoreBuilder AddJobType<TDriver, TOptions>(string typeName)
        where TDriver : JobDriver<TOptions>
        where TOptions : JobOptions
    {
        Registry.Add<TDriver, TOptions>(typeName, static (sp, _) => sp is null
            ? Activator.CreateInstance<TDriver>()
            : ActivatorUtilities.CreateInstance<TDriver>(sp));
        return this;
    }

    /// <summary>Registers a job type with an explicit driver factory.</summary>
    public JobCoreBuilder AddJobType<TDriver, TOptions>(string typeName, Func<IServiceProvider?, TOptions, TDriver> factory)
        where TDriver : JobDriver<TOptions>
        where TOptions : JobOptions
    {
        Registry.Add(typeName, factory);
        return this;
    }

    /// <summary>Applies a plugin (once per plugin type).</summary>
    public JobCoreBuilder AddPlugin(JobCorePlugin plugin)
    {
        ArgumentNullException.ThrowIfNull(plugin);
        if (_loadedPlugins.Add(plugin.GetType().AssemblyQualifiedName ?? plugin.GetType().Name))
        {
            plugin.Configure(this);
        }

        return this;
    }

    /// <summary>
    /// Loads every <c>*.dll</c> in <paramref name="directory"/> and applies each public non-abstract
    /// <see cref="JobCorePlugin"/> subclass with a parameterless constructor. Assemblies without plugins are ignored;
    /// a file that is not a .NET assembly or a plugin that fails to construct is an error naming the file.
    /// </summary>
    public JobCoreBuilder AddPluginsFromDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Plugin directory '{directory}' does not exist");
        }

        foreach (var path in Directory.EnumerateFiles(directory, "*.dll").Order(StringComparer.Ordinal))
        {
            Assembly assembly;
            try
            {
                var full = Path.GetFullPath(path);
                var name = AssemblyName.GetAssemblyName(full);
                assembly = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => AssemblyName.ReferenceMatchesDefinition(a.GetName(), name))
                    ?? AssemblyLoadContext.Default.LoadFromAssemblyPath(full);
            }
            catch (BadImageFormatException ex)
            {
                throw new InvalidOperationException($"Plugin file '{path}' is not a .NET assembly", ex);
            }

            foreach (var type in assembly.GetExportedTypes())
            {
                if (type.IsAbstract || !typeof(JobCorePlugin).IsAssignableFrom(type) || type.GetConstructor(Type.EmptyTypes) is null)
                {
                    continue;
                }

                var plugin = (JobCorePlugin?)Activator.CreateInstance(type)
                    ?? throw new InvalidOperationException($"Plugin '{type.FullName}' in '{path}' could not be created");
                AddPlugin(plugin);
            }
        }

        return this;
    }
}

/// <summary>
/// The entry point of a plugin assembly: registers its job types (and services). Found by
/// <see cref="JobCoreBuilder.AddPluginsFromDirectory"/> or applied with <see cref="JobCoreBuilder.AddPlugin"/>.
/// </summary>
public abstract class JobCorePlugin
{
    /// <summary>A short name for logs (default: the assembly name).</summary>
    public virtual string Name => GetType().Assembly.GetName().Name ?? GetType().Name;

    /// <summary>Registers the plugin's job types and services.</summary>
    public abstract void Configure(JobCoreBuilder builder);
}
