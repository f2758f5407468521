namespace JobCore.Qmp;

/// <summary>
/// A plugin's QMP commands. A plugin registers its module with
/// <c>builder.AddQmpCommands&lt;MyModule&gt;()</c> in its <c>Configure</c>; the daemon calls <see cref="Register"/>
/// once, before it starts listening.
/// </summary>
public abstract class QmpCommandModule
{
    /// <summary>Adds commands (and block job types, change variants) through <paramref name="context"/>.</summary>
    public abstract void Register(QmpModuleContext context);
}

/// <summary>What a <see cref="QmpCommandModule"/> can extend.</summary>
/// <param name="Commands">The daemon's command table.</param>
/// <param name="Jobs">The job commands (to mark block job types and add <c>block-job-change</c> variants).</param>
/// <param name="Services">The daemon's services (the engine, the plugin's own services).</param>
public sealed record QmpModuleContext(QmpCommandTable Commands, QmpJobCommands Jobs, IServiceProvider Services);
